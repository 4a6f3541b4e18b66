//! Reading a project's repository: its mirror, fetched before each read, and git work run
//! off the request threads.

use crate::git::GitError;
use crate::{ApiError, AppInner};
use kiln_store::ProjectRecord;
use std::path::PathBuf;

/// The project's mirror, fetched now.
pub async fn mirror(state: &AppInner, project: &ProjectRecord) -> Result<PathBuf, ApiError> {
    let url = project
        .repo_url
        .as_deref()
        .ok_or(ApiError::NotFound("Repository"))?;
    state
        .mirrors
        .sync(project.id, url)
        .await
        .map_err(|e| ApiError::Internal(e.into()))
}

pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, GitError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(GitError::UnknownRef(_))) => Err(ApiError::NotFound("Commit")),
        Ok(Err(err)) => Err(ApiError::Internal(err.into())),
        Err(err) => Err(ApiError::Internal(err.into())),
    }
}
