//! CSV export of an org's current and past members, produced a batch at a time so memory stays
//! flat however large the roster is. Cells that a spreadsheet would run as a formula are
//! defused (OWASP CSV injection advice: a leading `'` before `= + - @`, also full-width or after
//! leading whitespace, and before a leading tab or carriage return).
//!
//! The columns come in groups (`basics`, `emails`, `phones`, `groups`, `balances`,
//! `payments`, `attributes`) chosen by the caller, always in one canonical order; without a choice the export
//! has today's columns. The output is CSV or a .zip holding the CSV (deflated as it streams).
//! Large exports run as a job (`run_export_job`) that stores the file in the database in
//! chunks, so every replica can serve the download until it expires.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::{Stream, StreamExt};
use serde_json::{Value, json};
use uuid::Uuid;

use super::audit::{Actor, record};
use super::jobs::{JobCtx, JobSettings, KIND_EXPORT};
use super::members::lock_org;
use super::{Result, Roster, RosterError};
use crate::domain::{Member, Phone};
use crate::store::attributes::AttributeDef;
use crate::store::jobs::{JobFile, JobRow};
use crate::store::{self, Store};

/// Rows fetched per batch.
pub const BATCH: i64 = 1000;

/// Bytes per stored chunk of an export job's file.
pub const CHUNK_BYTES: usize = 256 * 1024;

/// Today's columns (the export without a column choice).
pub const HEADER: [&str; 11] = [
    "Name",
    "Member email",
    "Login email",
    "Access",
    "Role",
    "Activity date",
    "Added date",
    "Points",
    "Monthly fee",
    "Total paid",
    "Currency",
];

/// A group of columns the caller may choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ColumnGroup {
    /// Name, access, role, activity and added dates.
    Basics,
    /// Member email, login email, contact email (where a former member can be reached).
    Emails,
    /// Phone numbers, `type:number` separated by `; `.
    Phones,
    /// Group names, separated by `; `.
    Groups,
    /// Points.
    Balances,
    /// Monthly fee, total paid, currency.
    Payments,
    /// The org's own attributes, one column each (headed by the attribute name, in name order),
    /// holding the value's canonical text.
    Attributes,
}

impl ColumnGroup {
    pub const ALL: [ColumnGroup; 7] = [
        ColumnGroup::Basics,
        ColumnGroup::Emails,
        ColumnGroup::Phones,
        ColumnGroup::Groups,
        ColumnGroup::Balances,
        ColumnGroup::Payments,
        ColumnGroup::Attributes,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ColumnGroup::Basics => "basics",
            ColumnGroup::Emails => "emails",
            ColumnGroup::Phones => "phones",
            ColumnGroup::Groups => "groups",
            ColumnGroup::Balances => "balances",
            ColumnGroup::Payments => "payments",
            ColumnGroup::Attributes => "attributes",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == s)
    }
}

/// Reads a `columns=` list (comma separated group names). An unknown name is an error naming it.
pub fn parse_columns(list: &str) -> std::result::Result<Vec<ColumnGroup>, String> {
    let mut groups = Vec::new();
    for part in list.split(',').map(str::trim) {
        let Some(g) = ColumnGroup::parse(&part.to_ascii_lowercase()) else {
            let names: Vec<&str> = ColumnGroup::ALL.iter().map(|g| g.as_str()).collect();
            return Err(format!(
                "unknown column group `{}`; expected a comma-separated list of: {}",
                part.escape_debug(),
                names.join(", ")
            ));
        };
        groups.push(g);
    }
    groups.sort();
    groups.dedup();
    Ok(groups)
}

/// CSV, or a .zip holding the CSV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Zip,
}

impl ExportFormat {
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Ok(ExportFormat::Csv),
            "zip" => Ok(ExportFormat::Zip),
            _ => Err(format!(
                "unknown format `{}`; expected csv or zip",
                s.escape_debug()
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Zip => "zip",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Csv => "text/csv; charset=utf-8",
            ExportFormat::Zip => "application/zip",
        }
    }
}

/// What to export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportOptions {
    /// `None`: today's columns.
    pub columns: Option<Vec<ColumnGroup>>,
    pub format: ExportFormat,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            columns: None,
            format: ExportFormat::Csv,
        }
    }
}

impl ExportOptions {
    /// The file name a download of the org's export gets.
    pub fn file_name(&self, slug: &str) -> String {
        format!("{slug}-members.{}", self.format.as_str())
    }

    fn to_json(&self) -> Value {
        json!({
            "columns": self.columns.as_ref().map(|c| c.iter().map(|g| g.as_str()).collect::<Vec<_>>()),
            "format": self.format.as_str(),
        })
    }

    fn from_json(v: &Value) -> std::result::Result<Self, String> {
        let columns = match v["columns"].as_array() {
            Some(list) => {
                let names: Vec<&str> = list.iter().filter_map(Value::as_str).collect();
                Some(parse_columns(&names.join(","))?)
            }
            None => None,
        };
        let format = ExportFormat::parse(v["format"].as_str().unwrap_or("csv"))?;
        Ok(ExportOptions { columns, format })
    }
}

/// One column, in the canonical order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Col {
    Name,
    MemberEmail,
    LoginEmail,
    ContactEmail,
    Access,
    Role,
    Activity,
    Added,
    Phones,
    Groups,
    Points,
    MonthlyFee,
    TotalPaid,
    Currency,
    /// The org attribute at this index of `Layout::attrs`.
    Attr(usize),
}

const CANONICAL: [(Col, ColumnGroup, &str); 14] = [
    (Col::Name, ColumnGroup::Basics, "Name"),
    (Col::MemberEmail, ColumnGroup::Emails, "Member email"),
    (Col::LoginEmail, ColumnGroup::Emails, "Login email"),
    (Col::ContactEmail, ColumnGroup::Emails, "Contact email"),
    (Col::Access, ColumnGroup::Basics, "Access"),
    (Col::Role, ColumnGroup::Basics, "Role"),
    (Col::Activity, ColumnGroup::Basics, "Activity date"),
    (Col::Added, ColumnGroup::Basics, "Added date"),
    (Col::Phones, ColumnGroup::Phones, "Phones"),
    (Col::Groups, ColumnGroup::Groups, "Groups"),
    (Col::Points, ColumnGroup::Balances, "Points"),
    (Col::MonthlyFee, ColumnGroup::Payments, "Monthly fee"),
    (Col::TotalPaid, ColumnGroup::Payments, "Total paid"),
    (Col::Currency, ColumnGroup::Payments, "Currency"),
];

/// The columns of one export.
#[derive(Debug, Clone)]
struct Layout {
    cols: Vec<(Col, String)>,
    /// Whether the org's attributes follow (read when the export starts).
    with_attributes: bool,
    attrs: Vec<AttributeDef>,
}

impl Layout {
    fn new(columns: Option<&[ColumnGroup]>) -> Self {
        let cols = CANONICAL
            .iter()
            .filter(|(c, g, _)| match columns {
                Some(groups) => groups.contains(g),
                // Today's columns: everything but contact email, phones and groups.
                None => !matches!(c, Col::ContactEmail | Col::Phones | Col::Groups),
            })
            .map(|(c, _, h)| (*c, (*h).to_owned()))
            .collect();
        Layout {
            cols,
            // Today's columns end with the org's attributes.
            with_attributes: columns.is_none_or(|g| g.contains(&ColumnGroup::Attributes)),
            attrs: Vec::new(),
        }
    }

    /// Appends one column per attribute of the org's schema (when the export wants them).
    fn add_attributes(&mut self, attrs: Vec<AttributeDef>) {
        if !self.with_attributes {
            return;
        }
        for (i, a) in attrs.iter().enumerate() {
            self.cols.push((Col::Attr(i), a.name.clone()));
        }
        self.attrs = attrs;
    }

    fn wants(&self, col: Col) -> bool {
        self.cols.iter().any(|(c, _)| *c == col)
    }
}

/// What a batch needs beyond the member rows.
#[derive(Default)]
struct Extras {
    phones: HashMap<Uuid, Vec<Phone>>,
    groups: HashMap<Uuid, Vec<String>>,
    attrs: HashMap<Uuid, Vec<(Uuid, String)>>,
}

impl Extras {
    async fn load(
        tx: &mut store::Tx,
        layout: &Layout,
        org_id: Uuid,
        rows: &[Member],
    ) -> store::Result<Self> {
        let ids: Vec<Uuid> = rows.iter().map(|m| m.id).collect();
        let mut extras = Extras::default();
        if layout.wants(Col::Phones) && !ids.is_empty() {
            extras.phones = store::phones::phones_for(tx, org_id, &ids).await?;
        }
        if layout.wants(Col::Groups) && !ids.is_empty() {
            for (member, _, name) in store::groups::groups_of(tx, org_id, &ids).await? {
                extras.groups.entry(member).or_default().push(name);
            }
        }
        if !layout.attrs.is_empty() && !ids.is_empty() {
            extras.attrs = store::attributes::values_for(tx, org_id, &ids).await?;
        }
        Ok(extras)
    }
}

/// Makes a cell safe to open in a spreadsheet: a cell that starts with a tab or carriage return,
/// or whose first non-whitespace character is `= + - @` or their full-width forms `＝ ＋ － ＠`
/// (spreadsheets skip leading spaces and fold full-width signs), gets a leading `'`.
pub fn defuse(cell: &str) -> std::borrow::Cow<'_, str> {
    let risky = cell.starts_with(['\t', '\r'])
        || cell.trim_start().starts_with([
            '=', '+', '-', '@', '\u{ff1d}', '\u{ff0b}', '\u{ff0d}', '\u{ff20}',
        ]);
    if risky {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

fn date(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn phone_cell(phones: &[Phone]) -> String {
    phones
        .iter()
        .map(|p| match &p.kind {
            Some(t) => format!("{t}:{}", p.value),
            None => p.value.clone(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn encode(
    layout: &Layout,
    rows: &[Member],
    extras: &Extras,
    with_header: bool,
) -> std::result::Result<Vec<u8>, csv::Error> {
    let mut w = csv::WriterBuilder::new().from_writer(Vec::with_capacity(rows.len() * 120));
    if with_header {
        w.write_record(layout.cols.iter().map(|(_, h)| h.as_str()))?;
    }
    let mut record: Vec<String> = Vec::with_capacity(layout.cols.len());
    for m in rows {
        record.clear();
        for (col, _) in &layout.cols {
            let cell = match col {
                Col::Name => defuse(&m.name()).into_owned(),
                Col::MemberEmail => defuse(&m.member_email).into_owned(),
                Col::LoginEmail => defuse(m.distinct_login_email().unwrap_or("")).into_owned(),
                Col::ContactEmail => defuse(m.contact_email.as_deref().unwrap_or("")).into_owned(),
                Col::Access => m.access.as_str().to_owned(),
                Col::Role => m.role.as_str().to_owned(),
                Col::Activity => date(m.activity_at),
                Col::Added => date(m.added_at),
                Col::Phones => defuse(&phone_cell(
                    extras.phones.get(&m.id).map_or(&[][..], Vec::as_slice),
                ))
                .into_owned(),
                Col::Groups => defuse(
                    &extras
                        .groups
                        .get(&m.id)
                        .map(|g| g.join("; "))
                        .unwrap_or_default(),
                )
                .into_owned(),
                Col::Points => m.points.to_string(),
                // Money as stored: whole minor units (cents), never a float.
                Col::MonthlyFee => m.monthly_fee.map(|f| f.to_string()).unwrap_or_default(),
                Col::TotalPaid => m.total_paid.to_string(),
                Col::Currency => m.currency.clone().unwrap_or_default(),
                Col::Attr(i) => {
                    let def = layout.attrs[*i].id;
                    extras
                        .attrs
                        .get(&m.id)
                        .and_then(|v| v.iter().find(|(id, _)| *id == def))
                        .map(|(_, v)| defuse(v).into_owned())
                        .unwrap_or_default()
                }
            };
            record.push(cell);
        }
        w.write_record(&record)?;
    }
    w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}

type ByteStream = std::pin::Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// The export as a stream of chunks, one database batch per chunk: CSV, or a .zip holding the
/// CSV as `csv_name`.
pub fn stream(store: Store, org_id: Uuid, options: &ExportOptions, csv_name: &str) -> ByteStream {
    let csv = csv_stream(store, org_id, Layout::new(options.columns.as_deref()));
    match options.format {
        ExportFormat::Csv => csv,
        ExportFormat::Zip => zipped(csv, csv_name.to_owned()),
    }
}

fn csv_stream(store: Store, org_id: Uuid, layout: Layout) -> ByteStream {
    struct State {
        store: Store,
        org_id: Uuid,
        layout: Layout,
        after: Option<(DateTime<Utc>, Uuid)>,
        first: bool,
        done: bool,
    }
    let init = State {
        store,
        org_id,
        layout,
        after: None,
        first: true,
        done: false,
    };
    Box::pin(futures_util::stream::unfold(init, |mut st| async move {
        if st.done {
            return None;
        }
        let batch = async {
            let mut tx = st.store.read().await?;
            if st.first {
                let attrs = store::attributes::list(&mut tx, st.org_id).await?;
                st.layout.add_attributes(attrs);
            }
            let rows = store::members::export_batch(&mut tx, st.org_id, st.after, BATCH).await?;
            let extras = Extras::load(&mut tx, &st.layout, st.org_id, &rows).await?;
            tx.rollback().await?;
            Ok::<_, store::StoreError>((rows, extras))
        }
        .await;
        let (rows, extras) = match batch {
            Ok(b) => b,
            Err(e) => {
                st.done = true;
                tracing::error!(error = %e, "export failed mid-stream");
                return Some((Err(std::io::Error::other(e.to_string())), st));
            }
        };
        if (rows.len() as i64) < BATCH {
            st.done = true;
        }
        st.after = rows.last().map(|m| (m.added_at, m.id));
        let chunk = encode(&st.layout, &rows, &extras, st.first)
            .map_err(|e| std::io::Error::other(e.to_string()));
        st.first = false;
        if rows.is_empty() && !st.done {
            return None;
        }
        Some((chunk.map(Bytes::from), st))
    }))
}

/// What the zip writer writes into; drained after every write.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Shared {
    fn take(&self) -> Vec<u8> {
        self.0
            .lock()
            .map(|mut b| std::mem::take(&mut *b))
            .unwrap_or_default()
    }
}

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("zip buffer poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Wraps a CSV stream into a .zip holding it (deflated, written as it streams: sizes follow
/// the data, so nothing is held back).
fn zipped(csv: ByteStream, name: String) -> ByteStream {
    use zip::write::{SimpleFileOptions, StreamWriter, ZipWriter};
    struct State {
        csv: ByteStream,
        zip: Option<ZipWriter<StreamWriter<Shared>>>,
        out: Shared,
    }
    let out = Shared::default();
    let mut zip = ZipWriter::new_stream(out.clone());
    let opts = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    let started = zip.start_file(name, opts).map_err(std::io::Error::other);
    let init = State {
        csv,
        zip: started.is_ok().then_some(zip),
        out,
    };
    if let Err(e) = started {
        return Box::pin(futures_util::stream::once(async move { Err(e) }));
    }
    Box::pin(futures_util::stream::unfold(init, |mut st| async move {
        loop {
            let zip = st.zip.as_mut()?;
            match st.csv.next().await {
                Some(Ok(chunk)) => {
                    if let Err(e) = zip.write_all(&chunk) {
                        st.zip = None;
                        return Some((Err(e), st));
                    }
                    let bytes = st.out.take();
                    if !bytes.is_empty() {
                        return Some((Ok(Bytes::from(bytes)), st));
                    }
                }
                Some(Err(e)) => {
                    st.zip = None;
                    return Some((Err(e), st));
                }
                None => {
                    let zip = st.zip.take()?;
                    let done = zip.finish().map_err(std::io::Error::other);
                    return match done {
                        Ok(_) => Some((Ok(Bytes::from(st.out.take())), st)),
                        Err(e) => Some((Err(e), st)),
                    };
                }
            }
        }
    }))
}

impl Roster {
    /// Queues an export job (`POST …/exports`), audited as `members.export_requested`.
    pub async fn request_export(
        &self,
        org_id: Uuid,
        actor: &Actor,
        options: &ExportOptions,
    ) -> Result<JobRow> {
        let now = self.clock.now();
        let mut tx = self.store.write().await?;
        lock_org(&mut tx, org_id).await?;
        let params = options.to_json();
        let job = self
            .queue_job(&mut tx, org_id, actor, KIND_EXPORT, &params)
            .await?;
        record(
            &mut tx,
            now,
            Some(org_id),
            actor,
            "members.export_requested",
            ("job", Some(job.id.to_string())),
            None::<&Value>,
            Some(&params),
        )
        .await?;
        tx.commit().await?;
        Ok(job)
    }

    /// The export job's work: the export written to the database in chunks.
    pub(crate) async fn run_export_job(
        &self,
        ctx: &JobCtx,
        settings: &JobSettings,
    ) -> Result<Value> {
        let options =
            ExportOptions::from_json(&ctx.params).map_err(|e| RosterError::invalid("params", e))?;
        let org = {
            let mut tx = self.store.read().await?;
            let org = store::orgs::by_id(&mut tx, ctx.org_id).await?;
            tx.rollback().await?;
            org.ok_or_else(|| RosterError::NotFound("organization".into()))?
        };
        let csv_name = format!("{}-members.csv", org.slug);
        let mut s = stream(self.store.clone(), ctx.org_id, &options, &csv_name);
        let mut buf: Vec<u8> = Vec::with_capacity(CHUNK_BYTES);
        let (mut seq, mut size) = (0i64, 0i64);
        let flush = async |buf: &mut Vec<u8>, seq: &mut i64| -> Result<()> {
            let mut tx = self.store.write().await?;
            store::jobs::insert_chunk(&mut tx, ctx.id, *seq, buf).await?;
            tx.commit().await?;
            *seq += 1;
            buf.clear();
            Ok(())
        };
        while let Some(chunk) = s.next().await {
            let chunk = chunk.map_err(|e| RosterError::Gone(format!("the export failed: {e}")))?;
            size += chunk.len() as i64;
            buf.extend_from_slice(&chunk);
            if buf.len() >= CHUNK_BYTES {
                flush(&mut buf, &mut seq).await?;
                ctx.report(size, None).await?;
            }
        }
        if !buf.is_empty() || seq == 0 {
            flush(&mut buf, &mut seq).await?;
        }
        let now = self.clock.now();
        let file = JobFile {
            job_id: ctx.id,
            org_id: ctx.org_id,
            file_name: options.file_name(&org.slug),
            content_type: options.format.content_type().into(),
            size,
            chunks: seq,
            created_at: now,
            expires_at: now + settings.export_expiry,
            purged_at: None,
        };
        let mut tx = self.store.write().await?;
        store::jobs::insert_file(&mut tx, &file).await?;
        tx.commit().await?;
        ctx.report(size, Some(size)).await?;
        Ok(json!({
            "file_name": file.file_name,
            "content_type": file.content_type,
            "size": size,
            "expires_at": file.expires_at,
        }))
    }

    /// An export job's file, ready to download: 404 for another org's or no such job, 409 while
    /// it is not finished (or failed), 410 once it expired.
    pub async fn export_file(&self, org_id: Uuid, job_id: Uuid) -> Result<JobFile> {
        let now = self.clock.now();
        let mut tx = self.store.read().await?;
        let job = store::jobs::by_id(&mut tx, org_id, job_id).await?;
        let file = store::jobs::file(&mut tx, org_id, job_id).await?;
        tx.rollback().await?;
        let job = job
            .filter(|j| j.kind == KIND_EXPORT)
            .ok_or_else(|| RosterError::NotFound("export".into()))?;
        match job.status.as_str() {
            "queued" | "running" => {
                return Err(RosterError::conflict(
                    "export_not_ready",
                    format!(
                        "the export is still {}; ask again when the job has succeeded",
                        job.status
                    ),
                ));
            }
            "failed" => {
                return Err(RosterError::conflict(
                    "export_failed",
                    format!(
                        "the export failed ({}); start a new one",
                        job.error.as_deref().unwrap_or("no reason recorded")
                    ),
                ));
            }
            _ => {}
        }
        let file = file.ok_or_else(|| RosterError::Gone("the export's file is gone".into()))?;
        if file.purged_at.is_some() || file.expires_at <= now {
            return Err(RosterError::Gone(format!(
                "the export expired at {}; start a new one",
                file.expires_at.to_rfc3339_opts(SecondsFormat::Secs, true)
            )));
        }
        Ok(file)
    }
}

/// A stored file as a stream of its chunks, one read per chunk (flat memory).
pub fn file_stream(store: Store, file: JobFile) -> ByteStream {
    Box::pin(futures_util::stream::unfold(0i64, move |seq| {
        let store = store.clone();
        let file = file.clone();
        async move {
            if seq >= file.chunks {
                return None;
            }
            let chunk = async {
                let mut tx = store.read().await?;
                let c = store::jobs::chunk(&mut tx, file.org_id, file.job_id, seq).await?;
                tx.rollback().await?;
                Ok::<_, store::StoreError>(c)
            }
            .await;
            match chunk {
                Ok(Some(c)) => Some((Ok(Bytes::from(c)), seq + 1)),
                // Purged meanwhile: end the body short (the client sees a truncated download).
                Ok(None) => Some((
                    Err(std::io::Error::other("the export was purged")),
                    file.chunks,
                )),
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), file.chunks)),
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_defused() {
        assert_eq!(defuse("=1+1"), "'=1+1");
        assert_eq!(defuse("+49 123"), "'+49 123");
        assert_eq!(defuse("-x"), "'-x");
        assert_eq!(defuse("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(defuse("\tx"), "'\tx");
        assert_eq!(defuse("\rx"), "'\rx");
        assert_eq!(defuse("  =1+1"), "'  =1+1");
        assert_eq!(defuse("\n@x"), "'\n@x");
        assert_eq!(defuse("\u{3000}-x"), "'\u{3000}-x");
        for c in ['＝', '＋', '－', '＠'] {
            assert_eq!(defuse(&format!("{c}1")), format!("'{c}1"));
            assert_eq!(defuse(&format!(" {c}1")), format!("' {c}1"));
        }
        assert_eq!(defuse("Ada"), "Ada");
        assert_eq!(defuse("Ada = 1"), "Ada = 1");
        assert_eq!(defuse("   "), "   ");
        assert_eq!(defuse(""), "");
    }
}
