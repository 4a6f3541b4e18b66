//! What a webhook POSTs: GitLab's Job Hook (`Gitlab::DataBuilder::Build`), Pipeline Hook
//! (`Gitlab::DataBuilder::Pipeline`) and Push Hook (`Gitlab::DataBuilder::Push`) JSON, with
//! times written as GitLab's payloads write them (`2016-08-12 15:23:28 UTC`).
//!
//! A delivery tells of one status change: the payload is read from the records when it is
//! first sent, with the status the change set (a build that has moved on since is still told
//! of as it was), and every later attempt sends the very same body.

use crate::present::projects::{visibility_level, Presenter as ProjectPresenter};
use crate::present::time::{hook as time, with_offset};
use crate::present::v3::{commit_title, gravatar};
use crate::present::ApiVersion;
use kiln_core::BuildStatus;
use kiln_store::{
    BuildFilter, BuildRecord, CommitRecord, HookEvent, PipelineRecord, ProjectRecord, ProjectRef,
    Store, StoreError, UserRecord, Window,
};
use serde_json::{json, Value};

/// The `X-Gitlab-Event` header of an event.
pub fn event_name(event: HookEvent) -> &'static str {
    match event {
        HookEvent::Job => "Job Hook",
        HookEvent::Pipeline => "Pipeline Hook",
        HookEvent::Push => "Push Hook",
    }
}

/// The name GitLab's hook logs give an event's trigger.
pub fn trigger_name(event: HookEvent) -> &'static str {
    match event {
        HookEvent::Job => "job_hooks",
        HookEvent::Pipeline => "pipeline_hooks",
        HookEvent::Push => "push_hooks",
    }
}

/// The sha GitLab sends where there is none (a new branch's `before`).
const NO_SHA: &str = "0000000000000000000000000000000000000000";
/// Builds a Pipeline Hook lists at most.
const MAX_BUILDS: u32 = 1000;

/// The payload of an event about `subject_id` (now `status`), read from the store; None when
/// the subject is gone (nothing to tell).
pub async fn for_event(
    store: &Store,
    external_url: &str,
    project_id: i64,
    event: HookEvent,
    subject: (i64, &str),
) -> anyhow::Result<Option<Value>> {
    let project = match store.projects().get(&ProjectRef::Id(project_id)).await {
        Ok(project) => project,
        Err(StoreError::NotFound) => return Ok(None),
        Err(err) => return Err(err.into()),
    };
    let hook = Hook {
        external_url,
        project: &project,
    };
    let (subject_id, status) = subject;
    let value = match event {
        HookEvent::Job => {
            let build = match store.builds().get(project_id, subject_id).await {
                Ok(build) => build,
                Err(StoreError::NotFound) => return Ok(None),
                Err(err) => return Err(err.into()),
            };
            let retries = store
                .builds()
                .retries(build.pipeline_id, &build.name)
                .await?;
            hook.job(&build, status, retries)
        }
        HookEvent::Pipeline => {
            let pipeline = match store.pipelines().get(subject_id).await {
                Ok(pipeline) if pipeline.project_id == project_id => pipeline,
                Ok(_) | Err(StoreError::NotFound) => return Ok(None),
                Err(err) => return Err(err.into()),
            };
            let commit = store.pipelines().commit(subject_id).await?;
            let builds = pipeline_builds(store, project_id, subject_id).await?;
            hook.pipeline(&pipeline, status, &commit, &builds)
        }
        HookEvent::Push => {
            let pipeline = match store.pipelines().get(subject_id).await {
                Ok(pipeline) if pipeline.project_id == project_id => pipeline,
                Ok(_) | Err(StoreError::NotFound) => return Ok(None),
                Err(err) => return Err(err.into()),
            };
            let commit = store.pipelines().commit(subject_id).await?;
            hook.push(&pipeline, &commit)
        }
    };
    Ok(Some(value))
}

/// The pipeline's current builds (not those a retry replaced), as a Pipeline Hook lists them.
async fn pipeline_builds(
    store: &Store,
    project_id: i64,
    pipeline_id: i64,
) -> anyhow::Result<Vec<BuildRecord>> {
    let filter = BuildFilter {
        pipeline_id: Some(pipeline_id),
        include_retried: false,
        ..BuildFilter::default()
    };
    let window = Window::Keyset {
        after: None,
        per_page: MAX_BUILDS,
        newest_first: false,
    };
    Ok(store
        .builds()
        .find(project_id, &filter, window)
        .await?
        .builds)
}

/// Writes one project's payloads against the external URL.
struct Hook<'a> {
    external_url: &'a str,
    project: &'a ProjectRecord,
}

fn seconds(from: Option<i64>, to: Option<i64>) -> Option<f64> {
    Some((to? - from?).max(0) as f64 / 1000.0)
}

impl Hook<'_> {
    fn web_url(&self) -> String {
        format!("{}/{}", self.external_url, self.project.full_path())
    }

    /// `Project#hook_attrs`.
    fn project_attrs(&self) -> Value {
        let p = self.project;
        let presenter = ProjectPresenter {
            external_url: self.external_url,
            version: ApiVersion::V4,
        };
        let (web, http, ssh) = presenter.urls(p);
        json!({
            "id": p.id,
            "name": p.name,
            "description": "",
            "web_url": web,
            "avatar_url": null,
            "git_ssh_url": ssh,
            "git_http_url": http,
            "namespace": p.namespace,
            "visibility_level": visibility_level(p.visibility),
            "path_with_namespace": p.full_path(),
            "default_branch": p.default_branch,
            "ci_config_path": null,
            "homepage": web,
            "url": ssh,
            "ssh_url": ssh,
            "http_url": http,
        })
    }

    /// The Job Hook's `repository`.
    fn repository(&self) -> Value {
        let attrs = self.project_attrs();
        json!({
            "name": self.project.name,
            "url": attrs["url"],
            "description": "",
            "homepage": attrs["homepage"],
            "git_http_url": attrs["git_http_url"],
            "git_ssh_url": attrs["git_ssh_url"],
            "visibility_level": attrs["visibility_level"],
        })
    }

    /// `User#hook_attrs`.
    fn user(user: Option<&UserRecord>) -> Value {
        match user {
            Some(u) => json!({
                "id": u.id,
                "name": u.name,
                "username": u.username,
                "avatar_url": gravatar(&u.email),
                "email": u.email,
            }),
            None => Value::Null,
        }
    }

    fn runner(b: &BuildRecord) -> Value {
        match &b.runner {
            Some(r) => json!({
                "id": r.id,
                "description": r.description,
                "runner_type": r.runner_type,
                "active": r.active,
                "is_shared": r.is_shared,
                "tags": b.tags,
            }),
            None => Value::Null,
        }
    }

    fn job(&self, b: &BuildRecord, status: &str, retries: i64) -> Value {
        let p = &b.pipeline;
        let failed = status == BuildStatus::Failed.as_str();
        json!({
            "object_kind": "build",
            "ref": b.ref_name,
            "tag": b.tag,
            "before_sha": NO_SHA,
            "sha": b.commit.sha,
            "retries_count": retries,
            "build_id": b.id,
            "build_name": b.name,
            "build_stage": b.stage,
            "build_status": status,
            "build_created_at": time(b.created_at),
            "build_started_at": b.started_at.map(time),
            "build_finished_at": b.finished_at.map(time),
            "build_duration": seconds(b.started_at, b.finished_at),
            "build_queued_duration": seconds(b.queued_at, b.started_at),
            "build_allow_failure": b.allow_failure,
            "build_failure_reason": if failed {
                b.failure_reason.as_deref().unwrap_or("unknown_failure")
            } else {
                "unknown_failure"
            },
            "pipeline_id": b.pipeline_id,
            "runner": Self::runner(b),
            "project_id": self.project.id,
            "project_name": format!("{} / {}", self.project.namespace, self.project.name),
            "user": Self::user(b.user.as_ref()),
            "commit": {
                "id": b.pipeline_id,
                "name": null,
                "sha": b.commit.sha,
                "message": b.commit.message,
                "author_name": b.commit.author_name,
                "author_email": b.commit.author_email,
                "author_url": format!("mailto:{}", b.commit.author_email),
                "status": p.status,
                "duration": seconds(p.started_at, p.finished_at),
                "started_at": p.started_at.map(time),
                "finished_at": p.finished_at.map(time),
            },
            "repository": self.repository(),
            "project": self.project_attrs(),
            "environment": null,
        })
    }

    /// `Commit#hook_attrs`.
    fn commit(&self, c: &CommitRecord) -> Value {
        json!({
            "id": c.sha,
            "message": c.message,
            "title": commit_title(&c.message),
            "timestamp": with_offset(c.authored_at, c.author_tz_offset_minutes),
            "url": format!("{}/-/commit/{}", self.web_url(), c.sha),
            "author": { "name": c.author_name, "email": c.author_email },
        })
    }

    fn pipeline(
        &self,
        p: &PipelineRecord,
        status: &str,
        commit: &CommitRecord,
        builds: &[BuildRecord],
    ) -> Value {
        let mut stages: Vec<(i64, &str)> = builds
            .iter()
            .map(|b| (b.stage_idx, b.stage.as_str()))
            .collect();
        stages.sort_unstable();
        stages.dedup();
        let variables: Vec<Value> = serde_json::from_str::<Vec<(String, String)>>(&p.variables)
            .unwrap_or_default()
            .into_iter()
            .map(|(key, value)| json!({ "key": key, "value": value }))
            .collect();
        let builds: Vec<Value> = builds.iter().map(|b| self.pipeline_build(b)).collect();
        json!({
            "object_kind": "pipeline",
            "object_attributes": {
                "id": p.id,
                "iid": p.id,
                "name": null,
                "ref": p.ref_name,
                "tag": p.tag,
                "sha": p.sha,
                "before_sha": NO_SHA,
                "source": p.source,
                "status": status,
                "detailed_status": detailed_status(status),
                "stages": stages.iter().map(|(_, name)| *name).collect::<Vec<_>>(),
                "created_at": time(p.created_at),
                "finished_at": p.finished_at.map(time),
                "duration": seconds(p.started_at, p.finished_at).map(f64::round),
                "queued_duration": seconds(Some(p.created_at), p.started_at).map(f64::round),
                "variables": variables,
                "url": format!("{}/-/pipelines/{}", self.web_url(), p.id),
            },
            "merge_request": null,
            "user": Self::user(p.user.as_ref()),
            "project": self.project_attrs(),
            "commit": self.commit(commit),
            "builds": builds,
        })
    }

    fn pipeline_build(&self, b: &BuildRecord) -> Value {
        let archive = b
            .artifacts_file
            .as_deref()
            .filter(|_| b.erased_at.is_none());
        json!({
            "id": b.id,
            "stage": b.stage,
            "name": b.name,
            "status": b.status.as_str(),
            "created_at": time(b.created_at),
            "started_at": b.started_at.map(time),
            "finished_at": b.finished_at.map(time),
            "duration": seconds(b.started_at, b.finished_at),
            "queued_duration": seconds(b.queued_at, b.started_at),
            "failure_reason": (b.status == BuildStatus::Failed)
                .then(|| b.failure_reason.as_deref().unwrap_or("unknown_failure")),
            "when": b.when,
            "manual": b.when == "manual",
            "allow_failure": b.allow_failure,
            "user": Self::user(b.user.as_ref()),
            "runner": Self::runner(b),
            "artifacts_file": {
                "filename": archive.map(crate::present::v3::archive_name),
                "size": archive.and(b.artifacts_size),
            },
            "environment": null,
        })
    }

    /// A push of the pipeline's ref to its commit (`Gitlab::DataBuilder::Push`): a branch
    /// push Kiln learned of, told with the pipeline it made, or a hook's test.
    fn push(&self, p: &PipelineRecord, c: &CommitRecord) -> Value {
        let kind = if p.tag { "tags" } else { "heads" };
        json!({
            "object_kind": if p.tag { "tag_push" } else { "push" },
            "event_name": if p.tag { "tag_push" } else { "push" },
            "before": NO_SHA,
            "after": c.sha,
            "ref": format!("refs/{kind}/{}", p.ref_name),
            "ref_protected": false,
            "checkout_sha": c.sha,
            "message": null,
            "user_id": p.user.as_ref().map(|u| u.id),
            "user_name": p.user.as_ref().map(|u| u.name.as_str()),
            "user_username": p.user.as_ref().map(|u| u.username.as_str()),
            "user_email": p.user.as_ref().map(|u| u.email.as_str()),
            "user_avatar": p.user.as_ref().map(|u| gravatar(&u.email)),
            "project_id": self.project.id,
            "project": self.project_attrs(),
            "commits": [self.commit(c)],
            "total_commits_count": 1,
            "push_options": {},
            "repository": self.repository(),
        })
    }
}

/// `detailed_status` as GitLab's status presenters name a pipeline's status.
fn detailed_status(status: &str) -> &str {
    match status {
        "success" => "passed",
        "canceled" => "canceled",
        other => other,
    }
}
