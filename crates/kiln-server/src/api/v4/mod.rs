//! `/api/v4`: current GitLab's API (what is implemented of it).

pub mod jobs;
mod pipelines;
pub mod runner_protocol;

use crate::api::runners;
use crate::present::runners::Version;
use crate::AppState;
use axum::routing::{get, post};
use axum::Router;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/projects/{id}/pipeline", post(pipelines::create))
        .route("/projects/{id}/pipelines", get(pipelines::list))
        .route("/projects/{id}/pipelines/latest", get(pipelines::latest))
        .route(
            "/projects/{id}/pipelines/{pipeline_id}",
            get(pipelines::show).delete(pipelines::delete),
        )
        .route(
            "/projects/{id}/pipelines/{pipeline_id}/jobs",
            get(jobs::list_for_pipeline),
        )
        .route(
            "/projects/{id}/pipelines/{pipeline_id}/bridges",
            get(jobs::list_bridges),
        )
        .route(
            "/projects/{id}/pipelines/{pipeline_id}/variables",
            get(pipelines::variables),
        )
        .route(
            "/projects/{id}/pipelines/{pipeline_id}/cancel",
            post(pipelines::cancel),
        )
        .route(
            "/projects/{id}/pipelines/{pipeline_id}/retry",
            post(pipelines::retry),
        )
        .route("/projects/{id}/jobs", get(jobs::list))
        .route("/projects/{id}/jobs/{job_id}", get(jobs::show))
        .route("/projects/{id}/jobs/{job_id}/cancel", post(jobs::cancel))
        .route("/projects/{id}/jobs/{job_id}/retry", post(jobs::retry))
        .route("/projects/{id}/jobs/{job_id}/erase", post(jobs::erase))
        .route("/projects/{id}/jobs/{job_id}/play", post(jobs::play))
        .route("/projects/{id}/jobs/{job_id}/trace", get(jobs::trace))
        .route(
            "/projects/{id}/jobs/{job_id}/artifacts",
            get(jobs::artifacts).delete(jobs::delete_artifacts),
        )
        .route(
            "/projects/{id}/jobs/{job_id}/artifacts/keep",
            post(jobs::keep),
        )
        .route(
            "/projects/{id}/jobs/{job_id}/artifacts/{*artifact_path}",
            get(jobs::artifact_file),
        )
        .route(
            "/projects/{id}/jobs/artifacts/{*rest}",
            get(jobs::artifacts_by_ref),
        )
        .route("/job", get(jobs::current))
        .route("/ci/lint", post(crate::api::lint::lint_v4))
        .route(
            "/projects/{id}/ci/lint",
            get(crate::api::lint::lint_project).post(crate::api::lint::lint_project),
        )
        .route(
            "/runners",
            get(|s, u, q, uri| runners::list_owned(s, u, q, uri, Version::V4))
                .post(runner_protocol::register)
                .delete(runner_protocol::unregister),
        )
        .merge(runner_protocol::routes())
        .merge(runners::routes(Version::V4))
        .merge(crate::api::user::routes(Version::V4))
        .merge(crate::api::projects::routes(Version::V4))
        .merge(crate::api::repository::routes(Version::V4))
        .merge(crate::api::commit_statuses::routes(Version::V4))
        .merge(crate::api::variables::routes(Version::V4))
        .merge(crate::api::hooks::routes(Version::V4))
        .merge(crate::api::push_hook::routes())
        .merge(crate::api::schedules::routes())
        .merge(crate::api::protected_branches::routes(Version::V4))
        .merge(crate::api::triggers::routes(Version::V4))
}
