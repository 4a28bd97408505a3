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
use std::future::Future;
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
    /// The HTTP client for reading (rustls, certificate verification on); it follows redirects
    /// only within the origin a request was sent to (see [`crate::http::clients`]).
    pub http: reqwest::Client,
    /// The HTTP client for OAuth2 token requests: it never follows a redirect, since the
    /// request carries the client secret.
    pub token_http: reqwest::Client,
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
    /// Most bytes of one response (a page, a report, a token answer); a larger one fails the
    /// fetch.
    pub max_response_bytes: u64,
    /// Most bytes of one CSV record; a longer one fails the fetch.
    pub max_record_bytes: u64,
    /// Most time one snapshot may take to read, from opening to its last row; a slower read
    /// fails (and its producer stops).
    pub max_fetch_time: Duration,
}

/// Default of [`Context::max_response_bytes`]: 256 MiB (a RaaS report comes in one response).
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 256 * 1024 * 1024;
/// Default of [`Context::max_record_bytes`]: 1 MiB.
pub const DEFAULT_MAX_RECORD_BYTES: u64 = 1024 * 1024;
/// Default of [`Context::max_fetch_time`]: 6 hours.
pub const DEFAULT_MAX_FETCH_TIME: Duration = Duration::from_secs(6 * 3600);

impl Context {
    /// A context whose HTTP clients wait at most `request_timeout` for each step.
    pub fn new(base_dir: PathBuf, request_timeout: Duration) -> Result<Self, FetchError> {
        let (http, token_http) = crate::http::clients(request_timeout)?;
        Ok(Self {
            http,
            token_http,
            base_dir,
            retries: 4,
            retry_base: Duration::from_millis(500),
            request_timeout,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            max_fetch_time: DEFAULT_MAX_FETCH_TIME,
        })
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
    /// When the read must be over (see [`Snapshot::limit_time`]), and the limit for messages.
    deadline: Option<(Pin<Box<tokio::time::Sleep>>, Duration)>,
}

/// The sending side, for connectors: rows are buffered into chunks; `done` or `fail` flushes
/// what is buffered and then gives the verdict.
pub struct Sender {
    tx: mpsc::Sender<Item>,
    buf: Vec<Row>,
}

impl Sender {
    /// Resolves once the engine stopped reading (it dropped the snapshot, or the snapshot ran out
    /// of time): a producer waiting on a slow server races its reads against this and stops.
    pub fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let tx = self.tx.clone();
        async move { tx.closed().await }
    }
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
    pub fn blocking_done(self) {
        self.blocking_done_with(Finish::default())
    }
    /// [`Sender::done_with`], from a blocking thread.
    pub fn blocking_done_with(mut self, finish: Finish) {
        if self.blocking_flush() {
            let _ = self.tx.blocking_send(Item::Done(finish));
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
                deadline: None,
            },
        )
    }

    /// Fails the read once `limit` has passed since `started` (a slow or dripping server): the
    /// next call to [`Snapshot::next`] after that is an error naming the limit, and the producer
    /// is told to stop (see [`Sender::closed`]).
    pub fn limit_time(&mut self, started: tokio::time::Instant, limit: Duration) {
        self.deadline = Some((Box::pin(tokio::time::sleep_until(started + limit)), limit));
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
        if !self.finished
            && let Some((sleep, limit)) = &mut self.deadline
            && sleep.as_mut().poll(cx).is_ready()
        {
            let limit = *limit;
            self.finished = true;
            self.ready.clear();
            self.rx.close();
            return Poll::Ready(Some(Err(FetchError::transient(format!(
                "the read took longer than sync.max_fetch_secs ({} s); stopped",
                limit.as_secs()
            )))));
        }
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
