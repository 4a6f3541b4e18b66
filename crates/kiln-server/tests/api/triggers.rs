//! The Triggers API (v3 by token, v4 by id), v4's trigger/pipeline by trigger or job token,
//! and v4 lint.

use crate::helpers::*;
use kiln_core::AccessLevel;
use reqwest::Method;
use serde_json::{json, Value};

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> Response {
    app.send_json(method, path, token, body).await
}

#[tokio::test]
async fn triggers_are_managed_by_maintainers_and_start_pipelines() {
    let (app, owner, _repo, project) = TestApp::with_repo(0, "job:\n  script: [\"true\"]\n").await;
    let other = app.user("other", false).await;
    app.member(project, &other, AccessLevel::Master).await;
    let base = format!("/api/v4/projects/{project}/triggers");
    send(&app, Method::POST, &base, Some(&owner.token), json!({}))
        .await
        .assert(400);
    let created = send(
        &app,
        Method::POST,
        &base,
        Some(&owner.token),
        json!({ "description": "deploys" }),
    )
    .await;
    let created = created.assert(201).clone();
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("glptt-") && token.len() == 46, "{token}");
    assert_eq!(created["owner"]["username"], "owner");
    let id = created["id"].as_i64().unwrap();
    // Another maintainer sees only the token's start.
    let seen = app.get(&format!("{base}/{id}"), &other).await;
    assert_eq!(seen.assert(200)["token"], &token[..4]);
    let renamed = send(
        &app,
        Method::PUT,
        &format!("{base}/{id}"),
        Some(&owner.token),
        json!({ "description": "ships" }),
    )
    .await;
    assert_eq!(renamed.assert(200)["description"], "ships");
    // v3 names triggers by token.
    let v3 = app
        .get(
            &format!("/api/v3/projects/{project}/triggers/{token}"),
            &owner,
        )
        .await;
    assert_eq!(v3.assert(200)["token"], token.as_str());

    let fired = send(
        &app,
        Method::POST,
        &format!("/api/v4/projects/{project}/trigger/pipeline"),
        None,
        json!({ "token": token, "ref": "master", "variables": { "TARGET": "prod" } }),
    )
    .await;
    let fired = fired.assert(201);
    assert_eq!(fired["source"], "trigger");
    let pipeline = fired["id"].as_i64().unwrap();
    let variables = app
        .get(
            &format!("/api/v4/projects/{project}/pipelines/{pipeline}/variables"),
            &owner,
        )
        .await;
    assert_eq!(variables.body[0]["key"], "TARGET");
    let used = app.get(&format!("{base}/{id}"), &owner).await;
    assert!(used.body["last_used"].is_string(), "{}", used.body);

    let removed = app
        .request(Method::DELETE, &format!("{base}/{id}"), Some(&owner.token))
        .await;
    assert_eq!(removed.status.as_u16(), 204);
    send(
        &app,
        Method::POST,
        &format!("/api/v4/projects/{project}/trigger/pipeline"),
        None,
        json!({ "token": token, "ref": "master" }),
    )
    .await
    .assert_error(404, "404 Not Found");
    let missing = send(
        &app,
        Method::POST,
        &format!("/api/v4/projects/{project}/trigger/pipeline"),
        None,
        json!({}),
    )
    .await;
    assert_eq!(
        missing.assert(400),
        &json!({ "error": "ref is missing, token is missing" })
    );
    let dev = app.user("dev", false).await;
    app.member(project, &dev, AccessLevel::Developer).await;
    app.get(&base, &dev)
        .await
        .assert_error(403, "403 Forbidden");
}

#[tokio::test]
async fn a_running_jobs_token_triggers_a_pipeline_of_its_project() {
    let (app, owner, _repo, project) = TestApp::with_repo(0, "job:\n  script: [\"true\"]\n").await;
    let created = app.create_pipeline(project, "master", &owner).await;
    created.assert(201);
    let runner = app
        .store
        .runners()
        .find_or_create("test runner")
        .await
        .unwrap();
    let until = kiln_store::now_ms() + 60_000;
    app.store
        .builds()
        .claim(runner, until, "glcbt-job")
        .await
        .unwrap()
        .expect("claimed");
    let fired = send(
        &app,
        Method::POST,
        &format!("/api/v4/projects/{project}/trigger/pipeline"),
        None,
        json!({ "token": "glcbt-job", "ref": "master" }),
    )
    .await;
    let fired = fired.assert(201);
    assert_eq!(fired["source"], "pipeline");
    assert_eq!(fired["user"]["username"], "owner");
}

#[tokio::test]
async fn v4_lint_answers_in_current_gitlabs_shape() {
    let (app, owner, _repo, project) = TestApp::with_repo(0, "job:\n  script: [\"true\"]\n").await;
    let good = send(
        &app,
        Method::POST,
        "/api/v4/ci/lint",
        Some(&owner.token),
        json!({ "content": "job:\n  script: [x]\n" }),
    )
    .await;
    assert_eq!(good.assert(200)["valid"], true);
    assert_eq!(good.body["status"], "valid");
    assert_eq!(good.body["warnings"], json!([]));
    // What Kiln cannot honour is a warning of a valid file, as GitLab's lint gives them.
    let warned = send(
        &app,
        Method::POST,
        "/api/v4/ci/lint",
        Some(&owner.token),
        json!({ "content": "include: 'https://example.com/x.yml'\njob:\n  script: [x]\n" }),
    )
    .await;
    assert_eq!(warned.assert(200)["valid"], true);
    assert_eq!(
        warned.body["warnings"],
        json!(["include: remote file `https://example.com/x.yml` was left out: Kiln does not fetch remote files"])
    );
    let bad = send(
        &app,
        Method::POST,
        "/api/v4/ci/lint",
        Some(&owner.token),
        json!({ "content": "job: [" }),
    )
    .await;
    assert_eq!(bad.body["valid"], false);
    assert!(!bad.body["errors"].as_array().unwrap().is_empty());
    // Current GitLab lints only for a signed-in user (v3's stays open, as in 8.x).
    let anonymous = send(
        &app,
        Method::POST,
        "/api/v4/ci/lint",
        None,
        json!({ "content": "job:\n  script: [x]\n" }),
    )
    .await;
    anonymous.assert_error(401, "401 Unauthorized");
    let project_lint = app
        .get(&format!("/api/v4/projects/{project}/ci/lint"), &owner)
        .await;
    assert_eq!(
        project_lint.assert(200)["valid"],
        true,
        "{}",
        project_lint.body
    );
    let posted = send(
        &app,
        Method::POST,
        &format!("/api/v4/projects/{project}/ci/lint"),
        Some(&owner.token),
        json!({ "content": "job:\n  scrip: [x]\n" }),
    )
    .await;
    assert_eq!(posted.assert(200)["valid"], false);
}
