//! The job a runner gets from `POST /api/v4/jobs/request`, in the shape and the exact types
//! gitlab-runner's decoder expects (its `spec.Job`): integers as integers, variable values
//! as strings, `project_jobs_running_on_instance_runners_count` as a string, and no `run`
//! key (a null there fails the whole decode).

use crate::service::jobs::AssignedJob;
use serde_json::{json, Value};

/// The failure reasons the server accepts from a runner (GitLab's `Ci::Build` enum, the
/// ones a runner may report); the runner maps any other reason onto these.
pub const FAILURE_REASONS: &[&str] = &[
    "unknown_failure",
    "script_failure",
    "api_failure",
    "stuck_or_timeout_failure",
    "runner_system_failure",
    "missing_dependency_failure",
    "runner_unsupported",
    "job_execution_timeout",
    "archived_failure",
    "unmet_prerequisites",
    "data_integrity_failure",
    "trace_size_exceeded",
    "image_pull_failure",
];

/// Variables a job needs but must not print, and that the runner keeps out of places
/// others read (`public: false`).
const SECRET_VARIABLES: &[&str] = &[
    "CI_JOB_TOKEN",
    "CI_BUILD_TOKEN",
    "CI_REPOSITORY_URL",
    "CI_BUILD_REPO",
];

pub fn payload(job: &AssignedJob, external_url: &str, now_ms: i64) -> Value {
    let build = &job.build;
    let spec = &job.spec;
    let timeout = spec.timeout.as_secs().max(1) as i64;
    let mut script = spec.before_script.clone();
    script.extend(spec.script.iter().cloned());
    let mut steps = vec![json!({
        "name": "script",
        "script": script,
        "timeout": timeout,
        "when": "on_success",
        "allow_failure": false,
    })];
    if !spec.after_script.is_empty() {
        steps.push(json!({
            "name": "after_script",
            "script": spec.after_script,
            "timeout": timeout,
            "when": "always",
            "allow_failure": true,
        }));
    }
    let mut variables: Vec<Value> = spec
        .variables
        .iter()
        .map(|(key, value)| {
            let secret = SECRET_VARIABLES.contains(&key.as_str());
            let masked = !value.is_empty() && spec.masked.contains(value);
            let file = spec.file_variables.contains(key);
            let raw = spec.raw_variables.contains(key);
            json!({ "key": key, "value": value, "public": !(secret || masked), "masked": masked, "file": file, "raw": raw })
        })
        .collect();
    if spec.git.is_none() {
        // No repository: nothing to fetch.
        variables.push(
            json!({ "key": "GIT_STRATEGY", "value": "none", "public": true, "masked": false }),
        );
    }
    let queued = build
        .queued_at
        .map_or(0.0, |at| (now_ms - at).max(0) as f64 / 1000.0);
    json!({
        "id": build.id,
        "token": job.token,
        "allow_git_fetch": true,
        "job_info": {
            "id": build.id,
            "name": build.name,
            "stage": build.stage,
            "project_id": job.project.id,
            "project_name": job.project.name,
            "project_full_path": job.project.full_path(),
            "pipeline_id": job.pipeline.id,
            "user_id": build.user.as_ref().map(|u| u.id),
            "time_in_queue_seconds": queued,
            "project_jobs_running_on_instance_runners_count": "+Inf",
        },
        "git_info": git_info(job, spec, external_url),
        "runner_info": { "timeout": timeout, "runner_session_url": null },
        "variables": variables,
        "steps": steps,
        "image": job.plan.as_ref().and_then(|p| p.image.as_ref()).map(|name| json!({ "name": name })),
        "services": job.plan.as_ref().map_or_else(Vec::new, |p| {
            p.services.iter().map(|name| json!({ "name": name })).collect()
        }),
        "artifacts": artifacts(job),
        "cache": caches(spec),
        "credentials": [],
        "dependencies": dependencies(job),
        "features": { "trace_sections": true, "failure_reasons": FAILURE_REASONS },
    })
}

fn git_info(job: &AssignedJob, spec: &kiln_executor::JobSpec, external_url: &str) -> Value {
    let build = &job.build;
    let depth: i64 = spec
        .variables
        .iter()
        .rev()
        .find(|(k, _)| k == "GIT_DEPTH")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    // A shallow fetch takes the job's own ref; a full one every branch and tag, so that the
    // commit is found even after its branch moved on.
    let refspecs = match (depth > 0, build.tag) {
        (true, false) => vec![format!(
            "+refs/heads/{0}:refs/remotes/origin/{0}",
            build.ref_name
        )],
        (true, true) => vec![format!("+refs/tags/{0}:refs/tags/{0}", build.ref_name)],
        (false, _) => vec![
            "+refs/heads/*:refs/remotes/origin/*".to_owned(),
            "+refs/tags/*:refs/tags/*".to_owned(),
        ],
    };
    let repo_url = match &spec.git {
        Some(git) => git.url.clone(),
        None => crate::service::variables::repository_url(
            external_url,
            &job.project.full_path(),
            &job.token,
        ),
    };
    json!({
        "repo_url": repo_url,
        "repo_object_format": "sha1",
        "ref": build.ref_name,
        "sha": build.commit.sha,
        "before_sha": "0".repeat(40),
        "ref_type": if build.tag { "tag" } else { "branch" },
        "refspecs": refspecs,
        "depth": depth,
        "protected": build.protected,
    })
}

fn caches(spec: &kiln_executor::JobSpec) -> Value {
    let when = |w: kiln_executor::ArtifactsWhen| match w {
        kiln_executor::ArtifactsWhen::OnSuccess => "on_success",
        kiln_executor::ArtifactsWhen::OnFailure => "on_failure",
        kiln_executor::ArtifactsWhen::Always => "always",
    };
    spec.cache
        .iter()
        .map(|c| {
            json!({
                "key": c.key,
                "untracked": c.untracked,
                "policy": c.policy,
                "paths": c.paths,
                "when": when(c.when),
                "fallback_keys": c.fallback_keys,
            })
        })
        .collect()
}

fn artifacts(job: &AssignedJob) -> Value {
    let Some(artifacts) = job.plan.as_ref().and_then(|p| p.artifacts.as_ref()) else {
        return Value::Null;
    };
    let when = match artifacts.when {
        kiln_ci::ArtifactsWhen::OnSuccess => "on_success",
        kiln_ci::ArtifactsWhen::OnFailure => "on_failure",
        kiln_ci::ArtifactsWhen::Always => "always",
    };
    let expire_in = artifacts.expire_in.clone().unwrap_or_default();
    let mut list = Vec::new();
    if artifacts.archives() {
        list.push(json!({
            "name": artifacts.name.clone().unwrap_or_else(|| "artifacts".to_owned()),
            "untracked": artifacts.untracked,
            "paths": artifacts.paths,
            "exclude": artifacts.exclude,
            "when": when,
            "expire_in": expire_in,
            "artifact_type": "archive",
            "artifact_format": "zip",
        }));
    }
    if !artifacts.dotenv.is_empty() {
        // As GitLab's `create_reports`: uploaded whatever the job's result, gzip.
        list.push(json!({
            "name": "dotenv",
            "untracked": false,
            "paths": artifacts.dotenv,
            "when": "always",
            "expire_in": expire_in,
            "artifact_type": "dotenv",
            "artifact_format": "gzip",
        }));
    }
    if list.is_empty() {
        return Value::Null;
    }
    Value::Array(list)
}

fn dependencies(job: &AssignedJob) -> Value {
    let list: Vec<Value> = job
        .spec
        .dependencies
        .iter()
        .map(|dependency| {
            let size = job
                .archives
                .iter()
                .find(|a| a.build_id == dependency.id)
                .and_then(|a| a.size)
                .unwrap_or(0);
            // The running job's own token downloads them, as current GitLab hands out.
            json!({
                "id": dependency.id,
                "name": dependency.name,
                "token": job.token,
                "artifacts_file": { "filename": "artifacts.zip", "size": size },
            })
        })
        .collect();
    Value::Array(list)
}
