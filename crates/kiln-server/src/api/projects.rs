//! Projects, their members, and users, under v3 and v4 in each version's shapes: the calls
//! clients make before any build call (`projects.get`, `projects.list`, `users.get`).

use crate::auth::{CurrentUser, Viewer};
use crate::pagination;
use crate::params::Params;
use crate::present::projects::{access_level, Presenter};
use crate::present::ApiVersion as Version;
use crate::query::QueryPairs;
use crate::service::projects::{authorize, authorize_access, authorize_viewer};
use crate::{ApiError, AppState};
use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use kiln_core::{AccessLevel, PageInfo, Permission, Visibility};
use kiln_store::{ProjectFilter, StoreError};

pub fn routes(version: Version) -> Router<AppState> {
    Router::new()
        .route(
            "/projects",
            get(move |s, u, q, uri| list(s, u, q, uri, version))
                .post(move |s, u, p| create(s, u, p, version)),
        )
        .route(
            "/projects/{id}",
            get(move |s, u, p| show(s, u, p, version))
                .put(move |s, u, p, b| update(s, u, p, b, version)),
        )
        .route(
            "/projects/{id}/members",
            get(move |s, u, p| members(s, u, p, version))
                .post(move |s, u, p, b| add_member(s, u, p, b, version)),
        )
        .route(
            "/projects/{id}/members/{user_id}",
            get(move |s, u, p| member(s, u, p, version))
                .put(move |s, u, p, b| update_member(s, u, p, b, version))
                .delete(move |s, u, p| remove_member(s, u, p, version)),
        )
        .route("/users", get(move |s, u, q| users(s, u, q, version)))
        .route(
            "/users/{user_id}",
            get(move |s, u, p| user(s, u, p, version)),
        )
}

fn presenter(state: &AppState, version: Version) -> Presenter<'_> {
    Presenter {
        external_url: &state.config.external_url,
        version,
    }
}

fn boolean(query: &QueryPairs, name: &str, problems: &mut Vec<String>) -> bool {
    crate::params::boolean(query, name, problems).unwrap_or(false)
}

/// `GET /projects` — what the caller may see (`membership`, `owned`, `visibility`,
/// `search`, `simple`, `order_by`, `sort`, pages).
async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    query: QueryPairs,
    OriginalUri(uri): OriginalUri,
    version: Version,
) -> Result<Response, ApiError> {
    let user = viewer.in_version(version)?;
    let mut problems = Vec::new();
    let membership = boolean(&query, "membership", &mut problems);
    let owned = boolean(&query, "owned", &mut problems);
    let simple = boolean(&query, "simple", &mut problems);
    let visibility = match query.get("visibility").filter(|v| !v.is_empty()) {
        None => None,
        Some(raw) => match raw.parse::<Visibility>() {
            Ok(v) => Some(v),
            Err(_) => {
                problems.push("visibility does not have a valid value".into());
                None
            }
        },
    };
    let orders = [
        "id",
        "name",
        "path",
        "created_at",
        "updated_at",
        "last_activity_at",
    ];
    let order_by = match query.get("order_by").filter(|v| !v.is_empty()) {
        None => "created_at",
        Some(raw) => match orders.iter().find(|o| **o == raw) {
            Some(order) => order,
            None => {
                problems.push("order_by does not have a valid value".into());
                "created_at"
            }
        },
    };
    let ascending = match query.get("sort").filter(|v| !v.is_empty()) {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(_) => {
            problems.push("sort does not have a valid value".into());
            false
        }
    };
    if !problems.is_empty() {
        return Err(ApiError::Params(problems.join(", ")));
    }
    let page = pagination::page_request(&query, version)?;
    let filter = ProjectFilter {
        membership,
        owned,
        visibility,
        search: query
            .get("search")
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
        order_by,
        ascending,
    };
    let (projects, total) = state
        .store
        .projects()
        .list(user.as_ref().map(|u| (u.id, u.is_admin)), &filter, page)
        .await?;
    let presenter = presenter(&state, version);
    let body: Vec<_> = projects
        .iter()
        .map(|p| {
            if simple && version == Version::V4 {
                presenter.simple(&p.project)
            } else {
                presenter.project(p)
            }
        })
        .collect();
    let url_base = format!("{}{}", state.config.external_url, uri.path());
    let headers = pagination::headers(&PageInfo::new(page, total), &url_base, &query);
    Ok((headers, Json(body)).into_response())
}

/// `GET /projects/:id` (an id or a URL-encoded path).
async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    version: Version,
) -> Result<Response, ApiError> {
    let viewer = viewer.in_version(version)?;
    let access = authorize_viewer(&state, viewer.as_ref(), &id, Permission::ReadProject).await?;
    Ok(Json(presenter(&state, version).project(&access)).into_response())
}

/// `PUT /projects/:id` (maintainers) — `name`, and Kiln's `push_hook_secret`: the secret of
/// the project's incoming push hook (`POST /api/v4/projects/:id/push_hook`); empty removes
/// it. The secret is sealed at rest and never shown.
async fn update(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    Params(params): Params,
    version: Version,
) -> Result<Response, ApiError> {
    let access = authorize_access(&state, &user, &id, Permission::Maintain).await?;
    let project_id = access.project.id;
    let projects = state.store.projects();
    if let Some(name) = params.get("name") {
        if name.trim().is_empty() {
            return Err(validation("name", "can't be blank"));
        }
        projects.rename(project_id, name.trim()).await?;
    }
    if let Some(secret) = params.get("push_hook_secret") {
        let sealed = (!secret.is_empty()).then(|| state.cipher.encrypt(secret));
        projects
            .set_push_secret(project_id, sealed.as_deref())
            .await?;
    }
    let access =
        authorize_access(&state, &user, &project_id.to_string(), Permission::Maintain).await?;
    Ok(Json(presenter(&state, version).project(&access)).into_response())
}

/// `POST /projects` — `name` and/or `path`, `namespace_id` (a namespace path in Kiln, the
/// caller's username by default; only admins create elsewhere), `visibility` (v4) or
/// `visibility_level` / `public` (v3), and `import_url`, the repository Kiln mirrors. The
/// creator becomes its owner.
async fn create(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Params(params): Params,
    version: Version,
) -> Result<Response, ApiError> {
    let text = |name: &str| params.get(name).filter(|v| !v.is_empty());
    let (name, path) = match (text("name"), text("path")) {
        (None, None) => {
            return Err(ApiError::Params(
                "name, path are missing, at least one parameter must be provided".into(),
            ))
        }
        (Some(name), path) => (
            name.to_owned(),
            path.map_or_else(|| slug(name), str::to_owned),
        ),
        (None, Some(path)) => (path.to_owned(), path.to_owned()),
    };
    let namespace = text("namespace_id")
        .or(text("namespace"))
        .unwrap_or(&user.username)
        .to_owned();
    if namespace != user.username && !user.is_admin {
        return Err(ApiError::Forbidden(None));
    }
    let visibility = match (text("visibility"), text("visibility_level"), text("public")) {
        (Some(v), _, _) => v
            .parse::<Visibility>()
            .map_err(|_| ApiError::Params("visibility does not have a valid value".into()))?,
        (None, Some("20"), _) | (None, None, Some("true")) => Visibility::Public,
        (None, Some("10"), _) => Visibility::Internal,
        _ => Visibility::Private,
    };
    if !valid_path(&path) || !valid_path(&namespace) {
        return Err(validation(
            "path",
            "can contain only letters, digits, '_', '-' and '.'",
        ));
    }
    let projects = state.store.projects();
    let id = match projects
        .create(&namespace, &path, visibility, text("import_url"))
        .await
    {
        Ok(id) => id,
        Err(StoreError::Conflict(_)) => return Err(validation("path", "has already been taken")),
        Err(err) => return Err(err.into()),
    };
    if name != path {
        projects.rename(id, &name).await?;
    }
    projects.add_member(id, user.id, AccessLevel::Owner).await?;
    let access = authorize_access(&state, &user, &id.to_string(), Permission::ReadProject).await?;
    Ok((
        StatusCode::CREATED,
        Json(presenter(&state, version).project(&access)),
    )
        .into_response())
}

/// Rails' validation error: 400 `{"message": {"<field>": ["<problem>"]}}`.
fn validation(field: &str, problem: &str) -> ApiError {
    ApiError::Validation(serde_json::json!({ field: [problem] }))
}

fn valid_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 255
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !path.starts_with(['-', '.'])
        && !path.ends_with(".git")
}

/// A project path from its name, as GitLab's `Gitlab::Utils.slugify` does.
fn slug(name: &str) -> String {
    let lowered: String = name
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    lowered.trim_matches('-').to_owned()
}

/// `GET /projects/:id/members`
async fn members(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    version: Version,
) -> Result<Response, ApiError> {
    let project = authorize(&state, &user, &id, Permission::ReadProject).await?;
    let members = state.store.projects().members(project.id).await?;
    let presenter = presenter(&state, version);
    let body: Vec<_> = members.iter().map(|m| presenter.member(m)).collect();
    Ok(Json(body).into_response())
}

fn user_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::Params("user_id is invalid".into()))
}

/// `GET /projects/:id/members/:user_id`
async fn member(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, member)): Path<(String, String)>,
    version: Version,
) -> Result<Response, ApiError> {
    let project = authorize(&state, &user, &id, Permission::ReadProject).await?;
    let member_id = user_id(&member)?;
    let members = state.store.projects().members(project.id).await?;
    let found = members
        .iter()
        .find(|m| m.user.id == member_id)
        .ok_or(ApiError::NotFound("Member"))?;
    Ok(Json(presenter(&state, version).member(found)).into_response())
}

fn level_param(params: &QueryPairs) -> Result<AccessLevel, ApiError> {
    let raw = params
        .get("access_level")
        .ok_or_else(|| ApiError::Params("access_level is missing".into()))?;
    access_level(raw)
        .ok_or_else(|| ApiError::Params("access_level does not have a valid value".into()))
}

/// `POST /projects/:id/members` — `user_id`, `access_level`; 201, or 409 for a member.
async fn add_member(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    Params(params): Params,
    version: Version,
) -> Result<Response, ApiError> {
    let project = authorize(&state, &user, &id, Permission::Maintain).await?;
    let member_id = user_id(
        params
            .get("user_id")
            .ok_or_else(|| ApiError::Params("user_id is missing".into()))?,
    )?;
    let level = level_param(&params)?;
    let target = match state.store.users().get(member_id).await {
        Ok(target) => target,
        Err(StoreError::NotFound) => return Err(ApiError::NotFound("User")),
        Err(err) => return Err(err.into()),
    };
    let projects = state.store.projects();
    if projects
        .members(project.id)
        .await?
        .iter()
        .any(|m| m.user.id == member_id)
    {
        return Err(ApiError::Conflict("Member already exists".into()));
    }
    projects.add_member(project.id, target.id, level).await?;
    let added = kiln_store::MemberRecord {
        user: target,
        access: level,
    };
    Ok((
        StatusCode::CREATED,
        Json(presenter(&state, version).member(&added)),
    )
        .into_response())
}

/// `PUT /projects/:id/members/:user_id` — `access_level`.
async fn update_member(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, member)): Path<(String, String)>,
    Params(params): Params,
    version: Version,
) -> Result<Response, ApiError> {
    let project = authorize(&state, &user, &id, Permission::Maintain).await?;
    let member_id = user_id(&member)?;
    let level = level_param(&params)?;
    let projects = state.store.projects();
    let existing = projects.members(project.id).await?;
    let found = existing
        .into_iter()
        .find(|m| m.user.id == member_id)
        .ok_or(ApiError::NotFound("Member"))?;
    projects.add_member(project.id, member_id, level).await?;
    let updated = kiln_store::MemberRecord {
        access: level,
        ..found
    };
    Ok(Json(presenter(&state, version).member(&updated)).into_response())
}

/// `DELETE /projects/:id/members/:user_id` — 204 (v4), 200 (v3).
async fn remove_member(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, member)): Path<(String, String)>,
    version: Version,
) -> Result<Response, ApiError> {
    let project = authorize(&state, &user, &id, Permission::Maintain).await?;
    let removed = state
        .store
        .projects()
        .remove_member(project.id, user_id(&member)?)
        .await?;
    if !removed {
        return Err(ApiError::NotFound("Member"));
    }
    Ok(match version {
        Version::V3 => (StatusCode::OK, Json(serde_json::json!({}))).into_response(),
        Version::V4 => StatusCode::NO_CONTENT.into_response(),
    })
}

/// `GET /users?username=` (one or none), or every user, a page at a time.
async fn users(
    State(state): State<AppState>,
    CurrentUser(_): CurrentUser,
    query: QueryPairs,
    version: Version,
) -> Result<Response, ApiError> {
    let page = pagination::page_request(&query, version)?;
    let username = query.get("username").filter(|u| !u.is_empty());
    let users = state.store.users().list(username, page).await?;
    let presenter = presenter(&state, version);
    let body: Vec<_> = users.iter().map(|u| presenter.user(u)).collect();
    Ok(Json(body).into_response())
}

/// `GET /users/:id`
async fn user(
    State(state): State<AppState>,
    CurrentUser(_): CurrentUser,
    Path(id): Path<String>,
    version: Version,
) -> Result<Response, ApiError> {
    let found = match state.store.users().get(user_id(&id)?).await {
        Ok(found) => found,
        Err(StoreError::NotFound) => return Err(ApiError::NotFound("User")),
        Err(err) => return Err(err.into()),
    };
    Ok(Json(presenter(&state, version).user(&found)).into_response())
}
