//! `/`: the projects the visitor can see, each with its default branch's latest pipeline.

use super::page::{self, Page};
use super::session::Visitor;
use crate::{ApiError, AppState};
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use kiln_core::PageRequest;
use kiln_store::ProjectFilter;

/// Projects on the dashboard (pagination comes with the project pages).
const SHOWN: u32 = 100;

struct ProjectRow {
    path: String,
    default_branch: String,
    status: Option<String>,
}

#[derive(Template)]
#[template(path = "projects.html")]
struct Dashboard<'a> {
    page: &'a Page,
    projects: Vec<ProjectRow>,
}

/// `GET /`
pub async fn dashboard(
    State(state): State<AppState>,
    visitor: Visitor,
) -> Result<Response, ApiError> {
    let viewer = visitor
        .session
        .as_ref()
        .map(|(_, s)| (s.user.id, s.user.is_admin));
    let filter = ProjectFilter {
        order_by: "last_activity_at",
        ..ProjectFilter::default()
    };
    let page_request = PageRequest {
        page: 1,
        per_page: SHOWN,
    };
    let (listed, _) = state
        .store
        .projects()
        .list(viewer, &filter, page_request)
        .await?;
    let mut projects = Vec::with_capacity(listed.len());
    for access in listed {
        let project = access.project;
        let latest = state
            .store
            .pipelines()
            .latest(project.id, &project.default_branch)
            .await?;
        projects.push(ProjectRow {
            path: project.full_path(),
            default_branch: project.default_branch.clone(),
            status: latest.map(|p| p.status),
        });
    }
    let (page, cookies) = visitor.page();
    Ok(page::render(
        StatusCode::OK,
        &Dashboard {
            page: &page,
            projects,
        },
        &cookies,
    ))
}
