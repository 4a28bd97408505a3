//! `errors.csv`: a run's (or import job's) error rows as CSV, streamed a page at a time so memory
//! stays flat however many rows failed. Cells are defused for spreadsheets like the export's.

use bytes::Bytes;
use futures_util::Stream;
use uuid::Uuid;

use crate::roster::export::defuse;
use crate::store::sync::RunError;
use crate::store::{self, Store};

/// Error rows read per page.
const PAGE: i64 = 1000;

pub const HEADER: [&str; 5] = ["line", "external_id", "field", "value", "message"];

fn encode(rows: &[RunError], with_header: bool) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::WriterBuilder::new().from_writer(Vec::with_capacity(rows.len() * 100 + 50));
    if with_header {
        w.write_record(HEADER)?;
    }
    for e in rows {
        let line = e.line.to_string();
        w.write_record([
            line.as_str(),
            &defuse(e.external_id.as_deref().unwrap_or("")),
            &defuse(e.field.as_deref().unwrap_or("")),
            &defuse(e.value.as_deref().unwrap_or("")),
            &defuse(&e.message),
        ])?;
    }
    w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}

/// The error rows of run `run_id` as a stream of CSV chunks (header first), one page per chunk.
pub fn errors_csv(store: Store, run_id: Uuid) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
    struct State {
        store: Store,
        run_id: Uuid,
        after: i64,
        first: bool,
        done: bool,
    }
    let init = State {
        store,
        run_id,
        after: 0,
        first: true,
        done: false,
    };
    futures_util::stream::unfold(init, |mut st| async move {
        if st.done {
            return None;
        }
        let page = async {
            let mut tx = st.store.read().await?;
            let rows = store::sync::errors(&mut tx, st.run_id, st.after, PAGE).await?;
            tx.rollback().await?;
            Ok::<_, store::StoreError>(rows)
        }
        .await;
        let rows = match page {
            Ok(rows) => rows,
            Err(e) => {
                st.done = true;
                tracing::error!(error = %e, "error report failed mid-stream");
                return Some((Err(std::io::Error::other(e.to_string())), st));
            }
        };
        if (rows.len() as i64) < PAGE {
            st.done = true;
        }
        if let Some(last) = rows.last() {
            st.after = last.seq;
        } else if !st.first {
            return None;
        }
        let chunk = encode(&rows, st.first).map_err(|e| std::io::Error::other(e.to_string()));
        st.first = false;
        Some((chunk.map(Bytes::from), st))
    })
}
