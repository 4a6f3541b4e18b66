//! A job as the server hands it out (gitlab-runner's `spec.Job`), turned into the
//! executor's `JobSpec`, and the transport that carries its trace and artifacts back.

use super::coordinator::{CallError, Coordinator};
use kiln_executor::{
    ArtifactsSpec, ArtifactsWhen, CacheSpec, Dependency, GitSource, JobSpec, SinkError, Transport,
};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

/// How long a trace append keeps trying while the server is unreachable.
const TRACE_PATIENCE: Duration = Duration::from_secs(120);

/// gitlab-runner's default when the server sends no timeout (`DefaultTimeout`).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(7200);

#[derive(Debug, Deserialize)]
pub struct Payload {
    pub id: i64,
    pub token: String,
    #[serde(default)]
    job_info: JobInfo,
    #[serde(default)]
    git_info: GitInfo,
    #[serde(default)]
    runner_info: RunnerInfo,
    #[serde(default)]
    variables: Option<Vec<Variable>>,
    #[serde(default)]
    steps: Option<Vec<Step>>,
    #[serde(default)]
    artifacts: Option<Vec<Artifact>>,
    #[serde(default)]
    dependencies: Option<Vec<PayloadDependency>>,
    #[serde(default)]
    cache: Option<Vec<Cache>>,
}

/// gitlab-runner's `spec.Cache`.
#[derive(Debug, Deserialize)]
struct Cache {
    #[serde(default)]
    key: String,
    #[serde(default)]
    untracked: bool,
    #[serde(default)]
    policy: String,
    #[serde(default)]
    paths: Option<Vec<String>>,
    #[serde(default)]
    when: Option<String>,
    #[serde(default)]
    fallback_keys: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
struct JobInfo {
    #[serde(default)]
    name: String,
    #[serde(default)]
    stage: String,
    #[serde(default)]
    project_full_path: String,
}

#[derive(Debug, Default, Deserialize)]
struct GitInfo {
    #[serde(default)]
    repo_url: String,
    #[serde(default)]
    sha: String,
    #[serde(default, rename = "ref")]
    ref_name: String,
}

#[derive(Debug, Default, Deserialize)]
struct RunnerInfo {
    #[serde(default)]
    timeout: i64,
}

#[derive(Debug, Deserialize)]
struct Variable {
    key: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    masked: bool,
    #[serde(default)]
    file: bool,
    #[serde(default)]
    raw: bool,
}

/// An artifact's or a cache's `when` (empty is `on_success`, as gitlab-runner reads it).
fn upload_when(when: Option<&str>) -> ArtifactsWhen {
    match when {
        Some("on_failure") => ArtifactsWhen::OnFailure,
        Some("always") => ArtifactsWhen::Always,
        _ => ArtifactsWhen::OnSuccess,
    }
}

#[derive(Debug, Deserialize)]
struct Step {
    name: String,
    #[serde(default)]
    script: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Artifact {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    untracked: bool,
    #[serde(default)]
    paths: Option<Vec<String>>,
    #[serde(default)]
    exclude: Option<Vec<String>>,
    #[serde(default)]
    when: Option<String>,
    #[serde(default)]
    artifact_type: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PayloadDependency {
    id: i64,
    #[serde(default)]
    name: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    artifacts_file: Option<ArtifactsFile>,
}

#[derive(Debug, Deserialize)]
struct ArtifactsFile {
    #[serde(default)]
    filename: String,
}

impl Payload {
    /// The executor's view of the job. `GIT_STRATEGY=none` runs it without a checkout.
    pub fn spec(&self) -> JobSpec {
        let variables: Vec<(String, String)> = self
            .variables
            .iter()
            .flatten()
            .map(|v| (v.key.clone(), v.value.clone()))
            .collect();
        let strategy = variables
            .iter()
            .rev()
            .find(|(k, _)| k == "GIT_STRATEGY")
            .map(|(_, v)| v.as_str());
        let step = |name: &str| {
            self.steps
                .iter()
                .flatten()
                .find(|s| s.name == name)
                .map(|s| s.script.clone())
                .unwrap_or_default()
        };
        let timeout = match self.runner_info.timeout {
            t if t > 0 => Duration::from_secs(t as u64),
            _ => DEFAULT_TIMEOUT,
        };
        JobSpec {
            id: self.id,
            name: self.job_info.name.clone(),
            stage: self.job_info.stage.clone(),
            git: (strategy != Some("none") && !self.git_info.repo_url.is_empty()).then(|| {
                GitSource {
                    url: self.git_info.repo_url.clone(),
                    sha: self.git_info.sha.clone(),
                    ref_name: self.git_info.ref_name.clone(),
                }
            }),
            workdir: None,
            before_script: Vec::new(),
            script: step("script"),
            after_script: step("after_script"),
            variables,
            timeout,
            artifacts: self.archive(),
            cache: self.caches(),
            cache_scope: self.job_info.project_full_path.clone(),
            // gitlab-runner's payload carries no warnings.
            warnings: Vec::new(),
            // The server reads the coverage from the trace.
            coverage_regex: None,
            dependencies: self
                .downloads()
                .map(|d| Dependency {
                    id: d.id,
                    name: d.name.clone(),
                })
                .collect(),
            masked: self.variables_where(|v| v.masked, |v| &v.value),
            file_variables: self.variables_where(|v| v.file, |v| &v.key),
            raw_variables: self.variables_where(|v| v.raw, |v| &v.key),
            dotenv: self
                .artifacts
                .iter()
                .flatten()
                .filter(|a| a.artifact_type.as_deref() == Some("dotenv"))
                .flat_map(|a| a.paths.clone().unwrap_or_default())
                .collect(),
        }
    }

    /// `part` of each variable that `wanted`.
    fn variables_where(
        &self,
        wanted: fn(&Variable) -> bool,
        part: fn(&Variable) -> &String,
    ) -> Vec<String> {
        self.variables
            .iter()
            .flatten()
            .filter(|v| wanted(v))
            .map(|v| part(v).clone())
            .collect()
    }

    fn caches(&self) -> Vec<CacheSpec> {
        self.cache
            .iter()
            .flatten()
            .map(|c| CacheSpec {
                key: c.key.clone(),
                paths: c.paths.clone().unwrap_or_default(),
                untracked: c.untracked,
                when: upload_when(c.when.as_deref()),
                policy: c.policy.clone(),
                fallback_keys: c.fallback_keys.clone().unwrap_or_default(),
            })
            .collect()
    }

    fn archive(&self) -> Option<ArtifactsSpec> {
        let artifact = self
            .artifacts
            .iter()
            .flatten()
            .find(|a| a.artifact_type.as_deref().unwrap_or("archive") == "archive")?;
        Some(ArtifactsSpec {
            name: artifact
                .name
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "artifacts".to_owned()),
            untracked: artifact.untracked,
            paths: artifact.paths.clone().unwrap_or_default(),
            exclude: artifact.exclude.clone().unwrap_or_default(),
            when: upload_when(artifact.when.as_deref()),
        })
    }

    /// Dependencies that have an archive to download.
    fn downloads(&self) -> impl Iterator<Item = &PayloadDependency> {
        self.dependencies.iter().flatten().filter(|d| {
            d.artifacts_file
                .as_ref()
                .is_some_and(|f| !f.filename.is_empty())
        })
    }

    /// Each dependency's download token.
    pub fn dependency_tokens(&self) -> HashMap<i64, String> {
        self.downloads()
            .map(|d| {
                let token = if d.token.is_empty() {
                    self.token.clone()
                } else {
                    d.token.clone()
                };
                (d.id, token)
            })
            .collect()
    }
}

/// The transport of one job on a remote runner: every call goes to the server with the
/// job token; a refusal that says the job ended makes the executor stop the job.
pub struct HttpTransport {
    pub coordinator: Coordinator,
    pub job_id: i64,
    pub token: String,
    pub dependency_tokens: HashMap<i64, String>,
    /// Set once the server said the job is no longer ours.
    pub gone: bool,
}

impl Transport for HttpTransport {
    async fn append_trace(&mut self, offset: u64, data: &[u8]) -> Result<(), SinkError> {
        // A server restarting is away for seconds: keep the bytes and try again, patiently,
        // before the executor's own few final tries would give them up.
        let mut backoff =
            super::work::Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let give_up = tokio::time::Instant::now() + TRACE_PATIENCE;
        loop {
            let err = match self
                .coordinator
                .patch_trace(self.job_id, &self.token, offset, data)
                .await
            {
                Ok(()) => return Ok(()),
                Err(err) if err.job_is_gone() => {
                    self.gone = true;
                    return Err(SinkError::JobGone);
                }
                Err(err) => err,
            };
            let passing = matches!(&err, CallError::Network(_))
                || matches!(&err, CallError::Status { status, .. } if *status >= 500);
            if !passing || tokio::time::Instant::now() >= give_up {
                return Err(SinkError::Retry(err.to_string()));
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }

    async fn download_artifacts(
        &mut self,
        dependency: &Dependency,
        zip: &Path,
    ) -> Result<(), String> {
        let token = self
            .dependency_tokens
            .get(&dependency.id)
            .unwrap_or(&self.token)
            .clone();
        self.coordinator
            .download_artifacts(dependency.id, &token, zip)
            .await
            .map_err(|e| format!("downloading the artifacts of {}: {e}", dependency.name))
    }

    async fn upload_artifacts(&mut self, zip: &Path, name: &str) -> Result<(), String> {
        let file_name = format!("{name}.zip");
        self.upload(zip, &file_name, ("archive", "zip")).await
    }

    async fn upload_dotenv(&mut self, gz: &[u8]) -> Result<(), String> {
        let file = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
        tokio::fs::write(file.path(), gz)
            .await
            .map_err(|e| e.to_string())?;
        self.upload(file.path(), "dotenv.gz", ("dotenv", "gzip"))
            .await
    }
}

impl HttpTransport {
    /// One upload of `kind`, tried a few times.
    async fn upload(
        &mut self,
        path: &Path,
        file_name: &str,
        kind: (&str, &str),
    ) -> Result<(), String> {
        let mut delay = Duration::from_millis(500);
        // A few tries, as gitlab-runner makes: an upload is worth keeping.
        for attempt in 1..=3 {
            match self
                .coordinator
                .upload_artifacts(self.job_id, &self.token, (path, file_name), kind)
                .await
            {
                Ok(()) => return Ok(()),
                Err(err @ CallError::Status { status, .. }) if status < 500 => {
                    return Err(format!("uploading artifacts: {err}"))
                }
                Err(err) if attempt == 3 => return Err(format!("uploading artifacts: {err}")),
                Err(_) => {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
        Err("uploading artifacts failed".into())
    }
}
