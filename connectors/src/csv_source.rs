//! The CSV roster source: a file, or a file fetched over HTTP(S), read as a roster (see
//! [`crate::csv_roster`]) through the source's mapping.
//!
//! Over HTTP the validators of the last applied download (`ETag`, `Last-Modified`) are kept as
//! the source's checkpoint and sent back (`If-None-Match`, `If-Modified-Since`): a `304 Not
//! Modified` is a read of no changes — nothing to do, nobody removed — and the checkpoint stays.
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
use crate::source::{Context, Coverage, FetchError, Finish, Sender, Snapshot, Source};

/// Where the roster is read from: exactly one of `path` or `url`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvConfig {
    /// A file on this machine; relative paths start at the daemon's working directory.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// An `https://` URL (`http://` only to this host) fetched with GET on every run; an
    /// unchanged file costs a `304 Not Modified`.
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
            (None, Some(u)) => crate::http::check_url("url", u).map(|_| ()),
            _ => Ok(()),
        }
    }
}

/// A CSV roster source.
pub struct CsvSource {
    pub config: CsvConfig,
    pub mapping: Mapping,
    /// The validators of the last applied download (see [`Validators`]).
    pub checkpoint: Option<String>,
}

/// What the server said identifies the file last applied: sent back on the next run so that an
/// unchanged file is not downloaded again. Kept only for the same source: the same whole URL
/// (query and credentials included) read with the same mapping, which `key` fingerprints; a
/// changed mapping reads the file again even if the file did not change.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct Validators {
    /// The URL without secrets, for people reading the checkpoint.
    pub url: String,
    /// SHA-256 of the whole URL and the mapping (see [`source_key`]); empty in checkpoints
    /// written before it existed, which therefore match nothing and cost one full download.
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub etag: Option<String>,
    #[serde(default)]
    pub last_modified: Option<String>,
}

/// The fingerprint of what a download is read as: the whole URL and the mapping applied to it.
pub fn source_key(url: &str, mapping: &Mapping) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(url.as_bytes());
    h.update(b"\n");
    h.update(format!("{mapping:?}").as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

impl Validators {
    fn of(url: &str, key: String, resp: &reqwest::Response) -> Option<Validators> {
        let header = |name| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let v = Validators {
            url: crate::http::redact(url),
            key,
            etag: header(reqwest::header::ETAG),
            last_modified: header(reqwest::header::LAST_MODIFIED),
        };
        (v.etag.is_some() || v.last_modified.is_some()).then_some(v)
    }
}

/// Reads the roster from `input` on a blocking thread, sending rows as they are mapped, then the
/// verdict: done, or failed when the input broke off (`failure`) or became unreadable.
fn produce<R: Read>(
    mut input: R,
    mapping: &Mapping,
    max_record: u64,
    mut tx: Sender,
    what: &str,
    failure: impl FnOnce(&mut R) -> Option<FetchError>,
    finish: Finish,
) {
    let mut roster = match csv_roster::read_capped(&mut input, mapping, Some(max_record)) {
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
    tx.blocking_done_with(finish);
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
        let mapping = self.mapping.clone();
        if let Some(path) = &self.config.path {
            let (tx, snapshot) = Snapshot::channel(Coverage::Full);
            let path = ctx.base_dir.join(path);
            let file = std::fs::File::open(&path).map_err(|e| {
                FetchError::permanent(format!("cannot open {}: {e}", path.display()))
            })?;
            let what = path.display().to_string();
            let max_record = ctx.max_record_bytes;
            tokio::task::spawn_blocking(move || {
                let input = std::io::BufReader::new(file);
                let done = Finish::default();
                produce(input, &mapping, max_record, tx, &what, |_| None, done)
            });
            return Ok(snapshot);
        }
        let url = self.config.url.clone().unwrap_or_default();
        crate::http::check_url("url", &url).map_err(FetchError::permanent)?;
        let what = redact(&url);
        // The last applied download's validators, if they are for this URL and mapping.
        let key = source_key(&url, &self.mapping);
        let last = self
            .checkpoint
            .as_deref()
            .and_then(|c| serde_json::from_str::<Validators>(c).ok())
            .filter(|v| v.key == key);
        let resp = crate::http::send(ctx, &what, || {
            let mut r = ctx.http.get(&url);
            if let Some(v) = &last {
                if let Some(etag) = &v.etag {
                    r = r.header(reqwest::header::IF_NONE_MATCH, etag);
                }
                if let Some(at) = &v.last_modified {
                    r = r.header(reqwest::header::IF_MODIFIED_SINCE, at);
                }
            }
            r
        })
        .await?;
        if resp.status() == reqwest::StatusCode::NOT_MODIFIED {
            let Some(last) = last else {
                return Err(FetchError::permanent(format!(
                    "{what}: HTTP 304 Not Modified to a request that asked for the file"
                )));
            };
            // Unchanged since the last applied run: no rows, and a read of changes, which
            // removes nobody; the checkpoint stays where it was.
            let (tx, snapshot) = Snapshot::channel(Coverage::Changes);
            let finish = Finish {
                checkpoint: serde_json::to_string(&last).ok(),
                groups: None,
                warnings: vec![format!(
                    "{what}: unchanged since the last applied run (HTTP 304 Not Modified); \
                     nothing to do"
                )],
            };
            tx.done_with(finish).await;
            return Ok(snapshot);
        }
        let finish = Finish {
            checkpoint: Validators::of(&url, key, &resp)
                .and_then(|v| serde_json::to_string(&v).ok()),
            ..Finish::default()
        };
        let (tx, snapshot) = Snapshot::channel(Coverage::Full);
        let (chunks_tx, chunks_rx) = mpsc::channel(16);
        let max_record = ctx.max_record_bytes;
        let max_total = ctx.max_response_bytes;
        let mut body = resp.bytes_stream();
        let body_what = what.clone();
        // When the engine stops reading (or the time runs out), the download stops too.
        let stopped = tx.closed();
        tokio::spawn(async move {
            let forward = async {
                let mut total: u64 = 0;
                while let Some(chunk) = body.next().await {
                    // A download past sync.max_response_bytes is a failed read (which removes
                    // nobody), however slowly it arrives.
                    let item = chunk
                        .map_err(|e| crate::http::body_error(&body_what, &e))
                        .and_then(|c| {
                            total = total.saturating_add(c.len() as u64);
                            if total > max_total {
                                Err(crate::http::too_large(&body_what, max_total))
                            } else {
                                Ok(c)
                            }
                        });
                    let stop = item.is_err();
                    if chunks_tx.send(item).await.is_err() || stop {
                        return;
                    }
                }
            };
            tokio::select! {
                () = forward => {}
                () = stopped => {}
            }
        });
        tokio::task::spawn_blocking(move || {
            let reader = ChannelReader {
                rx: chunks_rx,
                chunk: Bytes::new(),
                failed: None,
            };
            let failed = |r: &mut ChannelReader| r.failed.take();
            produce(reader, &mapping, max_record, tx, &what, failed, finish);
        });
        Ok(snapshot)
    }
}

/// A URL for messages: without its query string or credentials (they may carry a key).
pub use crate::http::redact;

#[cfg(test)]
mod key_tests {
    use super::*;

    #[test]
    fn validators_belong_to_the_whole_url_and_the_mapping() {
        let m = |t: &str| toml::from_str::<Mapping>(t).unwrap();
        let plain = m("external_id = \"ID\"\nmember_email = \"Email\"");
        let other = m("external_id = \"ID\"\nmember_email = \"WorkEmail\"");
        let url = "https://h.example/roster.csv?file=a&key=s3cret";
        let key = source_key(url, &plain);
        assert_eq!(key, source_key(url, &plain), "stable");
        assert_eq!(key.len(), 64);
        // Another file behind the same redacted URL, and the same file read another way.
        assert_ne!(
            key,
            source_key("https://h.example/roster.csv?file=b&key=s3cret", &plain)
        );
        assert_ne!(key, source_key(url, &other));
        assert!(!key.contains("s3cret"));
    }
}
