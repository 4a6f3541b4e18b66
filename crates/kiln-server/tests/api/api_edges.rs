//! The edges of the trigger, lint and v4 pipeline endpoints: parameter errors in Grape's words,
//! GitLab's error bodies, v4 variables and the v4 pipeline entity.

use crate::helpers::{Actor, GitRepo, Response, TestApp};
use serde_json::{json, Value};
use std::collections::BTreeSet;

async fn setup(runners: usize, ci: &str) -> (TestApp, Actor, GitRepo, i64) {
    TestApp::with_repo(runners, ci).await
}

async fn post_form(
    app: &TestApp,
    path: &str,
    token: Option<&str>,
    form: &[(&str, &str)],
) -> Response {
    let mut request = app.client.post(format!("{}{path}", app.base)).form(form);
    if let Some(token) = token {
        request = request.header("PRIVATE-TOKEN", token);
    }
    TestApp::read(request.send().await.expect("request")).await
}

async fn post_json(app: &TestApp, path: &str, token: Option<&str>, body: &Value) -> Response {
    let mut request = app.client.post(format!("{}{path}", app.base)).json(body);
    if let Some(token) = token {
        request = request.header("PRIVATE-TOKEN", token);
    }
    TestApp::read(request.send().await.expect("request")).await
}

#[track_caller]
fn assert_body(response: &Response, status: u16, body: Value) {
    assert_eq!(response.status.as_u16(), status, "body: {}", response.body);
    assert_eq!(response.body, body);
}

fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

/// The pipeline's stored variables, as [key, value] pairs.
async fn stored_variables(app: &TestApp, pipeline: i64) -> Value {
    let record = app.store.pipelines().get(pipeline).await.expect("pipeline");
    serde_json::from_str(&record.variables).expect("variables JSON")
}

#[tokio::test]
async fn v4_variables_reach_the_job_and_nothing_else_does() {
    let ci = "show:\n  script:\n    - echo \"K is [$K], L is [$L]\"\n    \
              - if env | grep -q '^]\\['; then echo JUNK; else echo CLEAN; fi\n";
    let (app, owner, _repo, project) = setup(2, ci).await;
    let path = format!("/api/v4/projects/{project}/pipeline");

    let created = post_form(
        &app,
        &path,
        Some(&owner.token),
        &[
            ("ref", "master"),
            ("variables[][key]", "K"),
            ("variables[][value]", "from form"),
            ("variables[][key]", "L"),
            ("variables[][variable_type]", "env_var"),
            ("variables[][value]", "second"),
        ],
    )
    .await;
    let pipeline = created.assert(201)["id"].as_i64().expect("id");
    assert_eq!(
        stored_variables(&app, pipeline).await,
        json!([["K", "from form"], ["L", "second"]])
    );
    let builds = app.wait_for_pipeline(project, pipeline, &owner).await;
    let build = builds["show"]["id"].as_i64().expect("build id");
    assert_eq!(builds["show"]["status"], "success", "{}", builds["show"]);
    let trace = app.trace(project, build, &owner).await;
    assert!(trace.contains("K is [from form], L is [second]"), "{trace}");
    let printed = |word: &str| trace.lines().any(|line| line.trim() == word);
    assert!(printed("CLEAN") && !printed("JUNK"), "{trace}");

    let created = post_json(
        &app,
        &path,
        Some(&owner.token),
        &json!({"ref": "master", "variables": [{"key": "K", "value": "from JSON"}]}),
    )
    .await;
    let pipeline = created.assert(201)["id"].as_i64().expect("id");
    assert_eq!(
        stored_variables(&app, pipeline).await,
        json!([["K", "from JSON"]])
    );
    let builds = app.wait_for_pipeline(project, pipeline, &owner).await;
    let build = builds["show"]["id"].as_i64().expect("build id");
    let trace = app.trace(project, build, &owner).await;
    assert!(trace.contains("K is [from JSON], L is []"), "{trace}");

    // The v3 hash form is not v4's array: Grape refuses it.
    let hash_form = post_form(
        &app,
        &path,
        Some(&owner.token),
        &[("ref", "master"), ("variables[K]", "v")],
    )
    .await;
    assert_body(&hash_form, 400, json!({"error": "variables is invalid"}));
}

#[tokio::test]
async fn v4_pipeline_has_gitlabs_fields_and_errors() {
    // No runner: the pipeline stays pending, as GitLab's answer to the POST shows it.
    let (app, owner, _repo, project) = setup(0, "job:\n  script: [\"true\"]\n").await;
    let created = app.create_pipeline(project, "master", &owner).await;
    let body = created.assert(201).clone();
    let id = body["id"].as_i64().expect("id");

    let expected: BTreeSet<&str> = [
        "id",
        "iid",
        "project_id",
        "sha",
        "ref",
        "status",
        "source",
        "created_at",
        "updated_at",
        "web_url",
        "before_sha",
        "tag",
        "yaml_errors",
        "user",
        "started_at",
        "finished_at",
        "committed_at",
        "duration",
        "queued_duration",
        "coverage",
        "detailed_status",
    ]
    .into_iter()
    .collect();
    assert_eq!(keys(&body), expected, "{body}");
    assert_eq!(body["iid"], id);
    assert_eq!(body["project_id"], project);
    assert_eq!(body["ref"], "master");
    assert_eq!(body["source"], "api");
    assert_eq!(body["status"], "pending");
    assert_eq!(body["tag"], false);
    assert_eq!(body["sha"].as_str().map(str::len), Some(40));
    assert_eq!(body["before_sha"], "0".repeat(40));
    // (Kiln's store sets `started_at`, and so `queued_duration`, when the pipeline becomes
    // pending; GitLab waits for running. Not checked here.)
    for null in [
        "yaml_errors",
        "finished_at",
        "committed_at",
        "duration",
        "coverage",
    ] {
        assert_eq!(body[null], Value::Null, "{null}: {body}");
    }
    for time in ["created_at", "updated_at"] {
        let text = body[time].as_str().expect("a time");
        // 2015-12-24T15:51:21.802Z
        let shape: String = text
            .chars()
            .map(|c| if c.is_ascii_digit() { 'd' } else { c })
            .collect();
        assert_eq!(shape, "dddd-dd-ddTdd:dd:dd.dddZ", "{time}: {text}");
    }
    let path = format!("/team/app/-/pipelines/{id}");
    assert_eq!(body["web_url"], format!("{}{path}", app.base));

    let user = &body["user"];
    assert_eq!(
        keys(user),
        ["id", "username", "name", "state", "avatar_url", "web_url"]
            .into_iter()
            .collect()
    );
    assert_eq!(user["id"], owner.id);
    assert_eq!(user["username"], "owner");
    assert_eq!(user["name"], "owner name");
    assert_eq!(user["state"], "active");
    assert_eq!(user["web_url"], format!("{}/owner", app.base));
    assert!(user["avatar_url"]
        .as_str()
        .is_some_and(|u| u.contains("gravatar")));

    assert_eq!(
        body["detailed_status"],
        json!({
            "icon": "status_pending",
            "text": "Pending",
            "label": "pending",
            "group": "pending",
            "tooltip": "pending",
            "has_details": true,
            "details_path": path,
            "illustration": null,
            "favicon": "/assets/ci_favicons/favicon_status_pending.png"
        })
    );

    // Errors: Grape's for the parameter (before the project is even looked at), GitLab's
    // validation error for a pipeline that cannot be made.
    let pipeline_path = format!("/api/v4/projects/{project}/pipeline");
    let no_ref = post_form(&app, &pipeline_path, Some(&owner.token), &[]).await;
    assert_body(&no_ref, 400, json!({"error": "ref is missing"}));
    let nowhere = post_form(
        &app,
        "/api/v4/projects/9999/pipeline",
        Some(&owner.token),
        &[],
    )
    .await;
    assert_body(&nowhere, 400, json!({"error": "ref is missing"}));
    let unknown = app.create_pipeline(project, "no-such-branch", &owner).await;
    assert_body(
        &unknown,
        400,
        json!({"message": {"base": ["Reference not found"]}}),
    );
    let empty = post_form(&app, &pipeline_path, Some(&owner.token), &[("ref", "")]).await;
    assert_body(
        &empty,
        400,
        json!({"message": {"base": ["Reference not found"]}}),
    );
}

#[tokio::test]
async fn trigger_errors_answer_like_gitlab_and_record_no_request() {
    let ci = "show:\n  script: [echo \"deploy to $TARGET\"]\n";
    let (app, owner, repo, project) = setup(0, ci).await;
    let token = app.store.triggers().create(project, "ci").await.unwrap();
    let other_repo = GitRepo::with_ci(ci);
    let other = app.project_on("team/other", &other_repo, &owner).await;
    let other_token = app.store.triggers().create(other, "ci").await.unwrap();
    let path = format!("/api/v3/projects/{project}/trigger/builds");
    let trigger = |form: Vec<(&'static str, String)>| {
        let (app, path) = (&app, &path);
        async move {
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post_form(app, path, None, &form).await
        }
    };
    let t = || token.clone();
    let s = |v: &str| v.to_owned();

    let first = trigger(vec![("token", t()), ("ref", s("master"))]).await;
    let first_id = first.assert(201)["id"].as_i64().expect("request id");

    // Grape's declared parameters: ref before token, all problems at once.
    assert_body(
        &trigger(vec![]).await,
        400,
        json!({"error": "ref is missing, token is missing"}),
    );
    assert_body(
        &trigger(vec![("token", t())]).await,
        400,
        json!({"error": "ref is missing"}),
    );
    assert_body(
        &trigger(vec![("ref", s("master"))]).await,
        400,
        json!({"error": "token is missing"}),
    );
    assert_body(
        &trigger(vec![
            ("token", t()),
            ("ref", s("master")),
            ("variables", s("value")),
        ])
        .await,
        400,
        json!({"error": "variables is invalid"}),
    );
    assert_body(
        &trigger(vec![("variables", s("value"))]).await,
        400,
        json!({"error": "ref is missing, token is missing, variables is invalid"}),
    );
    // Then the token: unknown → 404, another project's → 401.
    trigger(vec![("token", s("wrong")), ("ref", s("master"))])
        .await
        .assert_error(404, "404 Not Found");
    trigger(vec![("token", other_token.clone()), ("ref", s("master"))])
        .await
        .assert_error(401, "401 Unauthorized");
    // Then the variables' values, then the pipeline.
    trigger(vec![
        ("token", t()),
        ("ref", s("master")),
        ("variables[TARGET][]", s("a")),
        ("variables[TARGET][]", s("b")),
    ])
    .await
    .assert_error(400, "variables needs to be a map of key-valued strings");
    trigger(vec![("token", t()), ("ref", s("no-such-branch"))])
        .await
        .assert_error(400, "No builds created");
    trigger(vec![("token", t()), ("ref", s(""))])
        .await
        .assert_error(400, "No builds created");
    repo.commit(
        &[(
            ".gitlab-ci.yml",
            "show:\n  script: [\"true\"]\n  only: [tags]\n",
        )],
        "Only tags",
    );
    trigger(vec![("token", t()), ("ref", s("master"))])
        .await
        .assert_error(400, "No builds created");

    // None of the failures left a trigger request behind: the next one follows the first.
    repo.commit(&[(".gitlab-ci.yml", ci)], "Back");
    let next = trigger(vec![
        ("token", t()),
        ("ref", s("master")),
        ("variables[TARGET]", s("staging")),
    ])
    .await;
    let body = next.assert(201);
    assert_eq!(body["id"], first_id + 1, "{body}");
    assert_eq!(body["variables"], json!({"TARGET": "staging"}));
    // The other project's token still works there.
    let there = post_form(
        &app,
        &format!("/api/v3/projects/{other}/trigger/builds"),
        None,
        &[("token", &other_token), ("ref", "master")],
    )
    .await;
    there.assert(201);
}

#[tokio::test]
async fn lint_without_content_is_grapes_error() {
    let app = TestApp::spawn().await;
    let missing = post_form(&app, "/api/v3/ci/lint", None, &[]).await;
    assert_body(&missing, 400, json!({"error": "content is missing"}));
    let missing = post_json(&app, "/api/v3/ci/lint", None, &json!({"other": 1})).await;
    assert_body(&missing, 400, json!({"error": "content is missing"}));
    let empty = post_form(&app, "/api/v3/ci/lint", None, &[("content", "")]).await;
    assert_body(
        &empty,
        200,
        json!({"status": "invalid", "errors": ["Please provide content of .gitlab-ci.yml"]}),
    );
}
