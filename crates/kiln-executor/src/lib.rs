//! Kiln's executor: runs one job as real shell processes. Every runner uses it: the one
//! embedded in `kiln serve`, `kiln run`, and (later) the remote `kiln runner`. How a job
//! arrives and where its trace, source and artifacts travel is the business of its
//! `Transport`; the executor never sees a path on the server's disk.

mod artifacts;
mod cache;
mod checkout;
mod containment;
mod coverage;
mod execute;
mod identity;
mod process;
mod script;
mod trace;
mod transport;
pub mod variables;

pub use checkout::{checkout, checkout_with};
pub use containment::{kill_leftover_cgroups, kill_runner_cgroups, Isolation};
pub use coverage::CoverageScanner;
pub use execute::execute;
pub use identity::JobUser;
pub use process::kill_leftovers;
pub use transport::{SinkError, Transport};

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Everything needed to run one job, wherever it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    pub id: i64,
    pub name: String,
    pub stage: String,
    /// The commit to check out; None runs in an empty directory (or in `workdir`).
    pub git: Option<GitSource>,
    /// Run in this existing directory instead of a fresh one (`kiln run`'s working tree).
    pub workdir: Option<PathBuf>,
    pub before_script: Vec<String>,
    pub script: Vec<String>,
    pub after_script: Vec<String>,
    /// Exported to the scripts, in order; later entries win. Nothing else of the runner's
    /// environment reaches the job but a minimal base (`PATH`, `HOME`, `LANG`, …).
    pub variables: Vec<(String, String)>,
    pub timeout: Duration,
    pub artifacts: Option<ArtifactsSpec>,
    /// Regex (without slashes) whose last match in the trace gives the coverage.
    pub coverage_regex: Option<String>,
    /// Earlier jobs whose artifacts are unpacked into the work directory first; the
    /// transport downloads them.
    #[serde(default)]
    pub dependencies: Vec<Dependency>,
    /// Values never shown in the trace: each occurrence becomes `[MASKED]`, also when the
    /// job prints it in pieces.
    #[serde(default)]
    pub masked: Vec<String>,
    /// Variables of type `file`: the job sees the path of a file holding the value.
    #[serde(default)]
    pub file_variables: Vec<String>,
    /// Raw variables: the runner's pass (see `variables`) leaves their values as they are.
    #[serde(default)]
    pub raw_variables: Vec<String>,
    /// `artifacts:reports:dotenv` files, handed over (gzip) after the job, whatever its result.
    #[serde(default)]
    pub dotenv: Vec<String>,
    /// `cache:` entries: restored before the job's artifacts arrive, saved after `after_script`.
    #[serde(default)]
    pub cache: Vec<CacheSpec>,
    /// Whose caches these are (the project's full path): archives are kept per project.
    #[serde(default)]
    pub cache_scope: String,
    /// What of the job's definition Kiln left out, shown at the top of its trace.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// One `cache:` entry as the runner gets it; key, fallback keys and paths are expanded with
/// the job's variables when used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheSpec {
    pub key: String,
    pub paths: Vec<String>,
    pub untracked: bool,
    pub when: ArtifactsWhen,
    /// "pull-push", "pull", "push", or a variable naming one.
    pub policy: String,
    pub fallback_keys: Vec<String>,
}

/// Where a job's source comes from: a clone URL (which may carry credentials) and a commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitSource {
    pub url: String,
    pub sha: String,
    pub ref_name: String,
}

/// An earlier job whose artifacts this job receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    pub id: i64,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactsSpec {
    /// `artifacts:name`, variables not yet expanded; the archive is `<name>.zip`.
    #[serde(default = "default_artifacts_name")]
    pub name: String,
    /// `artifacts:untracked`: every file git does not track, ignored ones included.
    #[serde(default)]
    pub untracked: bool,
    pub paths: Vec<String>,
    pub exclude: Vec<String>,
    pub when: ArtifactsWhen,
}

/// When artifacts are uploaded (GitLab's `artifacts:when`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArtifactsWhen {
    OnSuccess,
    OnFailure,
    Always,
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
    /// Run jobs as this unprivileged user (the runner must be root to switch).
    pub job_user: Option<JobUser>,
    /// How a job's whole process tree is kept together to be killed.
    pub isolation: Isolation,
    /// Names this runner's cgroups and markers, so two runners on one machine never touch
    /// each other's jobs.
    pub runner_tag: String,
    /// Where caches are kept (`<dir>/<project>/<key>/cache.zip`); None keeps none.
    pub cache_dir: Option<PathBuf>,
}

impl ExecutorConfig {
    pub fn new(builds_dir: PathBuf) -> ExecutorConfig {
        ExecutorConfig {
            builds_dir,
            max_trace_bytes: 100 * 1024 * 1024,
            max_artifacts_bytes: 100 * 1024 * 1024,
            kill_grace: Duration::from_secs(5),
            job_user: None,
            isolation: Isolation::Auto,
            runner_tag: "kiln".into(),
            cache_dir: None,
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
    /// Canceled by the runner, or because the transport said the job is gone.
    pub canceled: bool,
    pub exit_code: Option<i32>,
    pub coverage: Option<f64>,
}

impl Outcome {
    pub fn success(&self) -> bool {
        self.failure.is_none() && !self.canceled
    }
}

fn default_artifacts_name() -> String {
    "artifacts".to_owned()
}

/// Unpacks an artifacts archive into `into` (its paths may not leave it), as a job's
/// dependencies are unpacked; `kiln run --artifacts-to-host` uses it for the working tree.
pub fn unpack_artifacts(zip: &std::path::Path, into: &std::path::Path) -> std::io::Result<()> {
    artifacts::unpack(zip, into)
}

/// Expands `$NAME`, `${NAME}` and `%NAME%` with `variables` (later entries win), as GitLab does
/// in `artifacts:name`; an unknown variable becomes empty.
pub fn expand_variables(text: &str, variables: &[(String, String)]) -> String {
    let lookup = |name: &str| {
        variables
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    };
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(['$', '%']) {
        out.push_str(&rest[..at]);
        let (sigil, after) = (&rest[at..at + 1], &rest[at + 1..]);
        let braced = (sigil == "$")
            .then(|| after.strip_prefix('{'))
            .flatten()
            .and_then(|inner| {
                inner
                    .find('}')
                    .map(|end| (&inner[..end], &inner[end + 1..]))
            });
        let percent = (sigil == "%")
            .then(|| {
                after
                    .find('%')
                    .map(|end| (&after[..end], &after[end + 1..]))
            })
            .flatten()
            .filter(|(name, _)| !name.is_empty() && name.chars().all(is_name));
        let bare = (sigil == "$").then(|| {
            let end = after.find(|c: char| !is_name(c)).unwrap_or(after.len());
            (&after[..end], &after[end..])
        });
        match braced
            .or(percent)
            .or(bare.filter(|(name, _)| !name.is_empty()))
        {
            Some((name, tail)) => {
                out.push_str(lookup(name));
                rest = tail;
            }
            None => {
                out.push_str(sigil);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::expand_variables;

    #[test]
    fn expands_the_three_spellings() {
        let vars = vec![
            ("CI_JOB_NAME".to_owned(), "build".to_owned()),
            ("REF".to_owned(), "main".to_owned()),
            ("REF".to_owned(), "later".to_owned()),
        ];
        assert_eq!(
            expand_variables("$CI_JOB_NAME-${REF}_%REF%", &vars),
            "build-later_later"
        );
        assert_eq!(expand_variables("plain", &vars), "plain");
        assert_eq!(expand_variables("$MISSING-x", &vars), "-x");
        assert_eq!(expand_variables("100% $ done", &vars), "100% $ done");
    }
}
