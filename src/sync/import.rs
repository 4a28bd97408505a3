//! CSV import jobs: an admin uploads a roster (a `.csv`, or a `.zip` holding one); every row is
//! validated first; a job with any error applies nothing and keeps its error rows for download;
//! a clean job is a preview (who will be invited, updated, removed) that applies only when the
//! admin confirms it. Removals by import obey the integration lock.
//!
//! An import is a run of kind `import` (source `import`): its plan and error rows live where a
//! sync run's do, and confirming it is approving that run. Its links never claim a member, so an
//! import never stands in the way of a source removing someone.

use std::io::Read;

use bytes::Bytes;
use rosterd_connectors::csv_roster;
use rosterd_connectors::mapping::FieldRule;
use rosterd_connectors::{FieldSpec, Mapping, Transform};
use uuid::Uuid;

use super::{Engine, IMPORT_SOURCE, Result, SyncError};
use crate::reconcile::plan::{Item, Planner, Policy};
use crate::store::sync::{PlanCounts, RunError, RunRow};
use crate::store::{self};

/// The columns of the import template, in order. Only `email` is required.
pub const TEMPLATE_COLUMNS: [&str; 7] = [
    "email",
    "first_name",
    "last_name",
    "display_name",
    "role",
    "login_email",
    "active",
];

/// Largest CSV taken out of a zip (a guard against zip bombs).
const MAX_UNZIPPED: u64 = 64 * 1024 * 1024;
/// Error rows kept per job: every row is still checked and counted, but a file of a million bad
/// rows must not write a million rows while holding the writer.
pub const MAX_ERROR_ROWS: usize = 1000;

/// The template: the header row alone.
pub fn template() -> String {
    format!("{}\r\n", TEMPLATE_COLUMNS.join(","))
}

fn rule(field: &str, transforms: Vec<Transform>, default: Option<&str>) -> FieldSpec {
    FieldSpec::Rule(FieldRule {
        field: Some(field.to_owned()),
        constant: None,
        transforms,
        map: Default::default(),
        default: default.map(str::to_owned),
    })
}

/// The mapping of an import with the given header: the email is the person's id.
fn mapping(headers: &[String]) -> std::result::Result<Mapping, String> {
    let has = |c: &str| headers.iter().any(|h| h.eq_ignore_ascii_case(c));
    if !has("email") {
        return Err(format!(
            "the header has no `email` column (the template's columns: {})",
            TEMPLATE_COLUMNS.join(", ")
        ));
    }
    if let Some(unknown) = headers
        .iter()
        .find(|h| !TEMPLATE_COLUMNS.iter().any(|c| c.eq_ignore_ascii_case(h)))
    {
        return Err(format!(
            "unknown column `{unknown}` (the template's columns: {})",
            TEMPLATE_COLUMNS.join(", ")
        ));
    }
    let opt = |c: &str| has(c).then(|| FieldSpec::Field(c.to_owned()));
    Ok(Mapping {
        external_id: rule("email", vec![Transform::Trim, Transform::Lowercase], None),
        member_email: Some(FieldSpec::Field("email".into())),
        login_email: opt("login_email"),
        given_name: opt("first_name"),
        family_name: opt("last_name"),
        display_name: opt("display_name"),
        active: has("active").then(|| rule("active", vec![Transform::Trim], Some("true"))),
        role: has("role").then(|| rule("role", vec![Transform::Trim, Transform::Lowercase], None)),
        groups: None,
        keep_raw: false,
    })
}

/// The CSV inside an upload: the bytes themselves, or the one `.csv` file of a zip (inflated up
/// to [`MAX_UNZIPPED`]; blocking work, run off the async threads).
fn unpack(bytes: &Bytes) -> std::result::Result<Bytes, String> {
    if !bytes.starts_with(b"PK\x03\x04") {
        return Ok(bytes.clone());
    }
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.as_ref()))
        .map_err(|e| format!("the .zip cannot be read: {e}"))?;
    let mut csvs = Vec::new();
    for i in 0..zip.len() {
        let f = zip
            .by_index(i)
            .map_err(|e| format!("the .zip cannot be read: {e}"))?;
        let name = f.name().map(|n| n.into_owned()).unwrap_or_default();
        if f.is_file() && !name.starts_with("__MACOSX/") && name.to_lowercase().ends_with(".csv") {
            csvs.push(i);
        }
    }
    let [only] = csvs[..] else {
        return Err(format!(
            "the .zip must hold exactly one .csv file (it holds {})",
            csvs.len()
        ));
    };
    let f = zip
        .by_index(only)
        .map_err(|e| format!("the .zip cannot be read: {e}"))?;
    let mut out = Vec::new();
    f.take(MAX_UNZIPPED + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("the .zip cannot be read: {e}"))?;
    if out.len() as u64 > MAX_UNZIPPED {
        return Err(format!(
            "the .csv in the .zip is larger than {} MB",
            MAX_UNZIPPED / 1024 / 1024
        ));
    }
    Ok(out.into())
}

/// The header row of the CSV, trimmed (a UTF-8 BOM before the first column dropped).
fn headers(csv: &[u8]) -> std::result::Result<Vec<String>, String> {
    let mut r = csv::ReaderBuilder::new().from_reader(csv);
    let h = r
        .headers()
        .map_err(|e| format!("the header row cannot be read: {e}"))?;
    Ok(h.iter()
        .enumerate()
        .map(|(i, h)| {
            if i == 0 {
                h.trim_start_matches('\u{feff}')
            } else {
                h
            }
            .trim()
            .to_owned()
        })
        .collect())
}

/// What reading an upload gives: the planner, the items (if the job is clean), the error rows
/// kept (at most [`MAX_ERROR_ROWS`]), how many rows had errors, and how many rows were read.
type Planned = (Planner, Vec<Item>, Vec<RunError>, i64, i64);

/// Reads every row of an upload into the planner: the items (if the job is clean) and the
/// error rows (every row is checked, none applied here).
fn plan_rows(
    csv: &[u8],
    mapping: &Mapping,
    mut planner: Planner,
    locked_by: Option<&str>,
) -> std::result::Result<Planned, String> {
    let mut roster = csv_roster::read(csv, mapping).map_err(|e| e.to_string())?;
    let mut items: Vec<Item> = Vec::new();
    let mut errors: Vec<RunError> = Vec::new();
    let mut error_count = 0i64;
    let mut fetched = 0i64;
    while let Some(row) = roster.next() {
        fetched += 1;
        let line = match &row {
            Ok(_) => roster.last_line(),
            Err(e) => e.line,
        };
        let mut out = Vec::new();
        let res = match &row {
            Ok(rec) => planner.push(line, rec, &mut out),
            Err(e) => Err(e.clone()),
        };
        if let Err(e) = res {
            error_count += 1;
            if errors.len() >= MAX_ERROR_ROWS {
                continue;
            }
            errors.push(RunError {
                seq: errors.len() as i64 + 1,
                line: line as i64,
                external_id: match &row {
                    Ok(r) => Some(r.external_id.clone()),
                    Err(_) => e.external_id,
                },
                field: e.column,
                value: e.value,
                message: e.message,
            });
            continue;
        }
        if let Some(integration) = &locked_by
            && let Some(Item::Remove { email, .. }) =
                out.iter().find(|i| matches!(i, Item::Remove { .. }))
        {
            let message = format!(
                "membership of this organization is managed by {integration}; \
                 remove the person in {integration}"
            );
            error_count += 1;
            if errors.len() >= MAX_ERROR_ROWS {
                continue;
            }
            errors.push(RunError {
                seq: errors.len() as i64 + 1,
                line: line as i64,
                external_id: Some(email.clone()),
                field: Some("active".into()),
                value: None,
                message,
            });
            continue;
        }
        items.append(&mut out);
    }
    Ok((planner, items, errors, error_count, fetched))
}

impl Engine {
    /// Validates an uploaded roster and records the import job: `invalid` with its error rows,
    /// or `preview` with its plan, waiting for confirmation.
    pub async fn import(
        &self,
        org_id: Uuid,
        filename: &str,
        upload: impl Into<Bytes>,
        by: &str,
    ) -> Result<RunRow> {
        let upload: Bytes = upload.into();
        // Inflating a zip (up to 64 MB) and reading the header is blocking work.
        let (csv, mapping) = tokio::task::spawn_blocking(move || {
            let csv = unpack(&upload)?;
            let mapping = mapping(&headers(&csv)?)?;
            Ok::<_, String>((csv, mapping))
        })
        .await
        .map_err(|e| SyncError::Invalid(format!("the upload could not be read: {e}")))?
        .map_err(SyncError::Invalid)?;

        let now = self.clock().now();
        let org = {
            let mut tx = self.store().read().await?;
            let org = store::orgs::by_id(&mut tx, org_id).await?;
            tx.rollback().await?;
            org.ok_or_else(|| SyncError::Invalid("no such organization".into()))?
        };
        self.store().refresh_member_stats().await?;
        let current = {
            let mut tx = self.store().read().await?;
            let mut c = store::sync::current(&mut tx, org_id, IMPORT_SOURCE, &[]).await?;
            tx.rollback().await?;
            // An import is the admin's own hand: other sources' claims do not stop a removal
            // (the integration lock does), and its own links never claim.
            for m in &mut c {
                m.claimed_elsewhere = false;
                m.claiming = true;
            }
            c
        };
        let planner = Planner::new(
            current,
            Policy {
                authoritative: false,
                complete: true,
                by_hand: true,
            },
        );
        let locked_by = org.integration();
        // Parsing and planning a large upload is CPU work: off the async threads.
        let (planner, items, errors, error_count, fetched) =
            tokio::task::spawn_blocking(move || {
                plan_rows(&csv, &mapping, planner, locked_by.as_deref())
            })
            .await
            .map_err(|e| SyncError::Invalid(format!("the upload could not be read: {e}")))?
            .map_err(SyncError::Invalid)?;
        let status = if errors.is_empty() {
            "preview"
        } else {
            "invalid"
        };
        let counts = PlanCounts {
            fetched,
            unchanged: planner.tally.unchanged as i64,
            errors: error_count,
            creates: planner.tally.creates as i64,
            updates: planner.tally.updates as i64,
            removals: items
                .iter()
                .filter(|i| matches!(i, Item::Remove { .. }))
                .count() as i64,
            reactivations: planner.tally.reactivations as i64,
        };
        // A file that would invite more people than the org allows at once is refused whole.
        crate::roster::check_invite_limit(
            "file",
            planner.tally.creates as usize,
            org.import_invite_limit,
            "import_invite_limit",
            "people per import",
        )?;
        let run = RunRow {
            id: Uuid::now_v7(),
            source: IMPORT_SOURCE.into(),
            org_id,
            kind: "import".into(),
            trigger: "upload".into(),
            fire_time: None,
            status: status.into(),
            phase: if errors.is_empty() {
                "preview"
            } else {
                "validated"
            }
            .into(),
            started_at: now,
            finished_at: if errors.is_empty() { None } else { Some(now) },
            lease_owner: None,
            lease_name: None,
            fetched: 0,
            created: 0,
            updated: 0,
            removed: 0,
            reactivated: 0,
            unchanged: 0,
            errors: 0,
            planned_creates: 0,
            planned_updates: 0,
            planned_removals: 0,
            planned_reactivations: 0,
            message: (!errors.is_empty()).then(|| {
                let kept = if error_count as usize > errors.len() {
                    format!(" (the report keeps the first {})", errors.len())
                } else {
                    String::new()
                };
                format!(
                    "{error_count} row(s) have errors{kept}; nothing will be applied. Fix them \
                     and upload again."
                )
            }),
            warnings: "[]".into(),
            approved_by: None,
            approved_at: None,
            filename: Some(filename.chars().take(200).collect()),
            created_by: by.to_owned(),
            coverage: None,
            checkpoint: None,
        };
        let mut tx = self.store().write().await?;
        store::sync::insert_run(&mut tx, &run).await?;
        if errors.is_empty() {
            for (n, chunk) in items.chunks(1000).enumerate() {
                store::sync::insert_items(&mut tx, run.id, (n * 1000) as i64 + 1, chunk).await?;
            }
        } else {
            store::sync::insert_errors(&mut tx, run.id, &errors).await?;
        }
        let mut warnings = planner.warnings.clone();
        if error_count as usize > errors.len() {
            warnings.push(format!(
                "{error_count} rows have errors; the report keeps the first {}",
                errors.len()
            ));
        }
        store::sync::set_planned(&mut tx, run.id, &counts, &warnings).await?;
        tx.commit().await?;
        self.run_row(run.id).await
    }

    /// Cancels an import preview: nothing will be applied.
    pub async fn cancel_import(&self, id: Uuid) -> Result<RunRow> {
        let now = self.clock().now();
        let mut tx = self.store().write().await?;
        let run = store::sync::run(&mut tx, id)
            .await?
            .ok_or(SyncError::RunNotFound(id))?;
        if !store::sync::cancel_preview(&mut tx, id, now).await? {
            return Err(SyncError::Conflict(format!(
                "import {id} is {}; only a preview can be cancelled",
                run.status
            )));
        }
        tx.commit().await?;
        self.run_row(id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zip_must_hold_exactly_one_csv() {
        use std::io::Write;
        let mut buf = std::io::Cursor::new(Vec::new());
        {
            let mut z = zip::ZipWriter::new(&mut buf);
            let opts = zip::write::SimpleFileOptions::default();
            z.start_file("people.csv", opts).unwrap();
            z.write_all(b"email\r\na@x.io\r\n").unwrap();
            z.finish().unwrap();
        }
        let zipped = Bytes::from(buf.into_inner());
        assert_eq!(unpack(&zipped).unwrap(), &b"email\r\na@x.io\r\n"[..]);
        let plain = Bytes::from_static(b"email\na@x.io\n");
        assert_eq!(unpack(&plain).unwrap(), &b"email\na@x.io\n"[..]);
        let err = unpack(&Bytes::from_static(b"PK\x03\x04garbage")).unwrap_err();
        assert!(err.contains(".zip"), "{err}");
    }

    #[test]
    fn the_header_needs_email_and_known_columns() {
        let h = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(mapping(&h(&["Email", "first_name"])).is_ok());
        assert!(mapping(&h(&["first_name"])).unwrap_err().contains("email"));
        assert!(
            mapping(&h(&["email", "shoe"]))
                .unwrap_err()
                .contains("shoe")
        );
    }
}
