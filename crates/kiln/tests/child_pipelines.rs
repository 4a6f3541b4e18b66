//! Parent and child pipelines in a real `kiln serve` with its embedded runner: a bridge
//! (`trigger: include:`) starts a child pipeline of the same commit (`source:
//! parent_pipeline`) that gets the bridge's variables; with `strategy: depend` the bridge
//! runs until the child ends and takes its result, and the parent's later stage waits for
//! it; without, the bridge is done as soon as the child exists.

mod support;

use kiln_test_support::TestDatabase;
use serde_json::Value;
use std::time::{Duration, Instant};

const PARENT: &str = "\
stages: [build, deploy, report]
prepare:
  stage: build
  script: [echo preparing]
passing:
  stage: deploy
  variables:
    GREETING: from-the-parent
  trigger:
    include: child.yml
    strategy: depend
failing:
  stage: deploy
  allow_failure: true
  trigger:
    include: [{local: broken.yml}]
    strategy: depend
detached:
  stage: deploy
  trigger:
    include: broken.yml
invalid:
  stage: deploy
  allow_failure: true
  trigger:
    include: invalid.yml
report:
  stage: report
  script: [echo reported]
";

const CHILD: &str = "\
hello:
  script:
    - echo \"child says $GREETING from $CI_PIPELINE_SOURCE\"
    - sleep 1
";

const BROKEN: &str = "\
oops:
  script: [exit 4]
";

struct Api {
    client: reqwest::Client,
    url: String,
    token: String,
    project: i64,
}

impl Api {
    async fn get(&self, path: &str) -> Value {
        let response = self
            .client
            .get(format!(
                "{}/api/v4/projects/{}{path}",
                self.url, self.project
            ))
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

    /// `path` once `done` holds for it, within a minute.
    async fn wait(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let value = self.get(path).await;
            if done(&value) {
                return value;
            }
            assert!(Instant::now() < deadline, "{path}: {value}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn by_name<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .and_then(|l| l.iter().find(|j| j["name"] == name))
        .unwrap_or_else(|| panic!("no {name} in {list}"))
}

fn finished(status: &Value) -> bool {
    matches!(
        status.as_str(),
        Some("success" | "failed" | "canceled" | "skipped")
    )
}

#[tokio::test]
async fn a_bridge_starts_a_child_pipeline_and_takes_its_status() {
    let db = TestDatabase::new().await;
    let dir = tempfile::tempdir().expect("dir");
    let (data, repo) = (dir.path().join("server"), dir.path().join("repo"));
    support::git_repo(
        &repo,
        PARENT,
        &[
            ("child.yml", CHILD),
            ("broken.yml", BROKEN),
            ("invalid.yml", "oops: [\n"),
        ],
    );
    let (token, project) = support::admin_and_project(&data, &db.url, &repo);
    let server = support::serve(&data, &db.url, &[]);
    let api = Api {
        client: reqwest::Client::new(),
        url: server.url.clone(),
        token,
        project,
    };
    let created = api
        .client
        .post(format!(
            "{}/api/v4/projects/{project}/pipeline?ref=main",
            api.url
        ))
        .header("PRIVATE-TOKEN", &api.token)
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
    let parent: Value = created.json().await.expect("json");
    let parent = parent["id"].as_i64().expect("id");

    let done = api
        .wait(&format!("/pipelines/{parent}"), |p| finished(&p["status"]))
        .await;
    // The failing child's bridge may fail: the parent passes, its last stage ran after the
    // depending bridge.
    assert_eq!(done["status"], "success", "{done}");
    let jobs = api.get(&format!("/pipelines/{parent}/jobs")).await;
    assert_eq!(by_name(&jobs, "report")["status"], "success", "{jobs}");
    assert!(
        jobs.as_array()
            .is_some_and(|j| j.iter().all(|j| j["name"] != "passing")),
        "bridges are not jobs: {jobs}"
    );

    let bridges = api.get(&format!("/pipelines/{parent}/bridges")).await;
    let passing = by_name(&bridges, "passing");
    assert_eq!(passing["status"], "success", "{bridges}");
    assert_eq!(
        by_name(&bridges, "failing")["status"],
        "failed",
        "{bridges}"
    );
    // Without `depend` the bridge is done once its child exists, whatever becomes of it.
    assert_eq!(
        by_name(&bridges, "detached")["status"],
        "success",
        "{bridges}"
    );

    let child = passing["downstream_pipeline"]["id"]
        .as_i64()
        .expect("child id");
    let child_pipeline = api.get(&format!("/pipelines/{child}")).await;
    assert_eq!(child_pipeline["source"], "parent_pipeline");
    assert_eq!(child_pipeline["status"], "success");
    assert_eq!(child_pipeline["sha"], done["sha"], "the parent's commit");
    // The report stage started only after the child (and so its bridge) had finished.
    let report_started = by_name(&jobs, "report")["started_at"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let child_finished = child_pipeline["finished_at"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(
        !child_finished.is_empty() && report_started >= child_finished,
        "report {report_started} vs child {child_finished}"
    );
    let hello = by_name(&api.get(&format!("/pipelines/{child}/jobs")).await, "hello").clone();
    let trace = api
        .client
        .get(format!(
            "{}/api/v4/projects/{project}/jobs/{}/trace",
            api.url, hello["id"]
        ))
        .header("PRIVATE-TOKEN", &api.token)
        .send()
        .await
        .expect("trace")
        .text()
        .await
        .expect("text");
    assert!(
        trace.contains("child says from-the-parent from parent_pipeline"),
        "{trace}"
    );
    // A child whose file does not compile is kept, failed; its bridge failed to make it.
    let invalid = by_name(&bridges, "invalid");
    assert_eq!(invalid["status"], "failed", "{invalid}");
    assert_eq!(
        invalid["failure_reason"],
        "downstream_pipeline_creation_failed"
    );
    let invalid_child = invalid["downstream_pipeline"]["id"].as_i64().expect("kept");
    let invalid_child = api.get(&format!("/pipelines/{invalid_child}")).await;
    assert_eq!(invalid_child["status"], "failed", "{invalid_child}");
    // The ref's latest pipeline is the parent, not one of its children.
    let latest = api.get("/pipelines/latest?ref=main").await;
    assert_eq!(latest["id"], parent, "{latest}");
    let failed_child = by_name(&bridges, "failing")["downstream_pipeline"]["id"]
        .as_i64()
        .expect("failing child");
    let failed_child = api.get(&format!("/pipelines/{failed_child}")).await;
    assert_eq!(failed_child["status"], "failed");
}

const LONG_CHILD: &str = "\
stuck:
  script: [sleep 120]
";

#[tokio::test]
async fn canceling_the_parent_cancels_its_child_pipeline() {
    let db = TestDatabase::new().await;
    let dir = tempfile::tempdir().expect("dir");
    let (data, repo) = (dir.path().join("server"), dir.path().join("repo"));
    let parent_ci = "child:\n  trigger:\n    include: long.yml\n    strategy: depend\n";
    support::git_repo(&repo, parent_ci, &[("long.yml", LONG_CHILD)]);
    let (token, project) = support::admin_and_project(&data, &db.url, &repo);
    let server = support::serve(&data, &db.url, &[]);
    let api = Api {
        client: reqwest::Client::new(),
        url: server.url.clone(),
        token,
        project,
    };
    let post = |path: String| {
        api.client
            .post(format!("{}/api/v4/projects/{project}{path}", api.url))
            .header("PRIVATE-TOKEN", &api.token)
            .send()
    };
    let parent: Value = post("/pipeline?ref=main".into())
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let parent = parent["id"].as_i64().expect("id");
    let bridges = api
        .wait(&format!("/pipelines/{parent}/bridges"), |b| {
            b[0]["downstream_pipeline"]["id"].is_i64()
        })
        .await;
    assert_eq!(
        bridges[0]["status"], "running",
        "a depending bridge waits: {bridges}"
    );
    let child = bridges[0]["downstream_pipeline"]["id"]
        .as_i64()
        .expect("child");
    api.wait(&format!("/pipelines/{child}/jobs"), |j| {
        j[0]["status"] == "running"
    })
    .await;
    assert!(post(format!("/pipelines/{parent}/cancel"))
        .await
        .expect("cancel")
        .status()
        .is_success());
    let child = api
        .wait(&format!("/pipelines/{child}"), |p| finished(&p["status"]))
        .await;
    assert_eq!(child["status"], "canceled", "{child}");
    let parent = api.get(&format!("/pipelines/{parent}")).await;
    assert_eq!(parent["status"], "canceled", "{parent}");
}
