//! Who is calling. A personal access token may come as the `PRIVATE-TOKEN` header, the
//! `PRIVATE_TOKEN` spelling of GitLab's curl examples, the `private_token` query parameter, or
//! `Authorization: Bearer <token>` (OAuth-style, as current clients send it). No token, or one
//! Kiln does not know, is 401.

use crate::{query::QueryPairs, ApiError, AppState};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use kiln_store::UserRecord;

/// The signed-in user of this request.
#[derive(Debug, Clone)]
pub struct CurrentUser(pub UserRecord);

/// GitLab reads `params[:private_token] || env['HTTP_PRIVATE_TOKEN']`: the parameter wins.
pub fn token_of(parts: &Parts) -> Option<String> {
    if let Some(token) = QueryPairs::parse(parts.uri.query()).get("private_token") {
        return Some(token.to_owned());
    }
    ["private-token", "private_token"]
        .into_iter()
        .find_map(|name| {
            let value = parts.headers.get(name)?.to_str().ok()?;
            Some(value.trim().to_owned())
        })
        .or_else(|| {
            let value = parts.headers.get("authorization")?.to_str().ok()?;
            let (scheme, token) = value.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        })
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = token_of(parts)
            .filter(|t| !t.is_empty())
            .ok_or(ApiError::Unauthorized)?;
        let key = kiln_store::hash_secret(&token);
        let version = state.store.versions().access();
        if let Some(user) = state.cache.users.get(&key, version) {
            return Ok(CurrentUser(user));
        }
        let user = state
            .store
            .users()
            .by_token(&token)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        state.cache.users.insert(key, user.clone(), version);
        Ok(CurrentUser(user))
    }
}
