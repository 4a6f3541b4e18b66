//! One span per request, and its id: an `X-Request-Id` the client sent (when it is a short
//! token of safe characters, so a log line cannot be forged through it) or a new one,
//! returned on the response and logged with the method, path, status and duration.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;
use tracing::Instrument as _;

pub const HEADER: &str = "x-request-id";

/// Longer ids, and paths, are cut in the log.
const MAX_ID: usize = 64;
const MAX_LOGGED_PATH: usize = 256;

/// The client's id, if it is one we keep.
fn given(request: &Request) -> Option<String> {
    let id = request.headers().get(HEADER)?.to_str().ok()?;
    let safe = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':');
    (!id.is_empty() && id.len() <= MAX_ID && id.chars().all(safe)).then(|| id.to_owned())
}

pub async fn layer(request: Request, next: Next) -> Response {
    let id = given(&request).unwrap_or_else(kiln_store::new_secret);
    let method = request.method().clone();
    // The path only: a query may carry a token (`private_token=`).
    let path: String = request.uri().path().chars().take(MAX_LOGGED_PATH).collect();
    let span = tracing::info_span!("request", request_id = %id, method = %method, path = %path);
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| tracing::info!(status, duration_ms = elapsed_ms, "request"));
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(id: &str) -> Request {
        Request::builder()
            .header(HEADER, id)
            .body(axum::body::Body::empty())
            .expect("request")
    }

    #[test]
    fn only_short_safe_ids_are_kept() {
        assert_eq!(
            given(&with("abc-123_x.y:z")).as_deref(),
            Some("abc-123_x.y:z")
        );
        assert_eq!(given(&with("has space")), None);
        assert_eq!(given(&with("a\"b")), None);
        assert_eq!(given(&with(&"a".repeat(65))), None);
        assert_eq!(given(&with("")), None);
    }
}
