//! The probes: `/-/health`, `/-/liveness`, `/-/readiness` as GitLab answers them, without a
//! token, and readiness failing (503, the failing check named) once the database is gone.

use super::helpers::*;
use serde_json::json;

#[tokio::test]
async fn the_probes_answer_as_gitlabs_and_readiness_fails_without_a_database() {
    let app = TestApp::spawn().await;
    let health = app
        .client
        .get(format!("{}/-/health", app.base))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status(), 200);
    assert!(health.headers()["content-type"]
        .to_str()
        .unwrap_or("")
        .starts_with("text/plain"));
    assert_eq!(health.text().await.expect("text"), "GitLab OK");

    let live = app.request(reqwest::Method::GET, "/-/liveness", None).await;
    assert_eq!(live.assert(200), &json!({ "status": "ok" }));
    let ready = app
        .request(reqwest::Method::GET, "/-/readiness", None)
        .await;
    assert_eq!(
        ready.assert(200),
        &json!({ "status": "ok", "master_check": [{ "status": "ok" }] })
    );
    let all = app
        .request(reqwest::Method::GET, "/-/readiness?all=1", None)
        .await;
    assert_eq!(
        all.assert(200),
        &json!({
            "status": "ok",
            "master_check": [{ "status": "ok" }],
            "db_check": [{ "status": "ok" }],
            "migrations_check": [{ "status": "ok" }],
        })
    );

    // The database goes away: not ready (the failing check says why), still alive.
    app.store.close().await;
    let down = app
        .request(reqwest::Method::GET, "/-/readiness", None)
        .await;
    let body = down.assert(503);
    assert_eq!(body["status"], "failed");
    assert_eq!(body["db_check"][0]["status"], "failed");
    assert!(
        body["db_check"][0]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(body.get("migrations_check").is_none(), "{body}");
    let live = app.request(reqwest::Method::GET, "/-/liveness", None).await;
    assert_eq!(live.assert(200), &json!({ "status": "ok" }));
}

#[tokio::test]
async fn every_answer_carries_a_request_id_kept_from_the_client_when_safe() {
    let app = TestApp::spawn().await;
    let id_of = |response: &reqwest::Response| {
        response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let get = |path: &str, id: Option<&str>| {
        let mut request = app.client.get(format!("{}{path}", app.base));
        if let Some(id) = id {
            request = request.header("x-request-id", id);
        }
        request.send()
    };
    let first = get("/-/liveness", None).await.expect("liveness");
    let second = get("/-/liveness", None).await.expect("liveness");
    let (a, b) = (id_of(&first), id_of(&second));
    assert!(a.len() >= 16 && b.len() >= 16 && a != b, "{a} {b}");
    let kept = get("/api/v4/nothing", Some("lb-4f2a.77"))
        .await
        .expect("404");
    assert_eq!(kept.status(), 404);
    assert_eq!(id_of(&kept), "lb-4f2a.77");
    let forged = get("/-/liveness", Some("x\" injected=1"))
        .await
        .expect("liveness");
    let replaced = id_of(&forged);
    assert!(
        !replaced.is_empty() && !replaced.contains('"'),
        "{replaced}"
    );
}

/// `/-/metrics`, parsed by a Prometheus text-format parser: requests by route template and
/// status with their histogram, builds by status, the pending queue, the pools.
#[tokio::test]
async fn metrics_count_requests_by_route_and_read_the_builds() {
    use prometheus_parse::{Scrape, Value};
    let app = TestApp::spawn().await;
    let (owner, project) = app
        .owned_project("team/app", kiln_core::Visibility::Private)
        .await;
    app.pipeline(
        project,
        "aaaa",
        &[
            kiln_core::BuildStatus::Pending,
            kiln_core::BuildStatus::Success,
            kiln_core::BuildStatus::Pending,
        ],
    )
    .await;
    for _ in 0..3 {
        app.get(&format!("/api/v4/projects/{project}/jobs"), &owner)
            .await
            .assert(200);
    }
    app.request(reqwest::Method::GET, "/no/such/thing/at/all", None)
        .await;
    let text = app.scrape_text().await;
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("the text format");
    let sample = |metric: &str, labels: &[(&str, &str)]| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| s.value.clone())
    };
    let route = "/api/v4/projects/:id/jobs";
    match sample(
        "kiln_http_requests_total",
        &[("route", route), ("status", "200"), ("method", "GET")],
    ) {
        Some(Value::Counter(n)) => assert_eq!(n, 3.0),
        other => panic!("requests of {route}: {other:?}\n{text}"),
    }
    match sample("kiln_http_request_duration_seconds", &[("route", route)]) {
        Some(Value::Histogram(buckets)) => {
            let inf = buckets
                .iter()
                .find(|b| b.less_than == f64::INFINITY)
                .map(|b| b.count);
            assert_eq!(inf, Some(3.0), "{buckets:?}");
        }
        other => panic!("histogram of {route}: {other:?}\n{text}"),
    }
    // An unknown path is one label, not a new series per path.
    assert!(
        sample(
            "kiln_http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        )
        .is_some(),
        "{text}"
    );
    assert!(!text.contains("/no/such/thing"), "{text}");
    let gauge = |metric: &str, labels: &[(&str, &str)]| match sample(metric, labels) {
        Some(Value::Gauge(n) | Value::Untyped(n)) => n,
        other => panic!("{metric} {labels:?}: {other:?}\n{text}"),
    };
    assert_eq!(gauge("kiln_builds", &[("status", "pending")]), 2.0);
    assert_eq!(gauge("kiln_builds", &[("status", "success")]), 1.0);
    assert_eq!(gauge("kiln_pending_builds", &[]), 2.0);
    assert!(gauge("kiln_pending_oldest_age_seconds", &[]) >= 0.0);
    let pool = if app.store.backend_name() == "postgres" {
        "main"
    } else {
        "read"
    };
    assert!(
        gauge(
            "kiln_db_pool_connections",
            &[("pool", pool), ("state", "idle")]
        ) >= 0.0
    );
}
