//! Commit statuses reported from outside (`POST /projects/:id/statuses/:sha`) and the
//! commit's statuses list, over real HTTP: they join the commit's pipeline and drive its
//! status, runners never take them, and bad reports change nothing.

use crate::helpers::*;
use kiln_core::AccessLevel;
use reqwest::Method;
use serde_json::{json, Value};

const CI: &str = "job:\n  script: [\"true\"]\n";

async fn report(app: &TestApp, project: i64, sha: &str, actor: &Actor, body: Value) -> Response {
    let path = format!("/api/v4/projects/{project}/statuses/{sha}");
    app.send_json(Method::POST, &path, Some(&actor.token), body)
        .await
}

async fn pipeline_status(app: &TestApp, project: i64, pipeline: i64, actor: &Actor) -> Value {
    let shown = app
        .get(
            &format!("/api/v4/projects/{project}/pipelines/{pipeline}"),
            actor,
        )
        .await;
    shown.assert(200)["status"].clone()
}

#[tokio::test]
async fn an_external_status_joins_the_commits_pipeline_and_drives_its_status() {
    let (app, owner, repo, project) = TestApp::with_repo(1, CI).await;
    let sha = repo.git(&["rev-parse", "HEAD"]);
    let (pipeline, builds) = app.run_pipeline(project, "master", &owner).await;
    assert_eq!(builds["job"]["status"], "success");

    let running = report(
        &app,
        project,
        &sha,
        &owner,
        json!({ "state": "running", "name": "deploy", "target_url": "https://ci.example/d/1",
                "description": "Deploying" }),
    )
    .await;
    let running = running.assert(201).clone();
    assert_eq!(
        shape(&running),
        json!({
            "id": "number", "sha": "string", "ref": "string", "status": "string",
            "name": "string", "target_url": "string", "description": "string",
            "created_at": "string", "started_at": "string", "finished_at": "null",
            "allow_failure": "bool", "coverage": "null", "pipeline_id": "number",
            "author": { "id": "number", "username": "string", "name": "string", "state": "string",
                        "locked": "bool", "avatar_url": "string", "web_url": "string" },
        })
    );
    assert_eq!(running["sha"], sha.as_str());
    assert_eq!(running["ref"], "master");
    assert_eq!(running["status"], "running");
    assert_eq!(running["pipeline_id"], pipeline);
    assert_eq!(running["target_url"], "https://ci.example/d/1");
    assert_eq!(running["author"]["username"], "owner");
    assert_eq!(
        pipeline_status(&app, project, pipeline, &owner).await,
        "running"
    );

    // Reporting the same state again is a transition GitLab refuses, in its words.
    report(
        &app,
        project,
        &sha,
        &owner,
        json!({ "state": "running", "name": "deploy" }),
    )
    .await
    .assert_error(
        400,
        "Cannot transition status via :run from :running (Reason(s): Status cannot transition via \"run\")",
    );

    // The next report updates the same status; the pipeline follows it.
    let done = report(
        &app,
        project,
        &sha,
        &owner,
        json!({ "state": "success", "name": "deploy", "coverage": 81.5 }),
    )
    .await;
    let done = done.assert(201).clone();
    assert_eq!(done["id"], running["id"]);
    assert_eq!(done["status"], "success");
    assert_eq!(done["coverage"], 81.5);
    assert_eq!(done["description"], "Deploying");
    assert!(done["finished_at"].is_string());
    assert_eq!(
        pipeline_status(&app, project, pipeline, &owner).await,
        "success"
    );

    // A report after it finished is a new status; the old one is retried.
    let again = report(
        &app,
        project,
        &sha,
        &owner,
        json!({ "state": "failed", "context": "deploy" }),
    )
    .await;
    let again = again.assert(201).clone();
    assert_ne!(again["id"], done["id"]);
    assert_eq!(
        pipeline_status(&app, project, pipeline, &owner).await,
        "failed"
    );
    let statuses_path = format!("/api/v4/projects/{project}/repository/commits/{sha}/statuses");
    let latest = app.get(&statuses_path, &owner).await;
    let names: Vec<(String, String)> = latest
        .assert(200)
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("job".into(), "success".into()),
            ("deploy".into(), "failed".into())
        ]
    );
    assert_eq!(latest.header("x-total"), "2");
    let all = app.get(&format!("{statuses_path}?all=true"), &owner).await;
    assert_eq!(all.ids().len(), 3);
    let named = app
        .get(
            &format!("{statuses_path}?all=true&name=deploy&sort=desc"),
            &owner,
        )
        .await;
    assert_eq!(
        named.ids(),
        [again["id"].as_i64().unwrap(), done["id"].as_i64().unwrap()]
    );
    let job = app
        .get(
            &format!("/api/v4/projects/{project}/jobs/{}", again["id"]),
            &owner,
        )
        .await;
    assert_eq!(job.assert(200)["failure_reason"], "api_failure");
    assert_eq!(job.body["stage"], "external");

    // Only its reporter changes it: it is not retried, nor retried with the pipeline.
    let retried = app
        .post(
            &format!("/api/v4/projects/{project}/jobs/{}/retry", again["id"]),
            &owner,
        )
        .await;
    assert_eq!(retried.status.as_u16(), 403, "{:?}", retried.body);
    let before = app.get(&format!("{statuses_path}?all=true"), &owner).await;
    app.post(
        &format!("/api/v4/projects/{project}/pipelines/{pipeline}/retry"),
        &owner,
    )
    .await
    .assert(201);
    let after = app.get(&format!("{statuses_path}?all=true"), &owner).await;
    assert_eq!(after.ids(), before.ids());
}

#[tokio::test]
async fn a_commit_without_a_pipeline_gets_an_external_one_that_runners_never_take() {
    // A runner's request waits a moment for work, then hears there is none.
    let (app, owner, repo, project) = TestApp::with_repo_configured(0, CI, |c| {
        c.long_poll_timeout = std::time::Duration::from_millis(300)
    })
    .await;
    let (_, runner_token) = app.register_runner(None, "").await;
    let sha = repo.commit(&[("b.txt", "b")], "Second");
    // No ref given and no pipeline: the branch that holds the commit.
    let pending = report(&app, project, &sha, &owner, json!({ "state": "pending" })).await;
    let pending = pending.assert(201).clone();
    assert_eq!(pending["ref"], "master");
    assert_eq!(pending["name"], "default");
    assert_eq!(pending["target_url"], Value::Null);
    let pipeline = pending["pipeline_id"].as_i64().unwrap();
    let shown = app
        .get(
            &format!("/api/v4/projects/{project}/pipelines/{pipeline}"),
            &owner,
        )
        .await;
    let shown = shown.assert(200);
    assert_eq!(shown["source"], "external");
    assert_eq!(shown["status"], "pending");
    assert_eq!(shown["sha"], sha.as_str());

    let asked = app
        .client
        .post(format!("{}/api/v4/jobs/request", app.base))
        .json(&json!({ "token": runner_token, "info": { "name": "gitlab-runner" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(asked.status(), 204, "a runner was given an external status");

    // A second report of another name joins the same pipeline.
    let other = report(
        &app,
        project,
        &sha,
        &owner,
        json!({ "state": "success", "name": "lint", "ref": "master" }),
    )
    .await;
    assert_eq!(other.assert(201)["pipeline_id"], pipeline);
    let explicit = report(
        &app,
        project,
        &sha,
        &owner,
        json!({ "state": "success", "name": "pinned", "pipeline_id": pipeline }),
    )
    .await;
    assert_eq!(explicit.assert(201)["pipeline_id"], pipeline);
}

#[tokio::test]
async fn concurrent_reports_on_a_new_commit_make_one_pipeline() {
    let (app, owner, repo, project) = TestApp::with_repo(0, CI).await;
    let sha = repo.commit(&[("c.txt", "c")], "Third");
    let reports = (0..8).map(|i| {
        let (app, owner, sha) = (&app, &owner, sha.clone());
        async move {
            let body = json!({ "state": "running", "name": format!("check-{i}"), "ref": "master" });
            report(app, project, &sha, owner, body).await
        }
    });
    let answers = futures_util::future::join_all(reports).await;
    let mut pipelines: Vec<i64> = answers
        .iter()
        .map(|a| a.assert(201)["pipeline_id"].as_i64().unwrap())
        .collect();
    pipelines.dedup();
    assert_eq!(pipelines.len(), 1, "{pipelines:?}");
    let listed = app
        .get(
            &format!("/api/v4/projects/{project}/pipelines?sha={sha}"),
            &owner,
        )
        .await;
    assert_eq!(listed.ids(), pipelines);
}

#[tokio::test]
async fn bad_reports_get_gitlabs_errors_and_change_nothing() {
    let (app, owner, repo, project) = TestApp::with_repo(0, CI).await;
    let sha = repo.git(&["rev-parse", "HEAD"]);
    let reporter = app.user("reporter", false).await;
    app.member(project, &reporter, AccessLevel::Reporter).await;
    let developer = app.user("dev", false).await;
    app.member(project, &developer, AccessLevel::Developer)
        .await;
    let stranger = app.user("stranger", false).await;

    report(&app, project, &sha, &owner, json!({}))
        .await
        .assert_error_key(400, "error", "state is missing");
    report(&app, project, &sha, &owner, json!({ "state": "done" }))
        .await
        .assert_error_key(400, "error", "state does not have a valid value");
    report(
        &app,
        project,
        &sha,
        &owner,
        json!({ "state": "success", "coverage": "lots" }),
    )
    .await
    .assert_error_key(400, "error", "coverage is invalid");
    let url = report(
        &app,
        project,
        &sha,
        &owner,
        json!({ "state": "success", "target_url": "javascript:alert(1)" }),
    )
    .await;
    assert_eq!(url.status.as_u16(), 400);
    assert_eq!(
        url.body["message"]["target_url"],
        json!(["must be a valid URL"])
    );
    report(
        &app,
        project,
        &"f".repeat(40),
        &owner,
        json!({ "state": "success" }),
    )
    .await
    .assert_error(404, "404 Commit Not Found");
    report(
        &app,
        project,
        &sha,
        &owner,
        json!({ "state": "success", "pipeline_id": 999999 }),
    )
    .await
    .assert_error(404, "404 Pipeline for pipeline_id, sha and ref Not Found");
    report(
        &app,
        project,
        &sha,
        &reporter,
        json!({ "state": "success" }),
    )
    .await
    .assert_error(403, "403 Forbidden");
    report(
        &app,
        project,
        &sha,
        &stranger,
        json!({ "state": "success" }),
    )
    .await
    .assert_error(404, "404 Project Not Found");
    let none = app
        .get(
            &format!("/api/v4/projects/{project}/repository/commits/{sha}/statuses"),
            &owner,
        )
        .await;
    assert_eq!(none.assert(200), &json!([]));
    app.get(
        &format!(
            "/api/v4/projects/{project}/repository/commits/{}/statuses",
            "e".repeat(40)
        ),
        &owner,
    )
    .await
    .assert_error(404, "404 Commit Not Found");
    // A developer may report.
    report(
        &app,
        project,
        &sha,
        &developer,
        json!({ "state": "success" }),
    )
    .await
    .assert(201);
}
