//! What clients read of a project's repository, from Kiln's mirror of it: branches, commits
//! and one commit, under v3 and v4.
//!
//! A branch is `protected` when one of the project's protected branches (a name or a
//! pattern) matches it.

use crate::auth::Viewer;
use crate::git::{self, CommitInfo};
use crate::pagination;
use crate::present::time::with_offset;
use crate::present::v3::commit_title;
use crate::present::ApiVersion as Version;
use crate::query::QueryPairs;
use crate::service::projects::authorize_viewer;
use crate::service::repository::{blocking, mirror, read_commit};
use crate::{ApiError, AppState};
use axum::extract::{OriginalUri, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use kiln_core::Permission;
use kiln_store::{ProjectRecord, ProtectedBranchRecord};
use serde_json::{json, Value};

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
    (project, protection): (&ProjectRecord, &[ProtectedBranchRecord]),
    (name, commit): (&str, &CommitInfo),
    version: Version,
) -> Value {
    let rule = protection
        .iter()
        .find(|p| kiln_store::protected_branches::pattern_matches(&p.name, name));
    let developers =
        |level: fn(&ProtectedBranchRecord) -> i64| rule.is_some_and(|r| level(r) == DEVELOPERS);
    let mut out = json!({
        "name": name,
        "commit": commit_json(state, project, commit, version),
        "protected": rule.is_some(),
        "developers_can_push": developers(|r| r.access.push_access_level),
        "developers_can_merge": developers(|r| r.access.merge_access_level),
    });
    if version == Version::V4 {
        out["merged"] = json!(false);
        out["default"] = json!(name == project.default_branch);
        out["can_push"] = json!(false);
        out["web_url"] = json!(format!(
            "{}/{}/-/tree/{name}",
            state.config.external_url,
            project.full_path()
        ));
    }
    out
}

/// GitLab's developer access level, the lowest that may push to a branch.
const DEVELOPERS: i64 = 30;

/// Every branch with its head commit, by name, and the project's protected branches.
async fn read_branches(
    state: &AppState,
    project: &ProjectRecord,
) -> Result<(Vec<(String, CommitInfo)>, Vec<ProtectedBranchRecord>), ApiError> {
    let repo = mirror(state, project).await?;
    let heads = blocking(move || git::branch_heads(&repo)).await?;
    let protection = state.store.protected_branches().list(project.id).await?;
    Ok((heads, protection))
}

/// `GET /projects/:id/repository/branches`
async fn branches(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    version: Version,
) -> Result<Response, ApiError> {
    let viewer = viewer.in_version(version)?;
    let project = authorize_viewer(&state, viewer.as_ref(), &id, Permission::ReadBuild)
        .await?
        .project;
    let (heads, protection) = read_branches(&state, &project).await?;
    let body: Vec<_> = heads
        .iter()
        .map(|(name, c)| branch_json(&state, (&project, &protection), (name, c), version))
        .collect();
    Ok(Json(body).into_response())
}

/// `GET /projects/:id/repository/branches/:branch` (the name may hold slashes).
async fn branch(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((id, name)): Path<(String, String)>,
    version: Version,
) -> Result<Response, ApiError> {
    let viewer = viewer.in_version(version)?;
    let project = authorize_viewer(&state, viewer.as_ref(), &id, Permission::ReadBuild)
        .await?
        .project;
    let (heads, protection) = read_branches(&state, &project).await?;
    let (name, head) = heads
        .iter()
        .find(|(n, _)| *n == name)
        .ok_or(ApiError::NotFound("Branch"))?;
    let body = branch_json(&state, (&project, &protection), (name, head), version);
    Ok(Json(body).into_response())
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
    viewer: Viewer,
    Path(id): Path<String>,
    query: QueryPairs,
    OriginalUri(uri): OriginalUri,
    version: Version,
) -> Result<Response, ApiError> {
    let viewer = viewer.in_version(version)?;
    let project = authorize_viewer(&state, viewer.as_ref(), &id, Permission::ReadBuild)
        .await?
        .project;
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
    viewer: Viewer,
    Path((id, sha)): Path<(String, String)>,
    version: Version,
) -> Result<Response, ApiError> {
    let viewer = viewer.in_version(version)?;
    let project = authorize_viewer(&state, viewer.as_ref(), &id, Permission::ReadBuild)
        .await?
        .project;
    let found = read_commit(mirror(&state, &project).await?, &sha).await?;
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
