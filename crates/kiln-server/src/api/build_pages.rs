//! What the build lists of every API version share: JSON bodies, and pages served from the
//! read cache while the project's builds are unchanged.

use crate::cache::{CachedPage, PageKey};
use crate::{ApiError, AppState};
use axum::body::Bytes;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use kiln_store::BuildsPage;
use std::future::Future;

/// A JSON answer from an already serialized body.
pub fn json(status: StatusCode, body: Bytes) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

pub fn to_json(value: &impl serde::Serialize) -> Result<Bytes, ApiError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| ApiError::Internal(e.into()))
}

/// The page under `key` from the cache, or by `fetch` presented with `present` (and then
/// cached at the version read before fetching).
pub async fn cached_page(
    state: &AppState,
    key: PageKey,
    fetch: impl Future<Output = Result<BuildsPage, ApiError>>,
    present: impl FnOnce(&BuildsPage) -> Result<Bytes, ApiError>,
) -> Result<CachedPage, ApiError> {
    let version = state.store.versions().builds(key.project_id);
    if let Some(cached) = state.cache.pages.get(&key, version) {
        return Ok(cached);
    }
    let builds = fetch.await?;
    let cached = CachedPage {
        body: present(&builds)?,
        total: builds.total,
        next: None,
    };
    state.cache.pages.insert(key, cached.clone(), version);
    Ok(cached)
}
