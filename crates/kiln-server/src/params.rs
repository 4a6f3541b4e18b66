//! Request parameters the way Grape sees them: the query string merged with the body, whether
//! the body is a form, JSON (nested objects become `key[sub]`) or multipart (curl `-F`).

use crate::query::QueryPairs;
use crate::ApiError;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header::CONTENT_TYPE;
use serde_json::Value;

/// Bodies larger than this are refused with 413.
const MAX_BODY: usize = 1024 * 1024;

pub struct Params(pub QueryPairs);

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let mut pairs = QueryPairs::parse(req.uri().query()).0;
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if content_type.starts_with("multipart/form-data") {
            let mut multipart = Multipart::from_request(req, state)
                .await
                .map_err(|e| ApiError::BadRequest(format!("400 (Bad request) {e}")))?;
            while let Some(field) = multipart
                .next_field()
                .await
                .map_err(|e| ApiError::BadRequest(format!("400 (Bad request) {e}")))?
            {
                let name = field.name().unwrap_or("").to_owned();
                let text = field
                    .text()
                    .await
                    .map_err(|e| ApiError::BadRequest(format!("400 (Bad request) {e}")))?;
                pairs.push((name, text));
            }
            return Ok(Params(QueryPairs(pairs)));
        }
        let body = axum::body::to_bytes(req.into_body(), MAX_BODY)
            .await
            .map_err(|_| ApiError::PayloadTooLarge)?;
        if body.is_empty() {
            return Ok(Params(QueryPairs(pairs)));
        }
        if content_type.starts_with("application/json") {
            let value: Value = serde_json::from_slice(&body).map_err(|e| {
                ApiError::BadRequest(format!("400 (Bad request) invalid JSON: {e}"))
            })?;
            flatten("", &value, &mut pairs);
        } else {
            pairs.extend(QueryPairs::parse(std::str::from_utf8(&body).ok()).0);
        }
        Ok(Params(QueryPairs(pairs)))
    }
}

fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}[{k}]")
                };
                flatten(&key, v, out);
            }
        }
        Value::Array(items) => {
            for v in items {
                flatten(&format!("{prefix}[]"), v, out);
            }
        }
        Value::Null => out.push((prefix.to_owned(), String::new())),
        Value::String(s) => out.push((prefix.to_owned(), s.clone())),
        other => out.push((prefix.to_owned(), other.to_string())),
    }
}

/// `variables[KEY]=value` pairs (GitLab's trigger form) as (KEY, value).
pub fn variables(params: &QueryPairs) -> Vec<(String, String)> {
    params
        .iter()
        .filter_map(|(k, v)| {
            let key = k.strip_prefix("variables[")?.strip_suffix(']')?;
            (!key.is_empty()).then(|| (key.to_owned(), v.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_objects_flatten_like_rack() {
        let mut out = Vec::new();
        flatten(
            "",
            &serde_json::json!({"ref": "main", "variables": {"A": "1", "B": 2}}),
            &mut out,
        );
        out.sort();
        assert_eq!(
            out,
            vec![
                ("ref".into(), "main".into()),
                ("variables[A]".into(), "1".into()),
                ("variables[B]".into(), "2".into())
            ]
        );
        assert_eq!(
            variables(&QueryPairs(out)),
            vec![("A".into(), "1".into()), ("B".into(), "2".into())]
        );
    }
}
