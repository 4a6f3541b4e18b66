//! Kiln's HTTP server: services, authentication, and the routers that present them
//! (`/api/v3` today). Handlers read: extract → authorize → call one service → present.

pub mod api;
pub mod auth;
pub mod cache;
pub mod error;
pub mod pagination;
pub mod present;
pub mod query;
pub mod service;

use axum::Router;
use kiln_store::Store;
use std::sync::Arc;
use tokio::net::TcpListener;

pub use error::ApiError;

#[derive(Debug, Clone)]
pub struct Config {
    /// Where users reach Kiln, without a trailing slash; used in `web_url` and `Link` headers.
    pub external_url: String,
    /// How long cached reads may be served (see `cache`); zero turns the caches off.
    pub read_cache_ttl: std::time::Duration,
}

impl Config {
    pub fn new(external_url: impl Into<String>) -> Config {
        Config {
            external_url: external_url.into(),
            read_cache_ttl: std::time::Duration::from_secs(1),
        }
    }
}

pub struct AppInner {
    pub store: Store,
    pub config: Config,
    pub cache: cache::ReadCache,
}

/// What every handler gets: the store and the configuration.
pub type AppState = Arc<AppInner>;

/// The whole HTTP application.
pub fn router(store: Store, config: Config) -> Router {
    let cache = cache::ReadCache::new(config.read_cache_ttl);
    let state: AppState = Arc::new(AppInner {
        store,
        config,
        cache,
    });
    Router::new()
        .nest("/api/v3", api::v3::router())
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
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
