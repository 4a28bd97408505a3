//! The source contract: what every connector gives the sync engine.
//!
//! A source opens a [`Snapshot`]: a bounded stream of rows (a mapped record, or what is wrong
//! with one row) that ends with an explicit verdict. Only a stream that ends with
//! [`Snapshot::next`] returning `None` after the source said it read everything is complete; a
//! source that fails, or a producer that stops without saying so, yields an error instead, so the
//! engine can never mistake a truncated read for "these people are gone".
//!
//! Sources never touch the store: this crate does not depend on sqlx or axum.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use futures_util::Stream;
use tokio::sync::mpsc;

use crate::record::{Record, RecordError};

/// Rows in flight between a connector and the engine; the producer waits when the engine is
/// behind, so a snapshot of any size never sits in memory whole.
pub const CHANNEL_ROWS: usize = 1024;

/// Everything a source may use: no global state.
#[derive(Debug, Clone)]
pub struct Context {
    /// The one HTTP client (rustls, certificate verification on).
    pub http: reqwest::Client,
    /// Relative file paths in source settings are read from here (the daemon's working
    /// directory, like `database.url` and `mail.dir`).
    pub base_dir: PathBuf,
    /// Retries of one request on a transient failure (5xx, 429, network) before the fetch fails.
    pub retries: usize,
    /// The first retry waits this long; later ones back off exponentially with jitter.
    pub retry_base: Duration,
    /// Most time to wait for the server at each step (the HTTP client's read timeout also
    /// applies per read of the body, so a long download is fine while bytes keep coming).
    pub request_timeout: Duration,
}

impl Context {
    pub fn new(http: reqwest::Client, base_dir: PathBuf) -> Self {
        Self {
            http,
            base_dir,
            retries: 4,
            retry_base: Duration::from_millis(500),
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// What a finished snapshot covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    /// Everyone the source knows: someone absent is gone.
    Full,
    /// Only changes (delta queries): absence means nothing.
    Changes,
}

/// Why a fetch failed. `transient` failures (network, 5xx, throttling) are worth retrying later.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FetchError {
    pub message: String,
    pub transient: bool,
    /// The HTTP status that ended the request, if one did.
    pub status: Option<u16>,
}

impl FetchError {
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            transient: false,
            status: None,
        }
    }
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            transient: true,
            status: None,
        }
    }
}

/// One row of a snapshot: its position (CSV line, or record number) and the mapped record or
/// what is wrong with it.
pub type Row = (u64, Result<Record, RecordError>);

/// Rows travel in chunks of this many: one wake-up of the engine per chunk, not per row.
pub const CHUNK_ROWS: usize = 256;

/// Group memberships a source read in full: rosterd group name → the external ids in it.
pub type Groups = BTreeMap<String, HashSet<String>>;

/// What a finished read knows beyond its rows.
#[derive(Debug, Default)]
pub struct Finish {
    /// Where the next run may start reading changes (Graph's deltaLink); the engine keeps it
    /// once this run's plan is applied.
    pub checkpoint: Option<String>,
    /// The complete membership of the source's managed groups, when the source reads it apart
    /// from its records (Graph reads each group's members on every run, delta or not).
    pub groups: Option<Groups>,
    /// What an admin should know about this read (a mapped group that no longer exists, say).
    pub warnings: Vec<String>,
}

/// What a producer sends: rows, then exactly one verdict.
#[derive(Debug)]
pub enum Item {
    Rows(Vec<Row>),
    /// Every row was sent; with what the source knows beyond the rows.
    Done(Finish),
    /// The fetch failed; rows sent so far are not the whole snapshot.
    Failed(FetchError),
}

/// A snapshot being read.
pub struct Snapshot {
    pub coverage: Coverage,
    rx: mpsc::Receiver<Item>,
    ready: std::collections::VecDeque<Row>,
    finished: bool,
    finish: Finish,
}

/// The sending side, for connectors: rows are buffered into chunks; `done` or `fail` flushes
/// what is buffered and then gives the verdict.
pub struct Sender {
    tx: mpsc::Sender<Item>,
    buf: Vec<Row>,
}

impl Sender {
    /// Sends a row; `false` when the engine stopped reading (the producer should stop).
    pub async fn row(&mut self, row: Row) -> bool {
        self.buf.push(row);
        if self.buf.len() < CHUNK_ROWS {
            return true;
        }
        let chunk = std::mem::take(&mut self.buf);
        self.tx.send(Item::Rows(chunk)).await.is_ok()
    }
    /// The same, from a blocking thread.
    pub fn blocking_row(&mut self, row: Row) -> bool {
        self.buf.push(row);
        if self.buf.len() < CHUNK_ROWS {
            return true;
        }
        let chunk = std::mem::take(&mut self.buf);
        self.tx.blocking_send(Item::Rows(chunk)).is_ok()
    }
    async fn flush(&mut self) -> bool {
        if self.buf.is_empty() {
            return true;
        }
        let chunk = std::mem::take(&mut self.buf);
        self.tx.send(Item::Rows(chunk)).await.is_ok()
    }
    fn blocking_flush(&mut self) -> bool {
        if self.buf.is_empty() {
            return true;
        }
        let chunk = std::mem::take(&mut self.buf);
        self.tx.blocking_send(Item::Rows(chunk)).is_ok()
    }
    pub async fn done(self) {
        self.done_with(Finish::default()).await
    }
    /// Every row was sent, and this is what the source knows beyond them.
    pub async fn done_with(mut self, finish: Finish) {
        if self.flush().await {
            let _ = self.tx.send(Item::Done(finish)).await;
        }
    }
    pub fn blocking_done(mut self) {
        if self.blocking_flush() {
            let _ = self.tx.blocking_send(Item::Done(Finish::default()));
        }
    }
    /// Fails the fetch; buffered rows are dropped (a failed snapshot is never planned).
    pub async fn fail(self, e: FetchError) {
        let _ = self.tx.send(Item::Failed(e)).await;
    }
    pub fn blocking_fail(self, e: FetchError) {
        let _ = self.tx.blocking_send(Item::Failed(e));
    }
}

impl Snapshot {
    /// A snapshot and the sender its producer writes to.
    pub fn channel(coverage: Coverage) -> (Sender, Snapshot) {
        let (tx, rx) = mpsc::channel(CHANNEL_ROWS / CHUNK_ROWS);
        (
            Sender {
                tx,
                buf: Vec::with_capacity(CHUNK_ROWS),
            },
            Snapshot {
                coverage,
                rx,
                ready: Default::default(),
                finished: false,
                finish: Finish::default(),
            },
        )
    }

    /// Where the next run may start reading changes, once the source said it sent everything.
    pub fn checkpoint(&self) -> Option<&str> {
        self.finish.checkpoint.as_deref()
    }

    /// What the source knows beyond its rows, once it sent everything.
    pub fn take_finish(&mut self) -> Finish {
        std::mem::take(&mut self.finish)
    }

    /// The next row; `None` once the source said it sent everything; an error if it failed or
    /// stopped without saying it was done.
    pub async fn next(&mut self) -> Option<Result<Row, FetchError>> {
        std::future::poll_fn(|cx| self.poll_item(cx)).await
    }

    fn poll_item(&mut self, cx: &mut TaskContext<'_>) -> Poll<Option<Result<Row, FetchError>>> {
        loop {
            if let Some(r) = self.ready.pop_front() {
                return Poll::Ready(Some(Ok(r)));
            }
            if self.finished {
                return Poll::Ready(None);
            }
            match self.rx.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Item::Rows(rows))) => self.ready.extend(rows),
                Poll::Ready(Some(Item::Done(finish))) => {
                    self.finished = true;
                    self.finish = finish;
                }
                Poll::Ready(Some(Item::Failed(e))) => {
                    self.finished = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    self.finished = true;
                    return Poll::Ready(Some(Err(FetchError::permanent(
                        "the source stopped before reading everything",
                    ))));
                }
            }
        }
    }
}

impl Stream for Snapshot {
    type Item = Result<Row, FetchError>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_item(cx)
    }
}

/// A connector: opens a snapshot of the outside system, mapped through the source's mapping.
pub trait Source: Send + Sync {
    fn open(
        &self,
        ctx: &Context,
    ) -> impl std::future::Future<Output = Result<Snapshot, FetchError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_producer_that_stops_without_a_verdict_is_a_failure() {
        let (mut tx, mut snap) = Snapshot::channel(Coverage::Full);
        let rec = Record {
            external_id: "1".into(),
            active: true,
            ..Default::default()
        };
        assert!(tx.row((2, Ok(rec.clone()))).await);
        tx.flush().await;
        assert!(tx.row((3, Ok(rec))).await);
        drop(tx);
        assert!(matches!(snap.next().await, Some(Ok((2, Ok(_))))));
        let e = snap.next().await.unwrap().unwrap_err();
        assert!(e.message.contains("stopped"), "{e}");
        assert!(snap.next().await.is_none());
    }

    #[tokio::test]
    async fn done_ends_the_stream_and_failed_reports_the_error() {
        let (tx, mut snap) = Snapshot::channel(Coverage::Full);
        tx.done().await;
        assert!(snap.next().await.is_none());
        let (tx, mut snap) = Snapshot::channel(Coverage::Full);
        tx.fail(FetchError::transient("HTTP 503")).await;
        let e = snap.next().await.unwrap().unwrap_err();
        assert!(e.transient);
    }
}
