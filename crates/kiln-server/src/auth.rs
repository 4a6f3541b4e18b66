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

/// The caller of a read that current GitLab also answers without a token (`authenticate_non_get!`:
/// projects, pipelines, the repository): the signed-in user, or None for an anonymous one,
/// who sees public projects only. A token that is given must be good (401 otherwise), and
/// v3 (GitLab 8.x authenticated every call) still requires one.
#[derive(Debug, Clone)]
pub struct Viewer(pub Option<UserRecord>);

impl FromRequestParts<AppState> for Viewer {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if token_of(parts).is_none_or(|t| t.is_empty()) {
            return Ok(Viewer(None));
        }
        let CurrentUser(user) = CurrentUser::from_request_parts(parts, state).await?;
        Ok(Viewer(Some(user)))
    }
}

impl Viewer {
    /// The viewer where `version` allows an anonymous one; v3 answers 401 without a token.
    pub fn in_version(
        self,
        version: crate::present::ApiVersion,
    ) -> Result<Option<UserRecord>, ApiError> {
        match (self.0, version) {
            (None, crate::present::ApiVersion::V3) => Err(ApiError::Unauthorized),
            (user, _) => Ok(user),
        }
    }
}

/// A caller that may also be a running job: its `JOB-TOKEN` header or `job_token` parameter
/// (CI_JOB_TOKEN) acts as the job's user, within the job's own project only. Used on the
/// routes where GitLab allows job tokens (artifacts, the current job, pipeline triggers).
#[derive(Debug, Clone)]
pub struct UserOrJob {
    pub user: UserRecord,
    pub job: Option<kiln_store::BuildRecord>,
}

impl UserOrJob {
    /// Refuses a job token used on another project (as if it did not exist).
    pub fn may_reach(&self, project_id: i64) -> Result<(), ApiError> {
        match &self.job {
            Some(job) if job.project_id != project_id => Err(ApiError::NotFound("Project")),
            _ => Ok(()),
        }
    }
}

fn job_token_of(parts: &Parts) -> Option<String> {
    if let Some(token) = QueryPairs::parse(parts.uri.query()).get("job_token") {
        return Some(token.to_owned());
    }
    let value = parts.headers.get("job-token")?.to_str().ok()?;
    Some(value.trim().to_owned())
}

impl FromRequestParts<AppState> for UserOrJob {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(token) = job_token_of(parts).filter(|t| !t.is_empty()) else {
            let CurrentUser(user) = CurrentUser::from_request_parts(parts, state).await?;
            return Ok(UserOrJob { user, job: None });
        };
        let owner = state
            .store
            .builds()
            .by_job_token(&token)
            .await?
            .filter(|o| o.is_live())
            .ok_or(ApiError::Unauthorized)?;
        let job = state
            .store
            .builds()
            .get(owner.project_id, owner.build_id)
            .await?;
        // The job's user: who started its pipeline or played it.
        let user = match &job.user {
            Some(user) => user.clone(),
            None => state
                .store
                .pipelines()
                .get(job.pipeline_id)
                .await?
                .user
                .ok_or(ApiError::Unauthorized)?,
        };
        Ok(UserOrJob {
            user,
            job: Some(job),
        })
    }
}
