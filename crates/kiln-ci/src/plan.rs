//! The compiler's output: the pipeline plan handed to the coordinator (stages and fully resolved jobs).
//! These types are part of the public API and serialise to the JSON snapshots in `tests/snapshots`.

use serde::{Deserialize, Serialize};

/// A compiled pipeline: the stages that have jobs and the jobs in execution order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelinePlan {
    /// Stages in order that have at least one job after filtering (`.pre` first, `.post` last when used).
    pub stages: Vec<String>,
    /// Jobs in file order within stage order (sorted by stage index, stable).
    pub jobs: Vec<JobPlan>,
    /// What of the file Kiln cannot honour and left out (includes it does not fetch, needs
    /// on other pipelines), GitLab-lint style: each names where it is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// One job of the pipeline with every inherited and default value already applied.
/// Stored with each build (see the server's job definition), so every field has a default:
/// a definition written before a field existed still reads.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct JobPlan {
    /// Job name; `parallel:` copies are named `name 1/3`, matrix copies `name: [a, b]`.
    pub name: String,
    pub stage: String,
    /// Index into PipelinePlan::stages.
    pub stage_idx: usize,
    pub before_script: Vec<String>,
    pub script: Vec<String>,
    pub after_script: Vec<String>,
    /// Global variables overridden by job variables (and rule variables), as strings, sorted by key.
    /// Parallel copies also carry CI_NODE_INDEX / CI_NODE_TOTAL and their matrix variables.
    pub variables: Vec<(String, String)>,
    /// The keys of `variables` whose winning definition is `expand: false`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub raw_variables: Vec<String>,
    pub when: When,
    pub allow_failure: bool,
    /// None = stage-ordered job; Some(list) = DAG job (`needs: []` is Some(empty)).
    pub needs: Option<Vec<Need>>,
    /// None = default (all earlier-stage jobs / needs with artifacts); Some(list) explicit.
    pub dependencies: Option<Vec<String>>,
    pub artifacts: Option<ArtifactsPlan>,
    /// The coverage regex WITHOUT the surrounding slashes, e.g. `Coverage: (\d+\.\d+)%`.
    pub coverage: Option<String>,
    pub timeout_secs: Option<u64>,
    pub tags: Vec<String>,
    pub retry: RetryPlan,
    pub image: Option<String>,
    pub services: Vec<String>,
    pub environment: Option<String>,
    /// `cache:` entries, their keys computed for the commit (`key: files:`), not yet given
    /// the protected or unprotected suffix the server adds.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cache: Vec<CachePlan>,
    /// Some for a bridge job (`trigger:`): it runs no script, it starts a downstream pipeline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger: Option<TriggerPlan>,
    /// What of this job Kiln left out; its trace shows them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// A bridge's `trigger:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TriggerPlan {
    /// A child pipeline: its `include:` as JSON (see `child_config`).
    pub include: Option<String>,
    /// Another project's pipeline (`trigger: project`), and its branch.
    pub project: Option<String>,
    pub branch: Option<String>,
    /// `strategy: depend`: the bridge takes the downstream pipeline's result.
    pub depend: bool,
    /// `forward:` — the bridge's variables (default) and the pipeline's (not by default)
    /// become the downstream pipeline's variables.
    pub forward_yaml_variables: bool,
    pub forward_pipeline_variables: bool,
}

impl TriggerPlan {
    pub fn new() -> TriggerPlan {
        TriggerPlan {
            include: None,
            project: None,
            branch: None,
            depend: false,
            forward_yaml_variables: true,
            forward_pipeline_variables: false,
        }
    }
}

impl Default for TriggerPlan {
    fn default() -> TriggerPlan {
        TriggerPlan::new()
    }
}

/// One `cache:` entry, as the runner gets it (gitlab-runner's `spec.Cache`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CachePlan {
    /// Variables still unexpanded: the runner expands them.
    pub key: String,
    pub paths: Vec<String>,
    pub untracked: bool,
    pub when: ArtifactsWhen,
    /// "pull-push", "pull", "push", or a `$VARIABLE` naming one.
    pub policy: String,
    /// Shared between protected and unprotected refs.
    pub unprotect: bool,
    pub fallback_keys: Vec<String>,
}

/// When a job runs relative to the result of the jobs before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum When {
    #[default]
    OnSuccess,
    OnFailure,
    Always,
    Manual,
    Delayed,
}

impl When {
    /// The GitLab spelling: "on_success", "on_failure", "always", "manual", "delayed".
    pub fn as_str(self) -> &'static str {
        match self {
            When::OnSuccess => "on_success",
            When::OnFailure => "on_failure",
            When::Always => "always",
            When::Manual => "manual",
            When::Delayed => "delayed",
        }
    }
}

/// One `needs:` entry of a DAG job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Need {
    pub job: String,
    pub artifacts: bool,
    pub optional: bool,
}

/// The job's `artifacts:` (of the reports, `dotenv`; the others are accepted and ignored).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ArtifactsPlan {
    pub name: Option<String>,
    pub paths: Vec<String>,
    pub exclude: Vec<String>,
    pub untracked: bool,
    pub when: ArtifactsWhen,
    /// raw text as written, e.g. "1 week" or "never"
    pub expire_in: Option<String>,
    /// parsed; None for "never" or absent
    pub expire_in_secs: Option<u64>,
    /// `reports: dotenv:` files: their `KEY=VALUE` lines become variables of the jobs that
    /// take this job's artifacts. Uploaded whatever the job's result, as GitLab's reports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dotenv: Vec<String>,
}

impl ArtifactsPlan {
    /// Whether there is an archive to make (paths or untracked files), not only reports.
    pub fn archives(&self) -> bool {
        !self.paths.is_empty() || self.untracked
    }
}

/// When artifacts are uploaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArtifactsWhen {
    #[default]
    OnSuccess,
    OnFailure,
    Always,
}

/// `retry:`; `when` empty means "any failure reason" (GitLab's default `always`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RetryPlan {
    pub max: u8,
    pub when: Vec<String>,
}
