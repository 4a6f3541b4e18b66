//! The probes a load balancer or an orchestrator asks, at GitLab's addresses and in its
//! shapes: `/-/health` (the process answers: `GitLab OK`), `/-/liveness` (`{"status":"ok"}`)
//! and `/-/readiness` (the database answers and has every migration; `?all=1` lists each
//! check), 503 with the failing checks when it is not ready.

use crate::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use std::time::Duration;

/// A database that has not answered by then is not ready.
const DB_TIMEOUT: Duration = Duration::from_secs(3);

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/-/health", get(health))
        .route("/-/liveness", get(liveness))
        .route("/-/readiness", get(readiness))
        .route("/-/metrics", get(crate::metrics::scrape))
}

async fn health() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "GitLab OK",
    )
        .into_response()
}

async fn liveness() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// One check's outcome, as GitLab lists it.
fn outcome(failure: Option<String>) -> Value {
    match failure {
        None => json!([{ "status": "ok" }]),
        Some(message) => json!([{ "status": "failed", "message": message }]),
    }
}

async fn readiness(State(state): State<AppState>, query: crate::query::QueryPairs) -> Response {
    let (db, migrations) =
        match tokio::time::timeout(DB_TIMEOUT, state.store.pending_migrations()).await {
            Ok(Ok(0)) => (None, None),
            Ok(Ok(pending)) => (None, Some(format!("{pending} migrations are not applied"))),
            Ok(Err(err)) => (Some(err.to_string()), None),
            Err(_) => (
                Some(format!("no answer within {} s", DB_TIMEOUT.as_secs())),
                None,
            ),
        };
    let ready = db.is_none() && migrations.is_none();
    let all = query.get("all").is_some_and(|v| v == "1" || v == "true");
    let mut body = Map::new();
    body.insert("status".into(), json!(if ready { "ok" } else { "failed" }));
    body.insert("master_check".into(), outcome(None));
    // GitLab lists every check when asked, and the failing ones always.
    for (name, failure) in [("db_check", db), ("migrations_check", migrations)] {
        if all || failure.is_some() {
            body.insert(name.into(), outcome(failure));
        }
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(Value::Object(body))).into_response()
}
