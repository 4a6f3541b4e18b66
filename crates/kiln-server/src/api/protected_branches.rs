//! `GET|POST|PATCH|DELETE /projects/:id/protected_branches[/:name]`, v3 and v4, in current
//! GitLab's `ProtectedBranch` entity. Reading takes read access to the project's builds;
//! protecting and unprotecting take a maintainer, as in GitLab. A pipeline made on a
//! protected branch is protected: its jobs get protected variables and `ref_protected`
//! runners.

use crate::auth::CurrentUser;
use crate::params::{self, Params};
use crate::present::time::utc;
use crate::present::ApiVersion as Version;
use crate::query::QueryPairs;
use crate::service::projects::authorize;
use crate::{ApiError, AppState};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use kiln_core::Permission;
use kiln_store::{BranchAccess, ProtectedBranchRecord};
use serde_json::{json, Value};

pub fn routes(_version: Version) -> Router<AppState> {
    Router::new()
        .route("/projects/{id}/protected_branches", get(list).post(create))
        .route(
            "/projects/{id}/protected_branches/{*name}",
            get(one).patch(update).delete(remove),
        )
}

/// GitLab's words for an access level.
fn level_description(level: i64) -> &'static str {
    match level {
        0 => "No one",
        30 => "Developers + Maintainers",
        60 => "Admins",
        _ => "Maintainers",
    }
}

fn present(branch: &ProtectedBranchRecord) -> Value {
    let level = |level: i64| {
        json!([{
            "id": branch.id,
            "access_level": level,
            "access_level_description": level_description(level),
            "deploy_key_id": null,
            "user_id": null,
            "group_id": null,
        }])
    };
    json!({
        "id": branch.id,
        "name": branch.name,
        "push_access_levels": level(branch.access.push_access_level),
        "merge_access_levels": level(branch.access.merge_access_level),
        "unprotect_access_levels": level(branch.access.unprotect_access_level),
        "allow_force_push": branch.access.allow_force_push,
        "code_owner_approval_required": branch.access.code_owner_approval_required,
        "inherited": false,
        "created_at": utc(branch.created_at),
    })
}

/// The access levels and flags given, over `base`; Grape's messages for bad values.
fn access(params: &QueryPairs, base: BranchAccess) -> Result<BranchAccess, ApiError> {
    let mut problems = Vec::new();
    let mut level = |name: &str, current: i64| match params.get(name) {
        None | Some("") => current,
        Some(text) => match text.parse::<i64>() {
            Ok(value) if [0, 30, 40, 60].contains(&value) => value,
            _ => {
                problems.push(format!("{name} does not have a valid value"));
                current
            }
        },
    };
    let push_access_level = level("push_access_level", base.push_access_level);
    let merge_access_level = level("merge_access_level", base.merge_access_level);
    let unprotect_access_level = level("unprotect_access_level", base.unprotect_access_level);
    let allow_force_push = params::boolean(params, "allow_force_push", &mut problems);
    let code_owners = params::boolean(params, "code_owner_approval_required", &mut problems);
    if !problems.is_empty() {
        return Err(ApiError::Params(problems.join(", ")));
    }
    Ok(BranchAccess {
        push_access_level,
        merge_access_level,
        unprotect_access_level,
        allow_force_push: allow_force_push.unwrap_or(base.allow_force_push),
        code_owner_approval_required: code_owners.unwrap_or(base.code_owner_approval_required),
    })
}

async fn list(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    let project = authorize(&state, &user, &id, Permission::ReadBuild).await?;
    let search = query.get("search").unwrap_or("");
    let branches = state.store.protected_branches().list(project.id).await?;
    let body: Vec<Value> = branches
        .iter()
        .filter(|b| b.name.contains(search))
        .map(present)
        .collect();
    Ok(Json(body).into_response())
}

async fn one(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let project = authorize(&state, &user, &id, Permission::ReadBuild).await?;
    let branch = state
        .store
        .protected_branches()
        .get(project.id, &name)
        .await
        .map_err(|e| not_found(e, "Protected Branch"))?;
    Ok(Json(present(&branch)).into_response())
}

async fn create(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    Params(params): Params,
) -> Result<Response, ApiError> {
    let project = authorize(&state, &user, &id, Permission::Maintain).await?;
    let problems = params::missing(&params, &["name"]);
    if !problems.is_empty() {
        return Err(ApiError::Params(problems.join(", ")));
    }
    let name = params.get("name").unwrap_or("").trim();
    if name.is_empty() {
        return Err(ApiError::Validation(json!({ "name": ["can't be blank"] })));
    }
    let access = access(&params, BranchAccess::default())?;
    let branch = state
        .store
        .protected_branches()
        .create(project.id, name, &access)
        .await?;
    Ok((StatusCode::CREATED, Json(present(&branch))).into_response())
}

/// `PATCH`: the flags and levels given change, the rest stays.
async fn update(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, name)): Path<(String, String)>,
    Params(params): Params,
) -> Result<Response, ApiError> {
    let project = authorize(&state, &user, &id, Permission::Maintain).await?;
    let branches = state.store.protected_branches();
    let current = branches
        .get(project.id, &name)
        .await
        .map_err(|e| not_found(e, "Protected Branch"))?;
    let access = access(&params, current.access.clone())?;
    let branch = branches.update(project.id, &name, &access).await?;
    Ok(Json(present(&branch)).into_response())
}

async fn remove(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let project = authorize(&state, &user, &id, Permission::Maintain).await?;
    state
        .store
        .protected_branches()
        .delete(project.id, &name)
        .await
        .map_err(|e| not_found(e, "Protected Branch"))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn not_found(err: kiln_store::StoreError, what: &'static str) -> ApiError {
    match err {
        kiln_store::StoreError::NotFound => ApiError::NotFound(what),
        other => other.into(),
    }
}
