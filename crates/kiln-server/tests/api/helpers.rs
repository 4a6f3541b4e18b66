//! `TestApp` and builders. Fixtures are made through the store, requests go over HTTP.

use kiln_core::{AccessLevel, BuildStatus, Visibility};
use kiln_store::testing::TestDatabase;
use kiln_store::{CommitRecord, NewBuild, NewPipeline, Store};
use reqwest::{Method, StatusCode};
use serde_json::Value;

pub struct TestApp {
    pub base: String,
    pub store: Store,
    pub client: reqwest::Client,
    _db: TestDatabase,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
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

    pub fn ids(&self) -> Vec<i64> {
        self.body
            .as_array()
            .map(|a| a.iter().filter_map(|b| b["id"].as_i64()).collect())
            .unwrap_or_default()
    }
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        let db = TestDatabase::new().await;
        let store = db.open().await.expect("open store");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let config = kiln_server::Config::new(base.clone());
        let router = kiln_server::router(store.clone(), config);
        let server = tokio::spawn(async move {
            let _ = kiln_server::serve(listener, router, std::future::pending()).await;
        });
        TestApp {
            base,
            store,
            client: reqwest::Client::new(),
            _db: db,
            server,
        }
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
        let pipeline = NewPipeline {
            project_id: project,
            commit: CommitRecord {
                sha: sha.to_owned(),
                message: "Test the CI integration.\n\nWith a body.".to_owned(),
                author_name: "Administrator".to_owned(),
                author_email: "admin@example.com".to_owned(),
                authored_at: 1_450_972_274_000,
                author_tz_offset_minutes: 60,
            },
            ref_name: "master".to_owned(),
            tag: false,
            status: "running".to_owned(),
            user_id: user.map(|u| u.id),
            yaml_errors: None,
            builds,
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
        let body =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text:?}"));
        Response {
            status,
            headers,
            body,
        }
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
