//! The component schemas of the OpenAPI document: GitLab's error bodies and Kiln's entities.
//! Every property a presenter writes is listed and required; a property that may be null
//! says so. The older entities' schemas are inferred from a live server's answers
//! (`entities.json`). `Object` (any JSON object) is only the default of a table entry that
//! names none, which the route-coverage test refuses.

use serde_json::{json, Map, Value};

fn typed(kind: &str) -> Value {
    json!({ "type": kind })
}

fn int() -> Value {
    typed("integer")
}

fn string() -> Value {
    typed("string")
}

fn boolean() -> Value {
    typed("boolean")
}

fn number() -> Value {
    typed("number")
}

/// `schema` or null.
fn nullable(schema: Value) -> Value {
    json!({ "anyOf": [schema, { "type": "null" }] })
}

fn array(items: Value) -> Value {
    json!({ "type": "array", "items": items })
}

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// An object with exactly these properties, all required (more are allowed: GitLab adds
/// fields over time and clients ignore the ones they do not know).
fn object(properties: &[(&str, Value)]) -> Value {
    let mut props = Map::new();
    for (name, schema) in properties {
        props.insert((*name).to_owned(), schema.clone());
    }
    let required: Vec<&str> = properties.iter().map(|(name, _)| *name).collect();
    json!({ "type": "object", "properties": props, "required": required })
}

fn flags(names: &[&'static str]) -> Vec<(&'static str, Value)> {
    names.iter().map(|name| (*name, boolean())).collect()
}

fn hook_v4() -> Value {
    let mut properties = vec![
        ("id", int()),
        ("url", string()),
        ("name", nullable(string())),
        ("description", nullable(string())),
        ("created_at", string()),
        (
            "alert_status",
            json!({ "enum": ["executable", "temporarily_disabled", "disabled"] }),
        ),
        ("disabled_until", nullable(string())),
        ("url_variables", array(typed("object"))),
        ("custom_headers", array(typed("object"))),
        ("custom_webhook_template", nullable(string())),
        ("project_id", int()),
        ("confidential_note_events", nullable(boolean())),
        ("push_events_branch_filter", nullable(string())),
        ("branch_filter_strategy", string()),
    ];
    properties.extend(flags(&[
        "push_events",
        "tag_push_events",
        "merge_requests_events",
        "repository_update_events",
        "enable_ssl_verification",
        "issues_events",
        "confidential_issues_events",
        "note_events",
        "pipeline_events",
        "wiki_page_events",
        "deployment_events",
        "feature_flag_events",
        "job_events",
        "releases_events",
        "milestone_events",
        "emoji_events",
        "resource_access_token_events",
    ]));
    object(&properties)
}

fn hook_v3() -> Value {
    let mut properties = vec![
        ("id", int()),
        ("url", string()),
        ("project_id", int()),
        ("created_at", string()),
    ];
    properties.extend(flags(&[
        "push_events",
        "issues_events",
        "merge_requests_events",
        "tag_push_events",
        "note_events",
        "build_events",
        "pipeline_events",
        "wiki_page_events",
        "enable_ssl_verification",
    ]));
    object(&properties)
}

fn user_basic() -> Value {
    object(&[
        ("id", int()),
        ("username", string()),
        ("name", string()),
        ("state", string()),
        ("locked", boolean()),
        ("avatar_url", nullable(string())),
        ("web_url", string()),
    ])
}

fn schedule() -> Value {
    object(&[
        ("id", int()),
        ("description", string()),
        ("ref", string()),
        ("cron", string()),
        ("cron_timezone", string()),
        ("next_run_at", nullable(string())),
        ("active", boolean()),
        ("created_at", string()),
        ("updated_at", string()),
        ("owner", nullable(reference("UserBasic"))),
    ])
}

fn schedule_details() -> Value {
    let mut details = schedule();
    details["properties"]["last_pipeline"] = nullable(reference("PipelineBasic"));
    details["properties"]["variables"] = array(reference("Variable"));
    if let Some(required) = details["required"].as_array_mut() {
        required.push(json!("last_pipeline"));
        required.push(json!("variables"));
    }
    details
}

fn variable() -> Value {
    object(&[
        ("variable_type", json!({ "enum": ["env_var", "file"] })),
        ("key", string()),
        ("value", nullable(string())),
        ("protected", boolean()),
        ("masked", boolean()),
        ("raw", boolean()),
        ("environment_scope", string()),
        ("description", nullable(string())),
    ])
}

fn pipeline_basic() -> Value {
    object(&[
        ("id", int()),
        ("iid", int()),
        ("project_id", int()),
        ("sha", string()),
        ("ref", string()),
        ("status", string()),
        ("source", string()),
        ("created_at", string()),
        ("updated_at", string()),
        ("web_url", string()),
    ])
}

fn hook_log() -> Value {
    object(&[
        ("id", int()),
        ("url", string()),
        ("trigger", string()),
        ("request_headers", typed("object")),
        ("request_data", json!({})),
        ("response_headers", typed("object")),
        ("response_body", string()),
        ("execution_duration", nullable(number())),
        ("response_status", string()),
        ("created_at", string()),
    ])
}

/// The OpenAPI document itself.
fn document() -> Value {
    object(&[
        ("openapi", string()),
        ("info", typed("object")),
        ("servers", array(typed("object"))),
        ("paths", typed("object")),
        ("components", typed("object")),
    ])
}

/// A runner's registration or verification (gitlab-runner's `RegisterRunnerResponse`).
fn runner_token() -> Value {
    object(&[
        ("id", int()),
        ("token", string()),
        ("token_expires_at", nullable(string())),
    ])
}

/// A window of a job's log, rendered, as the job page fetches it.
fn log_window() -> Value {
    let mut properties: Vec<(&str, Value)> = ["start", "end", "first_line", "lines", "size"]
        .into_iter()
        .map(|name| (name, int()))
        .collect();
    properties.push(("complete", boolean()));
    properties.push(("html", string()));
    object(&properties)
}

/// The lines of a job's log that hold a text.
fn log_search() -> Value {
    let found = object(&[("line", int()), ("offset", int())]);
    object(&[("matches", array(found)), ("more", boolean())])
}

/// GitLab's error bodies: `{"message": …}` (a text, or Rails' field → problems) or Grape's
/// `{"error": …}`.
fn error() -> Value {
    json!({
        "type": "object",
        "properties": {
            "message": { "anyOf": [{ "type": "string" }, { "type": "object" }] },
            "error": { "type": "string" },
        },
        "anyOf": [{ "required": ["message"] }, { "required": ["error"] }],
    })
}

/// The entities inferred from a live server's answers by `tests/openapi/sample_entities.py`
/// (schemathesis holds every answer to them in CI, so a presenter that changes shape shows).
fn sampled() -> Map<String, Value> {
    match serde_json::from_str::<Value>(include_str!("entities.json")) {
        Ok(Value::Object(entities)) => entities,
        _ => Map::new(),
    }
}

/// Every component schema by name.
pub fn all() -> Value {
    let entries = [
        ("Error", error()),
        ("Message", object(&[("message", string())])),
        ("Object", typed("object")),
        ("Any", json!({})),
        ("Status", object(&[("status", string())])),
        ("Hook", hook_v4()),
        ("HookV3", hook_v3()),
        ("HookLog", hook_log()),
        ("UserBasic", user_basic()),
        ("PipelineBasic", pipeline_basic()),
        ("PipelineSchedule", schedule()),
        ("PipelineScheduleDetails", schedule_details()),
        ("Variable", variable()),
        ("Nothing", json!({ "type": "object", "maxProperties": 0 })),
        ("Document", document()),
        ("RunnerToken", runner_token()),
        (
            "StatusCode",
            json!({ "type": "string", "pattern": "^[0-9]{3}$" }),
        ),
        (
            "TriggerRequestV3",
            object(&[("id", int()), ("variables", typed("object"))]),
        ),
        ("LogWindow", log_window()),
        ("LogSearch", log_search()),
        (
            "PushOutcome",
            json!({
                "type": "object",
                "properties": { "message": string(), "pipeline_id": int() },
                "required": ["message"],
            }),
        ),
    ];
    let mut schemas = sampled();
    for (name, schema) in entries {
        schemas.insert(name.to_owned(), schema);
    }
    Value::Object(schemas)
}

/// The reason phrase of a status, as a response's description.
pub fn status_text(status: u16) -> &'static str {
    axum::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Answer")
}
