//! The HTTP/1.1 server: an accept loop over hyper with a connection cap, a header-read timeout
//! and a shutdown that does not wait for clients that are not in the middle of a request.
//!
//! - At most `server.max_connections` connections are served. When a new one arrives at the cap,
//!   the oldest connection that is between requests (idle, or still sending its request head) is
//!   closed to make room; if every connection is inside a request, the new one is closed at
//!   once. So clients that send headers a byte at a time (or open connections and say nothing)
//!   can neither exhaust file descriptors nor keep `/healthz` from answering: each new
//!   connection, a health check's too, pushes out the oldest of them.
//! - A request head must arrive whole within `server.header_read_timeout_secs` (hyper's
//!   header-read timeout, which also bounds an idle kept-alive connection).
//! - On shutdown the listener closes, connections between requests close at once, and a
//!   request in progress is answered (its connection then closes).
//! - The answers hyper gives by itself to a request it cannot parse (400, 414 URI too long, 431
//!   header fields too large) have no body; [`ProblemOnParseError`] gives them a problem+json
//!   body saying what was wrong, like every other refusal.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tower::ServiceExt;

/// How the server treats connections.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
}

/// One open connection, as the accept loop sees it.
struct Tracked {
    /// True while no request is being handled (idle, or reading a request head).
    idle: Arc<AtomicBool>,
    /// Closes the connection (eviction).
    close: Arc<Notify>,
}

#[derive(Default)]
struct Registry {
    /// By connection number, so the first entry is the oldest.
    conns: Mutex<BTreeMap<u64, Tracked>>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Tracked>> {
        // Plain data: a panic elsewhere cannot leave the map inconsistent.
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks the oldest connection between requests to close; false if there is none.
    fn evict_oldest_idle(&self) -> bool {
        let conns = self.lock();
        match conns.values().find(|c| c.idle.load(Ordering::SeqCst)) {
            Some(c) => {
                c.close.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Marks its connection idle again when the response (body included) is done.
struct IdleAgain(Arc<AtomicBool>);

impl Drop for IdleAgain {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then closes the listener and every
/// connection between requests; returns once the remaining requests have been answered.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let registry = Arc::new(Registry::default());
    let (drain_tx, drain_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut next_id: u64 = 0;
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors or a connection reset before it was accepted: wait a
                // little instead of spinning, then go on.
                tracing::warn!(error = %e, "accept error");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) if registry.evict_oldest_idle() => {
                match tokio::time::timeout(Duration::from_secs(1), slots.clone().acquire_owned())
                    .await
                {
                    Ok(Ok(p)) => p,
                    _ => {
                        tracing::warn!(client = %peer, "connection limit reached; closing");
                        continue;
                    }
                }
            }
            Err(_) => {
                tracing::warn!(client = %peer, "connection limit reached with every connection busy; closing");
                continue;
            }
        };
        next_id += 1;
        let id = next_id;
        let idle = Arc::new(AtomicBool::new(true));
        let close = Arc::new(Notify::new());
        registry.lock().insert(
            id,
            Tracked {
                idle: idle.clone(),
                close: close.clone(),
            },
        );
        let registry = registry.clone();
        let router = router.clone();
        let drain = drain_rx.clone();
        tokio::spawn(async move {
            serve_connection(stream, peer, router, limits, idle, close, drain).await;
            registry.lock().remove(&id);
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!("shutting down: finishing in-flight requests");
    let _ = drain_tx.send(true);
    // Every connection returns its slot when it ends.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: Limits,
    idle: Arc<AtomicBool>,
    close: Arc<Notify>,
    mut drain: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let busy = idle.clone();
    let service = tower::service_fn(move |req: hyper::Request<Incoming>| {
        busy.store(false, Ordering::SeqCst);
        let again = IdleAgain(busy.clone());
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(ConnectInfo(peer));
        let router = router.clone();
        async move {
            let res = router.oneshot(req).await?;
            Ok::<_, std::convert::Infallible>(res.map(move |b| {
                Body::new(b.map_frame(move |f| {
                    let _ = &again;
                    f
                }))
            }))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let io = ProblemOnParseError::new(stream, idle.clone());
    let conn = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(client = %peer, error = %e, "connection ended with an error");
            }
        }
        _ = close.notified() => {
            tracing::debug!(client = %peer, "closing an idle connection to make room");
        }
        () = async { let _ = drain.wait_for(|d| *d).await; } => {
            if !idle.load(Ordering::SeqCst) {
                // A request is being handled: answer it, then close.
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
        }
    }
}

/// A connection's socket that replaces hyper's own bodiless answer to an unparsable request
/// (written while no request is being handled, the only time hyper writes by itself) with the
/// same status and a problem+json body, then closes.
struct ProblemOnParseError {
    inner: TcpStream,
    /// False while a request is being handled (then every write is the application's).
    idle: Arc<AtomicBool>,
    /// Bytes of a replacement answer not yet written to the socket.
    pending: Vec<u8>,
    written: usize,
}

impl ProblemOnParseError {
    fn new(inner: TcpStream, idle: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            idle,
            pending: Vec::new(),
            written: 0,
        }
    }

    /// The replacement for `head` if it is one of hyper's automatic error answers (they have
    /// no content type; the application's answers always do).
    fn replacement(head: &[u8]) -> Option<Vec<u8>> {
        let end = head.windows(4).position(|w| w == b"\r\n\r\n")?;
        if head[..end]
            .to_ascii_lowercase()
            .windows(14)
            .any(|w| w == b"\ncontent-type:")
        {
            return None;
        }
        let (status, code, detail) = if head.starts_with(b"HTTP/1.1 400 ") {
            (
                400,
                "malformed_request",
                "the request could not be parsed as HTTP/1.1",
            )
        } else if head.starts_with(b"HTTP/1.1 414 ") {
            (
                414,
                "uri_too_long",
                "the request URI is longer than this server accepts",
            )
        } else if head.starts_with(b"HTTP/1.1 431 ") {
            (
                431,
                "headers_too_large",
                "the request headers are larger (or more numerous) than this server accepts",
            )
        } else {
            return None;
        };
        let reason = axum::http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error");
        let body = serde_json::json!({
            "type": format!("urn:rosterd:problem:{code}"),
            "title": reason,
            "status": status,
            "detail": detail,
            "code": code,
        })
        .to_string();
        let mut out = format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: application/problem+json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(body.as_bytes());
        Some(out)
    }

    /// Writes what is left of a replacement answer.
    fn poll_pending(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use tokio::io::AsyncWrite;
        while self.written < self.pending.len() {
            let n = std::task::ready!(
                std::pin::Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..])
            )?;
            if n == 0 {
                return std::task::Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        std::task::Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncRead for ProblemOnParseError {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for ProblemOnParseError {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = &mut *self;
        if !this.pending.is_empty() {
            // The replacement answer ends the connection: nothing else goes out.
            std::task::ready!(this.poll_pending(cx))?;
            return std::task::Poll::Ready(Ok(buf.len()));
        }
        if this.idle.load(Ordering::SeqCst)
            && let Some(answer) = Self::replacement(buf)
        {
            this.pending = answer;
            this.written = 0;
            // Taken whole; hyper flushes next, which sends the replacement.
            return std::task::Poll::Ready(Ok(buf.len()));
        }
        std::pin::Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::ready!(self.poll_pending(cx))?;
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::ready!(self.poll_pending(cx))?;
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    // Not vectored: hyper then hands over each answer's head in one buffer.
    fn is_write_vectored(&self) -> bool {
        false
    }
}
