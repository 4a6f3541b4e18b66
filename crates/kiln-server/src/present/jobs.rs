//! The v4 job shapes: current GitLab's `Entities::Ci::Job` on `JobBasic`
//! (`lib/api/entities/ci/job.rb`, `job_basic.rb`), with `Entities::User`, `Entities::Commit`,
//! `Entities::Ci::PipelineBasic` and `Entities::Ci::Runner` inside.

use super::time::{utc, with_offset};
use super::v3::{archive_name, commit_title, gravatar};
use super::v4::{pipeline_basic, PipelineBasic, PipelineFacts};
use crate::service::runners::{contacted_recently, status_of};
use kiln_core::BuildStatus;
use kiln_store::{BuildRecord, CommitRecord, PipelineRecord, ProjectRecord, UserRecord};
use serde::Serialize;

#[derive(Serialize)]
pub struct Job<'a> {
    pub id: i64,
    pub status: &'static str,
    pub stage: &'a str,
    pub name: &'a str,
    #[serde(rename = "ref")]
    pub ref_name: &'a str,
    pub tag: bool,
    pub coverage: Option<f64>,
    pub allow_failure: bool,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub erased_at: Option<String>,
    /// Seconds, fractional.
    pub duration: Option<f64>,
    /// Seconds, fractional.
    pub queued_duration: Option<f64>,
    pub user: Option<User<'a>>,
    pub commit: Commit<'a>,
    pub pipeline: PipelineBasic<'a>,
    /// Only for a failed job, as GitLab exposes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<&'a str>,
    pub web_url: String,
    pub project: JobProject,
    /// Kept by GitLab for older clients; present only when the job has an archive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifacts_file: Option<ArtifactFile<'a>>,
    pub artifacts: Vec<Artifact<'a>>,
    pub runner: Option<Runner<'a>>,
    pub runner_manager: Option<()>,
    pub artifacts_expire_at: Option<String>,
    pub archived: bool,
    pub tag_list: Vec<&'a str>,
}

#[derive(Serialize)]
pub struct JobProject {
    pub ci_job_token_scope_enabled: bool,
}

#[derive(Serialize)]
pub struct ArtifactFile<'a> {
    pub filename: &'a str,
    pub size: i64,
}

/// `Entities::Ci::JobArtifact`.
#[derive(Serialize)]
pub struct Artifact<'a> {
    pub file_type: &'static str,
    pub size: i64,
    pub filename: &'a str,
    pub file_format: Option<&'static str>,
}

/// `Entities::User` (on `UserBasic`).
#[derive(Serialize)]
pub struct User<'a> {
    pub id: i64,
    pub username: &'a str,
    pub name: &'a str,
    pub state: &'a str,
    pub locked: bool,
    pub avatar_url: String,
    pub web_url: String,
    pub created_at: String,
    pub bio: &'a str,
    pub location: &'static str,
    pub public_email: Option<()>,
    pub skype: &'a str,
    pub linkedin: &'a str,
    pub twitter: &'a str,
    pub discord: &'static str,
    pub website_url: &'a str,
    pub organization: &'static str,
    pub job_title: &'static str,
    pub pronouns: Option<()>,
    pub bot: bool,
    pub work_information: Option<()>,
    pub followers: i64,
    pub following: i64,
    pub local_time: Option<()>,
    pub bio_html: &'a str,
}

/// `Entities::Commit`. Kiln keeps the author's side of a commit; the committer is shown as
/// the author, and parents are not kept.
#[derive(Serialize)]
pub struct Commit<'a> {
    pub id: &'a str,
    pub short_id: &'a str,
    pub created_at: String,
    pub parent_ids: Vec<String>,
    pub title: std::borrow::Cow<'a, str>,
    pub message: &'a str,
    pub author_name: &'a str,
    pub author_email: &'a str,
    pub authored_date: String,
    pub committer_name: &'a str,
    pub committer_email: &'a str,
    pub committed_date: String,
    pub trailers: serde_json::Map<String, serde_json::Value>,
    pub extended_trailers: serde_json::Map<String, serde_json::Value>,
    pub web_url: String,
}

/// `Entities::Ci::Runner`.
#[derive(Serialize)]
pub struct Runner<'a> {
    pub id: i64,
    pub description: &'a str,
    pub ip_address: Option<()>,
    pub active: bool,
    pub paused: bool,
    pub is_shared: bool,
    pub runner_type: &'a str,
    pub name: Option<&'a str>,
    pub online: bool,
    pub status: &'static str,
    pub created_at: String,
}

/// Presents one project's jobs against the external URL, at one instant (`now_ms`: the
/// duration of what still runs).
pub struct Presenter<'a> {
    pub external_url: &'a str,
    pub project: &'a ProjectRecord,
    pub now_ms: i64,
}

fn seconds(from: i64, to: i64) -> f64 {
    (to - from) as f64 / 1000.0
}

impl Presenter<'_> {
    fn project_url(&self) -> String {
        format!("{}/{}", self.external_url, self.project.full_path())
    }

    pub fn job<'b>(&self, b: &'b BuildRecord) -> Job<'b> {
        let archive = b
            .artifacts_file
            .as_deref()
            .filter(|_| b.erased_at.is_none());
        let mut artifacts = Vec::with_capacity(2);
        if let Some(file) = archive {
            artifacts.push(Artifact {
                file_type: "archive",
                size: b.artifacts_size.unwrap_or(0),
                filename: archive_name(file),
                file_format: Some("zip"),
            });
        }
        if b.trace_size > 0 {
            artifacts.push(Artifact {
                file_type: "trace",
                size: b.trace_size,
                filename: "job.log",
                file_format: None,
            });
        }
        let mut tag_list: Vec<&str> = b.tags.iter().map(String::as_str).collect();
        tag_list.sort_unstable();
        Job {
            id: b.id,
            status: b.status.as_str(),
            stage: &b.stage,
            name: &b.name,
            ref_name: &b.ref_name,
            tag: b.tag,
            coverage: b.coverage,
            allow_failure: b.allow_failure,
            created_at: utc(b.created_at),
            started_at: b.started_at.map(utc),
            finished_at: b.finished_at.map(utc),
            erased_at: b.erased_at.map(utc),
            duration: b
                .started_at
                .map(|s| seconds(s, b.finished_at.unwrap_or(self.now_ms))),
            queued_duration: b
                .queued_at
                .map(|q| seconds(q, b.started_at.unwrap_or(self.now_ms)).max(0.0)),
            user: b.user.as_ref().map(|u| self.user(u)),
            commit: self.commit(&b.commit),
            pipeline: self.pipeline_of(b),
            failure_reason: (b.status == BuildStatus::Failed)
                .then(|| b.failure_reason.as_deref().unwrap_or("unknown_failure")),
            web_url: format!("{}/-/jobs/{}", self.project_url(), b.id),
            project: JobProject {
                ci_job_token_scope_enabled: false,
            },
            artifacts_file: archive.map(|file| ArtifactFile {
                filename: archive_name(file),
                size: b.artifacts_size.unwrap_or(0),
            }),
            artifacts,
            runner: b.runner.as_ref().map(|r| Runner {
                id: r.id,
                description: &r.description,
                ip_address: None,
                active: r.active,
                paused: !r.active,
                is_shared: r.is_shared,
                runner_type: &r.runner_type,
                name: r.name.as_deref(),
                online: contacted_recently(r.contacted_at, self.now_ms),
                status: status_of(r.active, r.contacted_at, self.now_ms),
                created_at: utc(r.created_at),
            }),
            runner_manager: None,
            artifacts_expire_at: archive.and(b.artifacts_expire_at).map(utc),
            archived: false,
            tag_list,
        }
    }

    fn pipeline_of<'b>(&self, b: &'b BuildRecord) -> PipelineBasic<'b> {
        let p = &b.pipeline;
        let facts = PipelineFacts {
            id: b.pipeline_id,
            project_id: b.project_id,
            sha: &b.commit.sha,
            ref_name: &b.ref_name,
            status: &p.status,
            source: &p.source,
            created_at: p.created_at,
            started_at: p.started_at,
            finished_at: p.finished_at,
        };
        pipeline_basic(self.external_url, self.project, facts)
    }

    /// A pipeline as the v4 lists show it.
    pub fn pipeline_basic<'b>(&self, p: &'b PipelineRecord) -> PipelineBasic<'b> {
        pipeline_basic(self.external_url, self.project, PipelineFacts::of(p))
    }

    pub fn commit<'b>(&self, c: &'b CommitRecord) -> Commit<'b> {
        let date = with_offset(c.authored_at, c.author_tz_offset_minutes);
        Commit {
            id: &c.sha,
            short_id: c.sha.get(..8).unwrap_or(&c.sha),
            created_at: date.clone(),
            parent_ids: Vec::new(),
            title: commit_title(&c.message),
            message: &c.message,
            author_name: &c.author_name,
            author_email: &c.author_email,
            authored_date: date.clone(),
            committer_name: &c.author_name,
            committer_email: &c.author_email,
            committed_date: date,
            trailers: serde_json::Map::new(),
            extended_trailers: serde_json::Map::new(),
            web_url: format!("{}/-/commit/{}", self.project_url(), c.sha),
        }
    }

    pub fn user<'b>(&self, u: &'b UserRecord) -> User<'b> {
        User {
            id: u.id,
            username: &u.username,
            name: &u.name,
            state: &u.state,
            locked: false,
            avatar_url: gravatar(&u.email),
            web_url: format!("{}/{}", self.external_url, u.username),
            created_at: utc(u.created_at),
            bio: u.bio.as_deref().unwrap_or(""),
            location: "",
            public_email: None,
            skype: &u.skype,
            linkedin: &u.linkedin,
            twitter: &u.twitter,
            discord: "",
            website_url: &u.website_url,
            organization: "",
            job_title: "",
            pronouns: None,
            bot: false,
            work_information: None,
            followers: 0,
            following: 0,
            local_time: None,
            bio_html: u.bio.as_deref().unwrap_or(""),
        }
    }
}
