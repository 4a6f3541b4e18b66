//! What clients read of a project's repository, from Kiln's mirror of it: branches, commits,
//! one commit, and a commit's statuses (its builds), under v3 and v4.
//!
//! Kiln protects the default branch only (its jobs get protected variables), so that is the
//! one branch `protected` and the one entry of `protected_branches`.

use crate::auth::CurrentUser;
use crate::git::{self, CommitInfo, GitError};
use crate::pagination;
use crate::present::time::{utc, with_offset};
use crate::present::v3::commit_title;
use crate::present::ApiVersion as Version;
use crate::query::QueryPairs;
use crate::service::projects::authorize;
use crate::{ApiError, AppState};
use axum::extract::{OriginalUri, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use kiln_core::{Permission, Scope};
use kiln_store::ProjectRecord;
use serde_json::{json, Value};
use std::path::PathBuf;

pub fn routes(version: Version) -> Router<AppState> {
    Router::new()
        .route(
            "/projects/{id}/repository/branches",
            get(move |s, u, p| branches(s, u, p, version)),
        )
        .route(
            "/projects/{id}/repository/branches/{*branch}",
            get(move |s, u, p| branch(s, u, p, version)),
        )
        .route(
            "/projects/{id}/repository/commits",
            get(move |s, u, p, q, uri| commits(s, u, p, q, uri, version)),
        )
        .route(
            "/projects/{id}/repository/commits/{sha}",
            get(move |s, u, p| commit(s, u, p, version)),
        )
        .route(
            "/projects/{id}/repository/commits/{sha}/statuses",
            get(move |s, u, p| statuses(s, u, p, version)),
        )
        .route(
            "/projects/{id}/protected_branches",
            get(move |s, u, p| protected_branches(s, u, p, version)),
        )
}

/// The project's mirror, fetched now.
async fn mirror(state: &AppState, project: &ProjectRecord) -> Result<PathBuf, ApiError> {
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

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, GitError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(GitError::UnknownRef(_))) => Err(ApiError::NotFound("Commit")),
        Ok(Err(err)) => Err(ApiError::Internal(err.into())),
        Err(err) => Err(ApiError::Internal(err.into())),
    }
}

fn commit_json(
    state: &AppState,
    project: &ProjectRecord,
    c: &CommitInfo,
    version: Version,
) -> Value {
    let date = with_offset(c.authored_at_ms, c.tz_offset_minutes);
    let mut out = json!({
        "id": c.sha,
        "short_id": c.sha.get(..8).unwrap_or(&c.sha),
        "title": commit_title(&c.message),
        "author_name": c.author_name,
        "author_email": c.author_email,
        "created_at": date,
        "message": c.message,
        "parent_ids": c.parents,
        "authored_date": date,
        "committer_name": c.author_name,
        "committer_email": c.author_email,
        "committed_date": date,
    });
    if version == Version::V4 {
        out["trailers"] = json!({});
        out["extended_trailers"] = json!({});
        out["web_url"] = json!(format!(
            "{}/{}/-/commit/{}",
            state.config.external_url,
            project.full_path(),
            c.sha
        ));
    }
    out
}

fn branch_json(
    state: &AppState,
    project: &ProjectRecord,
    (name, commit): (&str, &CommitInfo),
    version: Version,
) -> Value {
    let protected = name == project.default_branch;
    let mut out = json!({
        "name": name,
        "commit": commit_json(state, project, commit, version),
        "protected": protected,
        "developers_can_push": false,
        "developers_can_merge": false,
    });
    if version == Version::V4 {
        out["merged"] = json!(false);
        out["default"] = json!(protected);
        out["can_push"] = json!(false);
        out["web_url"] = json!(format!(
            "{}/{}/-/tree/{name}",
            state.config.external_url,
            project.full_path()
        ));
    }
    out
}

/// Every branch with its head commit, by name.
async fn read_branches(
    state: &AppState,
    project: &ProjectRecord,
) -> Result<Vec<(String, CommitInfo)>, ApiError> {
    let repo = mirror(state, project).await?;
    blocking(move || git::branch_heads(&repo)).await
}

/// `GET /projects/:id/repository/branches`
async fn branches(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    version: Version,
) -> Result<Response, ApiError> {
    let project = authorize(&state, &user, &id, Permission::ReadBuild).await?;
    let body: Vec<_> = read_branches(&state, &project)
        .await?
        .iter()
        .map(|(name, c)| branch_json(&state, &project, (name, c), version))
        .collect();
    Ok(Json(body).into_response())
}

/// `GET /projects/:id/repository/branches/:branch` (the name may hold slashes).
async fn branch(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, name)): Path<(String, String)>,
    version: Version,
) -> Result<Response, ApiError> {
    let project = authorize(&state, &user, &id, Permission::ReadBuild).await?;
    let branches = read_branches(&state, &project).await?;
    let (name, head) = branches
        .iter()
        .find(|(n, _)| *n == name)
        .ok_or(ApiError::NotFound("Branch"))?;
    Ok(Json(branch_json(&state, &project, (name, head), version)).into_response())
}

/// Grape's `DateTime` as Unix seconds.
fn seconds(query: &QueryPairs, name: &str) -> Result<Option<i64>, ApiError> {
    let Some(raw) = query.get(name).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let format = time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::parse(raw, &format)
        .map(|at| Some(at.unix_timestamp()))
        .map_err(|_| ApiError::Params(format!("{name} is invalid")))
}

/// `GET /projects/:id/repository/commits` — `ref_name` (the default branch by default),
/// `since`, `until`, pages. Pages are not counted (git would walk the whole history).
async fn commits(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    query: QueryPairs,
    OriginalUri(uri): OriginalUri,
    version: Version,
) -> Result<Response, ApiError> {
    let project = authorize(&state, &user, &id, Permission::ReadBuild).await?;
    let page = pagination::page_request(&query, version)?;
    let window = (seconds(&query, "since")?, seconds(&query, "until")?);
    let rev = query
        .get("ref_name")
        .filter(|r| !r.is_empty())
        .unwrap_or(&project.default_branch)
        .to_owned();
    let repo = mirror(&state, &project).await?;
    let per_page = page.per_page;
    let mut listed =
        blocking(move || git::log(&repo, &rev, window, page.offset(), per_page + 1)).await?;
    let has_more = listed.len() > per_page as usize;
    listed.truncate(per_page as usize);
    let body: Vec<_> = listed
        .iter()
        .map(|c| commit_json(&state, &project, c, version))
        .collect();
    let url_base = format!("{}{}", state.config.external_url, uri.path());
    let headers = pagination::headers_without_total(page, has_more, &url_base, &query);
    Ok((headers, Json(body)).into_response())
}

/// `GET /projects/:id/repository/commits/:sha` (a sha, a branch or a tag), with the status
/// of its newest pipeline.
async fn commit(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, sha)): Path<(String, String)>,
    version: Version,
) -> Result<Response, ApiError> {
    let project = authorize(&state, &user, &id, Permission::ReadBuild).await?;
    let repo = mirror(&state, &project).await?;
    let rev = sha.clone();
    let found = blocking(move || git::log(&repo, &rev, (None, None), 0, 1))
        .await?
        .pop()
        .ok_or(ApiError::NotFound("Commit"))?;
    let mut out = commit_json(&state, &project, &found, version);
    // Its newest pipeline, read alone (no count of the project's pipelines).
    let pipeline = state
        .store
        .pipelines()
        .latest_of_sha(project.id, &found.sha)
        .await?;
    out["stats"] = json!({ "additions": 0, "deletions": 0, "total": 0 });
    out["status"] = json!(pipeline.as_ref().map(|p| p.status.clone()));
    if version == Version::V4 {
        out["project_id"] = json!(project.id);
        out["last_pipeline"] = json!(pipeline.as_ref().map(|p| {
            let presenter = crate::present::jobs::Presenter {
                external_url: &state.config.external_url,
                project: &project,
                now_ms: kiln_store::now_ms(),
            };
            serde_json::to_value(presenter.pipeline_basic(p)).unwrap_or(Value::Null)
        }));
    }
    Ok(Json(out).into_response())
}

/// `GET /projects/:id/repository/commits/:sha/statuses` — the commit's current builds as
/// `CommitStatus` entries, newest first.
async fn statuses(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, sha)): Path<(String, String)>,
    version: Version,
) -> Result<Response, ApiError> {
    let project = authorize(&state, &user, &id, Permission::ReadBuild).await?;
    let page = kiln_core::PageRequest {
        page: 1,
        per_page: kiln_core::pagination::MAX_PER_PAGE,
    };
    let builds = crate::service::builds::list_for_commit(
        &state.store,
        project.id,
        &sha,
        &Scope::all(),
        page,
    )
    .await?;
    let users = crate::present::projects::Presenter {
        external_url: &state.config.external_url,
        version,
    };
    let body: Vec<_> = builds
        .builds
        .iter()
        .filter(|b| !b.retried)
        .map(|b| {
            json!({
                "id": b.id,
                "sha": b.commit.sha,
                "ref": b.ref_name,
                "status": b.status.as_str(),
                "name": b.name,
                "target_url": format!("{}/{}/-/jobs/{}", state.config.external_url, project.full_path(), b.id),
                "description": null,
                "created_at": utc(b.created_at),
                "started_at": b.started_at.map(utc),
                "finished_at": b.finished_at.map(utc),
                "allow_failure": b.allow_failure,
                "coverage": b.coverage,
                "pipeline_id": b.pipeline_id,
                "author": b.user.as_ref().map(|u| users.user_basic(u)),
            })
        })
        .collect();
    Ok(Json(body).into_response())
}

/// `GET /projects/:id/protected_branches` — the default branch, which only maintainers push.
async fn protected_branches(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    _version: Version,
) -> Result<Response, ApiError> {
    let project = authorize(&state, &user, &id, Permission::ReadBuild).await?;
    let levels = json!([{ "access_level": 40, "access_level_description": "Maintainers" }]);
    Ok(Json(json!([{
        "id": project.id,
        "name": project.default_branch,
        "push_access_levels": levels,
        "merge_access_levels": levels,
        "allow_force_push": false,
        "code_owner_approval_required": false,
    }]))
    .into_response())
}
