//! Serving HTTP with limits a hostile or broken client cannot get around: a connection that
//! sends nothing, or its headers too slowly, is closed after the idle timeout (also between
//! requests); a request body that stalls is cut off; and past the connection cap a new
//! connection gets a `503` JSON answer at once instead of waiting unseen, so the server
//! never runs out of file descriptors (a build's own files need them too).

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// A connection with no request in progress is closed after this long; so is one whose
    /// request headers or body stop arriving for this long.
    pub idle_timeout: Duration,
    /// Connections served at once; beyond it new ones are answered 503 and closed.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            idle_timeout: Duration::from_secs(30),
            max_connections: 4_096,
        }
    }
}

/// How long open connections get to finish their requests once shutdown starts.
const DRAIN: Duration = Duration::from_secs(10);

const OVERLOADED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
content-length: 37\r\nretry-after: 1\r\nconnection: close\r\n\r\n{\"message\":\"503 Service Unavailable\"}";

/// Serves `router` on `listener` until `shutdown` completes, then lets requests in flight
/// finish (for a while).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let open = Arc::new(AtomicUsize::new(0));
    let (stop, stopping) = watch::channel(false);
    let router = router.layer(axum::Extension(OpenConnections(open.clone())));
    let service = tower::ServiceBuilder::new()
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            limits.idle_timeout,
        ))
        .service(router);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of descriptors, or a connection reset before it was taken: wait a
                // little rather than spin.
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if open.load(Ordering::Acquire) >= limits.max_connections {
            tokio::spawn(refuse(stream));
            continue;
        }
        open.fetch_add(1, Ordering::AcqRel);
        let guard = OpenConnection(open.clone());
        // The peer's address, for what is counted per address (failed sign-ins).
        let service = TowerToHyperService::new(
            tower::ServiceBuilder::new()
                .layer(axum::Extension(crate::web::PeerAddr(peer)))
                .service(service.clone()),
        );
        let mut stopping = stopping.clone();
        let idle = limits.idle_timeout;
        tokio::spawn(async move {
            let _guard = guard;
            let _ = stream.set_nodelay(true);
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(idle)
                .keep_alive(true);
            let stream = JsonErrors::new(stream);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => return,
                _ = stopping.changed() => connection.as_mut().graceful_shutdown(),
            }
            let _ = tokio::time::timeout(DRAIN, connection).await;
        });
    }
    let _ = stop.send(true);
    let deadline = tokio::time::Instant::now() + DRAIN;
    while open.load(Ordering::Acquire) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// The count of open connections, for a request that waits long (a runner's long poll) to
/// step out of it meanwhile: a thousand idle runners must not fill the cap.
#[derive(Debug, Clone)]
pub struct OpenConnections(Arc<AtomicUsize>);

impl OpenConnections {
    /// Stops counting this request's connection until the guard is dropped.
    pub fn step_out(&self) -> SteppedOut {
        self.0.fetch_sub(1, Ordering::AcqRel);
        SteppedOut(self.0.clone())
    }
}

/// Counts the connection again when dropped.
pub struct SteppedOut(Arc<AtomicUsize>);

impl Drop for SteppedOut {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

/// Counts a connection as open until it ends.
struct OpenConnection(Arc<AtomicUsize>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn refuse(mut stream: tokio::net::TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(OVERLOADED).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// The connection's stream, which gives hyper's own answers JSON bodies. hyper answers a
/// request it cannot parse (a broken request line, headers over its limit, a URI over 64 KiB)
/// itself, with an empty body; every answer of the application to an error has a JSON body
/// (`api::json_errors`), so an error head with `content-length: 0` is hyper's, and is
/// rewritten with GitLab's `{"message": "<status>"}`.
struct JsonErrors<S> {
    inner: S,
    /// A rewritten answer not yet written whole, and how much of it was.
    pending: Option<(Vec<u8>, usize)>,
}

impl<S> JsonErrors<S> {
    fn new(inner: S) -> Self {
        JsonErrors {
            inner,
            pending: None,
        }
    }
}

/// The error head `head` (a whole response head, nothing after it) with a JSON body.
fn with_json_body(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head).ok()?;
    let rest = text.strip_prefix("HTTP/1.1 ")?;
    if !(rest.starts_with('4') || rest.starts_with('5')) || !text.ends_with("\r\n\r\n") {
        return None;
    }
    let mut lines = text.trim_end().split("\r\n");
    let status_line = lines.next()?;
    let headers: Vec<&str> = lines.collect();
    let empty = headers
        .iter()
        .any(|h| h.eq_ignore_ascii_case("content-length: 0"));
    if !empty {
        return None;
    }
    let status = status_line.strip_prefix("HTTP/1.1 ")?;
    let body = serde_json::json!({ "message": status }).to_string();
    let mut out = format!("{status_line}\r\n");
    for header in headers {
        if !header.to_ascii_lowercase().starts_with("content-length:") {
            out.push_str(header);
            out.push_str("\r\n");
        }
    }
    out.push_str(&format!(
        "content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    ));
    Some(out.into_bytes())
}

impl<S: tokio::io::AsyncWrite + Unpin> JsonErrors<S> {
    /// Writes what is pending; Ready once nothing is.
    fn drain(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        while let Some((data, written)) = &mut self.pending {
            if *written >= data.len() {
                self.pending = None;
                break;
            }
            match std::pin::Pin::new(&mut self.inner).poll_write(cx, &data[*written..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()))
                }
                Poll::Ready(Ok(n)) => *written += n,
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for JsonErrors<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for JsonErrors<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        use std::task::Poll;
        match self.drain(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
            Poll::Pending => return Poll::Pending,
        }
        if let Some(rewritten) = with_json_body(buf) {
            self.pending = Some((rewritten, 0));
            // Taken whole; what is left is written on the next call or flush.
            let _ = self.drain(cx);
            return Poll::Ready(Ok(buf.len()));
        }
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        match self.drain(cx) {
            Poll::Ready(Ok(())) => std::pin::Pin::new(&mut self.inner).poll_flush(cx),
            other => other,
        }
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        match self.drain(cx) {
            Poll::Ready(Ok(())) => std::pin::Pin::new(&mut self.inner).poll_shutdown(cx),
            other => other,
        }
    }
}

/// Raises this process's soft limit on open files to its hard limit, and returns a
/// connection cap that leaves room below it for the database, builds and git.
pub fn raise_file_limit() -> usize {
    // SAFETY: getrlimit/setrlimit read and write this process's limits through a local struct.
    unsafe {
        let mut limit = std::mem::zeroed::<libc::rlimit>();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 512;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
        let soft = usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX);
        connection_cap(soft)
    }
}

/// Connections allowed under a limit of `files` descriptors: a quarter (at least 256) is
/// kept for everything else.
pub fn connection_cap(files: usize) -> usize {
    let reserve = (files / 4).max(256);
    files.saturating_sub(reserve).clamp(16, 65_536)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_overload_answer_is_complete_json() {
        let text = std::str::from_utf8(super::OVERLOADED).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(body.len(), length);
        let value: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(value["message"], "503 Service Unavailable");
    }

    #[test]
    fn hypers_empty_error_answers_get_a_json_body() {
        let head =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let out = String::from_utf8(super::with_json_body(head).unwrap()).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.contains("content-type: application/json"), "{head}");
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        assert_eq!(body, r#"{"message":"431 Request Header Fields Too Large"}"#);
        assert!(super::with_json_body(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(
            super::with_json_body(b"HTTP/1.1 404 Not Found\r\ncontent-length: 27\r\n\r\n")
                .is_none()
        );
    }

    #[test]
    fn the_cap_leaves_room_for_other_files() {
        assert_eq!(super::connection_cap(1024), 768);
        assert_eq!(super::connection_cap(1_048_576), 65_536);
        assert_eq!(super::connection_cap(100), 16);
    }
}
