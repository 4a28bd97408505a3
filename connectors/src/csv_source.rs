//! The CSV roster source: a file, or a file fetched over HTTP(S), read as a roster (see
//! [`crate::csv_roster`]) through the source's mapping.
//!
//! ```toml
//! [[sources]]
//! name = "members-csv"
//! org = "acme"
//! kind = "csv"
//! path = "rosters/members.csv"    # or: url = "https://hr.example.com/export/members.csv"
//! schedule = "0 * * * *"
//! ```

use std::io::Read;
use std::path::PathBuf;

use bytes::Bytes;
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::csv_roster;
use crate::mapping::Mapping;
use crate::source::{Context, Coverage, FetchError, Sender, Snapshot, Source};

/// Where the roster is read from: exactly one of `path` or `url`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvConfig {
    /// A file on this machine; relative paths start at the daemon's working directory.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// An `http://` or `https://` URL fetched with GET on every run.
    #[serde(default)]
    pub url: Option<String>,
    /// A value of the mapping's `groups` field (a department, say) → the rosterd group this
    /// source keeps for it.
    #[serde(default)]
    pub groups: std::collections::BTreeMap<String, String>,
}

impl CsvConfig {
    /// Checks the settings; the message names the key.
    pub fn check(&self) -> Result<(), String> {
        match (&self.path, &self.url) {
            (Some(_), Some(_)) | (None, None) => Err("give exactly one of `path` or `url`".into()),
            (None, Some(u)) if !(u.starts_with("http://") || u.starts_with("https://")) => {
                Err(format!("url: `{u}` is not an http:// or https:// URL"))
            }
            _ => Ok(()),
        }
    }
}

/// A CSV roster source.
pub struct CsvSource {
    pub config: CsvConfig,
    pub mapping: Mapping,
}

/// Reads the roster from `input` on a blocking thread, sending rows as they are mapped, then the
/// verdict: done, or failed when the input broke off (`failure`) or became unreadable.
fn produce<R: Read>(
    mut input: R,
    mapping: &Mapping,
    mut tx: Sender,
    what: &str,
    failure: impl FnOnce(&mut R) -> Option<FetchError>,
) {
    let mut roster = match csv_roster::read(&mut input, mapping) {
        Ok(r) => r,
        Err(e) => {
            let e = failure(&mut input)
                .unwrap_or_else(|| FetchError::permanent(format!("{what}: {e}")));
            return tx.blocking_fail(e);
        }
    };
    let mut unreadable = None;
    while let Some(row) = roster.next() {
        if roster.truncated() {
            unreadable = row.err();
            break;
        }
        let line = match &row {
            Ok(_) => roster.last_line(),
            Err(e) => e.line,
        };
        if !tx.blocking_row((line, row)) {
            return;
        }
    }
    drop(roster);
    if let Some(e) = failure(&mut input) {
        return tx.blocking_fail(e);
    }
    if let Some(e) = unreadable {
        return tx.blocking_fail(FetchError::permanent(format!(
            "{what}: {e}; the rest was not read"
        )));
    }
    tx.blocking_done();
}

/// A blocking reader over body chunks arriving on a channel.
struct ChannelReader {
    rx: mpsc::Receiver<Result<Bytes, FetchError>>,
    chunk: Bytes,
    failed: Option<FetchError>,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.chunk = b,
                Some(Err(e)) => {
                    self.failed = Some(e.clone());
                    return Err(std::io::Error::other(e.message));
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

impl Source for CsvSource {
    async fn open(&self, ctx: &Context) -> Result<Snapshot, FetchError> {
        let (tx, snapshot) = Snapshot::channel(Coverage::Full);
        let mapping = self.mapping.clone();
        if let Some(path) = &self.config.path {
            let path = ctx.base_dir.join(path);
            let file = std::fs::File::open(&path).map_err(|e| {
                FetchError::permanent(format!("cannot open {}: {e}", path.display()))
            })?;
            let what = path.display().to_string();
            tokio::task::spawn_blocking(move || {
                produce(std::io::BufReader::new(file), &mapping, tx, &what, |_| None)
            });
            return Ok(snapshot);
        }
        let url = self.config.url.clone().unwrap_or_default();
        let what = redact(&url);
        let resp = crate::http::send(ctx, &what, || ctx.http.get(&url)).await?;
        let (chunks_tx, chunks_rx) = mpsc::channel(16);
        let mut body = resp.bytes_stream();
        let body_what = what.clone();
        tokio::spawn(async move {
            while let Some(chunk) = body.next().await {
                let item = chunk.map_err(|e| crate::http::body_error(&body_what, &e));
                let stop = item.is_err();
                if chunks_tx.send(item).await.is_err() || stop {
                    return;
                }
            }
        });
        tokio::task::spawn_blocking(move || {
            let reader = ChannelReader {
                rx: chunks_rx,
                chunk: Bytes::new(),
                failed: None,
            };
            produce(reader, &mapping, tx, &what, |r| r.failed.take());
        });
        Ok(snapshot)
    }
}

/// A URL for messages: without its query string or credentials (they may carry a key).
pub fn redact(url: &str) -> String {
    let no_query = url.split(['?', '#']).next().unwrap_or(url);
    match no_query.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((_, host)) if !host.contains('/') || rest.find('@') < rest.find('/') => {
                format!("{scheme}://{host}")
            }
            _ => no_query.to_owned(),
        },
        None => no_query.to_owned(),
    }
}
