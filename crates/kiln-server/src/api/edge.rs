//! The HTTP edge, before any route: a path or query that decodes to a NUL byte or to bytes
//! that are not UTF-8 is refused with a JSON 400 (it could reach no record, and PostgreSQL
//! refuses NUL in text), and a trailing slash is dropped, as Rails routes tolerate it.

use axum::extract::Request;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// Whether percent-decoded `raw` is UTF-8 without NUL (`+` stays as it is: a space is fine).
fn is_clean(raw: &str) -> bool {
    let bytes: Vec<u8> = percent_encoding::percent_decode_str(raw).collect();
    !bytes.contains(&0) && std::str::from_utf8(&bytes).is_ok()
}

fn refused() -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "message": "400 Bad Request" })),
    )
        .into_response()
}

pub async fn guard(mut request: Request) -> Result<Request, Response> {
    let uri = request.uri();
    if !is_clean(uri.path()) || !uri.query().is_none_or(is_clean) {
        return Err(refused());
    }
    let path = uri.path();
    if path.len() > 1 && path.ends_with('/') {
        let trimmed = path.trim_end_matches('/');
        let trimmed = if trimmed.is_empty() { "/" } else { trimmed };
        let rebuilt = match uri.query() {
            Some(query) => format!("{trimmed}?{query}"),
            None => trimmed.to_owned(),
        };
        if let Ok(parsed) = rebuilt.parse::<Uri>() {
            *request.uri_mut() = parsed;
        }
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    #[test]
    fn nul_and_broken_utf8_are_not_clean() {
        assert!(super::is_clean("/api/v4/projects/team%2Fapp"));
        assert!(super::is_clean("name=caf%C3%A9"));
        assert!(!super::is_clean("/api/v4/projects/a%00b"));
        assert!(!super::is_clean("ref=%FF"));
    }
}
