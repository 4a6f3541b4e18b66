//! The v4 shapes: current GitLab's `Entities::Ci::Pipeline` (`lib/api/entities/ci/pipeline.rb`
//! on `pipeline_basic.rb`), with `Entities::UserBasic` and `DetailedStatusEntity`.

use super::time::utc;
use kiln_store::{PipelineRecord, ProjectRecord, UserRecord};
use serde::Serialize;

/// `Gitlab::Git::BLANK_SHA`: what `Ci::Pipeline#before_sha` answers when it is not known.
pub const BLANK_SHA: &str = "0000000000000000000000000000000000000000";

/// `Entities::Ci::PipelineBasic`: what lists and a job's `pipeline` show.
#[derive(Serialize)]
pub struct PipelineBasic<'a> {
    pub id: i64,
    pub iid: i64,
    pub project_id: i64,
    pub sha: &'a str,
    #[serde(rename = "ref")]
    pub ref_name: &'a str,
    pub status: &'a str,
    pub source: &'a str,
    pub created_at: String,
    pub updated_at: String,
    pub web_url: String,
}

/// What `PipelineBasic` is made of, whether from a pipeline's record or a build's.
pub struct PipelineFacts<'a> {
    pub id: i64,
    pub project_id: i64,
    pub sha: &'a str,
    pub ref_name: &'a str,
    pub status: &'a str,
    pub source: &'a str,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

impl<'a> PipelineFacts<'a> {
    pub fn of(p: &'a PipelineRecord) -> PipelineFacts<'a> {
        PipelineFacts {
            id: p.id,
            project_id: p.project_id,
            sha: &p.sha,
            ref_name: &p.ref_name,
            status: &p.status,
            source: &p.source,
            created_at: p.created_at,
            started_at: p.started_at,
            finished_at: p.finished_at,
        }
    }
}

/// `PipelineBasic` of a pipeline of `project`.
pub fn pipeline_basic<'a>(
    external_url: &str,
    project: &ProjectRecord,
    f: PipelineFacts<'a>,
) -> PipelineBasic<'a> {
    // Kiln keeps no updated_at; the last change is the finish, start or creation.
    let updated = f.finished_at.or(f.started_at).unwrap_or(f.created_at);
    PipelineBasic {
        id: f.id,
        // Kiln numbers pipelines once, globally.
        iid: f.id,
        project_id: f.project_id,
        sha: f.sha,
        ref_name: f.ref_name,
        status: f.status,
        source: f.source,
        created_at: utc(f.created_at),
        updated_at: utc(updated),
        web_url: format!(
            "{external_url}/{}/-/pipelines/{}",
            project.full_path(),
            f.id
        ),
    }
}

/// `Entities::Ci::Pipeline`: `PipelineBasic` and the rest.
#[derive(Serialize)]
pub struct Pipeline<'a> {
    #[serde(flatten)]
    pub basic: PipelineBasic<'a>,
    pub before_sha: &'static str,
    pub tag: bool,
    pub yaml_errors: Option<&'a str>,
    pub user: Option<UserBasic<'a>>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub committed_at: Option<String>,
    /// Seconds.
    pub duration: Option<i64>,
    /// Seconds.
    pub queued_duration: Option<i64>,
    /// GitLab presents it as a string (`"98.29"`).
    pub coverage: Option<String>,
    pub detailed_status: DetailedStatus,
}

/// `Entities::UserBasic`.
#[derive(Serialize)]
pub struct UserBasic<'a> {
    pub id: i64,
    pub username: &'a str,
    pub name: &'a str,
    pub state: &'a str,
    pub avatar_url: String,
    pub web_url: String,
}

/// `DetailedStatusEntity` of a pipeline (no `action`: pipelines have none).
#[derive(Serialize)]
pub struct DetailedStatus {
    pub icon: String,
    pub text: String,
    pub label: String,
    pub group: String,
    pub tooltip: String,
    pub has_details: bool,
    pub details_path: String,
    pub illustration: Option<()>,
    pub favicon: String,
}

pub struct Presenter<'a> {
    pub external_url: &'a str,
}

impl Presenter<'_> {
    /// The pipeline as `POST /projects/:id/pipeline` and `GET …/pipelines/:id` answer it.
    pub fn pipeline<'b>(&self, project: &ProjectRecord, p: &'b PipelineRecord) -> Pipeline<'b> {
        let path = format!("/{}/-/pipelines/{}", project.full_path(), p.id);
        let seconds = |from: i64, to: i64| (to - from).div_euclid(1000);
        Pipeline {
            basic: pipeline_basic(self.external_url, project, PipelineFacts::of(p)),
            before_sha: BLANK_SHA,
            tag: p.tag,
            yaml_errors: p.yaml_errors.as_deref(),
            user: p.user.as_ref().map(|u| self.user(u)),
            started_at: p.started_at.map(utc),
            finished_at: p.finished_at.map(utc),
            // GitLab's own column, which its pipeline creation leaves empty.
            committed_at: None,
            // GitLab sums the builds' running periods; without gaps between stages that is
            // the time from start to finish.
            duration: p.started_at.zip(p.finished_at).map(|(s, f)| seconds(s, f)),
            // `Ci::Pipeline#queued_duration`: nil until started, and nil for zero.
            queued_duration: p
                .started_at
                .map(|s| seconds(p.created_at, s))
                .filter(|d| *d != 0),
            // The average of the builds' coverage, as GitLab formats it.
            coverage: p.coverage.map(|c| format!("{c:.2}")),
            detailed_status: detailed_status(&p.status, path),
        }
    }

    pub fn user<'b>(&self, u: &'b UserRecord) -> UserBasic<'b> {
        UserBasic {
            id: u.id,
            username: &u.username,
            name: &u.name,
            state: &u.state,
            avatar_url: super::v3::gravatar(&u.email),
            web_url: format!("{}/{}", self.external_url, u.username),
        }
    }
}

/// `Gitlab::Ci::Status::Pipeline::Factory`: the core status of each pipeline status, with
/// `Blocked` over `manual`; the pipeline's `details_path` (`Pipeline::Common`); the tooltip is
/// the label. `success-with-warnings` needs the builds and is not told apart here.
fn detailed_status(status: &str, details_path: String) -> DetailedStatus {
    let (text, label, icon, favicon) = match status {
        "created" => (
            "Created",
            "created",
            "status_created",
            "favicon_status_created",
        ),
        "pending" => (
            "Pending",
            "pending",
            "status_pending",
            "favicon_status_pending",
        ),
        "running" => (
            "Running",
            "running",
            "status_running",
            "favicon_status_running",
        ),
        "success" => (
            "Passed",
            "passed",
            "status_success",
            "favicon_status_success",
        ),
        "failed" => ("Failed", "failed", "status_failed", "favicon_status_failed"),
        "canceled" => (
            "Canceled",
            "canceled",
            "status_canceled",
            "favicon_status_canceled",
        ),
        "skipped" => (
            "Skipped",
            "skipped",
            "status_skipped",
            "favicon_status_skipped",
        ),
        "manual" => (
            "Blocked",
            "waiting for manual action",
            "status_manual",
            "favicon_status_manual",
        ),
        other => {
            return DetailedStatus {
                icon: format!("status_{other}"),
                text: other.to_owned(),
                label: other.to_owned(),
                group: other.to_owned(),
                tooltip: other.to_owned(),
                has_details: true,
                details_path,
                illustration: None,
                favicon: format!("/assets/ci_favicons/favicon_status_{other}.png"),
            }
        }
    };
    DetailedStatus {
        icon: icon.to_owned(),
        text: text.to_owned(),
        label: label.to_owned(),
        group: status.to_owned(),
        tooltip: label.to_owned(),
        has_details: true,
        details_path,
        illustration: None,
        favicon: format!("/assets/ci_favicons/{favicon}.png"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detailed_statuses_as_gitlab_names_them() {
        let pending = detailed_status("pending", "/g/p/-/pipelines/1".into());
        assert_eq!(
            serde_json::to_value(&pending).unwrap(),
            serde_json::json!({
                "icon": "status_pending",
                "text": "Pending",
                "label": "pending",
                "group": "pending",
                "tooltip": "pending",
                "has_details": true,
                "details_path": "/g/p/-/pipelines/1",
                "illustration": null,
                "favicon": "/assets/ci_favicons/favicon_status_pending.png"
            })
        );
        let blocked = detailed_status("manual", String::new());
        assert_eq!(
            (blocked.text.as_str(), blocked.group.as_str()),
            ("Blocked", "manual")
        );
        assert_eq!(detailed_status("success", String::new()).text, "Passed");
    }
}
