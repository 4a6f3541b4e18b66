//! A project's CI/CD settings for its maintainers (`/NS/PROJECT/-/settings/ci_cd`, GitLab's
//! address): its variables (a masked value is never written into a page), its pipeline
//! triggers, the runners that may run its jobs with pause and resume, and a registration
//! token for its own runners (shown once, when issued). `/admin/runners` is the instance's
//! runners page for admins. Every change is a form POST with the session's CSRF token.

use super::page::{self, Page};
use super::pipelines::{duration, failed};
use super::session::Visitor;
use crate::params::Params;
use crate::query::QueryPairs;
use crate::service::ci_variables::{self, VariableInput};
use crate::{ApiError, AppState};
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use kiln_core::Permission;
use kiln_store::{ProjectRecord, RunnerRecord, RunnerScope, RunnerUpdate, UserRecord};

pub(super) struct RunnerRow {
    id: i64,
    description: String,
    kind: &'static str,
    status: &'static str,
    tags: String,
    contacted: String,
    active: bool,
    /// Where its pause and resume forms post, for those who may manage it.
    action: Option<String>,
}

struct VariableRow {
    key: String,
    /// None for a masked variable: its value never reaches a page.
    value: Option<String>,
    file: bool,
    protected: bool,
    masked: bool,
    raw: bool,
    environment_scope: String,
}

struct TriggerRow {
    id: i64,
    description: String,
    owner: String,
    token: String,
    last_used: String,
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage<'a> {
    page: &'a Page,
    project: String,
    variables: Vec<VariableRow>,
    triggers: Vec<TriggerRow>,
    runners: Vec<RunnerRow>,
    /// A registration token just issued: shown this once.
    new_token: Option<String>,
    token_action: String,
    token_scope: &'static str,
}

#[derive(Template)]
#[template(path = "admin_runners.html")]
struct AdminRunnersPage<'a> {
    page: &'a Page,
    runners: Vec<RunnerRow>,
    new_token: Option<String>,
    token_action: String,
    token_scope: &'static str,
}

fn to_sign_in() -> Response {
    page::redirect("/users/sign_in", &[])
}

/// The project, once the visitor (signed in) may maintain it.
async fn maintained(
    state: &AppState,
    visitor: &Visitor,
    (namespace, repo): (&str, &str),
) -> Result<(ProjectRecord, UserRecord), Response> {
    let user = visitor.user().ok_or_else(to_sign_in)?.clone();
    let raw = format!("{namespace}/{repo}");
    match crate::service::projects::authorize(state, &user, &raw, Permission::Maintain).await {
        Ok(project) => Ok((project, user)),
        Err(err) => Err(failed(visitor, err)),
    }
}

/// As `maintained`, for a form: its CSRF token first.
async fn maintained_form(
    state: &AppState,
    visitor: &Visitor,
    path: (&str, &str),
    params: &QueryPairs,
) -> Result<(ProjectRecord, UserRecord), Response> {
    super::pipelines::form_actor(state, visitor, path, params, Permission::Maintain).await
}

/// The visitor, once they are a signed-in admin; anyone else is told the page is not there,
/// as GitLab answers non-admins on its admin area.
async fn admin(visitor: &Visitor, params: Option<&QueryPairs>) -> Result<UserRecord, Response> {
    if let Some(params) = params {
        if let Some(refused) = visitor.refuse_form(params.get("authenticity_token")) {
            return Err(refused);
        }
    }
    let user = visitor.user().ok_or_else(to_sign_in)?;
    if !user.is_admin {
        return Err(failed(visitor, ApiError::NotFoundMessage("404 Not found")));
    }
    Ok(user.clone())
}

fn runner_rows(
    runners: &[RunnerRecord],
    now: i64,
    action: impl Fn(&RunnerRecord) -> Option<String>,
) -> Vec<RunnerRow> {
    runners
        .iter()
        .map(|runner| RunnerRow {
            id: runner.id,
            description: runner.description.clone(),
            kind: match (runner.embedded, runner.runner_type.as_str()) {
                (true, _) => "embedded",
                (false, "project_type") => "project",
                _ => "instance",
            },
            status: crate::service::runners::status(runner, now),
            tags: runner.tags.join(", "),
            contacted: match runner.contacted_at {
                Some(at) => format!("{} ago", duration((now - at).max(0) / 1000)),
                None => "never".to_owned(),
            },
            active: runner.active,
            action: action(runner),
        })
        .collect()
}

/// `GET /NS/PROJECT/-/settings/ci_cd`
pub async fn show(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((namespace, repo)): Path<(String, String)>,
) -> Response {
    match maintained(&state, &visitor, (&namespace, &repo)).await {
        Ok((project, user)) => settings_page(&state, &visitor, &project, &user, None).await,
        Err(refused) => refused,
    }
}

async fn settings_page(
    state: &AppState,
    visitor: &Visitor,
    project: &ProjectRecord,
    user: &UserRecord,
    new_token: Option<String>,
) -> Response {
    match settings_body(state, visitor, project, user, new_token).await {
        Ok(response) => response,
        Err(err) => failed(visitor, err),
    }
}

async fn settings_body(
    state: &AppState,
    visitor: &Visitor,
    project: &ProjectRecord,
    user: &UserRecord,
    new_token: Option<String>,
) -> Result<Response, ApiError> {
    let now = kiln_store::now_ms();
    let variables = ci_variables::list(state, Some(project.id))
        .await?
        .into_iter()
        .map(|v| VariableRow {
            value: (!v.masked).then_some(v.value),
            key: v.key,
            file: v.file,
            protected: v.protected,
            masked: v.masked,
            raw: v.raw,
            environment_scope: v.environment_scope,
        })
        .collect();
    let triggers = state
        .store
        .triggers()
        .list(project.id)
        .await?
        .iter()
        .map(|t| TriggerRow {
            id: t.id,
            description: t.description.clone(),
            owner: t
                .owner
                .as_ref()
                .map_or_else(|| "—".to_owned(), |o| o.username.clone()),
            token: crate::service::triggers::shown_token(state, t, user.id).unwrap_or_default(),
            last_used: match t.last_used_at {
                Some(at) => format!("{} ago", duration((now - at).max(0) / 1000)),
                None => "never".to_owned(),
            },
        })
        .collect();
    let runners = state
        .store
        .runners()
        .list(RunnerScope::Project(project.id))
        .await?;
    let base = format!("/{}/-/settings/ci_cd/runners", project.full_path());
    // A maintainer manages the project's own runners; the instance's are the admins'.
    let rows = runner_rows(&runners, now, |r| {
        let own = r.project_id == Some(project.id) && !r.embedded;
        (own || user.is_admin).then(|| format!("{base}/{}", r.id))
    });
    let (page, cookies) = visitor.page();
    let body = SettingsPage {
        page: &page,
        project: project.full_path(),
        variables,
        triggers,
        runners: rows,
        new_token,
        token_action: format!(
            "/{}/-/settings/ci_cd/registration_token",
            project.full_path()
        ),
        token_scope: "a project",
    };
    Ok(page::render(StatusCode::OK, &body, &cookies))
}

fn settings_url(project: &ProjectRecord, section: &str) -> String {
    format!("/{}/-/settings/ci_cd#{section}", project.full_path())
}

fn checked(params: &QueryPairs, name: &str) -> Option<bool> {
    Some(params.get(name).is_some_and(|v| !v.is_empty() && v != "0"))
}

/// `POST /NS/PROJECT/-/settings/ci_cd/FORM`: one of the page's forms, once its CSRF token
/// and the visitor's right to maintain the project are checked.
pub async fn submit(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((namespace, repo, form)): Path<(String, String, String)>,
    Params(params): Params,
) -> Response {
    let (project, user) =
        match maintained_form(&state, &visitor, (&namespace, &repo), &params).await {
            Ok(found) => found,
            Err(refused) => return refused,
        };
    let done = match form.split('/').collect::<Vec<_>>().as_slice() {
        ["variables"] => save_variable(&state, &project, &params).await,
        ["variables", "delete"] => delete_variable(&state, &project, &params).await,
        ["triggers"] => add_trigger(&state, &project, &user, &params).await,
        ["triggers", "delete"] => delete_trigger(&state, &project, &params).await,
        ["registration_token"] => {
            let reset = checked(&params, "reset").unwrap_or(false);
            let issued = state
                .store
                .runners()
                .issue_registration_token(Some(project.id), reset)
                .await;
            match issued {
                Ok(token) => {
                    return settings_page(&state, &visitor, &project, &user, Some(token)).await
                }
                Err(err) => Err(err.into()),
            }
        }
        ["runners", id, action] => set_active(&state, &user, id, action)
            .await
            .map(|()| "runners"),
        _ => Err(ApiError::NotFoundMessage("404 Not found")),
    };
    match done {
        Ok(section) => page::redirect(&settings_url(&project, section), &[]),
        Err(err) => failed(&visitor, err),
    }
}

/// Adds a variable, or changes the one with that key and environment scope.
async fn save_variable(
    state: &AppState,
    project: &ProjectRecord,
    params: &QueryPairs,
) -> Result<&'static str, ApiError> {
    let text = |name: &str| params.get(name).map(str::to_owned);
    let scope = text("environment_scope")
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "*".to_owned());
    let input = VariableInput {
        key: text("key"),
        value: text("value"),
        variable_type: text("variable_type").filter(|t| !t.is_empty()),
        protected: checked(params, "protected"),
        masked: checked(params, "masked"),
        // The form asks whether to expand references (GitLab's "Expand variable reference").
        raw: checked(params, "expanded").map(|expanded| !expanded),
        environment_scope: Some(scope.clone()),
        description: None,
    };
    let key = input.key.clone().unwrap_or_default();
    let exists = ci_variables::get(state, Some(project.id), &key, Some(&scope))
        .await
        .is_ok();
    if exists {
        let changes = VariableInput { key: None, ..input };
        ci_variables::update(state, Some(project.id), &key, Some(&scope), changes).await?;
    } else {
        ci_variables::create(state, Some(project.id), input).await?;
    }
    Ok("variables")
}

/// Removes the variable of `key` and `environment_scope`.
async fn delete_variable(
    state: &AppState,
    project: &ProjectRecord,
    params: &QueryPairs,
) -> Result<&'static str, ApiError> {
    let key = params.get("key").unwrap_or_default();
    let scope = params.get("environment_scope");
    ci_variables::delete(state, Some(project.id), key, scope).await?;
    Ok("variables")
}

async fn add_trigger(
    state: &AppState,
    project: &ProjectRecord,
    user: &UserRecord,
    params: &QueryPairs,
) -> Result<&'static str, ApiError> {
    let description = params.get("description").unwrap_or("").trim();
    if description.is_empty() {
        return Err(ApiError::BadRequest("description is missing".into()));
    }
    crate::service::triggers::create(state, project.id, user.id, description).await?;
    Ok("triggers")
}

async fn delete_trigger(
    state: &AppState,
    project: &ProjectRecord,
    params: &QueryPairs,
) -> Result<&'static str, ApiError> {
    let id = params.get("id").and_then(|id| id.parse::<i64>().ok());
    let id = id.ok_or(ApiError::NotFound("Trigger"))?;
    state.store.triggers().remove(project.id, id).await?;
    Ok("triggers")
}

/// Pauses or resumes runner `id` for `user`, who may manage it.
async fn set_active(
    state: &AppState,
    user: &UserRecord,
    id: &str,
    action: &str,
) -> Result<(), ApiError> {
    let active = match action {
        "pause" => false,
        "resume" => true,
        _ => return Err(ApiError::NotFoundMessage("404 Not found")),
    };
    let id: i64 = id.parse().map_err(|_| ApiError::NotFound("Runner"))?;
    let runner = match state.store.runners().get(id).await {
        Ok(runner) => runner,
        Err(kiln_store::StoreError::NotFound) => return Err(ApiError::NotFound("Runner")),
        Err(err) => return Err(err.into()),
    };
    if !crate::service::runners::may_manage(state, user, &runner).await? {
        return Err(ApiError::Forbidden(None));
    }
    let update = RunnerUpdate {
        active: Some(active),
        ..RunnerUpdate::default()
    };
    state.store.runners().update(id, &update).await?;
    Ok(())
}

/// `GET /admin/runners`
pub async fn admin_runners(State(state): State<AppState>, visitor: Visitor) -> Response {
    match admin(&visitor, None).await {
        Ok(_) => admin_page(&state, &visitor, None).await,
        Err(refused) => refused,
    }
}

async fn admin_page(state: &AppState, visitor: &Visitor, new_token: Option<String>) -> Response {
    let runners = match state.store.runners().list(RunnerScope::All).await {
        Ok(runners) => runners,
        Err(err) => return failed(visitor, err.into()),
    };
    let rows = runner_rows(&runners, kiln_store::now_ms(), |r| {
        Some(format!("/admin/runners/{}", r.id))
    });
    let (page, cookies) = visitor.page();
    let body = AdminRunnersPage {
        page: &page,
        runners: rows,
        new_token,
        token_action: "/admin/runners/registration_token".to_owned(),
        token_scope: "an instance",
    };
    page::render(StatusCode::OK, &body, &cookies)
}

/// `POST /admin/runners/registration_token` (`reset` revokes earlier ones)
pub async fn issue_instance_token(
    State(state): State<AppState>,
    visitor: Visitor,
    Params(params): Params,
) -> Response {
    if let Err(refused) = admin(&visitor, Some(&params)).await {
        return refused;
    }
    let reset = checked(&params, "reset").unwrap_or(false);
    match state
        .store
        .runners()
        .issue_registration_token(None, reset)
        .await
    {
        Ok(token) => admin_page(&state, &visitor, Some(token)).await,
        Err(err) => failed(&visitor, err.into()),
    }
}

/// `POST /admin/runners/ID/pause|resume`
pub async fn admin_runner(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((id, action)): Path<(String, String)>,
    Params(params): Params,
) -> Response {
    let user = match admin(&visitor, Some(&params)).await {
        Ok(user) => user,
        Err(refused) => return refused,
    };
    match set_active(&state, &user, &id, &action).await {
        Ok(()) => page::redirect("/admin/runners", &[]),
        Err(err) => failed(&visitor, err),
    }
}
