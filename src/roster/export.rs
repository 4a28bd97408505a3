//! CSV export of an org's current and past members, produced a batch at a time so memory stays
//! flat however large the roster is. Cells that a spreadsheet would run as a formula are
//! defused (OWASP CSV injection advice: a leading `'` before `= + - @`, also full-width or after
//! leading whitespace, and before a leading tab or carriage return).
//!
//! The org's own attributes follow the fixed columns, one column each (headed by the attribute
//! name, in name order), holding the value's canonical text.

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::Stream;
use uuid::Uuid;

use std::collections::HashMap;

use crate::domain::Member;
use crate::store::attributes::AttributeDef;
use crate::store::{self, Store};

/// Rows fetched per batch.
pub const BATCH: i64 = 1000;

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

fn encode(
    rows: &[Member],
    with_header: bool,
    attrs: &[AttributeDef],
    values: &HashMap<Uuid, Vec<(Uuid, String)>>,
) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::WriterBuilder::new().from_writer(Vec::with_capacity(rows.len() * 120));
    if with_header {
        w.write_record(
            HEADER
                .iter()
                .copied()
                .chain(attrs.iter().map(|a| a.name.as_str())),
        )?;
    }
    for m in rows {
        let name = m.name();
        let mine = values.get(&m.id);
        let attr_cells = attrs.iter().map(|a| {
            mine.and_then(|v| v.iter().find(|(id, _)| *id == a.id))
                .map(|(_, v)| defuse(v).into_owned())
                .unwrap_or_default()
        });
        let fixed = [
            defuse(&name).as_ref(),
            defuse(&m.member_email).as_ref(),
            defuse(m.distinct_login_email().unwrap_or("")).as_ref(),
            m.access.as_str(),
            m.role.as_str(),
            &date(m.activity_at),
            &date(m.added_at),
            &m.points.to_string(),
            // Money as stored: whole minor units (cents), never a float.
            &m.monthly_fee.map(|f| f.to_string()).unwrap_or_default(),
            &m.total_paid.to_string(),
            m.currency.as_deref().unwrap_or(""),
        ]
        .map(str::to_owned);
        w.write_record(fixed.into_iter().chain(attr_cells))?;
    }
    w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}

/// The export as a stream of CSV chunks (header first), one database batch per chunk.
pub fn stream(store: Store, org_id: Uuid) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
    struct State {
        store: Store,
        org_id: Uuid,
        after: Option<(DateTime<Utc>, Uuid)>,
        first: bool,
        done: bool,
        attrs: Vec<AttributeDef>,
    }
    let init = State {
        store,
        org_id,
        after: None,
        first: true,
        done: false,
        attrs: Vec::new(),
    };
    futures_util::stream::unfold(init, |mut st| async move {
        if st.done {
            return None;
        }
        let batch = async {
            let mut tx = st.store.read().await?;
            if st.first {
                st.attrs = store::attributes::list(&mut tx, st.org_id).await?;
            }
            let rows = store::members::export_batch(&mut tx, st.org_id, st.after, BATCH).await?;
            let values = if st.attrs.is_empty() {
                HashMap::new()
            } else {
                let ids: Vec<Uuid> = rows.iter().map(|m| m.id).collect();
                store::attributes::values_for(&mut tx, st.org_id, &ids).await?
            };
            tx.rollback().await?;
            Ok::<_, store::StoreError>((rows, values))
        }
        .await;
        let (rows, values) = match batch {
            Ok(batch) => batch,
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
        let chunk = encode(&rows, st.first, &st.attrs, &values)
            .map_err(|e| std::io::Error::other(e.to_string()));
        st.first = false;
        if rows.is_empty() && !st.done {
            return None;
        }
        Some((chunk.map(Bytes::from), st))
    })
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
