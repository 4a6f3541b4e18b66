//! Build operations shared by every API version: list, show, cancel, retry, play, erase,
//! keep artifacts, trace.

use crate::{ApiError, AppInner, Refusal};
use kiln_core::{BuildEvent, BuildStatus, PageRequest, Scope};
use kiln_store::{
    ArchiveLocation, BuildRecord, BuildsPage, Store, StoreError, TransitionFailure, UserRecord,
};

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
        // GitLab 8.x: `return not_found! unless commit`, the plain message.
        Err(StoreError::NotFound) => Err(ApiError::NotFound("")),
        other => Ok(other?),
    }
}

pub async fn show(store: &Store, project_id: i64, build_id: i64) -> Result<BuildRecord, ApiError> {
    Ok(store.builds().get(project_id, build_id).await?)
}

/// Cancels the build if it is still created, pending, running or manual; the change feed
/// tells its runner, wherever it runs. Like GitLab, a finished build is returned unchanged.
pub async fn cancel(
    app: &AppInner,
    project_id: i64,
    build_id: i64,
) -> Result<BuildRecord, ApiError> {
    match app
        .store
        .builds()
        .apply_user_event(project_id, build_id, BuildEvent::Cancel, None)
        .await
    {
        Ok(_) => {}
        Err(TransitionFailure::NotAllowed(_)) => {}
        // Changed meanwhile (a runner finished it): present whatever it is now.
        Err(TransitionFailure::Store(StoreError::Conflict(_))) => {}
        Err(TransitionFailure::Store(err)) => return Err(err.into()),
    }
    show(&app.store, project_id, build_id).await
}

/// Creates a new pending build from a finished one (GitLab's `retryable?`: complete, with
/// commands). The new build belongs to `user`; the old one is left untouched.
pub async fn retry(
    app: &AppInner,
    project_id: i64,
    build_id: i64,
    user: &UserRecord,
) -> Result<BuildRecord, ApiError> {
    let not_retryable = || ApiError::Refusal(Refusal::NotRetryable);
    let build = show(&app.store, project_id, build_id).await?;
    if !build.status.is_complete() || build.commands.trim().is_empty() {
        return Err(not_retryable());
    }
    let (new_id, _) = match app
        .store
        .builds()
        .retry(project_id, build_id, Some(user.id))
        .await
    {
        // Retried already (by a concurrent request, too), as current GitLab refuses.
        Err(StoreError::Conflict(_)) => return Err(not_retryable()),
        other => other?,
    };
    show(&app.store, project_id, new_id).await
}

/// Starts a manual build (manual → pending) for `user`, with the variables given for it
/// (none keeps those it had).
pub async fn play(
    app: &AppInner,
    (project_id, build_id): (i64, i64),
    user: &UserRecord,
    variables: &[(String, String)],
) -> Result<BuildRecord, ApiError> {
    let unplayable = || ApiError::Refusal(Refusal::Unplayable);
    let build = show(&app.store, project_id, build_id).await?;
    if build.status != BuildStatus::Manual || build.commands.trim().is_empty() {
        return Err(unplayable());
    }
    let builds = app.store.builds();
    let played = if variables.is_empty() {
        builds
            .apply_user_event(project_id, build_id, BuildEvent::Play, Some(user.id))
            .await
    } else {
        let json = serde_json::to_string(variables).map_err(|e| ApiError::Internal(e.into()))?;
        builds.play(project_id, build_id, user.id, &json).await
    };
    match played {
        Ok(_) => {}
        Err(TransitionFailure::NotAllowed(_))
        | Err(TransitionFailure::Store(StoreError::Conflict(_))) => return Err(unplayable()),
        Err(TransitionFailure::Store(err)) => return Err(err.into()),
    }
    show(&app.store, project_id, build_id).await
}

/// Removes a finished build's trace and artifacts (GitLab's `erasable?`: complete, with a
/// trace or artifacts).
pub async fn erase(
    app: &AppInner,
    project_id: i64,
    build_id: i64,
    user: &UserRecord,
) -> Result<BuildRecord, ApiError> {
    let build = show(&app.store, project_id, build_id).await?;
    let has_trace = app.store.builds().has_trace(build_id).await?;
    if !build.status.is_complete()
        || build.erased_at.is_some()
        || !(has_trace || build.artifacts_file.is_some())
    {
        return Err(ApiError::Refusal(Refusal::NotErasable));
    }
    let erased = app
        .store
        .builds()
        .clear_artifacts(project_id, build_id, Some(user.id))
        .await?;
    if !erased {
        // A concurrent request erased it first.
        return Err(ApiError::Refusal(Refusal::NotErasable));
    }
    if let Some(location) = archive_location(&build) {
        app.artifacts.delete(&app.store, build_id, &location).await;
    }
    show(&app.store, project_id, build_id).await
}

/// Keeps the artifacts past their expiry. 404 when the build has none.
pub async fn keep_artifacts(
    app: &AppInner,
    project_id: i64,
    build_id: i64,
) -> Result<BuildRecord, ApiError> {
    let build = show(&app.store, project_id, build_id).await?;
    if build.artifacts_file.is_none() {
        return Err(ApiError::NotFound(""));
    }
    app.store
        .builds()
        .keep_artifacts(project_id, build_id)
        .await?;
    show(&app.store, project_id, build_id).await
}

/// The newest successful build named `job` on `ref_name` (artifacts by ref). GitLab's
/// `find_by!` miss is a RecordNotFound, which its API presents with a lower-case f.
pub async fn latest_successful(
    store: &Store,
    project_id: i64,
    ref_name: &str,
    job: &str,
) -> Result<BuildRecord, ApiError> {
    match store
        .builds()
        .latest_successful(project_id, ref_name, job)
        .await
    {
        Ok(id) => show(store, project_id, id).await,
        Err(StoreError::NotFound) => Err(ApiError::NotFoundMessage("404 Not found")),
        Err(err) => Err(err.into()),
    }
}

/// Deletes the build's artifacts (not its trace). 404 when it has none.
pub async fn delete_artifacts(
    app: &AppInner,
    project_id: i64,
    build_id: i64,
) -> Result<(), ApiError> {
    let build = show(&app.store, project_id, build_id).await?;
    let location = archive_location(&build).ok_or(ApiError::NotFound(""))?;
    app.store
        .builds()
        .clear_artifacts(project_id, build_id, None)
        .await?;
    app.artifacts.delete(&app.store, build_id, &location).await;
    Ok(())
}

/// Where the build's archive is, if it has one (expired or not).
pub fn archive_location(build: &BuildRecord) -> Option<ArchiveLocation> {
    Some(ArchiveLocation {
        backend: build.artifacts_backend.clone(),
        file: build.artifacts_file.clone()?,
    })
}

/// The build's archive if it may be downloaded: not erased, not expired (gone even before
/// the sweep removes it).
pub fn live_archive(build: &BuildRecord) -> Option<ArchiveLocation> {
    let now = kiln_store::now_ms();
    if build.erased_at.is_some() || build.artifacts_expire_at.is_some_and(|at| at <= now) {
        return None;
    }
    archive_location(build)
}
