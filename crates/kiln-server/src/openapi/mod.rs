//! The OpenAPI 3.1 document at `GET /api/openapi.json`: every route Kiln serves, from the
//! operation table each part of the API declares (`operations`), with the schemas of its
//! entities and errors (`schemas`). The route-coverage test compares the table with the
//! router itself, so a route cannot be served undocumented.

pub mod operations;
pub mod schemas;

use crate::AppState;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Map, Value};

/// How a caller proves who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Open to anyone (probes, metrics, badges, sign-in).
    None,
    /// A personal access token (PRIVATE-TOKEN, private_token, Bearer); some reads of a public
    /// project also answer without one.
    Token,
    /// A running job's token (JOB-TOKEN) or a personal one.
    JobToken,
    /// A runner's token in the body or a job's token (gitlab-runner's protocol).
    Runner,
    /// The web UI's signed-in session cookie.
    Session,
    /// The project's push hook secret, as the forge proves it.
    Signature,
}

/// What an answer's body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// JSON of this component schema.
    Json(&'static str),
    /// A JSON array of this component schema.
    List(&'static str),
    /// No body (204).
    Empty,
    Text,
    Html,
    Bytes,
    Svg,
    /// Text of this media type.
    Raw(&'static str),
}

/// One method on one route.
#[derive(Debug, Clone)]
pub struct Operation {
    pub method: &'static str,
    /// The route as axum writes it (`/api/v4/projects/{id}/jobs`, `/raw/{*path}`).
    pub path: &'static str,
    pub summary: &'static str,
    pub tag: &'static str,
    pub auth: Auth,
    /// Query (or form) parameters it reads.
    pub params: &'static [&'static str],
    /// The success status and body: 0 stands for any 2xx, 300 for a redirect (3xx).
    pub status: u16,
    pub body: Body,
}

/// An operation in the table: `op("GET", path, summary, tag)` and its builder steps.
pub const fn op(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    tag: &'static str,
) -> Operation {
    Operation {
        method,
        path,
        summary,
        tag,
        auth: Auth::Token,
        params: &[],
        status: 200,
        body: Body::Json("Object"),
    }
}

impl Operation {
    pub const fn auth(mut self, auth: Auth) -> Operation {
        self.auth = auth;
        self
    }

    pub const fn params(mut self, params: &'static [&'static str]) -> Operation {
        self.params = params;
        self
    }

    pub const fn answers(mut self, status: u16, body: Body) -> Operation {
        self.status = status;
        self.body = body;
        self
    }

    /// The path as OpenAPI writes it: `{*path}` is `{path}`.
    pub fn openapi_path(&self) -> String {
        self.path.replace("{*", "{")
    }

    fn path_params(&self) -> Vec<String> {
        self.path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|s| s.trim_start_matches('*').to_owned())
            .collect()
    }

    fn to_json(&self) -> Value {
        let mut parameters: Vec<Value> = self
            .path_params()
            .into_iter()
            .map(|name| {
                json!({
                    "name": name, "in": "path", "required": true,
                    "schema": { "type": "string", "minLength": 1 },
                })
            })
            .collect();
        parameters.extend(self.params.iter().map(|name| {
            json!({ "name": name, "in": "query", "required": false, "schema": { "type": "string" } })
        }));
        let mut responses = Map::new();
        responses.insert(status_key(self.status), success(self.status, self.body));
        // The API answers its errors as GitLab's JSON; the web UI's pages as pages, except
        // where a form's body does not read (or the page's data is JSON).
        let json_error = json!({ "schema": { "$ref": "#/components/schemas/Error" } });
        let error_content = if self.tag == "web" {
            json!({ "text/html": { "schema": { "type": "string" } }, "application/json": json_error })
        } else {
            json!({ "application/json": json_error })
        };
        for status in errors(self) {
            responses.insert(
                status.to_string(),
                json!({ "description": schemas::status_text(status), "content": error_content }),
            );
        }
        let mut operation = json!({
            "operationId": operation_id(self),
            "summary": self.summary,
            "tags": [self.tag],
            "parameters": parameters,
            "responses": responses,
        });
        if let Some(security) = security(self.auth) {
            operation["security"] = security;
        }
        if matches!(self.method, "POST" | "PUT" | "PATCH") {
            operation["requestBody"] = json!({
                "required": false,
                "content": {
                    "application/json": { "schema": { "type": "object" } },
                    "application/x-www-form-urlencoded": { "schema": { "type": "object" } },
                },
            });
        }
        operation
    }
}

fn operation_id(op: &Operation) -> String {
    let path: String = op
        .path
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!(
        "{}{}",
        op.method.to_ascii_lowercase(),
        path.trim_end_matches('_')
    )
}

/// The key of a response: `200`, or `2XX` / `3XX` for a class.
fn status_key(status: u16) -> String {
    match status {
        0 => "2XX".to_owned(),
        300 => "3XX".to_owned(),
        other => other.to_string(),
    }
}

fn success(status: u16, body: Body) -> Value {
    let description = match status {
        0 => "Done",
        300 => "Redirected",
        other => schemas::status_text(other),
    };
    let content = match body {
        Body::Json(name) => {
            json!({ "application/json": { "schema": { "$ref": format!("#/components/schemas/{name}") } } })
        }
        Body::List(name) => {
            json!({ "application/json": { "schema": { "type": "array", "items": { "$ref": format!("#/components/schemas/{name}") } } } })
        }
        Body::Empty => return json!({ "description": description }),
        Body::Text => json!({ "text/plain": { "schema": { "type": "string" } } }),
        Body::Html => json!({ "text/html": { "schema": { "type": "string" } } }),
        Body::Bytes => {
            json!({ "application/octet-stream": { "schema": { "type": "string", "format": "binary" } } })
        }
        Body::Svg => json!({ "image/svg+xml": { "schema": { "type": "string" } } }),
        Body::Raw(media) => json!({ media: { "schema": { "type": "string" } } }),
    };
    json!({ "description": description, "content": content })
}

/// The errors an operation may answer, with GitLab's bodies.
fn errors(op: &Operation) -> Vec<u16> {
    let mut out = vec![400, 404];
    if op.auth != Auth::None {
        out.extend([401, 403]);
    }
    if matches!(op.method, "POST" | "PUT" | "PATCH") || op.tag == "web" {
        out.extend([409, 413, 422]);
    }
    out.retain(|status| *status != op.status);
    out
}

fn security(auth: Auth) -> Option<Value> {
    let schemes: &[&str] = match auth {
        Auth::None | Auth::Signature => return None,
        Auth::Token => &["privateToken", "privateTokenQuery", "bearer"],
        Auth::JobToken => &["privateToken", "jobToken"],
        Auth::Runner => &["jobToken"],
        Auth::Session => &["session"],
    };
    let mut any: Vec<Value> = schemes.iter().map(|s| json!({ *s: [] })).collect();
    // Reads of a public project answer without a token too, and runners give theirs in the
    // body.
    if auth == Auth::Token || auth == Auth::Runner {
        any.push(json!({}));
    }
    Some(Value::Array(any))
}

/// The whole document.
pub fn document(external_url: &str) -> Value {
    let mut paths = Map::new();
    for op in operations::all() {
        let entry = paths
            .entry(op.openapi_path())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[op.method.to_ascii_lowercase()] = op.to_json();
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Kiln",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "GitLab's CI API (v3 Builds, v4 Jobs and Pipelines), gitlab-runner's protocol, webhooks, schedules, badges, probes and metrics, as Kiln serves them.",
        },
        "servers": [{ "url": external_url }],
        "paths": paths,
        "components": {
            "schemas": schemas::all(),
            "securitySchemes": {
                "privateToken": { "type": "apiKey", "in": "header", "name": "PRIVATE-TOKEN" },
                "privateTokenQuery": { "type": "apiKey", "in": "query", "name": "private_token" },
                "bearer": { "type": "http", "scheme": "bearer" },
                "jobToken": { "type": "apiKey", "in": "header", "name": "JOB-TOKEN" },
                "session": { "type": "apiKey", "in": "cookie", "name": crate::web::SESSION_COOKIE },
            },
        },
    })
}

/// `GET /api/openapi.json`
pub async fn serve(State(state): State<AppState>) -> Json<Value> {
    Json(document(&state.config.external_url))
}
