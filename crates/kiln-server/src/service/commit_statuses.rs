//! Commit statuses from other systems (`POST /projects/:id/statuses/:sha`), as GitLab's
//! `Ci::CreateCommitStatusService`: the commit must be in the repository; the ref is the one
//! given, else that of the commit's newest pipeline, else a branch holding the commit; the
//! status joins the newest pipeline of that sha and ref, or a new `external` pipeline.

use crate::git;
use crate::service::repository::{blocking, mirror, read_commit};
use crate::{ApiError, AppInner};
use kiln_core::BuildStatus;
use kiln_store::{
    BuildRecord, NewPipeline, ProjectRecord, ReportFailure, StatusReport, UserRecord,
};

/// What a reporter sent, checked.
pub struct Report {
    pub sha: String,
    pub state: BuildStatus,
    pub ref_name: Option<String>,
    pub name: String,
    pub pipeline_id: Option<i64>,
    pub target_url: Option<String>,
    pub description: Option<String>,
    pub coverage: Option<f64>,
}

pub async fn report(
    app: &AppInner,
    project: &ProjectRecord,
    user: &UserRecord,
    report: Report,
) -> Result<BuildRecord, ApiError> {
    let repo = mirror(app, project).await?;
    let commit = read_commit(repo.clone(), &report.sha).await?;
    let ref_name = match report.ref_name.clone() {
        Some(r) => r,
        None => match newest_pipeline_ref(app, project, &commit.sha, report.pipeline_id).await? {
            Some(r) => r,
            None => {
                let sha = commit.sha.clone();
                blocking(move || git::branches_containing(&repo, &sha))
                    .await?
                    .into_iter()
                    .next()
                    .ok_or(ApiError::NotFound("References for commit"))?
            }
        },
    };
    let store_report = StatusReport {
        project_id: project.id,
        sha: commit.sha.clone(),
        ref_name: ref_name.clone(),
        pipeline_id: report.pipeline_id,
        name: report.name,
        user_id: user.id,
        state: report.state,
        target_url: report.target_url,
        description: report.description,
        coverage: report.coverage,
    };
    let pipeline = NewPipeline {
        project_id: project.id,
        commit: commit.into_record(),
        ref_name,
        tag: false,
        status: "created".into(),
        user_id: Some(user.id),
        yaml_errors: None,
        source: "external".into(),
        variables: "[]".into(),
        trigger_request_id: None,
        push_key: None,
        upstream: None,
        builds: Vec::new(),
    };
    let id = match app
        .store
        .builds()
        .report_status(&store_report, &pipeline)
        .await
    {
        Ok(id) => id,
        Err(ReportFailure::NoPipeline) => {
            return Err(ApiError::NotFound("Pipeline for pipeline_id, sha and ref"))
        }
        Err(ReportFailure::Refused(refused)) => {
            return Err(ApiError::BadRequest(refused.to_string()))
        }
        Err(ReportFailure::Store(err)) => return Err(err.into()),
    };
    Ok(app.store.builds().get(project.id, id).await?)
}

/// The ref of the commit's newest pipeline (the one named, if any).
async fn newest_pipeline_ref(
    app: &AppInner,
    project: &ProjectRecord,
    sha: &str,
    pipeline_id: Option<i64>,
) -> Result<Option<String>, ApiError> {
    if let Some(id) = pipeline_id {
        return match app.store.pipelines().get(id).await {
            Ok(p) if p.project_id == project.id && p.sha == sha => Ok(Some(p.ref_name)),
            Ok(_) | Err(kiln_store::StoreError::NotFound) => {
                Err(ApiError::NotFound("Pipeline for pipeline_id, sha and ref"))
            }
            Err(err) => Err(err.into()),
        };
    }
    let newest = app.store.pipelines().latest_of_sha(project.id, sha).await?;
    Ok(newest.map(|p| p.ref_name))
}
