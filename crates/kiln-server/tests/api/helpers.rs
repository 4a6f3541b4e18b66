//! `TestApp` and builders. Fixtures are made through the store, requests go over HTTP.

use kiln_core::{AccessLevel, BuildStatus, Visibility};
use kiln_store::{NewBuild, NewPipeline, Store};
pub use kiln_test_support::{assert_gone_within, pid_in, TestDatabase};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

pub struct TestApp {
    pub base: String,
    pub store: Store,
    pub state: kiln_server::AppState,
    pub client: reqwest::Client,
    pub db: TestDatabase,
    pub server: Server,
}

/// One running server: its own data dir, on a store given to it.
pub struct Server {
    pub base: String,
    pub state: kiln_server::AppState,
    pub data_dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    /// `kiln serve` on an ephemeral port over `store`, with `runners` embedded workers and
    /// whatever `tweak` changes in its configuration.
    pub async fn start(
        store: Store,
        runners: usize,
        tweak: impl FnOnce(&mut kiln_server::Config),
    ) -> Server {
        let data_dir = tempfile::tempdir().expect("data dir");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let mut config = kiln_server::Config::new(base.clone(), data_dir.path());
        config.builds_concurrency = runners;
        tweak(&mut config);
        let limits = config.http.clone();
        let state = kiln_server::start(store, config).await.expect("start");
        let router = kiln_server::router(state.clone());
        let task = tokio::spawn(async move {
            let _ = kiln_server::serve(listener, router, limits, std::future::pending()).await;
        });
        Server {
            base,
            state,
            data_dir,
            task,
        }
    }

    /// Another server on the same database: its own store (pool and change-feed listener)
    /// on PostgreSQL, as a second process would have; on SQLite, whose one writer is one
    /// process, the same store.
    pub async fn beside(
        app: &TestApp,
        runners: usize,
        tweak: impl FnOnce(&mut kiln_server::Config),
    ) -> Server {
        let store = if app.store.backend_name() == "postgres" {
            app.db.open().await.expect("second store")
        } else {
            app.store.clone()
        };
        Server::start(store, runners, tweak).await
    }
}

/// A user with a token.
#[derive(Clone)]
pub struct Actor {
    pub id: i64,
    pub token: String,
}

pub struct Response {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Response {
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap_or("<binary>").to_owned())
            .unwrap_or_else(|| "<missing>".to_owned())
    }

    #[track_caller]
    pub fn assert(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        &self.body
    }

    #[track_caller]
    pub fn assert_error(&self, status: u16, message: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(self.body, serde_json::json!({ "message": message }));
    }

    /// An error body with its text under `key` (`error` for Grape's parameter checks).
    pub fn assert_error_key(&self, status: u16, key: &str, message: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(self.body, serde_json::json!({ key: message }));
    }

    pub fn ids(&self) -> Vec<i64> {
        self.body
            .as_array()
            .map(|a| a.iter().filter_map(|b| b["id"].as_i64()).collect())
            .unwrap_or_default()
    }
}

impl TestApp {
    /// The API with no embedded runner: builds stay as the test puts them.
    pub async fn spawn() -> TestApp {
        Self::spawn_with(0).await
    }

    /// The API and an embedded runner with `runners` workers.
    pub async fn spawn_with(runners: usize) -> TestApp {
        Self::spawn_configured(runners, |_| {}).await
    }

    /// As `spawn_with`, with whatever `tweak` changes in the configuration.
    pub async fn spawn_configured(
        runners: usize,
        tweak: impl FnOnce(&mut kiln_server::Config),
    ) -> TestApp {
        log_if_asked();
        let db = TestDatabase::new().await;
        let store = db.open().await.expect("open store");
        let server = Server::start(store.clone(), runners, tweak).await;
        TestApp {
            base: server.base.clone(),
            store,
            state: server.state.clone(),
            client: reqwest::Client::new(),
            db,
            server,
        }
    }

    /// A user `owner` and a project at `path` they are master of.
    pub async fn owned_project(&self, path: &str, visibility: Visibility) -> (Actor, i64) {
        let owner = self.user("owner", false).await;
        let project = self.project(path, visibility).await;
        self.member(project, &owner, AccessLevel::Master).await;
        (owner, project)
    }

    /// Gives `actor` a password to sign in to the web UI with.
    pub async fn set_password(&self, actor: &Actor, password: &str) {
        let hash = kiln_server::service::sign_in::hash_password(password)
            .await
            .expect("hash");
        self.store
            .sessions()
            .set_password_hash(actor.id, Some(&hash))
            .await
            .expect("password");
    }

    pub async fn user(&self, username: &str, admin: bool) -> Actor {
        let id = self
            .store
            .users()
            .create(
                username,
                &format!("{username} name"),
                &format!("{username}@example.com"),
                admin,
            )
            .await
            .expect("user");
        let token = self
            .store
            .users()
            .create_token(id, "test")
            .await
            .expect("token");
        Actor { id, token }
    }

    pub async fn project(&self, path: &str, visibility: Visibility) -> i64 {
        let (namespace, name) = path.split_once('/').expect("ns/name");
        self.store
            .projects()
            .create(namespace, name, visibility, None)
            .await
            .expect("project")
    }

    /// A runner registered over the runner protocol (an instance runner when `project` is
    /// None): its id and authentication token.
    pub async fn register_runner(&self, project: Option<i64>, tags: &str) -> (i64, String) {
        let token = self
            .store
            .runners()
            .issue_registration_token(project, false)
            .await
            .expect("registration token");
        let response = self
            .client
            .post(format!("{}/api/v4/runners", self.base))
            .json(
                &json!({ "token": token, "description": "box", "tag_list": tags,
                            "info": { "name": "gitlab-runner", "version": "17.5.0" } }),
            )
            .send()
            .await
            .expect("register");
        let body = TestApp::read(response).await;
        let body = body.assert(201);
        (
            body["id"].as_i64().expect("id"),
            body["token"].as_str().expect("token").to_owned(),
        )
    }

    pub async fn member(&self, project: i64, actor: &Actor, level: AccessLevel) {
        self.store
            .projects()
            .add_member(project, actor.id, level)
            .await
            .expect("member");
    }

    /// A pipeline on `sha` with one build per status, named `job0`, `job1` …; returns build ids.
    pub async fn pipeline(&self, project: i64, sha: &str, statuses: &[BuildStatus]) -> Vec<i64> {
        self.pipeline_by(project, sha, statuses, None).await
    }

    pub async fn pipeline_by(
        &self,
        project: i64,
        sha: &str,
        statuses: &[BuildStatus],
        user: Option<&Actor>,
    ) -> Vec<i64> {
        let builds = statuses
            .iter()
            .enumerate()
            .map(|(i, status)| NewBuild {
                commands: format!("echo job{i}"),
                user_id: user.map(|u| u.id),
                ..NewBuild::new(&format!("job{i}"), "test", 1, *status)
            })
            .collect();
        self.pipeline_of_builds(project, sha, builds, user).await
    }

    /// A pipeline on `sha` with these builds; returns their ids.
    pub async fn pipeline_of_builds(
        &self,
        project: i64,
        sha: &str,
        builds: Vec<NewBuild>,
        user: Option<&Actor>,
    ) -> Vec<i64> {
        let pipeline = NewPipeline {
            user_id: user.map(|u| u.id),
            ..kiln_test_support::pipeline(project, sha, builds)
        };
        self.store
            .pipelines()
            .create(&pipeline)
            .await
            .expect("pipeline")
            .1
    }

    pub async fn request(&self, method: Method, path: &str, token: Option<&str>) -> Response {
        let mut request = self
            .client
            .request(method, format!("{}{}", self.base, path));
        if let Some(token) = token {
            request = request.header("PRIVATE-TOKEN", token);
        }
        let response = request.send().await.expect("request");
        Self::read(response).await
    }

    pub async fn read(response: reqwest::Response) -> Response {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        // A 204 has no body at all; anything else must be JSON.
        let body = match (status.as_u16(), text.is_empty()) {
            (204, true) => Value::Null,
            _ => serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("not JSON ({status}): {text:?}")),
        };
        Response {
            status,
            headers,
            body,
        }
    }

    /// `method` on `path` with a JSON `body`, as `token`'s owner (or anonymously).
    pub async fn send_json(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> Response {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .json(&body);
        if let Some(token) = token {
            request = request.header("PRIVATE-TOKEN", token);
        }
        Self::read(request.send().await.expect("request")).await
    }

    /// `/-/metrics` as text.
    pub async fn scrape_text(&self) -> String {
        self.client
            .get(format!("{}/-/metrics", self.base))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }

    /// `/-/metrics`, parsed by a Prometheus text-format parser.
    pub async fn scrape(&self) -> prometheus_parse::Scrape {
        let text = self.scrape_text().await;
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
            .expect("the text format")
    }

    pub async fn get(&self, path: &str, actor: &Actor) -> Response {
        self.request(Method::GET, path, Some(&actor.token)).await
    }

    pub async fn post(&self, path: &str, actor: &Actor) -> Response {
        self.request(Method::POST, path, Some(&actor.token)).await
    }
}

/// The JSON type of a value, for comparing shapes with GitLab's examples.
pub fn shape(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), shape(v))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(shape).collect()),
        Value::String(_) => Value::String("string".into()),
        Value::Number(_) => Value::String("number".into()),
        Value::Bool(_) => Value::String("bool".into()),
        Value::Null => Value::String("null".into()),
    }
}

/// A real git repository in a temp dir, committed to with the git command line.
pub struct GitRepo {
    pub dir: tempfile::TempDir,
}

impl GitRepo {
    /// A repository whose `master` has one commit with `.gitlab-ci.yml` = `ci`.
    pub fn with_ci(ci: &str) -> GitRepo {
        let repo = GitRepo {
            dir: tempfile::tempdir().expect("repo dir"),
        };
        repo.git(&["init", "-q"]);
        repo.git(&["checkout", "-q", "-B", "master"]);
        repo.commit(&[(".gitlab-ci.yml", ci)], "Add CI\n\nWith a body.");
        repo
    }

    pub fn path(&self) -> String {
        self.dir.path().to_string_lossy().into_owned()
    }

    pub fn git(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(self.dir.path())
            .args([
                "-c",
                "user.name=Ada Lovelace",
                "-c",
                "user.email=ada@example.com",
            ])
            .args(args)
            .env("GIT_AUTHOR_DATE", "2015-12-24T16:51:14+01:00")
            .output()
            .expect("git");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Writes the files and commits them; returns the new sha.
    pub fn commit(&self, files: &[(&str, &str)], message: &str) -> String {
        for (path, content) in files {
            let full = self.dir.path().join(path);
            if let Some(parent) = full.parent() {
                std::fs::create_dir_all(parent).expect("dirs");
            }
            std::fs::write(full, content).expect("write");
        }
        self.git(&["add", "."]);
        self.git(&["commit", "-q", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }
}

impl TestApp {
    /// A project on `repo` with `owner` as its master.
    pub async fn project_on(&self, path: &str, repo: &GitRepo, owner: &Actor) -> i64 {
        let (namespace, name) = path.split_once('/').expect("ns/name");
        let id = self
            .store
            .projects()
            .create(namespace, name, Visibility::Private, Some(&repo.path()))
            .await
            .expect("project");
        self.member(id, owner, AccessLevel::Master).await;
        id
    }

    /// `POST /api/v4/projects/:id/pipeline?ref=…`; returns the pipeline JSON.
    /// An app with `runners` embedded workers and a project `team/app` on a repository whose
    /// `.gitlab-ci.yml` is `ci`, owned by the user `owner`.
    pub async fn with_repo(runners: usize, ci: &str) -> (TestApp, Actor, GitRepo, i64) {
        Self::with_repo_configured(runners, ci, |_| {}).await
    }

    /// As `with_repo`, with whatever `tweak` changes in the configuration.
    pub async fn with_repo_configured(
        runners: usize,
        ci: &str,
        tweak: impl FnOnce(&mut kiln_server::Config),
    ) -> (TestApp, Actor, GitRepo, i64) {
        let app = TestApp::spawn_configured(runners, tweak).await;
        let owner = app.user("owner", false).await;
        let repo = GitRepo::with_ci(ci);
        let project = app.project_on("team/app", &repo, &owner).await;
        (app, owner, repo, project)
    }

    /// Creates a pipeline for `ref_name` and waits for it: its id and its builds by name.
    pub async fn run_pipeline(
        &self,
        project: i64,
        ref_name: &str,
        actor: &Actor,
    ) -> (i64, std::collections::BTreeMap<String, Value>) {
        let created = self.create_pipeline(project, ref_name, actor).await;
        let pipeline = created.assert(201)["id"].as_i64().expect("pipeline id");
        (
            pipeline,
            self.wait_for_pipeline(project, pipeline, actor).await,
        )
    }

    pub async fn create_pipeline(&self, project: i64, ref_name: &str, actor: &Actor) -> Response {
        self.post(
            &format!("/api/v4/projects/{project}/pipeline?ref={ref_name}"),
            actor,
        )
        .await
    }

    /// The builds of a pipeline by name, once it has finished (or after `timeout`).
    pub async fn wait_for_pipeline(
        &self,
        project: i64,
        pipeline: i64,
        actor: &Actor,
    ) -> std::collections::BTreeMap<String, Value> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let status = self
                .store
                .pipelines()
                .get(pipeline)
                .await
                .expect("pipeline")
                .status;
            let finished = matches!(
                status.as_str(),
                "success" | "failed" | "canceled" | "skipped" | "manual"
            );
            if finished || std::time::Instant::now() > deadline {
                return self.builds_by_name(project, actor).await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Every build of the project by name (the newest of each name).
    pub async fn builds_by_name(
        &self,
        project: i64,
        actor: &Actor,
    ) -> std::collections::BTreeMap<String, Value> {
        let list = self
            .get(
                &format!("/api/v3/projects/{project}/builds?per_page=100"),
                actor,
            )
            .await;
        let mut by_name = std::collections::BTreeMap::new();
        for build in list
            .body
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .rev()
        {
            by_name.insert(build["name"].as_str().unwrap_or("").to_owned(), build);
        }
        by_name
    }

    pub async fn trace(&self, project: i64, build: i64, actor: &Actor) -> String {
        let response = self
            .client
            .get(format!(
                "{}/api/v3/projects/{project}/builds/{build}/trace",
                self.base
            ))
            .header("PRIVATE-TOKEN", &actor.token)
            .send()
            .await
            .expect("trace");
        assert_eq!(response.status(), 200);
        response.text().await.expect("text")
    }

    /// Waits until `check` holds for the build's JSON.
    pub async fn wait_for_build(
        &self,
        project: i64,
        build: i64,
        actor: &Actor,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let body = self
                .get(&format!("/api/v3/projects/{project}/builds/{build}"), actor)
                .await
                .body;
            if check(&body) || std::time::Instant::now() > deadline {
                return body;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// With `TEST_LOG=1`, the servers' logs go to the test's output.
fn log_if_asked() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info,sqlx=warn"))
            .with_test_writer()
            .try_init();
    }
}

/// The value of `metric` with `labels` in a scrape: a counter's or gauge's number, a
/// histogram's count.
pub fn metric(
    scrape: &prometheus_parse::Scrape,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    use prometheus_parse::Value;
    let sample = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))?;
    match &sample.value {
        Value::Counter(n) | Value::Gauge(n) | Value::Untyped(n) => Some(*n),
        Value::Histogram(buckets) => buckets
            .iter()
            .find(|b| b.less_than == f64::INFINITY)
            .map(|b| b.count),
        Value::Summary(_) => None,
    }
}
