//! Lint: v3's `POST /ci/lint` (GitLab 8.x `lib/api/lint.rb`): `content` in, `{status, errors}`
//! out; and v4's, further down, in current GitLab's shape.
//! `content` is declared with Grape's `requires`, so leaving it out is Grape's 400
//! `{"error":"content is missing"}`; an empty one is linted ("Please provide content…").
//! Every lint runs through `service::compiler`, off the request threads; v3's needs no token
//! (as in GitLab 8.x), v4's needs a signed-in user (as current GitLab's).

use crate::params::{self, Params};
use crate::service::compiler;
use crate::ApiError;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

pub async fn lint(Params(params): Params) -> Result<Response, ApiError> {
    let Some(content) = params.get("content") else {
        return Ok(params::grape_error(&params::missing(&params, &["content"])));
    };
    let content = content.to_owned();
    // Includes cannot be read without a project: none is found.
    let outcome =
        compiler::run(move || kiln_ci::lint(&content, &kiln_ci::NoRepository).map(|_| ())).await;
    let body = match outcome
        .map_err(str::to_owned)
        .and_then(|r| r.map_err(|e| e.message))
    {
        Ok(()) => json!({ "status": "valid", "errors": [] }),
        Err(message) => json!({ "status": "invalid", "errors": [message] }),
    };
    Ok(Json(body).into_response())
}

/// Current GitLab's shape of a lint result: `valid`, `errors`, `warnings`, `merged_yaml`,
/// `includes` (`lib/api/entities/ci/lint/result.rb`).
fn v4_result(content: &str, read: &dyn kiln_ci::Repository) -> serde_json::Value {
    v4_body(content, kiln_ci::lint(content, read).map_err(|e| e.message))
}

fn v4_body(content: &str, outcome: Result<kiln_ci::PipelinePlan, String>) -> serde_json::Value {
    match outcome {
        Ok(plan) => json!({
            "valid": true,
            "errors": [],
            "warnings": plan.warnings,
            "merged_yaml": content,
            "includes": [],
        }),
        Err(message) => json!({
            "valid": false,
            "errors": [message],
            "warnings": [],
            "merged_yaml": null,
            "includes": [],
        }),
    }
}

/// v4 `POST /ci/lint` (GitLab before 16.0): `status` besides current GitLab's fields.
pub async fn lint_v4(
    crate::auth::CurrentUser(_user): crate::auth::CurrentUser,
    Params(params): Params,
) -> Result<Response, ApiError> {
    let Some(content) = params.get("content") else {
        return Err(ApiError::Params("content is missing".into()));
    };
    let content = content.to_owned();
    let mut body = compiler::run(move || v4_result(&content, &kiln_ci::NoRepository))
        .await
        .unwrap_or_else(|message| v4_body("", Err(message.to_owned())));
    let valid = body["valid"] == json!(true);
    body["status"] = json!(if valid { "valid" } else { "invalid" });
    Ok(Json(body).into_response())
}

/// `POST /projects/:id/ci/lint` (`content`) and `GET /projects/:id/ci/lint` (the project's
/// `.gitlab-ci.yml` at `content_ref`, or the default branch); includes are read from the
/// project's repository at that ref.
pub async fn lint_project(
    axum::extract::State(state): axum::extract::State<crate::AppState>,
    crate::auth::CurrentUser(user): crate::auth::CurrentUser,
    axum::extract::Path(id): axum::extract::Path<String>,
    Params(params): Params,
) -> Result<Response, ApiError> {
    let project =
        crate::service::projects::authorize(&state, &user, &id, kiln_core::Permission::UpdateBuild)
            .await?;
    let ref_name = params
        .get("content_ref")
        .or(params.get("ref"))
        .filter(|r| !r.is_empty())
        .unwrap_or(&project.default_branch)
        .to_owned();
    let mirror = match &project.repo_url {
        Some(url) => Some(
            state
                .mirrors
                .sync(project.id, url)
                .await
                .map_err(|e| ApiError::Internal(e.into()))?,
        ),
        None => None,
    };
    let given = params.get("content").map(str::to_owned);
    let body = compiler::run(move || {
        // The ref's commit: its `.gitlab-ci.yml` unless content is given, and its files for
        // the includes either way.
        let (commit, file) = match &mirror {
            Some(repo) => match crate::git::read_for_pipeline(
                repo,
                &ref_name,
                crate::service::pipelines::CONFIG_PATH,
            ) {
                Ok((commit, _, file)) => (Some((repo.to_path_buf(), commit.sha)), file),
                Err(_) => (None, None),
            },
            None => (None, None),
        };
        let Some(content) = given.or(file) else {
            return json!({
                "valid": false,
                "errors": ["Please provide content of .gitlab-ci.yml"],
                "warnings": [],
                "merged_yaml": null,
                "includes": [],
            });
        };
        match commit {
            Some((repo, sha)) => {
                let files = crate::git::CommitFiles {
                    repo,
                    sha,
                    before: None,
                };
                v4_result(&content, &files)
            }
            None => v4_result(&content, &kiln_ci::NoRepository),
        }
    })
    .await
    .unwrap_or_else(|message| v4_body("", Err(message.to_owned())));
    Ok(Json(body).into_response())
}
