//! The v4 shapes: current GitLab's `Entities::Ci::Pipeline` (`lib/api/entities/ci/pipeline.rb`
//! on `pipeline_basic.rb`), with `Entities::UserBasic` and `DetailedStatusEntity`.

use super::time::utc;
use super::v3::Presenter as V3;
use kiln_store::{PipelineRecord, ProjectRecord, UserRecord};
use serde::Serialize;

/// `Gitlab::Git::BLANK_SHA`: what `Ci::Pipeline#before_sha` answers when it is not known.
pub const BLANK_SHA: &str = "0000000000000000000000000000000000000000";

#[derive(Serialize)]
pub struct Pipeline<'a> {
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
    /// The pipeline as `POST /projects/:id/pipeline` answers it, to a caller allowed to read
    /// it; `user` is the pipeline's user.
    pub fn pipeline<'b>(
        &self,
        project: &ProjectRecord,
        p: &'b PipelineRecord,
        user: Option<&'b UserRecord>,
    ) -> Pipeline<'b> {
        let updated = p.finished_at.or(p.started_at).unwrap_or(p.created_at);
        let path = format!("/{}/-/pipelines/{}", project.full_path(), p.id);
        let seconds = |from: i64, to: i64| (to - from).div_euclid(1000);
        Pipeline {
            id: p.id,
            // Kiln numbers pipelines once, globally.
            iid: p.id,
            project_id: p.project_id,
            sha: &p.sha,
            ref_name: &p.ref_name,
            status: &p.status,
            source: &p.source,
            created_at: utc(p.created_at),
            updated_at: utc(updated),
            web_url: format!("{}{path}", self.external_url),
            before_sha: BLANK_SHA,
            tag: p.tag,
            yaml_errors: p.yaml_errors.as_deref(),
            user: user.map(|u| self.user(u)),
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
            // The average of the builds' coverage, which the pipeline record does not carry;
            // a pipeline just created has none.
            coverage: None,
            detailed_status: detailed_status(&p.status, path),
        }
    }

    pub fn user<'b>(&self, u: &'b UserRecord) -> UserBasic<'b> {
        UserBasic {
            id: u.id,
            username: &u.username,
            name: &u.name,
            state: &u.state,
            avatar_url: V3 {
                external_url: self.external_url,
            }
            .user(u)
            .avatar_url,
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
