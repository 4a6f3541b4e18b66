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
