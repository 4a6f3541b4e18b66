//! Request parameters the way Grape sees them: the query string merged with the body, whether
//! the body is a form, JSON (nested objects become `key[sub]`) or multipart (curl `-F`).

use crate::query::QueryPairs;
use crate::ApiError;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

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
            reject_nul(&pairs)?;
            return Ok(Params(QueryPairs(pairs)));
        }
        let body = axum::body::to_bytes(req.into_body(), MAX_BODY)
            .await
            .map_err(body_error)?;
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
        reject_nul(&pairs)?;
        Ok(Params(QueryPairs(pairs)))
    }
}

/// A body over the limit is 413; one that is malformed (a broken chunk) is 400.
fn body_error(err: axum::Error) -> ApiError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(cause) = source {
        if cause.is::<http_body_util::LengthLimitError>() {
            return ApiError::PayloadTooLarge;
        }
        source = cause.source();
    }
    ApiError::BadRequest("400 Bad request - the request body could not be read".into())
}

/// A NUL in a parameter reaches no record (and PostgreSQL refuses it in text).
fn reject_nul(pairs: &[(String, String)]) -> Result<(), ApiError> {
    if pairs
        .iter()
        .any(|(k, v)| k.contains('\0') || v.contains('\0'))
    {
        return Err(ApiError::BadRequest(
            "400 Bad request - invalid byte sequence in a parameter".into(),
        ));
    }
    Ok(())
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

/// Grape's answer to parameters that fail its declared checks: 400 with every problem, in the
/// order the parameters are declared, in one `{"error": …}` (`ref is missing, token is missing`).
pub fn grape_error(problems: &[String]) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": problems.join(", ") })),
    )
        .into_response()
}

/// Grape's `requires`: `"<name> is missing"` for each name not given at all. Given but empty
/// counts as given, as in Grape.
pub fn missing(params: &QueryPairs, names: &[&str]) -> Vec<String> {
    names
        .iter()
        .filter(|name| params.get(name).is_none())
        .map(|name| format!("{name} is missing"))
        .collect()
}

/// Grape's check of required parameters: 400 `{"error": "a is missing, b is missing"}`.
pub fn require(params: &QueryPairs, names: &[&str]) -> Result<(), ApiError> {
    let problems = missing(params, names);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Params(problems.join(", ")))
    }
}

/// Grape's `Boolean` parameter: absent (or empty) is None; a value that is not a boolean is
/// `"<name> is invalid"`, added to `problems`.
pub fn boolean(params: &QueryPairs, name: &str, problems: &mut Vec<String>) -> Option<bool> {
    // Dry-types' `params.bool`, which Grape uses: these spellings, in any case (Python
    // clients send `True`).
    let value = params.get(name)?.to_ascii_lowercase();
    match value.as_str() {
        "" => None,
        "true" | "1" | "yes" | "t" | "y" | "on" => Some(true),
        "false" | "0" | "no" | "f" | "n" | "off" => Some(false),
        _ => {
            problems.push(format!("{name} is invalid"));
            None
        }
    }
}

/// Grape's `Integer` parameter: absent (or empty) is None; a value that is not an integer is
/// `"<name> is invalid"`, added to `problems`.
pub fn integer(params: &QueryPairs, name: &str, problems: &mut Vec<String>) -> Option<i64> {
    let raw = params.get(name).filter(|v| !v.is_empty())?;
    let parsed = raw.trim().parse::<i64>().ok();
    if parsed.is_none() {
        problems.push(format!("{name} is invalid"));
    }
    parsed
}

/// A runner's `tag_list`: a comma-separated string (what gitlab-runner sends) or an array;
/// None when not given.
pub fn tag_list(params: &QueryPairs) -> Option<Vec<String>> {
    let listed: Vec<&str> = params
        .iter()
        .filter(|(k, _)| *k == "tag_list[]")
        .map(|(_, v)| v)
        .collect();
    if !listed.is_empty() {
        return Some(kiln_store::runners::normalize_tags(listed));
    }
    params
        .get("tag_list")
        .map(|text| kiln_store::runners::normalize_tags(text.split(',')))
}

/// Why `variables` could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VariablesError {
    /// Not the declared type (a hash for v3 triggers, an array for v4): Grape's
    /// `variables is invalid`.
    Invalid,
    /// A hash, but with a value that is not a string (`variables[A][]=1`).
    NotStrings,
}

/// GitLab's trigger form, a hash: `variables[KEY]=value` (or JSON `{"variables": {"KEY": "value"}}`)
/// as (KEY, value) in the order given; a repeated KEY keeps its last value, as Rack does.
pub fn variables(params: &QueryPairs) -> Result<Vec<(String, String)>, VariablesError> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut not_strings = false;
    for (k, v) in params.iter() {
        let Some(rest) = variables_rest(k, v)? else {
            continue;
        };
        // `rest` is what follows `variables`: `[KEY]`, `[KEY][]`, `[]`, …
        let inner = rest.strip_prefix('[').ok_or(VariablesError::Invalid)?;
        let close = inner.find(']').ok_or(VariablesError::Invalid)?;
        let (key, after) = (&inner[..close], &inner[close + 1..]);
        if key.is_empty() {
            // `variables[]=…`: an array, not a hash.
            return Err(VariablesError::Invalid);
        }
        if !after.is_empty() {
            not_strings = true;
            continue;
        }
        match out.iter_mut().find(|(existing, _)| existing == key) {
            Some(slot) => slot.1 = v.to_owned(),
            None => out.push((key.to_owned(), v.to_owned())),
        }
    }
    if not_strings {
        return Err(VariablesError::NotStrings);
    }
    Ok(out)
}

/// The v4 form, an array of hashes: `variables[][key]=K&variables[][value]=V…` (or JSON
/// `{"variables": [{"key": "K", "value": "V"}]}`) as (K, V) in order. Entries are grouped as
/// Rack groups them: a field already set in the last entry starts a new one. An entry without a
/// key is left out; `variable_type` and unknown fields are ignored.
pub fn variable_list(params: &QueryPairs) -> Result<Vec<(String, String)>, VariablesError> {
    keyed_list(params, "variables")
}

/// An array of `{key, value}` hashes under the parameter `name` (`variables`,
/// `job_variables_attributes`), read as `variable_list` reads `variables`.
pub fn keyed_list(
    params: &QueryPairs,
    name: &str,
) -> Result<Vec<(String, String)>, VariablesError> {
    let mut entries: Vec<Vec<(&str, &str)>> = Vec::new();
    for (k, v) in params.iter() {
        let Some(rest) = list_rest(name, k, v)? else {
            continue;
        };
        let field = rest
            .strip_prefix("[][")
            .and_then(|f| f.strip_suffix(']'))
            .filter(|f| !f.contains(['[', ']']))
            .ok_or(VariablesError::Invalid)?;
        match entries.last_mut() {
            Some(entry) if !entry.iter().any(|(f, _)| *f == field) => entry.push((field, v)),
            _ => entries.push(vec![(field, v)]),
        }
    }
    Ok(entries
        .iter()
        .filter_map(|entry| {
            let get = |name: &str| entry.iter().find(|(f, _)| *f == name).map(|(_, v)| *v);
            let key = get("key").filter(|k| !k.is_empty())?;
            Some((key.to_owned(), get("value").unwrap_or("").to_owned()))
        })
        .collect())
}

/// For a pair that belongs to `variables`, what follows the name; `None` for other parameters
/// and for a plain empty `variables` (JSON `null`, as if not given).
fn variables_rest<'a>(key: &'a str, value: &str) -> Result<Option<&'a str>, VariablesError> {
    list_rest("variables", key, value)
}

fn list_rest<'a>(name: &str, key: &'a str, value: &str) -> Result<Option<&'a str>, VariablesError> {
    match key.strip_prefix(name) {
        Some("") if value.is_empty() => Ok(None),
        // A plain string where a hash or an array was declared.
        Some("") => Err(VariablesError::Invalid),
        Some(rest) if rest.starts_with('[') => Ok(Some(rest)),
        _ => Ok(None),
    }
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
            Ok(vec![("A".into(), "1".into()), ("B".into(), "2".into())])
        );
    }

    fn pairs(raw: &str) -> QueryPairs {
        QueryPairs::parse(Some(raw))
    }

    fn owned(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_trigger_hash_form_and_what_grape_refuses() {
        assert_eq!(
            variables(&pairs("ref=x&variables[A]=1&variables[B]=2&variables[A]=3")),
            Ok(owned(&[("A", "3"), ("B", "2")]))
        );
        assert_eq!(variables(&pairs("ref=x")), Ok(vec![]));
        assert_eq!(
            variables(&pairs("variables=value")),
            Err(VariablesError::Invalid)
        );
        assert_eq!(
            variables(&pairs("variables[]=a")),
            Err(VariablesError::Invalid)
        );
        assert_eq!(
            variables(&pairs("variables[][key]=A&variables[][value]=1")),
            Err(VariablesError::Invalid)
        );
        assert_eq!(
            variables(&pairs("variables[A][]=1&variables[A][]=2")),
            Err(VariablesError::NotStrings)
        );
    }

    #[test]
    fn the_v4_array_form_groups_like_rack() {
        let form = "ref=x&variables[][key]=K&variables[][value]=V&variables[][key]=L\
                    &variables[][variable_type]=env_var&variables[][value]=W";
        assert_eq!(
            variable_list(&pairs(form)),
            Ok(owned(&[("K", "V"), ("L", "W")]))
        );
        let mut json = Vec::new();
        flatten(
            "",
            &serde_json::json!({"ref": "x", "variables": [
                {"key": "K", "value": "V"}, {"value": "W", "key": "L"}, {"value": "no key"}
            ]}),
            &mut json,
        );
        assert_eq!(
            variable_list(&QueryPairs(json)),
            Ok(owned(&[("K", "V"), ("L", "W")]))
        );
        assert_eq!(
            variable_list(&pairs("variables[K]=V")),
            Err(VariablesError::Invalid)
        );
        assert_eq!(
            variable_list(&pairs("variables=V")),
            Err(VariablesError::Invalid)
        );
        assert_eq!(variable_list(&pairs("variables=")), Ok(vec![]));
    }

    #[test]
    fn missing_names_each_absent_parameter_in_order() {
        assert_eq!(
            missing(&pairs("token="), &["ref", "token"]),
            vec!["ref is missing".to_owned()]
        );
        assert_eq!(
            missing(&pairs(""), &["ref", "token"]),
            vec!["ref is missing".to_owned(), "token is missing".to_owned()]
        );
    }
}
