//! The web UI: pages rendered on the server from compile-checked templates (askama, in
//! `templates/`), with their stylesheet embedded in the binary, at GitLab's addresses. Pages
//! work without JavaScript; every form carries a CSRF token; a strict Content-Security-Policy
//! allows no inline script or style. Handlers are thin: they parse, ask the services, render.

mod artifacts;
mod assets;
mod badges;
mod dag;
mod jobs;
mod live;
mod log;
mod page;
mod pipelines;
mod projects;
mod session;
mod settings;
mod sign_in;

use crate::AppState;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

pub use session::{PeerAddr, SESSION_COOKIE};

/// No inline script or style, nothing from elsewhere, no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(projects::dashboard))
        .route("/users/sign_in", get(sign_in::form).post(sign_in::submit))
        .route("/users/sign_out", post(sign_in::sign_out))
        .route("/-/assets/kiln.css", get(assets::stylesheet))
        .route("/-/assets/kiln.js", get(assets::script))
        .route("/admin/runners", get(settings::admin_runners))
        .route(
            "/admin/runners/registration_token",
            post(settings::issue_instance_token),
        )
        .route("/admin/runners/{id}/{action}", post(settings::admin_runner))
        .route("/{namespace}/{repo}", get(pipelines::project_home))
        .route("/{namespace}/{repo}/badges/{*badge}", get(badges::show))
        .route("/{namespace}/{repo}/-/settings/ci_cd", get(settings::show))
        .route(
            "/{namespace}/{repo}/-/settings/ci_cd/{*form}",
            post(settings::submit),
        )
        .route(
            "/{namespace}/{repo}/-/pipelines",
            get(pipelines::list).post(pipelines::create),
        )
        .route("/{namespace}/{repo}/-/pipelines/{id}", get(pipelines::show))
        .route(
            "/{namespace}/{repo}/-/pipelines/{id}/cancel",
            post(pipelines::cancel),
        )
        .route(
            "/{namespace}/{repo}/-/pipelines/{id}/retry",
            post(pipelines::retry),
        )
        .route("/{namespace}/{repo}/-/jobs", get(jobs::list))
        .route("/{namespace}/{repo}/-/jobs/{id}", get(jobs::show))
        .route("/{namespace}/{repo}/-/jobs/{id}/raw", get(jobs::raw))
        .route(
            "/{namespace}/{repo}/-/jobs/{id}/artifacts/download",
            get(artifacts::download),
        )
        .route(
            "/{namespace}/{repo}/-/jobs/{id}/artifacts/browse",
            get(artifacts::browse_top),
        )
        .route(
            "/{namespace}/{repo}/-/jobs/{id}/artifacts/browse/{*dir}",
            get(artifacts::browse),
        )
        .route(
            "/{namespace}/{repo}/-/jobs/{id}/artifacts/raw/{*path}",
            get(artifacts::raw),
        )
        .route(
            "/{namespace}/{repo}/-/jobs/{id}/artifacts/keep",
            post(jobs::keep_artifacts),
        )
        .route("/{namespace}/{repo}/-/jobs/{id}/log", get(jobs::log_window))
        .route(
            "/{namespace}/{repo}/-/jobs/{id}/log/search",
            get(jobs::log_search),
        )
        .route(
            "/{namespace}/{repo}/-/jobs/{id}/events",
            get(live::job_events),
        )
        .route("/{namespace}/{repo}/-/events", get(live::project_events))
        .route("/{namespace}/{repo}/-/jobs/{id}/{action}", post(jobs::act))
        .layer(axum::middleware::map_response(security_headers))
}

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}
