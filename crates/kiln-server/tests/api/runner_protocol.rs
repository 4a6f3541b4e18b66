//! gitlab-runner's protocol, played from the runner's side with the request and response
//! shapes of gitlab-runner's own client (`network/gitlab.go`, `common/network.go`).

use crate::helpers::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A runner speaking the protocol as gitlab-runner does.
struct ProtocolRunner<'a> {
    app: &'a TestApp,
    token: String,
    id: i64,
}

/// What gitlab-runner sends as `info`.
fn info() -> Value {
    json!({
        "name": "gitlab-runner", "version": "17.5.0", "revision": "12030cf4",
        "platform": "linux", "architecture": "amd64", "executor": "shell", "shell": "bash",
        "features": { "variables": true, "artifacts": true, "cache": true, "trace_reset": true,
                      "trace_checksum": true, "trace_size": true, "cancelable": true,
                      "return_exit_code": true, "upload_multiple_artifacts": true },
        "config": { "gpus": "" }
    })
}

async fn send(request: reqwest::RequestBuilder) -> Response {
    TestApp::read(request.send().await.expect("send")).await
}

async fn register(app: &TestApp, body: Value) -> Response {
    let request = app
        .client
        .post(format!("{}/api/v4/runners", app.base))
        .json(&body);
    send(request).await
}

async fn instance_token(app: &TestApp) -> String {
    app.store
        .runners()
        .issue_registration_token(None, false)
        .await
        .expect("registration token")
}

impl<'a> ProtocolRunner<'a> {
    /// Registers as gitlab-runner does (`tag_list` a comma-separated string, `locked` by
    /// default).
    async fn register(app: &'a TestApp, tags: &str, run_untagged: bool) -> ProtocolRunner<'a> {
        let token = instance_token(app).await;
        Self::register_with(app, &token, tags, run_untagged).await
    }

    async fn register_with(
        app: &'a TestApp,
        registration: &str,
        tags: &str,
        run_untagged: bool,
    ) -> ProtocolRunner<'a> {
        let body = json!({
            "token": registration, "description": "test runner", "tag_list": tags,
            "run_untagged": run_untagged, "locked": true, "paused": false, "info": info(),
        });
        let response = register(app, body).await;
        let body = response.assert(201);
        ProtocolRunner {
            app,
            token: body["token"].as_str().expect("token").to_owned(),
            id: body["id"].as_i64().expect("id"),
        }
    }

    async fn request_job(&self) -> Response {
        let request = self
            .app
            .client
            .post(format!("{}/api/v4/jobs/request", self.app.base))
            .json(&json!({ "token": self.token, "info": info(), "last_update": "0" }));
        send(request).await
    }

    /// The next job, which must come.
    async fn job(&self) -> Value {
        let response = self.request_job().await;
        response.assert(201).clone()
    }
}

async fn update(app: &TestApp, job: &Value, body: Value) -> Response {
    let mut body = body;
    body["token"] = job["token"].clone();
    let request = app
        .client
        .put(format!("{}/api/v4/jobs/{}", app.base, job["id"]))
        .json(&body);
    send(request).await
}

async fn patch_trace(
    app: &TestApp,
    job: &Value,
    token: &str,
    range: Option<&str>,
    data: &str,
) -> Response {
    let mut request = app
        .client
        .patch(format!("{}/api/v4/jobs/{}/trace", app.base, job["id"]))
        .header("JOB-TOKEN", token)
        .header("Content-Type", "text/plain")
        .body(data.to_owned());
    if let Some(range) = range {
        request = request.header("Content-Range", range);
    }
    send(request).await
}

fn token_of(job: &Value) -> String {
    job["token"].as_str().expect("job token").to_owned()
}

/// The multipart body gitlab-runner streams: one `file` part.
fn multipart(file_name: &str, data: &[u8]) -> (String, Vec<u8>) {
    let boundary = "kilnboundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn small_zip() -> Vec<u8> {
    use std::io::Write;
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut out);
        zip.start_file("out/result.txt", zip::write::SimpleFileOptions::default())
            .expect("zip entry");
        zip.write_all(b"built\n").expect("zip write");
        zip.finish().expect("zip finish");
    }
    out.into_inner()
}

const QUICK_POLL: Duration = Duration::from_millis(300);

async fn quick_app(ci: &str) -> (TestApp, Actor, GitRepo, i64) {
    TestApp::with_repo_configured(0, ci, |c| c.long_poll_timeout = QUICK_POLL).await
}

#[tokio::test]
async fn registration_verify_and_delete_answer_as_gitlab() {
    let app = TestApp::spawn_configured(0, |c| c.long_poll_timeout = QUICK_POLL).await;
    register(&app, json!({ "token": "not-a-token", "info": info() }))
        .await
        .assert_error(403, "403 Forbidden");
    let missing = register(&app, json!({ "description": "x" })).await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.body, json!({ "error": "token is missing" }));

    let token = instance_token(&app).await;
    let created = register(
        &app,
        json!({ "token": token, "description": "box", "tag_list": "linux, docker,,linux",
                "run_untagged": false, "locked": false, "paused": false,
                "maximum_timeout": 3600, "info": info() }),
    )
    .await;
    assert_eq!(created.header("content-type"), "application/json");
    let body = created.assert(201).clone();
    assert!(body["id"].is_i64(), "{body}");
    assert!(body["token"]
        .as_str()
        .is_some_and(|t| t.starts_with("glrt-")));
    assert_eq!(body["token_expires_at"], Value::Null);
    let runner_token = body["token"].as_str().unwrap_or_default().to_owned();
    let record = app
        .store
        .runners()
        .by_token(&runner_token)
        .await
        .expect("read")
        .expect("registered");
    assert_eq!(record.tags, vec!["docker".to_owned(), "linux".to_owned()]);
    assert!(!record.run_untagged);
    assert_eq!(record.maximum_timeout, Some(3600));
    assert_eq!(record.info.version.as_deref(), Some("17.5.0"));
    assert_eq!(record.info.executor.as_deref(), Some("shell"));
    assert!(record.contacted_at.is_some());

    // An array of tags works too; tags and no untagged jobs must go together.
    let array = register(
        &app,
        json!({ "token": token, "tag_list": ["a", "b"], "info": info() }),
    )
    .await;
    array.assert(201);
    let untaggable = register(&app, json!({ "token": token, "run_untagged": false })).await;
    assert_eq!(untaggable.status, 400, "{}", untaggable.body);
    let both = register(
        &app,
        json!({ "token": token, "paused": true, "active": true }),
    )
    .await;
    assert_eq!(both.status, 400, "{}", both.body);

    let verify = |t: String| {
        let request = app
            .client
            .post(format!("{}/api/v4/runners/verify", app.base))
            .json(&json!({ "token": t, "system_id": "s_0123456789ab" }));
        send(request)
    };
    let verified = verify(runner_token.clone()).await;
    assert_eq!(verified.header("content-type"), "application/json");
    assert_eq!(verified.assert(200)["id"], body["id"]);
    verify("glrt-unknown".into())
        .await
        .assert_error(403, "403 Forbidden");

    let delete = |t: String| {
        let request = app
            .client
            .delete(format!("{}/api/v4/runners", app.base))
            .json(&json!({ "token": t }));
        send(request)
    };
    delete(runner_token.clone()).await.assert(204);
    delete(runner_token.clone())
        .await
        .assert_error(403, "403 Forbidden");
    verify(runner_token.clone())
        .await
        .assert_error(403, "403 Forbidden");
    let removed = ProtocolRunner {
        app: &app,
        token: runner_token,
        id: 0,
    };
    removed
        .request_job()
        .await
        .assert_error(403, "403 Forbidden");
}

const FULL_JOB: &str = "\
variables:
  NUMBER: 42
build:
  image: ruby:3.3
  services: [postgres:15]
  before_script: [echo before]
  script: [echo script]
  after_script: [echo after]
  timeout: 20m
  artifacts:
    paths: [out/]
    expire_in: 1 week
";

/// What the runner protocol adds to `/-/metrics`: a claimed build's wait for a runner, the
/// trace bytes it sent, and the runners waiting in a long poll.
#[tokio::test]
async fn metrics_count_claims_traces_and_long_poll_waiters() {
    let (app, owner, _repo, project) = TestApp::with_repo_configured(0, FULL_JOB, |c| {
        c.long_poll_timeout = Duration::from_secs(3)
    })
    .await;
    let runner = ProtocolRunner::register(&app, "", true).await;
    app.create_pipeline(project, "master", &owner)
        .await
        .assert(201);
    let job = runner.job().await;
    let log = "Running with gitlab-runner\n";
    patch_trace(
        &app,
        &job,
        &token_of(&job),
        Some(&format!("0-{}", log.len() - 1)),
        log,
    )
    .await
    .assert(202);
    let scrape = app.scrape().await;
    assert_eq!(
        metric(&scrape, "kiln_build_claim_wait_seconds", &[]),
        Some(1.0)
    );
    assert_eq!(
        metric(&scrape, "kiln_trace_bytes_total", &[]),
        Some(log.len() as f64)
    );
    assert_eq!(metric(&scrape, "kiln_long_poll_waiters", &[]), Some(0.0));
    // A second request finds nothing and waits: one waiter while it does, none after.
    let waiting = tokio::spawn({
        let (client, base, token) = (app.client.clone(), app.base.clone(), runner.token.clone());
        async move {
            client
                .post(format!("{base}/api/v4/jobs/request"))
                .json(&json!({ "token": token, "info": info() }))
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        if metric(&app.scrape().await, "kiln_long_poll_waiters", &[]) == Some(1.0) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no waiter counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(waiting.await.expect("request").expect("answer"), 204);
    assert_eq!(
        metric(&app.scrape().await, "kiln_long_poll_waiters", &[]),
        Some(0.0)
    );
}

#[tokio::test]
async fn a_job_request_returns_the_job_in_gitlab_runners_types() {
    let (app, owner, _repo, project) = quick_app(FULL_JOB).await;
    let runner = ProtocolRunner::register(&app, "", true).await;
    let idle = runner.request_job().await;
    idle.assert(204);
    assert_ne!(idle.header("x-gitlab-last-update"), "<missing>");

    let created = app.create_pipeline(project, "master", &owner).await;
    let pipeline = created.assert(201)["id"].as_i64().expect("pipeline");
    let response = runner.request_job().await;
    assert_eq!(response.header("content-type"), "application/json");
    let job = response.assert(201).clone();
    assert!(job["id"].is_i64());
    let token = token_of(&job);
    assert!(job["allow_git_fetch"].is_boolean());
    let info = &job["job_info"];
    assert_eq!(info["name"], "build");
    assert_eq!(info["stage"], "test");
    assert_eq!(info["project_id"], project);
    assert_eq!(info["pipeline_id"], pipeline);
    assert!(info["time_in_queue_seconds"].is_number());
    assert!(info["project_jobs_running_on_instance_runners_count"].is_string());
    let git = &job["git_info"];
    let repo_url = git["repo_url"].as_str().expect("repo_url");
    assert_eq!(
        repo_url,
        format!(
            "http://gitlab-ci-token:{token}@{}/team/app.git",
            app.base.trim_start_matches("http://")
        )
    );
    assert_eq!(git["ref"], "master");
    assert_eq!(git["ref_type"], "branch");
    assert_eq!(git["sha"].as_str().map(str::len), Some(40));
    assert!(git["depth"].is_i64());
    assert!(git["refspecs"].as_array().is_some_and(|r| !r.is_empty()));
    assert_eq!(job["runner_info"]["timeout"], 1200);
    let steps = job["steps"].as_array().expect("steps");
    assert_eq!(steps[0]["name"], "script");
    assert_eq!(steps[0]["script"], json!(["echo before", "echo script"]));
    assert_eq!(steps[0]["timeout"], 1200);
    assert_eq!(steps[0]["when"], "on_success");
    assert_eq!(steps[1]["name"], "after_script");
    assert_eq!(steps[1]["when"], "always");
    assert_eq!(steps[1]["allow_failure"], true);
    assert_eq!(job["image"], json!({ "name": "ruby:3.3" }));
    assert_eq!(job["services"], json!([{ "name": "postgres:15" }]));
    let artifacts = &job["artifacts"][0];
    assert_eq!(artifacts["paths"], json!(["out/"]));
    assert_eq!(artifacts["expire_in"], "1 week");
    assert_eq!(artifacts["artifact_type"], "archive");
    assert_eq!(artifacts["artifact_format"], "zip");
    assert!(job["cache"].is_array());
    assert!(job["dependencies"].is_array());
    assert!(job["features"]["failure_reasons"]
        .as_array()
        .is_some_and(|r| r.contains(&json!("script_failure"))));
    assert!(
        job.get("run").is_none(),
        "a null `run` breaks gitlab-runner"
    );
    let variables = job["variables"].as_array().expect("variables");
    for variable in variables {
        assert!(
            variable["key"].is_string() && variable["value"].is_string(),
            "{variable}"
        );
        assert!(variable["public"].is_boolean());
    }
    let value = |key: &str| {
        variables
            .iter()
            .find(|v| v["key"] == key)
            .map(|v| v["value"].clone())
    };
    assert_eq!(value("NUMBER"), Some(json!("42")));
    assert_eq!(value("CI_JOB_TOKEN"), Some(json!(token)));
    assert_eq!(value("CI_REPOSITORY_URL"), Some(json!(repo_url)));
    assert_eq!(value("CI_SERVER_URL"), Some(json!(app.base)));
    assert_eq!(value("CI_RUNNER_ID"), Some(json!(runner.id.to_string())));
    let secret = variables.iter().find(|v| v["key"] == "CI_JOB_TOKEN");
    assert_eq!(secret.map(|v| v["public"].clone()), Some(json!(false)));

    // The build is the runner's now.
    let build = app
        .get(
            &format!("/api/v3/projects/{project}/builds/{}", job["id"]),
            &owner,
        )
        .await;
    let build = build.assert(200);
    assert_eq!(build["status"], "running");
    assert_eq!(build["runner"]["id"], runner.id);
    runner.request_job().await.assert(204);
}

#[tokio::test]
async fn traces_and_updates_follow_gitlabs_answers() {
    let (app, owner, _repo, project) = quick_app("build:\n  script: [echo hi]\n").await;
    let runner = ProtocolRunner::register(&app, "", true).await;
    app.create_pipeline(project, "master", &owner)
        .await
        .assert(201);
    let job = runner.job().await;
    let token = token_of(&job);

    let first = patch_trace(&app, &job, &token, Some("0-4"), "hello").await;
    assert_eq!(first.status, 202);
    assert_eq!(first.header("range"), "0-5");
    assert_eq!(first.header("x-gitlab-trace-update-interval"), "3");
    assert_eq!(first.header("job-status"), "running");
    // The same range again (the first answer was lost): stored once.
    let again = patch_trace(&app, &job, &token, Some("0-4"), "hello").await;
    assert_eq!(again.status, 202);
    assert_eq!(again.header("range"), "0-5");
    // Older runners send an exclusive end: only the start counts.
    let next = patch_trace(&app, &job, &token, Some("5-12"), " world\n").await;
    assert_eq!(next.status, 202);
    assert_eq!(next.header("range"), "0-12");
    let gap = patch_trace(&app, &job, &token, Some("20-25"), "later").await;
    assert_eq!(gap.status, 416);
    assert_eq!(gap.header("range"), "0-12");
    assert_eq!(patch_trace(&app, &job, &token, None, "x").await.status, 400);
    let stranger = patch_trace(&app, &job, "glcbt-wrong", Some("12-13"), "x").await;
    assert_eq!(stranger.status, 403);

    update(&app, &job, json!({ "state": "running", "info": info() }))
        .await
        .assert(200);
    let bad = update(&app, &job, json!({ "state": "exploded" })).await;
    assert_eq!(bad.status, 400);
    let done = update(
        &app,
        &job,
        json!({ "state": "success", "output": { "checksum": "crc32:00000000", "bytesize": 12 }, "info": info() }),
    )
    .await;
    done.assert(200);
    let id = job["id"].as_i64().expect("id");
    let build = app
        .get(&format!("/api/v3/projects/{project}/builds/{id}"), &owner)
        .await;
    assert_eq!(build.assert(200)["status"], "success");
    assert_eq!(app.trace(project, id, &owner).await, "hello world\n");
    // The job token ends with its job.
    let late = patch_trace(&app, &job, &token, Some("12-13"), "x").await;
    assert_eq!(late.status, 403);
    assert_eq!(late.header("job-status"), "success");
}

#[tokio::test]
async fn a_failure_records_its_reason_and_exit_code() {
    let (app, owner, _repo, project) = quick_app("build:\n  script: [exit 3]\n").await;
    let runner = ProtocolRunner::register(&app, "", true).await;
    app.create_pipeline(project, "master", &owner)
        .await
        .assert(201);
    let job = runner.job().await;
    update(
        &app,
        &job,
        json!({ "state": "failed", "failure_reason": "script_failure", "exit_code": 3 }),
    )
    .await
    .assert(200);
    let id = job["id"].as_i64().expect("id");
    let failure = app
        .get(&format!("/api/v3/projects/{project}/builds/{id}"), &owner)
        .await;
    assert_eq!(failure.assert(200)["status"], "failed");
    let recorded = app.store.builds().failure_of(id).await.expect("failure");
    assert_eq!(recorded, (Some("script_failure".to_owned()), Some(3)));

    // A reason GitLab does not know is recorded as unknown_failure.
    app.post(
        &format!("/api/v3/projects/{project}/builds/{id}/retry"),
        &owner,
    )
    .await
    .assert(201);
    let retried = runner.job().await;
    update(
        &app,
        &retried,
        json!({ "state": "failed", "failure_reason": "gremlins" }),
    )
    .await
    .assert(200);
    let id = retried["id"].as_i64().expect("id");
    let recorded = app.store.builds().failure_of(id).await.expect("failure");
    assert_eq!(recorded.0.as_deref(), Some("unknown_failure"));
}

#[tokio::test]
async fn a_canceled_job_stays_canceled_and_its_runner_hears_it() {
    let (app, owner, _repo, project) = quick_app("build:\n  script: [sleep 60]\n").await;
    let runner = ProtocolRunner::register(&app, "", true).await;
    app.create_pipeline(project, "master", &owner)
        .await
        .assert(201);
    let job = runner.job().await;
    let token = token_of(&job);
    let id = job["id"].as_i64().expect("id");
    app.post(
        &format!("/api/v3/projects/{project}/builds/{id}/cancel"),
        &owner,
    )
    .await
    .assert(201);
    let patched = patch_trace(&app, &job, &token, Some("0-2"), "abc").await;
    assert_eq!(patched.status, 403);
    assert_eq!(patched.header("job-status"), "canceled");
    let put = update(&app, &job, json!({ "state": "success" })).await;
    assert_eq!(put.status, 403);
    assert_eq!(put.header("job-status"), "canceled");
    let build = app
        .get(&format!("/api/v3/projects/{project}/builds/{id}"), &owner)
        .await;
    assert_eq!(build.assert(200)["status"], "canceled");
}

const TWO_STAGES: &str = "\
stages: [build, test]
make:
  stage: build
  script: [make]
  artifacts:
    paths: [out/]
check:
  stage: test
  script: [check]
";

#[tokio::test]
async fn artifacts_go_up_and_reach_the_next_stage() {
    let (app, owner, _repo, project) = quick_app(TWO_STAGES).await;
    let runner = ProtocolRunner::register(&app, "", true).await;
    app.create_pipeline(project, "master", &owner)
        .await
        .assert(201);
    let make = runner.job().await;
    let zip = small_zip();
    let (content_type, body) = multipart("artifacts.zip", &zip);
    let upload = |token: String, body: Vec<u8>| {
        let request = app
            .client
            .post(format!(
                "{}/api/v4/jobs/{}/artifacts?artifact_format=zip&artifact_type=archive&expire_in=1%20day",
                app.base, make["id"]
            ))
            .header("JOB-TOKEN", token)
            .header("Content-Type", content_type.clone())
            .body(body);
        send(request)
    };
    assert_eq!(upload("glcbt-wrong".into(), body.clone()).await.status, 403);
    upload(token_of(&make), body).await.assert(201);
    update(&app, &make, json!({ "state": "success" }))
        .await
        .assert(200);

    let check = runner.job().await;
    assert_eq!(check["job_info"]["name"], "check");
    let dependency = &check["dependencies"][0];
    assert_eq!(dependency["id"], make["id"]);
    assert_eq!(dependency["name"], "make");
    assert_eq!(dependency["artifacts_file"]["filename"], "artifacts.zip");
    assert_eq!(dependency["artifacts_file"]["size"], zip.len() as i64);
    let download = |token: String| {
        app.client
            .get(format!("{}/api/v4/jobs/{}/artifacts", app.base, make["id"]))
            .header("JOB-TOKEN", token)
            .send()
    };
    let got = download(dependency["token"].as_str().unwrap_or("").to_owned())
        .await
        .expect("download");
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.expect("zip").as_ref(), zip.as_slice());
    // The finished job's own token no longer works.
    let stale = download(token_of(&make)).await.expect("download");
    assert_eq!(stale.status(), 403);
    update(&app, &check, json!({ "state": "success" }))
        .await
        .assert(200);
    let after = download(token_of(&check)).await.expect("download");
    assert_eq!(after.status(), 403);
}

const TAGGED: &str = "\
both:
  tags: [linux, docker]
  script: [a]
linux:
  tags: [linux]
  script: [b]
plain:
  script: [c]
";

#[tokio::test]
async fn runners_take_only_builds_whose_tags_they_have() {
    let (app, owner, _repo, project) = quick_app(TAGGED).await;
    let linux_only = ProtocolRunner::register(&app, "linux", false).await;
    let both = ProtocolRunner::register(&app, "docker,linux", false).await;
    let untagged = ProtocolRunner::register(&app, "", true).await;
    app.create_pipeline(project, "master", &owner)
        .await
        .assert(201);

    assert_eq!(linux_only.job().await["job_info"]["name"], "linux");
    linux_only.request_job().await.assert(204);
    assert_eq!(both.job().await["job_info"]["name"], "both");
    both.request_job().await.assert(204);
    assert_eq!(untagged.job().await["job_info"]["name"], "plain");
    untagged.request_job().await.assert(204);
}

#[tokio::test]
async fn a_paused_runner_gets_nothing_and_a_project_runner_only_its_project() {
    let (app, owner, _repo, project) = quick_app("build:\n  script: [a]\n").await;
    let paused = ProtocolRunner::register(&app, "", true).await;
    app.store
        .runners()
        .update(
            paused.id,
            &kiln_store::RunnerUpdate {
                active: Some(false),
                ..Default::default()
            },
        )
        .await
        .expect("pause");
    let other = app
        .project("team/other", kiln_core::Visibility::Private)
        .await;
    let elsewhere = app
        .store
        .runners()
        .issue_registration_token(Some(other), false)
        .await
        .expect("token");
    let other_runner = ProtocolRunner::register_with(&app, &elsewhere, "", true).await;
    let record = app
        .store
        .runners()
        .get(other_runner.id)
        .await
        .expect("runner");
    assert_eq!(record.runner_type, "project_type");
    assert!(record.locked);
    app.create_pipeline(project, "master", &owner)
        .await
        .assert(201);
    paused.request_job().await.assert(204);
    other_runner.request_job().await.assert(204);
    let own = app
        .store
        .runners()
        .issue_registration_token(Some(project), false)
        .await
        .expect("token");
    let own_runner = ProtocolRunner::register_with(&app, &own, "", true).await;
    assert_eq!(own_runner.job().await["job_info"]["project_id"], project);
}

#[tokio::test]
async fn a_waiting_request_is_answered_as_soon_as_a_build_is_pending() {
    let (app, owner, _repo, project) =
        TestApp::with_repo_configured(0, "build:\n  script: [a]\n", |c| {
            c.long_poll_timeout = Duration::from_secs(20)
        })
        .await;
    let runner = ProtocolRunner::register(&app, "", true).await;
    let started = Instant::now();
    let (response, _) = tokio::join!(runner.request_job(), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        app.create_pipeline(project, "master", &owner)
            .await
            .assert(201);
    });
    response.assert(201);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300),
        "answered before the build existed"
    );
    assert!(
        waited < Duration::from_secs(10),
        "waited {waited:?}: no wake"
    );
}

#[tokio::test]
async fn concurrent_requests_claim_each_build_exactly_once() {
    let builds: String = (0..20)
        .map(|i| format!("job{i}:\n  script: [a]\n"))
        .collect();
    let (app, owner, _repo, project) = quick_app(&builds).await;
    let runners = futures_join(&app, 4).await;
    app.create_pipeline(project, "master", &owner)
        .await
        .assert(201);
    let requests = (0..32).map(|i| runners[i % runners.len()].request_job());
    let answers = futures_util::future::join_all(requests).await;
    let mut ids: Vec<i64> = answers
        .iter()
        .filter(|a| a.status == 201)
        .map(|a| a.body["id"].as_i64().expect("id"))
        .collect();
    assert!(answers.iter().all(|a| a.status == 201 || a.status == 204));
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20, "every build once");
    assert_eq!(answers.iter().filter(|a| a.status == 201).count(), 20);
}

async fn futures_join(app: &TestApp, n: usize) -> Vec<ProtocolRunner<'_>> {
    let mut runners = Vec::new();
    for _ in 0..n {
        runners.push(ProtocolRunner::register(app, "", true).await);
    }
    runners
}

#[tokio::test]
async fn a_runner_that_hangs_up_while_waiting_takes_no_build() {
    let (app, owner, _repo, project) =
        TestApp::with_repo_configured(0, "build:\n  script: [a]\n", |c| {
            c.long_poll_timeout = Duration::from_secs(20)
        })
        .await;
    let runner = ProtocolRunner::register(&app, "", true).await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .expect("client");
    let gone = impatient
        .post(format!("{}/api/v4/jobs/request", app.base))
        .json(&json!({ "token": runner.token, "info": info() }))
        .send()
        .await;
    assert!(gone.is_err(), "the request should have timed out");
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.create_pipeline(project, "master", &owner)
        .await
        .assert(201);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let job = runner.job().await;
    assert_eq!(job["job_info"]["name"], "build");
}

/// `git clone` of `url` into a fresh directory: whether it worked, and the cloned head.
fn clone(url: &str) -> (bool, String) {
    let dir = tempfile::tempdir().expect("dir");
    let target = dir.path().join("checkout");
    let out = std::process::Command::new("git")
        .args(["clone", "--quiet", url])
        .arg(&target)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "/bin/false")
        .output()
        .expect("git");
    if !out.status.success() {
        return (false, String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let head = std::process::Command::new("git")
        .arg("-C")
        .arg(&target)
        .args(["rev-parse", "HEAD"])
        .output()
        .expect("git");
    (
        true,
        String::from_utf8_lossy(&head.stdout).trim().to_owned(),
    )
}

#[tokio::test]
async fn the_job_token_clones_the_repository_only_while_its_job_runs() {
    let (app, owner, repo, project) = quick_app("build:\n  script: [a]\n").await;
    let runner = ProtocolRunner::register(&app, "", true).await;
    app.create_pipeline(project, "master", &owner)
        .await
        .assert(201);
    let job = runner.job().await;
    let url = job["git_info"]["repo_url"]
        .as_str()
        .expect("url")
        .to_owned();
    let sha = repo.git(&["rev-parse", "HEAD"]);
    let app_url = url.clone();
    let (cloned, head) = tokio::task::spawn_blocking(move || clone(&app_url))
        .await
        .expect("clone");
    assert!(cloned, "{head}");
    assert_eq!(head, sha);

    // Without credentials a private project asks for them; a wrong token is refused; a
    // push is refused.
    let plain = format!("{}/team/app.git", app.base);
    let (anonymous, _) = tokio::task::spawn_blocking(move || clone(&plain))
        .await
        .expect("clone");
    assert!(!anonymous);
    let refs = app
        .client
        .get(format!(
            "{}/team/app.git/info/refs?service=git-upload-pack",
            app.base
        ))
        .send()
        .await
        .expect("refs");
    assert_eq!(refs.status(), 401);
    assert!(refs.headers().contains_key("www-authenticate"));
    let push = app
        .client
        .get(format!(
            "{}/team/app.git/info/refs?service=git-receive-pack",
            app.base
        ))
        .basic_auth("gitlab-ci-token", Some(token_of(&job)))
        .send()
        .await
        .expect("refs");
    assert_eq!(push.status(), 403);

    update(&app, &job, json!({ "state": "success" }))
        .await
        .assert(200);
    let (after, _) = tokio::task::spawn_blocking(move || clone(&url))
        .await
        .expect("clone");
    assert!(!after, "the token outlived its job");
    // A member's personal access token clones too.
    let member = format!(
        "http://owner:{}@{}/team/app.git",
        owner.token,
        app.base.trim_start_matches("http://")
    );
    let (by_member, head) = tokio::task::spawn_blocking(move || clone(&member))
        .await
        .expect("clone");
    assert!(by_member, "{head}");
}
