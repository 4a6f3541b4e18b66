//! The runners API under v3 and v4: who sees and changes which runner, in each version's
//! shape, and what pausing, retagging and removing do to the runner protocol.

use crate::helpers::*;
use reqwest::Method;
use serde_json::{json, Value};

async fn registered(app: &TestApp, project: Option<i64>, tags: &str) -> (i64, String) {
    app.register_runner(project, tags).await
}

async fn send_as(
    app: &TestApp,
    method: Method,
    path: &str,
    actor: &Actor,
    body: Value,
) -> Response {
    let response = app
        .client
        .request(method, format!("{}{path}", app.base))
        .header("PRIVATE-TOKEN", &actor.token)
        .json(&body)
        .send()
        .await
        .expect("send");
    TestApp::read(response).await
}

async fn request_job(app: &TestApp, token: &str) -> u16 {
    app.client
        .post(format!("{}/api/v4/jobs/request", app.base))
        .json(&json!({ "token": token }))
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

#[tokio::test]
async fn admins_list_every_runner_in_each_versions_shape() {
    let app =
        TestApp::spawn_configured(0, |c| c.long_poll_timeout = std::time::Duration::ZERO).await;
    let admin = app.user("root", true).await;
    let user = app.user("dev", false).await;
    let (id, _) = registered(&app, None, "linux,docker").await;

    let v4 = app.get("/api/v4/runners/all", &admin).await;
    let listed = v4.assert(200).as_array().cloned().unwrap_or_default();
    let runner = listed.iter().find(|r| r["id"] == id).expect("listed");
    assert_eq!(runner["runner_type"], "instance_type");
    assert_eq!(runner["status"], "online");
    assert_eq!(runner["online"], true);
    assert_eq!(runner["paused"], false);
    assert_eq!(runner["is_shared"], true);
    assert_eq!(v4.header("x-total"), listed.len().to_string());
    let v3 = app.get("/api/v3/runners/all", &admin).await;
    let v3_runner = v3
        .assert(200)
        .as_array()
        .and_then(|a| a.iter().find(|r| r["id"] == id).cloned());
    let v3_runner = v3_runner.expect("listed in v3");
    assert_eq!(v3_runner["active"], true);
    assert!(
        v3_runner.get("status").is_none(),
        "v3 has no status: {v3_runner}"
    );
    app.get("/api/v4/runners/all", &user)
        .await
        .assert_error(403, "403 Forbidden");
    let paused = app.get("/api/v4/runners/all?scope=paused", &admin).await;
    assert!(paused
        .assert(200)
        .as_array()
        .is_some_and(|a| a.iter().all(|r| r["id"] != id)));
    let bad = app.get("/api/v4/runners/all?scope=sideways", &admin).await;
    assert_eq!(bad.status, 400);

    let shown = app.get(&format!("/api/v4/runners/{id}"), &admin).await;
    let shown = shown.assert(200);
    assert_eq!(shown["tag_list"], json!(["docker", "linux"]));
    assert_eq!(shown["version"], "17.5.0");
    assert!(shown["contacted_at"].is_string());
    assert_eq!(shown["access_level"], "not_protected");
    app.get("/api/v4/runners/999999", &admin)
        .await
        .assert_error(404, "404 Runner Not Found");
}

#[tokio::test]
async fn pausing_retagging_and_removing_change_what_a_runner_gets() {
    let (app, owner, _repo, project) =
        TestApp::with_repo_configured(0, "build:\n  tags: [gpu]\n  script: [a]\n", |c| {
            c.long_poll_timeout = std::time::Duration::ZERO
        })
        .await;
    let admin = app.user("root", true).await;
    let (id, token) = registered(&app, None, "").await;
    app.create_pipeline(project, "master", &owner)
        .await
        .assert(201);
    assert_eq!(request_job(&app, &token).await, 204, "no gpu tag yet");
    let path = format!("/api/v4/runners/{id}");
    // A user who is not an admin may not change an instance runner.
    let refused = send_as(&app, Method::PUT, &path, &owner, json!({ "paused": true })).await;
    refused.assert_error(403, "403 Forbidden  - Runner is shared");
    let paused = send_as(
        &app,
        Method::PUT,
        &path,
        &admin,
        json!({ "paused": true, "tag_list": ["gpu"] }),
    )
    .await;
    let paused = paused.assert(200);
    assert_eq!(paused["paused"], true);
    assert_eq!(paused["tag_list"], json!(["gpu"]));
    assert_eq!(request_job(&app, &token).await, 204, "paused");
    send_as(&app, Method::PUT, &path, &admin, json!({ "paused": false }))
        .await
        .assert(200);
    assert_eq!(request_job(&app, &token).await, 201);
    let removed = send_as(&app, Method::DELETE, &path, &admin, json!({})).await;
    assert_eq!(removed.status, 204);
    assert_eq!(request_job(&app, &token).await, 403);
    app.get(&path, &admin)
        .await
        .assert_error(404, "404 Runner Not Found");
}

#[tokio::test]
async fn a_project_runner_is_its_maintainers_to_see_and_change() {
    let app =
        TestApp::spawn_configured(0, |c| c.long_poll_timeout = std::time::Duration::ZERO).await;
    let owner = app.user("owner", false).await;
    let stranger = app.user("stranger", false).await;
    let project = app
        .project("team/app", kiln_core::Visibility::Private)
        .await;
    app.member(project, &owner, kiln_core::AccessLevel::Master)
        .await;
    let (id, _) = registered(&app, Some(project), "").await;

    let own = app.get("/api/v3/runners", &owner).await;
    assert_eq!(
        own.assert(200)
            .as_array()
            .map(|a| a.iter().map(|r| r["id"].clone()).collect::<Vec<_>>()),
        Some(vec![json!(id)])
    );
    let of_project = app
        .get(&format!("/api/v4/projects/{project}/runners"), &owner)
        .await;
    assert!(of_project
        .assert(200)
        .as_array()
        .is_some_and(|a| a.iter().any(|r| r["id"] == id)));
    let shown = app.get(&format!("/api/v4/runners/{id}"), &owner).await;
    let shown = shown.assert(200);
    assert_eq!(shown["runner_type"], "project_type");
    assert_eq!(shown["projects"][0]["path_with_namespace"], "team/app");
    let renamed = send_as(
        &app,
        Method::PUT,
        &format!("/api/v3/runners/{id}"),
        &owner,
        json!({ "description": "mine" }),
    )
    .await;
    assert_eq!(renamed.assert(200)["description"], "mine");
    app.get(&format!("/api/v4/runners/{id}"), &stranger)
        .await
        .assert_error(403, "403 Forbidden");
    assert!(app
        .get("/api/v3/runners", &stranger)
        .await
        .assert(200)
        .as_array()
        .is_some_and(|a| a.is_empty()));
    // v3 answers a removal with the runner removed.
    let removed = send_as(
        &app,
        Method::DELETE,
        &format!("/api/v3/runners/{id}"),
        &owner,
        json!({}),
    )
    .await;
    assert_eq!(removed.assert(200)["id"], id);
}
