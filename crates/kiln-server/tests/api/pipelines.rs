//! Builds that really run: pipelines from real git repositories, run by the embedded runner
//! as real shell processes.

use crate::helpers::{Actor, GitRepo, TestApp};
use kiln_core::AccessLevel;
use serde_json::Value;
use std::io::Read;
use std::time::Duration;

async fn setup(ci: &str) -> (TestApp, Actor, GitRepo, i64) {
    TestApp::with_repo(2, ci).await
}

async fn run_pipeline(
    app: &TestApp,
    owner: &Actor,
    project: i64,
    ref_name: &str,
) -> std::collections::BTreeMap<String, Value> {
    app.run_pipeline(project, ref_name, owner).await.1
}

/// A script line that fails the first time it runs and succeeds after (it leaves `flag`).
fn fails_once(flag: &std::path::Path) -> String {
    format!(
        "\"test -f {f} || {{ touch {f}; exit 1; }}\"",
        f = flag.display()
    )
}

fn status(builds: &std::collections::BTreeMap<String, Value>, name: &str) -> String {
    builds
        .get(name)
        .map(|b| b["status"].as_str().unwrap_or("?").to_owned())
        .unwrap_or_else(|| "<absent>".into())
}

const STAGES: &str = r#"
stages: [build, test, deploy]
compile:
  stage: build
  script: [echo compiling $CI_BUILD_NAME $CI_JOB_NAME]
unit:
  stage: test
  script: [echo testing, exit 1]
deploy:
  stage: deploy
  script: [echo deploying]
"#;

#[tokio::test]
async fn stages_run_in_order_and_a_failure_skips_later_stages() {
    let (app, owner, _repo, project) = setup(STAGES).await;
    let builds = run_pipeline(&app, &owner, project, "master").await;
    assert_eq!(status(&builds, "compile"), "success");
    assert_eq!(status(&builds, "unit"), "failed");
    assert_eq!(status(&builds, "deploy"), "skipped");
    let compiled = builds["compile"]["finished_at"]
        .as_str()
        .expect("compile finished");
    let unit_started = builds["unit"]["started_at"].as_str().expect("unit started");
    assert!(compiled <= unit_started, "{compiled} > {unit_started}");
    let trace = app
        .trace(project, builds["compile"]["id"].as_i64().unwrap(), &owner)
        .await;
    assert!(trace.contains("compiling compile compile"), "{trace}");
    let commit = &builds["compile"]["commit"];
    assert_eq!(commit["created_at"], "2015-12-24T16:51:14.000+01:00");
    assert_eq!(commit["author_name"], "Ada Lovelace");
    assert_eq!(commit["title"], "Add CI");
    assert_eq!(builds["compile"]["user"]["username"], "owner");
    let runner = &builds["compile"]["runner"];
    assert!(runner["description"]
        .as_str()
        .unwrap()
        .starts_with("embedded runner"));
    // The doc's runner object: id, description, active, is_shared, name.
    let mut keys: Vec<&str> = runner
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(keys, ["active", "description", "id", "is_shared", "name"]);
    assert!(
        runner["id"].is_i64() && runner["active"].is_boolean() && runner["is_shared"].is_boolean()
    );
    // UTC with milliseconds and Z, as GitLab's API writes them.
    for field in ["created_at", "started_at", "finished_at"] {
        let value = builds["compile"][field].as_str().unwrap_or_default();
        let shape: String = value
            .chars()
            .map(|c| if c.is_ascii_digit() { '9' } else { c })
            .collect();
        assert_eq!(shape, "9999-99-99T99:99:99.999Z", "{field}: {value}");
    }
}

#[tokio::test]
async fn allow_failure_on_failure_always_and_manual_with_play() {
    let ci = r#"
stages: [test, cleanup, deploy]
flaky:
  stage: test
  script: [exit 1]
  allow_failure: true
solid:
  stage: test
  script: [echo ok]
notify failure:
  stage: cleanup
  script: [echo failed]
  when: on_failure
always:
  stage: cleanup
  script: [echo always]
  when: always
ship:
  stage: deploy
  script: [echo shipped by $GITLAB_USER_LOGIN]
  when: manual
"#;
    let (app, owner, _repo, project) = setup(ci).await;
    let builds = run_pipeline(&app, &owner, project, "master").await;
    assert_eq!(status(&builds, "flaky"), "failed");
    assert_eq!(status(&builds, "solid"), "success");
    assert_eq!(
        status(&builds, "notify failure"),
        "skipped",
        "an allowed failure is not a failure"
    );
    assert_eq!(status(&builds, "always"), "success");
    assert_eq!(status(&builds, "ship"), "manual");
    let ship = builds["ship"]["id"].as_i64().unwrap();
    let played = app
        .post(
            &format!("/api/v3/projects/{project}/builds/{ship}/play"),
            &owner,
        )
        .await;
    // Pending, or already running: the embedded runner claims it within milliseconds.
    let played_status = played.assert(200)["status"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(
        ["pending", "running", "success"].contains(&played_status.as_str()),
        "{played_status}"
    );
    let done = app
        .wait_for_build(project, ship, &owner, |b| b["status"] == "success")
        .await;
    assert_eq!(done["status"], "success");
    assert!(app
        .trace(project, ship, &owner)
        .await
        .contains("shipped by owner"));
    let again = app
        .post(
            &format!("/api/v3/projects/{project}/builds/{ship}/play"),
            &owner,
        )
        .await;
    again.assert_error(400, "400 (Bad request) \"Unplayable Build\" not given");
}

#[tokio::test]
async fn after_a_real_failure_on_failure_and_always_jobs_run_and_on_success_ones_skip() {
    let ci = r#"
stages: [test, after]
broken:
  stage: test
  script: [exit 3]
notify:
  stage: after
  when: on_failure
  script: [echo notifying]
cleanup:
  stage: after
  when: always
  script: [echo cleaning]
publish:
  stage: after
  script: [echo publishing]
"#;
    let (app, owner, _repo, project) = setup(ci).await;
    let builds = run_pipeline(&app, &owner, project, "master").await;
    assert_eq!(status(&builds, "broken"), "failed");
    assert_eq!(status(&builds, "notify"), "success");
    assert_eq!(status(&builds, "cleanup"), "success");
    assert_eq!(status(&builds, "publish"), "skipped");
    let notify = builds["notify"]["id"].as_i64().unwrap();
    assert!(app
        .trace(project, notify, &owner)
        .await
        .contains("notifying"));
}

#[tokio::test]
async fn needs_start_a_job_before_its_stage_is_reached() {
    let ci = r#"
stages: [build, test]
slow:
  stage: build
  script: [sleep 2]
fast:
  stage: build
  script: [echo fast]
after fast:
  stage: test
  needs: [fast]
  script: [echo early]
after all:
  stage: test
  script: [echo late]
"#;
    let (app, owner, _repo, project) = setup(ci).await;
    let builds = run_pipeline(&app, &owner, project, "master").await;
    for name in ["slow", "fast", "after fast", "after all"] {
        assert_eq!(status(&builds, name), "success", "{name}");
    }
    let early = builds["after fast"]["finished_at"].as_str().unwrap();
    let slow_end = builds["slow"]["finished_at"].as_str().unwrap();
    assert!(early < slow_end, "{early} < {slow_end}");
    assert!(builds["after all"]["started_at"].as_str().unwrap() >= slow_end);
}

#[tokio::test]
async fn rules_only_and_except_per_branch_and_tag() {
    let ci = r#"
everywhere:
  script: [echo always here]
only master:
  script: [echo master]
  only: [master]
only tags:
  script: [echo tag]
  only: [tags]
not on tags:
  script: [echo branch]
  except: [tags]
release rule:
  script: [echo release]
  rules:
    - if: '$CI_COMMIT_TAG =~ /^v\d+/'
      when: on_success
    - when: never
"#;
    let (app, owner, repo, project) = setup(ci).await;
    repo.git(&["tag", "v1.0"]);
    let on_master = run_pipeline(&app, &owner, project, "master").await;
    let names: Vec<&String> = on_master.keys().collect();
    assert_eq!(names, vec!["everywhere", "not on tags", "only master"]);
    let pipeline = app.create_pipeline(project, "v1.0", &owner).await;
    let body = pipeline.assert(201);
    assert_eq!(body["tag"], true);
    app.wait_for_pipeline(project, body["id"].as_i64().unwrap(), &owner)
        .await;
    let all = app
        .get(
            &format!("/api/v3/projects/{project}/builds?per_page=100"),
            &owner,
        )
        .await;
    let mut on_tag: Vec<String> = all
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["ref"] == "v1.0")
        .map(|b| b["name"].as_str().unwrap().to_owned())
        .collect();
    on_tag.sort();
    assert_eq!(on_tag, vec!["everywhere", "only tags", "release rule"]);
    assert!(all
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["ref"] == "v1.0")
        .all(|b| b["tag"] == true));
}

#[tokio::test]
async fn coverage_trace_and_artifacts() {
    let ci = r#"
build:
  stage: build
  script:
    - mkdir -p out && echo "the artifact" > out/result.txt
    - 'echo "Coverage: 91.5%"'
  coverage: '/Coverage: \d+\.\d+%/'
  artifacts:
    name: result-$CI_JOB_NAME
    paths: [out/]
    expire_in: 1 week
"#;
    let (app, owner, _repo, project) = setup(ci).await;
    let builds = run_pipeline(&app, &owner, project, "master").await;
    let build = &builds["build"];
    assert_eq!(build["status"], "success");
    assert_eq!(build["coverage"], 91.5);
    let id = build["id"].as_i64().unwrap();
    assert_eq!(
        build["download_url"],
        format!(
            "{}/api/v3/projects/{project}/builds/{id}/artifacts",
            app.base
        )
    );
    assert_eq!(build["artifacts_file"]["filename"], "result-build.zip");

    let response = app
        .client
        .get(format!(
            "{}/api/v3/projects/{project}/builds/{id}/trace",
            app.base
        ))
        .header("PRIVATE-TOKEN", &owner.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/plain");
    assert_eq!(
        response.headers()["content-disposition"],
        format!("infile; filename=\"{id}.log\"")
    );
    assert!(response.text().await.unwrap().contains("Coverage: 91.5%"));

    for url in [
        format!(
            "{}/api/v3/projects/{project}/builds/{id}/artifacts",
            app.base
        ),
        format!(
            "{}/api/v3/projects/{project}/builds/artifacts/master/download?job=build",
            app.base
        ),
    ] {
        let response = app
            .client
            .get(&url)
            .header("PRIVATE-TOKEN", &owner.token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{url}");
        assert_eq!(
            response.headers()["content-disposition"],
            "attachment; filename=\"result-build.zip\""
        );
        let bytes = response.bytes().await.unwrap();
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
        let mut content = String::new();
        zip.by_name("out/result.txt")
            .unwrap()
            .read_to_string(&mut content)
            .unwrap();
        assert_eq!(content, "the artifact\n");
    }
    let missing = app
        .get(
            &format!("/api/v3/projects/{project}/builds/artifacts/master/download?job=nope"),
            &owner,
        )
        .await;
    missing.assert_error(404, "404 Not found");

    let kept = app
        .post(
            &format!("/api/v3/projects/{project}/builds/{id}/artifacts/keep"),
            &owner,
        )
        .await;
    kept.assert(200);
    let erased = app
        .post(
            &format!("/api/v3/projects/{project}/builds/{id}/erase"),
            &owner,
        )
        .await;
    assert_eq!(erased.assert(201)["download_url"], Value::Null);
    assert_eq!(app.trace(project, id, &owner).await, "");
    app.get(
        &format!("/api/v3/projects/{project}/builds/{id}/artifacts"),
        &owner,
    )
    .await
    .assert_error(404, "404 Not Found");
    app.post(
        &format!("/api/v3/projects/{project}/builds/{id}/erase"),
        &owner,
    )
    .await
    .assert_error(403, "403 Forbidden  - Build is not erasable!");
}

#[tokio::test]
async fn the_trace_of_a_running_build_and_cancel_killing_its_process_group() {
    let pids = tempfile::tempdir().unwrap();
    let pid_file = pids.path().join("child.pid");
    let ci = format!(
        "sleeper:\n  script:\n    - echo started sleeping\n    - \"sleep 60 & echo $! > {}\"\n    - sleep 30\n",
        pid_file.display()
    );
    let (app, owner, _repo, project) = setup(&ci).await;
    let created = app.create_pipeline(project, "master", &owner).await;
    created.assert(201);
    let builds = app.builds_by_name(project, &owner).await;
    let id = builds["sleeper"]["id"].as_i64().unwrap();
    let running = app
        .wait_for_build(project, id, &owner, |b| b["status"] == "running")
        .await;
    assert_eq!(running["status"], "running");
    let mut trace = String::new();
    for _ in 0..100 {
        trace = app.trace(project, id, &owner).await;
        if trace.contains("started sleeping") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        trace.contains("started sleeping"),
        "the trace of a running build: {trace}"
    );
    let canceled = app
        .post(
            &format!("/api/v3/projects/{project}/builds/{id}/cancel"),
            &owner,
        )
        .await;
    assert_eq!(canceled.assert(201)["status"], "canceled");
    let child = crate::helpers::pid_in(&pid_file).await;
    crate::helpers::assert_gone_within(child, Duration::from_secs(5), "the job's child").await;
    let after = app
        .get(&format!("/api/v3/projects/{project}/builds/{id}"), &owner)
        .await;
    assert_eq!(after.body["status"], "canceled");
    let pipeline = app
        .store
        .pipelines()
        .get(app.store.pipelines().of_build(id).await.unwrap().id)
        .await
        .unwrap();
    assert_eq!(pipeline.status, "canceled");
}

#[tokio::test]
async fn a_job_over_its_timeout_fails() {
    let ci = "slow:\n  timeout: 2 seconds\n  script: [sleep 30]\n";
    let (app, owner, _repo, project) = setup(ci).await;
    let started = std::time::Instant::now();
    let builds = run_pipeline(&app, &owner, project, "master").await;
    assert_eq!(status(&builds, "slow"), "failed");
    assert!(started.elapsed() < Duration::from_secs(20));
    let trace = app
        .trace(project, builds["slow"]["id"].as_i64().unwrap(), &owner)
        .await;
    assert!(
        trace.contains("execution took longer than 2 seconds"),
        "{trace}"
    );
}

#[tokio::test]
async fn retry_runs_the_job_again() {
    let ci = "counter:\n  script: [echo run at $CI_JOB_ID, exit 1]\n";
    let (app, owner, _repo, project) = setup(ci).await;
    let builds = run_pipeline(&app, &owner, project, "master").await;
    let first = builds["counter"]["id"].as_i64().unwrap();
    let retried = app
        .post(
            &format!("/api/v3/projects/{project}/builds/{first}/retry"),
            &owner,
        )
        .await;
    let second = retried.assert(201)["id"].as_i64().unwrap();
    assert_ne!(first, second);
    let done = app
        .wait_for_build(project, second, &owner, |b| b["status"] == "failed")
        .await;
    assert_eq!(done["status"], "failed");
    assert!(app
        .trace(project, second, &owner)
        .await
        .contains(&format!("run at {second}")));
    assert!(app
        .trace(project, first, &owner)
        .await
        .contains(&format!("run at {first}")));
}

#[tokio::test]
async fn retrying_a_failed_job_runs_the_stages_it_had_skipped() {
    let marker = tempfile::tempdir().expect("marker dir");
    let flag = marker.path().join("second-try");
    // Fails the first time, succeeds once the marker exists.
    let ci = format!(
        "stages: [test, deploy]\nflaky:\n  stage: test\n  script: [{}]\n\
         deploy:\n  stage: deploy\n  script: [echo deployed]\n",
        fails_once(&flag)
    );
    let (app, owner, _repo, project) = setup(&ci).await;
    let (pipeline, builds) = app.run_pipeline(project, "master", &owner).await;
    assert_eq!(status(&builds, "flaky"), "failed");
    assert_eq!(status(&builds, "deploy"), "skipped");
    let deploy = builds["deploy"]["id"].as_i64().unwrap();
    let first = builds["flaky"]["id"].as_i64().unwrap();
    app.post(
        &format!("/api/v3/projects/{project}/builds/{first}/retry"),
        &owner,
    )
    .await
    .assert(201);
    let done = app
        .wait_for_build(project, deploy, &owner, |b| b["status"] == "success")
        .await;
    assert_eq!(done["status"], "success", "{done}");
    assert!(app
        .trace(project, deploy, &owner)
        .await
        .contains("deployed"));
    let builds = app.wait_for_pipeline(project, pipeline, &owner).await;
    assert_eq!(status(&builds, "flaky"), "success");
    let record = app.store.pipelines().get(pipeline).await.expect("pipeline");
    assert_eq!(record.status, "success");
}

#[tokio::test]
async fn yaml_errors_make_a_failed_pipeline_not_an_error() {
    let (app, owner, repo, project) = setup("job:\n  script: [echo fine]\n").await;
    repo.commit(&[(".gitlab-ci.yml", "job: [unclosed\n")], "Break the YAML");
    let broken = app.create_pipeline(project, "master", &owner).await;
    let body = broken.assert(201);
    assert_eq!(body["status"], "failed");
    assert!(
        body["yaml_errors"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    repo.commit(
        &[(
            ".gitlab-ci.yml",
            "job:\n  stage: nowhere\n  script: [\"true\"]\n",
        )],
        "Unknown stage",
    );
    let body = app.create_pipeline(project, "master", &owner).await.body;
    assert!(
        body["yaml_errors"].as_str().unwrap().contains("nowhere"),
        "{body}"
    );
    let missing = app.create_pipeline(project, "no-such-branch", &owner).await;
    assert_eq!(missing.status, 400);
    assert_eq!(
        missing.body,
        serde_json::json!({"message": {"base": ["Reference not found"]}})
    );
}

#[tokio::test]
async fn pipeline_creation_needs_developer_access() {
    let (app, owner, _repo, project) = setup("job:\n  script: [\"true\"]\n").await;
    let reporter = app.user("reporter", false).await;
    app.member(project, &reporter, AccessLevel::Reporter).await;
    app.create_pipeline(project, "master", &reporter)
        .await
        .assert_error(403, "403 Forbidden");
    app.create_pipeline(project, "master", &owner)
        .await
        .assert(201);
}

#[tokio::test]
async fn triggers_create_pipelines_with_variables() {
    let (app, owner, _repo, project) =
        setup("show:\n  script: [echo \"deploy to $TARGET\"]\n").await;
    let token = app.store.triggers().create(project, "ci").await.unwrap();
    let response = app
        .client
        .post(format!(
            "{}/api/v3/projects/{project}/trigger/builds",
            app.base
        ))
        .form(&[
            ("token", token.as_str()),
            ("ref", "master"),
            ("variables[TARGET]", "staging"),
        ])
        .send()
        .await
        .unwrap();
    let response = TestApp::read(response).await;
    let body = response.assert(201);
    assert!(body["id"].is_i64());
    assert_eq!(body["variables"], serde_json::json!({"TARGET": "staging"}));
    let builds = app.builds_by_name(project, &owner).await;
    let id = builds["show"]["id"].as_i64().unwrap();
    let done = app
        .wait_for_build(project, id, &owner, |b| b["status"] == "success")
        .await;
    assert_eq!(done["user"], Value::Null, "trigger builds have no user");
    assert!(app
        .trace(project, id, &owner)
        .await
        .contains("deploy to staging"));
    let bad = app
        .client
        .post(format!(
            "{}/api/v3/projects/{project}/trigger/builds",
            app.base
        ))
        .form(&[("token", "wrong"), ("ref", "master")])
        .send()
        .await
        .unwrap();
    TestApp::read(bad).await.assert_error(404, "404 Not Found");
}

#[tokio::test]
async fn lint_answers_like_gitlab() {
    let app = TestApp::spawn().await;
    let valid = app
        .client
        .post(format!("{}/api/v3/ci/lint", app.base))
        .json(&serde_json::json!({"content": "job:\n  script: [\"true\"]\n"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        TestApp::read(valid).await.body,
        serde_json::json!({"status": "valid", "errors": []})
    );
    let invalid = app
        .client
        .post(format!("{}/api/v3/ci/lint", app.base))
        .form(&[("content", "job: {}\n")])
        .send()
        .await
        .unwrap();
    let body = TestApp::read(invalid).await.body;
    assert_eq!(body["status"], "invalid");
    assert_eq!(body["errors"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_build_left_running_by_a_dead_process_is_failed_on_restart() {
    let db = crate::helpers::TestDatabase::new().await;
    let data_dir = tempfile::tempdir().unwrap();
    let store = db.open().await.unwrap();
    let project = store
        .projects()
        .create("team", "app", kiln_core::Visibility::Private, None)
        .await
        .unwrap();
    let orphan = kiln_store::NewBuild {
        commands: "sleep 100".into(),
        ..kiln_store::NewBuild::new("orphan", "test", 0, kiln_core::BuildStatus::Pending)
    };
    let new = kiln_test_support::pipeline(project, &"a".repeat(40), vec![orphan]);
    let (_, ids) = store.pipelines().create(&new).await.unwrap();
    let mut config = kiln_server::Config::new("http://127.0.0.1", data_dir.path());
    // No workers: recovery happens with `--no-embedded-runner` too.
    config.builds_concurrency = 0;
    let runner = store
        .runners()
        .find_or_create(&kiln_server::embedded_runner::embedded_description(&config).unwrap())
        .await
        .unwrap();
    assert_eq!(
        store
            .builds()
            .claim(runner, i64::MAX, &kiln_store::new_secret())
            .await
            .unwrap()
            .map(|c| c.build_id),
        Some(ids[0])
    );
    // What a crashed server leaves behind: the job's processes, still running, and another
    // runner's job (same id, other builds dir) that must be left alone.
    let builds_dir = data_dir.path().join("builds");
    let leftover = |dir: &std::path::Path| {
        use std::os::unix::process::CommandExt;
        std::process::Command::new("bash")
            .args(["-c", "sleep 30; true"])
            .env("CI_JOB_ID", ids[0].to_string())
            .env("CI_BUILDS_DIR", dir)
            .process_group(0)
            .spawn()
            .expect("spawn")
    };
    let mut job = leftover(&builds_dir);
    let other_dir = tempfile::tempdir().unwrap();
    let mut other = leftover(other_dir.path());
    // A server starting on the same data dir finds the build its runner left running.
    let _state = kiln_server::start(store.clone(), config).await.unwrap();
    let build = store.builds().get(project, ids[0]).await.unwrap();
    assert_eq!(build.status, kiln_core::BuildStatus::Failed);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while job.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the leftover job was killed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        other.try_wait().unwrap().is_none(),
        "another runner's job lives on"
    );
    let _ = other.kill();
    let _ = other.wait();
    let trace = String::from_utf8(store.builds().trace(ids[0]).await.unwrap()).unwrap();
    assert!(
        trace.contains("the server restarted while this build ran"),
        "{trace}"
    );
}

#[tokio::test]
async fn artifacts_pass_to_later_stages_and_dependencies_limit_them() {
    let ci = r#"
stages: [build, test]
make a:
  stage: build
  script: [mkdir -p a, echo from-a > a/file]
  artifacts: {paths: [a/]}
make b:
  stage: build
  script: [mkdir -p b, echo from-b > b/file]
  artifacts: {paths: [b/]}
use all:
  stage: test
  script: [cat a/file b/file]
use one:
  stage: test
  dependencies: [make b]
  script: [cat b/file, test ! -e a/file]
"#;
    let (app, owner, _repo, project) = setup(ci).await;
    let builds = run_pipeline(&app, &owner, project, "master").await;
    for name in ["make a", "make b", "use all", "use one"] {
        assert_eq!(status(&builds, name), "success", "{name}");
    }
    let trace = app
        .trace(project, builds["use all"]["id"].as_i64().unwrap(), &owner)
        .await;
    assert!(
        trace.contains("from-a") && trace.contains("from-b"),
        "{trace}"
    );
    assert!(
        trace.contains("Downloading artifacts for make a"),
        "{trace}"
    );
}

#[tokio::test]
async fn retry_max_runs_a_failing_job_again_automatically() {
    let ci = "flaky:\n  retry: 2\n  script: [echo attempt, exit 1]\n";
    let (app, owner, _repo, project) = setup(ci).await;
    let created = app.create_pipeline(project, "master", &owner).await;
    let pipeline = created.assert(201)["id"].as_i64().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let all = app
            .get(&format!("/api/v3/projects/{project}/builds"), &owner)
            .await;
        let statuses: Vec<String> = all
            .body
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["status"].as_str().unwrap().to_owned())
            .collect();
        if statuses.len() == 3 && statuses.iter().all(|s| s == "failed") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{statuses:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let all = app
        .get(&format!("/api/v3/projects/{project}/builds"), &owner)
        .await;
    assert_eq!(all.ids().len(), 3, "the first run and two retries, no more");
    assert_eq!(
        app.store.pipelines().get(pipeline).await.unwrap().status,
        "failed"
    );
}

#[tokio::test]
async fn an_automatic_retry_that_succeeds_never_shows_the_failure_to_later_jobs() {
    let marker = tempfile::tempdir().expect("marker dir");
    let flag = marker.path().join("second-try");
    let ci = format!(
        "stages: [test, after]\nflaky:\n  stage: test\n  retry: 1\n  script: [{}]\n\
         rescue:\n  stage: after\n  when: on_failure\n  script: [echo rescued]\n\
         next:\n  stage: after\n  script: [echo next]\n",
        fails_once(&flag)
    );
    let (app, owner, _repo, project) = setup(&ci).await;
    let (pipeline, builds) = app.run_pipeline(project, "master", &owner).await;
    assert_eq!(status(&builds, "flaky"), "success");
    assert_eq!(status(&builds, "next"), "success");
    // The failed first attempt was never seen by processing: on_failure did not run.
    assert_eq!(status(&builds, "rescue"), "skipped");
    let rescue = builds["rescue"]["id"].as_i64().unwrap();
    assert_eq!(app.trace(project, rescue, &owner).await, "");
    let record = app.store.pipelines().get(pipeline).await.expect("pipeline");
    assert_eq!(record.status, "success");
}

#[tokio::test]
async fn expired_artifacts_are_removed() {
    let ci = "keep:\n  script: [mkdir -p out, echo x > out/x]\n  artifacts:\n    paths: [out/]\n    expire_in: 1 week\n";
    let (app, owner, _repo, project) = setup(ci).await;
    let builds = run_pipeline(&app, &owner, project, "master").await;
    let id = builds["keep"]["id"].as_i64().unwrap();
    let record = app.store.builds().get(project, id).await.unwrap();
    let location = kiln_server::service::builds::archive_location(&record).expect("artifacts");
    let stored = |location: kiln_store::ArchiveLocation| {
        let state = app.state.clone();
        async move {
            state
                .artifacts
                .open(&state.store, id, &location)
                .await
                .unwrap()
                .is_some()
        }
    };
    assert!(stored(location.clone()).await);
    // Nothing has expired yet; then pretend the week has passed.
    assert!(app
        .store
        .builds()
        .expired_artifacts(kiln_store::now_ms())
        .await
        .unwrap()
        .is_empty());
    let later = kiln_store::now_ms() + 8 * 24 * 3600 * 1000;
    let expired = app.store.builds().expired_artifacts(later).await.unwrap();
    assert_eq!(expired.iter().map(|e| e.1).collect::<Vec<_>>(), vec![id]);
    app.store
        .builds()
        .set_artifacts(project, id, &location, 1, Some(kiln_store::now_ms() - 1))
        .await
        .unwrap();
    let state = app.state.clone();
    assert_eq!(kiln_server::background::sweep(&state).await.unwrap(), 1);
    assert!(!stored(location).await, "the archive is gone");
    let body = app
        .get(&format!("/api/v3/projects/{project}/builds/{id}"), &owner)
        .await
        .body;
    assert_eq!(body["download_url"], Value::Null);
}

#[tokio::test]
async fn polling_creates_a_pipeline_per_new_branch_head() {
    let (app, owner, repo, project) =
        setup("job:\n  script: [echo polled $CI_COMMIT_REF_NAME]\n").await;
    let state = app.state.clone();
    assert_eq!(
        kiln_server::background::poll_once(&state).await.unwrap(),
        1,
        "master's head"
    );
    assert_eq!(
        kiln_server::background::poll_once(&state).await.unwrap(),
        0,
        "nothing new"
    );
    repo.git(&["checkout", "-q", "-b", "feature"]);
    repo.commit(&[("feature.txt", "f")], "Feature work");
    assert_eq!(
        kiln_server::background::poll_once(&state).await.unwrap(),
        1,
        "the new branch"
    );
    let builds = app
        .get(&format!("/api/v3/projects/{project}/builds"), &owner)
        .await;
    let mut refs: Vec<String> = builds
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["ref"].as_str().unwrap().to_owned())
        .collect();
    refs.sort();
    assert_eq!(refs, vec!["feature", "master"]);
}

/// Globs in `include:` and `rules: exists`, and `rules: changes` against the branch's
/// previous head, on pipelines of pushed heads.
#[tokio::test]
async fn globbed_includes_exists_and_changes_follow_the_pushed_commits() {
    let ci = "include: 'ci/*.yml'
docs:
  script: ['true']
  rules:
    - changes: ['docs/**/*']
docker:
  script: ['true']
  rules:
    - exists: ['**/Dockerfile']
";
    let (app, owner, repo, project) = setup(ci).await;
    repo.commit(
        &[
            ("ci/a.yml", "from-a:\n  script: ['true']\n"),
            ("ci/b.yml", "from-b:\n  script: ['true']\n"),
            ("build/Dockerfile", "FROM scratch\n"),
        ],
        "CI parts",
    );
    let state = app.state.clone();
    let jobs_of_newest = || async {
        let list = app
            .get(&format!("/api/v4/projects/{project}/pipelines"), &owner)
            .await;
        let newest = list.body[0]["id"].as_i64().expect("a pipeline");
        let jobs = app
            .get(
                &format!("/api/v4/projects/{project}/pipelines/{newest}/jobs"),
                &owner,
            )
            .await;
        let mut names: Vec<String> = jobs
            .body
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|j| j["name"].as_str().map(str::to_owned))
            .collect();
        names.sort();
        names
    };
    assert_eq!(kiln_server::background::poll_once(&state).await.unwrap(), 1);
    // The branch's first pipeline: every `changes` holds.
    assert_eq!(
        jobs_of_newest().await,
        ["docker", "docs", "from-a", "from-b"]
    );
    repo.commit(&[("src/main.rs", "fn main() {}\n")], "Code");
    assert_eq!(kiln_server::background::poll_once(&state).await.unwrap(), 1);
    assert_eq!(jobs_of_newest().await, ["docker", "from-a", "from-b"]);
    repo.commit(&[("docs/guide/intro.md", "# Intro\n")], "Docs");
    repo.git(&["rm", "-q", "build/Dockerfile"]);
    repo.git(&["commit", "-qm", "No Docker"]);
    assert_eq!(kiln_server::background::poll_once(&state).await.unwrap(), 1);
    // Two commits in one push: the docs change of the first one counts.
    assert_eq!(jobs_of_newest().await, ["docs", "from-a", "from-b"]);
}
