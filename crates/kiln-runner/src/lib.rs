//! Kiln's executor: runs one job as a real shell process. Every runner uses it, the one
//! embedded in `kiln serve`, `kiln run` and (later) the remote `kiln runner`; only how jobs
//! arrive and how their trace and result travel differ (`TraceSink`).

mod artifacts;
mod checkout;
mod coverage;
mod execute;
mod process;
mod script;
mod trace;

pub use execute::execute;
pub use trace::TraceSink;

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Everything needed to run one job; the server builds it from the build and its pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    pub id: i64,
    pub name: String,
    pub stage: String,
    /// Where to clone from: a local path (the server's mirror) or a URL; None runs in an
    /// empty directory (`kiln run` uses the working tree instead, see `workdir`).
    pub repo: Option<String>,
    /// Run in this existing directory instead of a fresh checkout (`kiln run`).
    pub workdir: Option<PathBuf>,
    pub sha: String,
    pub ref_name: String,
    pub before_script: Vec<String>,
    pub script: Vec<String>,
    pub after_script: Vec<String>,
    /// Exported to the scripts, in order; later entries win.
    pub variables: Vec<(String, String)>,
    pub timeout: Duration,
    pub artifacts: Option<ArtifactsSpec>,
    /// Regex (without slashes) whose last match in the trace gives the coverage.
    pub coverage_regex: Option<String>,
    /// Artifacts of earlier jobs to unpack into the work directory first: (job name, zip).
    #[serde(default)]
    pub dependencies: Vec<(String, PathBuf)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactsSpec {
    pub paths: Vec<String>,
    pub exclude: Vec<String>,
    /// on_success, on_failure or always.
    pub when: String,
}

#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// Parent of each job's fresh work directory.
    pub builds_dir: PathBuf,
    /// Trace bytes kept per job; the rest is dropped with a notice in the trace.
    pub max_trace_bytes: u64,
    /// Artifacts archives larger than this fail the job.
    pub max_artifacts_bytes: u64,
    /// Between TERM and KILL when a job is canceled or times out.
    pub kill_grace: Duration,
}

impl ExecutorConfig {
    pub fn new(builds_dir: PathBuf) -> ExecutorConfig {
        ExecutorConfig {
            builds_dir,
            max_trace_bytes: 100 * 1024 * 1024,
            max_artifacts_bytes: 100 * 1024 * 1024,
            kill_grace: Duration::from_secs(5),
        }
    }
}

/// Why a job failed, with GitLab's `failure_reason` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailureReason {
    ScriptFailure,
    JobExecutionTimeout,
    RunnerSystemFailure,
    ArtifactsTooLarge,
}

impl FailureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::ScriptFailure => "script_failure",
            FailureReason::JobExecutionTimeout => "job_execution_timeout",
            FailureReason::RunnerSystemFailure => "runner_system_failure",
            FailureReason::ArtifactsTooLarge => "artifacts_too_large",
        }
    }
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// None: success. Some: failed for that reason. Ignored when `canceled`.
    pub failure: Option<FailureReason>,
    pub canceled: bool,
    pub exit_code: Option<i32>,
    pub coverage: Option<f64>,
    /// The artifacts zip, written under the builds dir; the caller moves or deletes it.
    pub artifacts: Option<PathBuf>,
}

impl Outcome {
    pub fn success(&self) -> bool {
        self.failure.is_none() && !self.canceled
    }
}
