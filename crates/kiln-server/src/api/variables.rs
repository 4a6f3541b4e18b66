//! Project CI/CD variables (`/projects/:id/variables`, v3 and v4; maintainers) and the
//! instance's (`/admin/ci/variables`, v4; admins), in current GitLab's `Entities::Ci::Variable`
//! (v3: GitLab 8.x's `key`, `value`, `protected`).

use crate::auth::CurrentUser;
use crate::params::{self, Params};
use crate::present::ApiVersion as Version;
use crate::query::QueryPairs;
use crate::service::ci_variables::{self as service, Variable, VariableInput};
use crate::service::projects::authorize;
use crate::{ApiError, AppState};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use kiln_core::Permission;
use kiln_store::UserRecord;
use serde_json::{json, Value};

pub fn routes(version: Version) -> Router<AppState> {
    let project = Router::new()
        .route(
            "/projects/{id}/variables",
            get(move |s, u, p| list(s, u, Owner::Project(p), version))
                .post(move |s, u, p, b| create(s, u, Owner::Project(p), b, version)),
        )
        .route(
            "/projects/{id}/variables/{key}",
            get(move |s, u, Path((id, key)), q| {
                one(s, u, Owner::Project(Path(id)), key, q, version)
            })
            .put(move |s, u, Path((id, key)), b| {
                update(s, u, Owner::Project(Path(id)), key, b, version)
            })
            .delete(move |s, u, Path((id, key)), q| {
                delete(s, u, Owner::Project(Path(id)), key, q, version)
            }),
        );
    if version == Version::V3 {
        return project;
    }
    project
        .route(
            "/admin/ci/variables",
            get(move |s, u| list(s, u, Owner::Instance, version))
                .post(move |s, u, b| create(s, u, Owner::Instance, b, version)),
        )
        .route(
            "/admin/ci/variables/{key}",
            get(move |s, u, Path(key), q| one(s, u, Owner::Instance, key, q, version))
                .put(move |s, u, Path(key), b| update(s, u, Owner::Instance, key, b, version))
                .delete(move |s, u, Path(key), q| delete(s, u, Owner::Instance, key, q, version)),
        )
}

/// Whose variables a route names.
enum Owner {
    Project(Path<String>),
    Instance,
}

/// The project id (None for the instance), once the caller may manage its variables.
async fn owner_id(
    state: &AppState,
    user: &UserRecord,
    owner: Owner,
) -> Result<Option<i64>, ApiError> {
    match owner {
        Owner::Project(Path(id)) => Ok(Some(
            authorize(state, user, &id, Permission::Maintain).await?.id,
        )),
        Owner::Instance if user.is_admin => Ok(None),
        Owner::Instance => Err(ApiError::Forbidden(None)),
    }
}

fn present(v: &Variable, version: Version) -> Value {
    match version {
        Version::V3 => json!({ "key": v.key, "value": v.value, "protected": v.protected }),
        Version::V4 => json!({
            "variable_type": if v.file { "file" } else { "env_var" },
            "key": v.key,
            "value": v.value,
            "hidden": false,
            "protected": v.protected,
            "masked": v.masked,
            "raw": v.raw,
            "environment_scope": v.environment_scope,
            "description": v.description,
        }),
    }
}

fn input(params: &QueryPairs) -> Result<VariableInput, ApiError> {
    let mut problems = Vec::new();
    let protected = params::boolean(params, "protected", &mut problems);
    let masked = params::boolean(params, "masked", &mut problems);
    let raw = params::boolean(params, "raw", &mut problems);
    if !problems.is_empty() {
        return Err(ApiError::Params(problems.join(", ")));
    }
    let text = |name: &str| params.get(name).map(str::to_owned);
    Ok(VariableInput {
        key: text("key"),
        value: text("value"),
        variable_type: text("variable_type").filter(|t| !t.is_empty()),
        protected,
        masked,
        raw,
        environment_scope: text("environment_scope"),
        description: text("description"),
    })
}

/// `filter[environment_scope]`: which of a key's definitions a route means.
fn scope(query: &QueryPairs) -> Option<&str> {
    query
        .get("filter[environment_scope]")
        .filter(|s| !s.is_empty())
}

async fn list(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    owner: Owner,
    version: Version,
) -> Result<Response, ApiError> {
    let owner = owner_id(&state, &user, owner).await?;
    let variables = service::list(&state, owner).await?;
    let body: Vec<_> = variables.iter().map(|v| present(v, version)).collect();
    Ok(Json(body).into_response())
}

async fn one(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    owner: Owner,
    key: String,
    query: QueryPairs,
    version: Version,
) -> Result<Response, ApiError> {
    let owner = owner_id(&state, &user, owner).await?;
    let variable = service::get(&state, owner, &key, scope(&query)).await?;
    Ok(Json(present(&variable, version)).into_response())
}

async fn create(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    owner: Owner,
    Params(params): Params,
    version: Version,
) -> Result<Response, ApiError> {
    let owner = owner_id(&state, &user, owner).await?;
    params::require(&params, &["key", "value"])?;
    let variable = service::create(&state, owner, input(&params)?).await?;
    Ok((StatusCode::CREATED, Json(present(&variable, version))).into_response())
}

async fn update(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    owner: Owner,
    key: String,
    Params(params): Params,
    version: Version,
) -> Result<Response, ApiError> {
    let owner = owner_id(&state, &user, owner).await?;
    let mut changes = input(&params)?;
    changes.key = None;
    let variable = service::update(&state, owner, &key, scope(&params), changes).await?;
    Ok(Json(present(&variable, version)).into_response())
}

/// 204 in v4; v3 answers with the variable removed.
async fn delete(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    owner: Owner,
    key: String,
    query: QueryPairs,
    version: Version,
) -> Result<Response, ApiError> {
    let owner = owner_id(&state, &user, owner).await?;
    let removed = service::delete(&state, owner, &key, scope(&query)).await?;
    Ok(match version {
        Version::V3 => Json(present(&removed, version)).into_response(),
        Version::V4 => StatusCode::NO_CONTENT.into_response(),
    })
}
