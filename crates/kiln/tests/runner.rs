//! `kiln runner` end to end: a `kiln serve` with no embedded runner, a runner registered
//! with `kiln runner register` and started with `kiln runner run`, all real processes over
//! HTTP. The runner clones over git's smart HTTP with the job token, streams the trace,
//! passes artifacts to the next stage, is canceled (its job's processes die), and when it
//! is killed mid-build the server fails the build once its lease runs out.

mod support;

use kiln_test_support::{assert_gone_within, pid_in, TestDatabase};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};
use support::{admin_and_project, git_repo, kiln, register_runner, serve, RunnerProcess, Server};

/// A server, a project on a repository with `ci`, an admin's token, and a registered runner.
struct Setup {
    _dir: tempfile::TempDir,
    _db: TestDatabase,
    server: Server,
    token: String,
    project: i64,
    config: PathBuf,
    builds_dir: PathBuf,
    client: reqwest::Client,
}

async fn setup(ci: &str, serve_args: &[&str]) -> Setup {
    let db = TestDatabase::new().await;
    let url = db.url.clone();
    let dir = tempfile::tempdir().expect("dir");
    let repo = dir.path().join("repo");
    git_repo(&repo, ci, &[("input.txt", "from the repository\n")]);
    let data = dir.path().join("server");
    let (token, project) = admin_and_project(&data, &url, &repo);
    let admin = |args: &[&str]| kiln(&data, &url, args);
    let registration = admin(&["admin", "runner", "registration-token"]);
    let mut args = vec!["--no-embedded-runner", "--long-poll-timeout", "5"];
    args.extend_from_slice(serve_args);
    let server = serve(&data, &url, &args);
    let work = dir.path().join("runner");
    std::fs::create_dir_all(&work).expect("runner dir");
    let config = work.join("kiln-runner.toml");
    register_runner(&server.url, &registration, &config, &["--name", "e2e"]);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&config)
        .expect("config")
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "the runner's token must not be readable by others"
    );
    Setup {
        builds_dir: work.join("builds"),
        _dir: dir,
        _db: db,
        server,
        token,
        project,
        config,
        client: reqwest::Client::new(),
    }
}

impl Setup {
    fn runner(&self) -> RunnerProcess {
        RunnerProcess::start(&self.config, &self.builds_dir, 2)
    }

    async fn api(&self, method: reqwest::Method, path: &str) -> Value {
        let response = self
            .client
            .request(method, format!("{}{path}", self.server.url))
            .header("PRIVATE-TOKEN", &self.token)
            .send()
            .await
            .expect("request");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.expect("json")
    }

    async fn pipeline(&self) -> i64 {
        let created = self
            .api(
                reqwest::Method::POST,
                &format!("/api/v4/projects/{}/pipeline?ref=main", self.project),
            )
            .await;
        created["id"].as_i64().expect("pipeline id")
    }

    /// The project's builds by name once `done` holds for all of them (or fails after 60 s).
    async fn wait_builds(
        &self,
        done: impl Fn(&Value) -> bool,
        runner: &RunnerProcess,
    ) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let builds = self
                .api(
                    reqwest::Method::GET,
                    &format!("/api/v3/projects/{}/builds", self.project),
                )
                .await;
            let builds = builds.as_array().cloned().unwrap_or_default();
            if !builds.is_empty() && builds.iter().all(&done) {
                return builds;
            }
            assert!(
                Instant::now() < deadline,
                "builds: {builds:?}\nrunner log:\n{}",
                runner.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn trace(&self, build: i64) -> String {
        self.client
            .get(format!(
                "{}/api/v3/projects/{}/builds/{build}/trace",
                self.server.url, self.project
            ))
            .header("PRIVATE-TOKEN", &self.token)
            .send()
            .await
            .expect("trace")
            .text()
            .await
            .expect("text")
    }
}

fn finished(build: &Value) -> bool {
    matches!(
        build["status"].as_str(),
        Some("success" | "failed" | "canceled")
    )
}

fn by_name<'a>(builds: &'a [Value], name: &str) -> &'a Value {
    builds
        .iter()
        .find(|b| b["name"] == name)
        .unwrap_or_else(|| panic!("no build {name} in {builds:?}"))
}

const PIPELINE: &str = "\
stages: [build, test]
make:
  stage: build
  script:
    - cat input.txt
    - mkdir -p out && echo \"made by $CI_JOB_NAME\" > out/result.txt
    - for i in $(seq 1 200); do echo \"line $i\"; done
    - echo \"BUILT=by-$CI_JOB_NAME\" > build.env
  artifacts:
    paths: [out/]
    reports:
      dotenv: build.env
check:
  stage: test
  script:
    - cat out/result.txt
    - test \"$CI_SERVER_URL\" != \"\"
    - echo \"dotenv gave BUILT=$BUILT\"
";

#[tokio::test]
async fn a_remote_runner_runs_a_pipeline_with_artifacts() {
    let setup = setup(PIPELINE, &[]).await;
    let runner = setup.runner();
    setup.pipeline().await;
    let builds = setup.wait_builds(finished, &runner).await;
    let (make, check) = (by_name(&builds, "make"), by_name(&builds, "check"));
    assert_eq!(make["status"], "success", "runner log:\n{}", runner.log());
    assert_eq!(
        check["status"],
        "success",
        "{}",
        setup.trace(check["id"].as_i64().unwrap_or(0)).await
    );
    let trace = setup.trace(make["id"].as_i64().expect("id")).await;
    assert!(trace.contains("from the repository"), "{trace}");
    for i in 1..=200 {
        assert!(
            trace.contains(&format!("line {i}\n")),
            "line {i} missing: {trace}"
        );
    }
    let check_trace = setup.trace(check["id"].as_i64().expect("id")).await;
    assert!(check_trace.contains("made by make"), "{check_trace}");
    // The dotenv report went up as gitlab-runner sends it (gzip) and came down as a variable.
    assert!(
        check_trace.contains("\ndotenv gave BUILT=by-make"),
        "{check_trace}"
    );
    assert!(make["runner"]["description"] == "e2e", "{make}");
}

const SLOW: &str = "\
slow:
  script:
    - sh -c 'echo $$ > child.pid; exec sleep 300' &
    - wait
";

#[tokio::test]
async fn a_cancel_kills_the_remote_jobs_whole_process_tree() {
    let setup = setup(SLOW, &[]).await;
    let runner = setup.runner();
    setup.pipeline().await;
    let builds = setup
        .wait_builds(|b| b["status"] == "running", &runner)
        .await;
    let id = by_name(&builds, "slow")["id"].as_i64().expect("id");
    let pid_file = setup.builds_dir.join(id.to_string()).join("child.pid");
    let pid = pid_in(&pid_file).await;
    setup
        .api(
            reqwest::Method::POST,
            &format!("/api/v3/projects/{}/builds/{id}/cancel", setup.project),
        )
        .await;
    // The runner hears of it within a keep-alive (3 s), then kills the tree.
    assert_gone_within(pid, Duration::from_secs(20), "the canceled job's child").await;
    let builds = setup.wait_builds(finished, &runner).await;
    assert_eq!(by_name(&builds, "slow")["status"], "canceled");
}

#[tokio::test]
async fn a_runner_killed_mid_build_makes_the_build_fail_when_its_lease_runs_out() {
    let setup = setup(SLOW, &["--build-lease", "3"]).await;
    let mut runner = setup.runner();
    setup.pipeline().await;
    let builds = setup
        .wait_builds(|b| b["status"] == "running", &runner)
        .await;
    let id = by_name(&builds, "slow")["id"].as_i64().expect("id");
    let pid = pid_in(&setup.builds_dir.join(id.to_string()).join("child.pid")).await;
    runner.child.kill().expect("kill the runner");
    let _ = runner.child.wait();
    let killed = Instant::now();
    let builds = setup.wait_builds(finished, &runner).await;
    let build = by_name(&builds, "slow");
    assert_eq!(build["status"], "failed");
    assert!(killed.elapsed() < Duration::from_secs(30));
    let trace = setup.trace(id).await;
    assert!(trace.contains("ERROR"), "{trace}");
    // The killed runner's job outlives it (it was SIGKILLed); a new run of the runner
    // clears it away before taking work.
    let restarted = setup.runner();
    assert_gone_within(pid, Duration::from_secs(20), "the dead runner's job").await;
    drop(restarted);
}

#[tokio::test]
async fn ctrl_c_ends_the_runners_jobs_and_reports_them() {
    let setup = setup(SLOW, &[]).await;
    let mut runner = setup.runner();
    setup.pipeline().await;
    let builds = setup
        .wait_builds(|b| b["status"] == "running", &runner)
        .await;
    let id = by_name(&builds, "slow")["id"].as_i64().expect("id");
    let pid = pid_in(&setup.builds_dir.join(id.to_string()).join("child.pid")).await;
    let interrupted = Command::new("kill")
        .args(["-INT", &runner.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(interrupted.success());
    assert_gone_within(pid, Duration::from_secs(20), "the interrupted runner's job").await;
    let status = runner.child.wait().expect("wait");
    assert!(
        status.success(),
        "the runner stopped with {status}: {}",
        runner.log()
    );
    let builds = setup.wait_builds(finished, &runner).await;
    // Reported at once as the runner's failure, not left to the lease.
    assert_eq!(by_name(&builds, "slow")["status"], "failed");
}

const CACHED: &str = "\
deps:
  script:
    - if [ -f vendor/stamp ]; then echo \"restored $(cat vendor/stamp)\"; else echo cache-was-empty; fi
    - mkdir -p vendor && echo \"pipeline-$CI_PIPELINE_ID\" > vendor/stamp
  cache:
    key: deps-$CI_COMMIT_REF_SLUG
    paths: [vendor/]
";

impl Setup {
    /// Runs a pipeline of main to its end; the trace of its `deps` job.
    async fn cached_pipeline(&self, runner: &RunnerProcess) -> (i64, String) {
        let pipeline = self.pipeline().await;
        let jobs = format!(
            "/api/v4/projects/{}/pipelines/{pipeline}/jobs",
            self.project
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        let deps = loop {
            let jobs = self.api(reqwest::Method::GET, &jobs).await;
            if let Some(deps) = jobs
                .as_array()
                .and_then(|j| j.first())
                .filter(|j| finished(j))
            {
                break deps.clone();
            }
            assert!(
                Instant::now() < deadline,
                "{jobs}\nrunner log:\n{}",
                runner.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(deps["status"], "success", "{deps}");
        (pipeline, self.trace(deps["id"].as_i64().expect("id")).await)
    }
}

#[tokio::test]
async fn a_cache_is_restored_in_the_next_pipeline_and_protected_refs_keep_their_own() {
    let setup = setup(CACHED, &[]).await;
    let runner = setup.runner();
    let (first, trace) = setup.cached_pipeline(&runner).await;
    assert!(trace.contains("cache-was-empty"), "{trace}");
    assert!(trace.contains("Created cache"), "{trace}");
    let (_, trace) = setup.cached_pipeline(&runner).await;
    assert!(
        trace.contains(&format!("restored pipeline-{first}")),
        "{trace}"
    );
    assert!(
        trace.contains("Successfully extracted cache deps-main-non_protected"),
        "{trace}"
    );
    // Protected, main gets a cache of its own: the unprotected one is not read.
    setup
        .api(
            reqwest::Method::POST,
            &format!(
                "/api/v4/projects/{}/protected_branches?name=main",
                setup.project
            ),
        )
        .await;
    let (third, trace) = setup.cached_pipeline(&runner).await;
    assert!(trace.contains("cache-was-empty"), "{trace}");
    assert!(
        trace.contains("Checking cache for deps-main-protected"),
        "{trace}"
    );
    let (_, trace) = setup.cached_pipeline(&runner).await;
    assert!(
        trace.contains(&format!("restored pipeline-{third}")),
        "{trace}"
    );
    // Kept per project and key beside the runner's configuration.
    let kept = setup.config.with_file_name("kiln-cache").join("team/app");
    let mut keys: Vec<String> = std::fs::read_dir(&kept)
        .expect("cache dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    keys.sort();
    assert_eq!(keys, ["deps-main-non_protected", "deps-main-protected"]);
}
