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

/// Commit `rev` (a sha, a prefix, a branch or a tag) of `repo`; `404 Commit Not Found` when
/// the repository has no such commit.
pub async fn read_commit(repo: PathBuf, rev: &str) -> Result<crate::git::CommitInfo, ApiError> {
    let rev = rev.to_owned();
    blocking(move || crate::git::log(&repo, &rev, (None, None), 0, 1))
        .await?
        .pop()
        .ok_or(ApiError::NotFound("Commit"))
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
