//! Kiln's HTTP server: services, authentication, the embedded runner, and the routers that
//! present them (`/api/v3`, `/api/v4`). Handlers read: extract → authorize → call one
//! service → present.

pub mod ansi;
pub mod api;
pub mod artifact_store;
pub mod auth;
pub mod background;
pub mod cache;
pub mod dispatch;
pub mod embedded_runner;
pub mod error;
pub mod files;
pub mod git;
pub mod http;
pub mod metrics;
pub mod openapi;
pub mod pagination;
pub mod params;
pub mod present;
pub mod query;
pub mod request_log;
pub mod secrets;
pub mod service;
pub mod web;
pub mod webhooks;

use artifact_store::ArtifactStore;
use axum::Router;
use kiln_executor::{Isolation, JobUser};
use kiln_store::Store;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub use error::{ApiError, Refusal};
pub use http::{serve, HttpLimits};

/// Where artifacts archives are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactsSetting {
    /// The database on PostgreSQL (nothing else to share between servers), the data dir's
    /// `artifacts` folder on SQLite.
    Auto,
    /// This directory (a shared mount when several servers run).
    Directory(PathBuf),
    Database,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Where users reach Kiln, without a trailing slash; used in `web_url` and `Link` headers.
    pub external_url: String,
    /// How long cached reads may be served at most (see `cache`); zero turns the caches off.
    /// The change feed invalidates them at once; this only bounds a missed notification.
    pub read_cache_ttl: Duration,
    /// The database, mirrors, the runner identity (and, by default, artifacts and builds).
    pub data_dir: PathBuf,
    /// Workers of the embedded runner; 0 turns it off.
    pub builds_concurrency: usize,
    /// The embedded runner's tags: it takes untagged builds and builds whose tags it has.
    pub embedded_tags: Vec<String>,
    /// How long `POST /jobs/request` waits for a build before answering 204.
    pub long_poll_timeout: Duration,
    pub max_trace_bytes: u64,
    pub max_artifacts_bytes: u64,
    /// Poll project repositories for new branch heads this often.
    pub poll_interval: Option<Duration>,
    /// How long a remote runner holds a build it claimed without calling again.
    pub build_lease: Duration,
    /// How long the embedded runner's builds outlive this server's last heartbeat.
    pub embedded_lease: Duration,
    /// Where jobs' work directories go (default: `builds` in the data dir, or a folder in
    /// the temporary directory with a job user, who may not enter the data dir).
    pub builds_dir: Option<PathBuf>,
    /// Run jobs as this user.
    pub job_user: Option<JobUser>,
    pub isolation: Isolation,
    pub artifacts: ArtifactsSetting,
    pub http: HttpLimits,
    /// The key that encrypts secrets at rest (its text); None: the data dir's `secret.key`,
    /// made on first start. Every server of a cluster must be given the same.
    pub secret_key: Option<String>,
    /// Whether webhooks may point at loopback and private addresses.
    pub allow_local_webhooks: bool,
    /// How long a webhook's receiver has to answer.
    pub webhook_timeout: Duration,
    /// Whether requests are counted for `/-/metrics` (off only to measure what counting costs).
    pub http_metrics: bool,
}

impl Config {
    pub fn new(external_url: impl Into<String>, data_dir: impl Into<PathBuf>) -> Config {
        Config {
            external_url: external_url.into(),
            read_cache_ttl: Duration::from_secs(1),
            // Absolute, so that CI_PROJECT_DIR and stored artifact paths survive a `cd`.
            data_dir: {
                let dir: PathBuf = data_dir.into();
                std::path::absolute(&dir).unwrap_or(dir)
            },
            builds_concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()),
            embedded_tags: Vec::new(),
            long_poll_timeout: Duration::from_secs(50),
            max_trace_bytes: 100 * 1024 * 1024,
            max_artifacts_bytes: 100 * 1024 * 1024,
            poll_interval: None,
            build_lease: Duration::from_secs(600),
            embedded_lease: embedded_runner::LEASE,
            builds_dir: None,
            job_user: None,
            isolation: Isolation::Auto,
            artifacts: ArtifactsSetting::Auto,
            http: HttpLimits::default(),
            secret_key: None,
            allow_local_webhooks: false,
            webhook_timeout: Duration::from_secs(10),
            http_metrics: true,
        }
    }
}

pub struct AppInner {
    pub store: Store,
    pub config: Config,
    pub cache: cache::ReadCache,
    pub mirrors: git::Mirrors,
    pub dispatcher: dispatch::Dispatcher,
    pub executor: kiln_executor::ExecutorConfig,
    pub artifacts: ArtifactStore,
    /// Encrypts and decrypts CI/CD variable values.
    pub cipher: secrets::Cipher,
    /// This server process, for cluster leases.
    pub instance_id: String,
    /// HTTP requests counted for `/-/metrics`.
    pub metrics: metrics::Metrics,
    /// Sends webhook deliveries.
    pub webhooks: webhooks::Sender,
    embedded_runner: OnceLock<Arc<embedded_runner::EmbeddedRunner>>,
}

/// What every handler gets.
pub type AppState = Arc<AppInner>;

/// The application state of a server, with its background work started: the change feed's
/// dispatcher, recovery of the builds a previous run left running, the embedded runner and
/// its heartbeat, and the cluster's periodic work.
pub async fn start(store: Store, config: Config) -> anyhow::Result<AppState> {
    files::make_data_dir_private(&config.data_dir)?;
    let state = state(store, config)?;
    dispatch::Dispatcher::follow(state.clone());
    let runner = embedded_runner::start(state.clone(), state.config.builds_concurrency).await?;
    let _ = state.embedded_runner.set(runner);
    background::start(state.clone());
    service::bridges::follow(state.clone());
    webhooks::start(state.clone());
    Ok(state)
}

/// Stops the embedded runner: its builds are given back or failed, never left running.
/// Call it after the HTTP server stopped and before the store closes.
pub async fn stop(state: &AppState) {
    if let Some(runner) = state.embedded_runner.get() {
        runner.stop(state).await;
    }
}

/// The application state alone, for a command that creates pipelines without serving
/// (`kiln pipeline run`): it runs nothing and must not touch the server's running builds.
pub fn state(store: Store, config: Config) -> anyhow::Result<AppState> {
    let tag = format!(
        "kiln-{}",
        embedded_runner::runner_identity(&config.data_dir)?
    );
    let builds_dir = match (&config.builds_dir, &config.job_user) {
        (Some(dir), _) => dir.clone(),
        (None, Some(_)) => std::env::temp_dir().join(format!("{tag}-builds")),
        (None, None) => config.data_dir.join("builds"),
    };
    let executor = kiln_executor::ExecutorConfig {
        max_trace_bytes: config.max_trace_bytes,
        max_artifacts_bytes: config.max_artifacts_bytes,
        job_user: config.job_user.clone(),
        isolation: config.isolation,
        runner_tag: tag,
        cache_dir: Some(config.data_dir.join("cache")),
        ..kiln_executor::ExecutorConfig::new(builds_dir)
    };
    let artifacts = match &config.artifacts {
        ArtifactsSetting::Directory(dir) => ArtifactStore::Directory(dir.clone()),
        ArtifactsSetting::Database => ArtifactStore::Database,
        ArtifactsSetting::Auto if store.backend_name() == "postgres" => ArtifactStore::Database,
        ArtifactsSetting::Auto => ArtifactStore::Directory(config.data_dir.join("artifacts")),
    };
    let cipher = secrets::Cipher::load(config.secret_key.as_deref(), &config.data_dir)?;
    Ok(Arc::new(AppInner {
        cipher,
        cache: cache::ReadCache::new(config.read_cache_ttl, {
            let store = store.clone();
            Arc::new(move || store.feed().is_connected())
        }),
        mirrors: git::Mirrors::new(config.data_dir.join("repos")),
        dispatcher: dispatch::Dispatcher::default(),
        executor,
        artifacts,
        instance_id: format!("{}-{}", std::process::id(), kiln_store::new_secret()),
        metrics: metrics::Metrics::default(),
        webhooks: webhooks::Sender::new(config.allow_local_webhooks, config.webhook_timeout)?,
        embedded_runner: OnceLock::new(),
        store,
        config,
    }))
}

/// The whole HTTP application over `state`.
pub fn router(state: AppState) -> Router {
    // The edge's checks run before routing: the routes are this router's fallback.
    Router::new()
        .fallback_service(routes(state))
        .layer(axum::middleware::map_request(api::edge::guard))
        .layer(axum::middleware::from_fn(request_log::layer))
}

/// Every route Kiln serves, with its error shapes and request metrics (what `router` puts
/// behind the edge's checks; the OpenAPI coverage test reads its table).
pub fn routes(state: AppState) -> Router {
    let mut routes = Router::new()
        .nest("/api/v3", api::v3::router())
        .nest("/api/v4", api::v4::router())
        .merge(api::git_http::routes())
        .merge(api::health::routes())
        .route("/api/openapi.json", axum::routing::get(openapi::serve))
        .merge(web::routes())
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(axum::middleware::map_response(api::json_errors));
    if state.config.http_metrics {
        // Inside the router, where each request's route template is known.
        routes = routes.layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ));
    }
    routes.with_state(state)
}
