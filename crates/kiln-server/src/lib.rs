//! Kiln's HTTP server: services, authentication, the embedded runner, and the routers that
//! present them (`/api/v3`, `/api/v4`). Handlers read: extract → authorize → call one
//! service → present.

pub mod api;
pub mod auth;
pub mod background;
pub mod cache;
pub mod dispatch;
pub mod error;
pub mod git;
pub mod pagination;
pub mod params;
pub mod present;
pub mod query;
pub mod runner;
pub mod service;

use axum::Router;
use kiln_store::Store;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

pub use error::ApiError;

#[derive(Debug, Clone)]
pub struct Config {
    /// Where users reach Kiln, without a trailing slash; used in `web_url` and `Link` headers.
    pub external_url: String,
    /// How long cached reads may be served (see `cache`); zero turns the caches off.
    pub read_cache_ttl: Duration,
    /// Mirrors, artifacts and build directories live here.
    pub data_dir: PathBuf,
    /// Workers of the embedded runner; 0 turns it off.
    pub builds_concurrency: usize,
    pub max_trace_bytes: u64,
    pub max_artifacts_bytes: u64,
    /// Poll project repositories for new branch heads this often.
    pub poll_interval: Option<Duration>,
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
            max_trace_bytes: 100 * 1024 * 1024,
            max_artifacts_bytes: 100 * 1024 * 1024,
            poll_interval: None,
        }
    }
}

pub struct AppInner {
    pub store: Store,
    pub config: Config,
    pub cache: cache::ReadCache,
    pub mirrors: git::Mirrors,
    pub dispatcher: dispatch::Dispatcher,
    pub executor: kiln_runner::ExecutorConfig,
}

/// What every handler gets.
pub type AppState = Arc<AppInner>;

/// The application state of a server, with its background work started: recovery of the
/// builds a previous run left running, the embedded runner, expiry, polling.
pub async fn start(store: Store, config: Config) -> anyhow::Result<AppState> {
    let state = state(store, config);
    runner::start(state.clone(), state.config.builds_concurrency).await?;
    background::start(state.clone());
    Ok(state)
}

/// The application state alone, for a command that creates pipelines without serving
/// (`kiln pipeline run`): it runs nothing and must not touch the server's running builds.
pub fn state(store: Store, config: Config) -> AppState {
    let executor = runner::executor_config(
        &config.data_dir,
        config.max_trace_bytes,
        config.max_artifacts_bytes,
    );
    Arc::new(AppInner {
        cache: cache::ReadCache::new(config.read_cache_ttl),
        mirrors: git::Mirrors::new(config.data_dir.join("repos")),
        dispatcher: dispatch::Dispatcher::default(),
        executor,
        store,
        config,
    })
}

/// The whole HTTP application over `state`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .nest("/api/v3", api::v3::router())
        .nest("/api/v4", api::v4::router())
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(axum::middleware::map_response(api::json_errors))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` completes, letting requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
