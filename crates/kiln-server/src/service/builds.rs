//! Build operations shared by every API version: list, show, cancel, retry.

use crate::ApiError;
use kiln_core::{BuildEvent, PageRequest, Scope};
use kiln_store::builds::TransitionFailure;
use kiln_store::{BuildRecord, BuildsPage, Store, StoreError, UserRecord};

pub async fn list(
    store: &Store,
    project_id: i64,
    scope: &Scope,
    page: PageRequest,
) -> Result<BuildsPage, ApiError> {
    Ok(store.builds().list(project_id, scope, page).await?)
}

pub async fn list_for_commit(
    store: &Store,
    project_id: i64,
    sha: &str,
    scope: &Scope,
    page: PageRequest,
) -> Result<BuildsPage, ApiError> {
    match store
        .builds()
        .list_for_commit(project_id, sha, scope, page)
        .await
    {
        Err(StoreError::NotFound) => Err(ApiError::NotFound("Commit")),
        other => Ok(other?),
    }
}

pub async fn show(store: &Store, project_id: i64, build_id: i64) -> Result<BuildRecord, ApiError> {
    Ok(store.builds().get(project_id, build_id).await?)
}

/// Cancels the build if it is still created, pending, running or manual. Like GitLab, a build
/// that has already finished is returned unchanged rather than refused.
pub async fn cancel(
    store: &Store,
    project_id: i64,
    build_id: i64,
) -> Result<BuildRecord, ApiError> {
    match store
        .builds()
        .transition(project_id, build_id, BuildEvent::Cancel)
        .await
    {
        Ok(_) | Err(TransitionFailure::NotAllowed(_)) => {}
        // Changed meanwhile (a runner finished it): present whatever it is now.
        Err(TransitionFailure::Store(StoreError::Conflict(_))) => {}
        Err(TransitionFailure::Store(err)) => return Err(err.into()),
    }
    show(store, project_id, build_id).await
}

/// Creates a new pending build from a finished one (GitLab's `retryable?`: complete, with
/// commands). The new build belongs to `user`; the old one is left untouched.
pub async fn retry(
    store: &Store,
    project_id: i64,
    build_id: i64,
    user: &UserRecord,
) -> Result<BuildRecord, ApiError> {
    let build = show(store, project_id, build_id).await?;
    if !build.status.is_complete() || build.commands.trim().is_empty() {
        return Err(ApiError::Forbidden(Some("Build is not retryable")));
    }
    let new_id = store.builds().retry(project_id, build_id, user.id).await?;
    show(store, project_id, new_id).await
}
