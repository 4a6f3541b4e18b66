//! Runs one job from start to end, in steps: prepare the work directory (checkout and the
//! artifacts of earlier jobs), `before_script` + `script` in one bash (`-e -o pipefail`),
//! `after_script` in another whatever happened, the end of every process the job left,
//! coverage, artifacts, and the closing line GitLab users know.

use crate::artifacts;
use crate::cache::ProjectCache;
use crate::containment::Containment;
use crate::coverage::CoverageScanner;
use crate::identity::{base_environment, chown_tree};
use crate::process::{Event, Exit, Running};
use crate::script::render;
use crate::trace::TraceWriter;
use crate::transport::Transport;
use crate::{
    ArtifactsSpec, ArtifactsWhen, CacheSpec, ExecutorConfig, FailureReason, JobSpec, Outcome,
};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::watch;

/// How long `after_script` may take (gitlab-runner's default).
const AFTER_SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);

/// One job in progress: what it runs, where, and what has become of it.
struct Job<'a, 'w, T: Transport> {
    spec: &'a JobSpec,
    config: &'a ExecutorConfig,
    trace: TraceWriter<'w, T>,
    containment: Containment,
    dir: PathBuf,
    env: Vec<(String, String)>,
    outcome: Outcome,
}

pub async fn execute<T: Transport>(
    spec: &JobSpec,
    config: &ExecutorConfig,
    transport: &mut T,
    mut cancel: watch::Receiver<bool>,
) -> Outcome {
    let fresh = spec.workdir.is_none();
    let dir = spec
        .workdir
        .clone()
        .unwrap_or_else(|| config.builds_dir.join(spec.id.to_string()));
    let mut job = Job {
        spec,
        config,
        trace: TraceWriter::masking(transport, config.max_trace_bytes, &spec.masked),
        containment: Containment::new(config.isolation, &config.runner_tag, spec.id),
        env: Vec::new(),
        dir,
        outcome: Outcome {
            failure: None,
            canceled: false,
            exit_code: None,
            coverage: None,
        },
    };
    job.introduce().await;
    match job.prepare(fresh).await {
        Err(err) => {
            job.trace.note(&format!(
                "\x1b[31;1mERROR: Preparing the work directory failed: {err}\x1b[0;m"
            ));
            job.outcome.failure = Some(FailureReason::RunnerSystemFailure);
        }
        Ok(()) => {
            job.run_script(&mut cancel).await;
            job.run_after_script().await;
            // The job is over: nothing it started outlives it.
            job.containment.kill_all();
            job.save_caches().await;
            job.collect_artifacts().await;
            job.report_dotenv().await;
        }
    }
    let _ = tokio::fs::remove_dir_all(file_variables_dir(&job.dir)).await;
    if fresh {
        let _ = tokio::fs::remove_dir_all(&job.dir).await;
    }
    let closing = closing_line(&job.outcome, spec.timeout);
    job.trace.note(&closing);
    job.trace.finish().await;
    if job.trace.is_gone() {
        job.outcome.canceled = true;
    }
    job.outcome
}

impl<'a, T: Transport> Job<'a, '_, T> {
    async fn introduce(&mut self) {
        let version = env!("CARGO_PKG_VERSION");
        self.trace.note(&format!(
            "\x1b[1mRunning with kiln {version} (shell executor, bash)\x1b[0;m"
        ));
        let user = match &self.config.job_user {
            Some(user) => format!("as {} (uid {})", user.name, user.uid),
            None => "as the runner's user".to_owned(),
        };
        let contained = self.containment.describe();
        self.trace.note(&format!(
            "Running {user}; the job's processes are kept in {contained}"
        ));
        for warning in &self.spec.warnings {
            self.trace
                .note(&format!("\x1b[33;1mWARNING: {warning}\x1b[0;m"));
        }
    }

    /// A fresh work directory with the source and the earlier jobs' artifacts, owned by the
    /// job user; the job's environment.
    async fn prepare(&mut self, fresh: bool) -> Result<(), String> {
        if fresh {
            let _ = tokio::fs::remove_dir_all(&self.dir).await;
            create_builds_dir(self.config).await?;
            match &self.spec.git {
                Some(git) => {
                    self.trace.note(&format!(
                        "Fetching changes, checking out {}…",
                        short(&git.sha)
                    ));
                    let dir = self.dir.clone();
                    // Shown before a checkout that may take a while.
                    self.trace.flush().await;
                    self.trace.transport().checkout(git, &dir).await?;
                }
                None => tokio::fs::create_dir_all(&self.dir)
                    .await
                    .map_err(|e| e.to_string())?,
            }
        }
        self.restore_caches().await;
        for dependency in &self.spec.dependencies {
            let name = &dependency.name;
            self.trace
                .note(&format!("Downloading artifacts for {name}…"));
            self.trace.flush().await;
            let zip = self
                .config
                .builds_dir
                .join(format!("{}-dependency-{}.zip", self.spec.id, dependency.id));
            let downloaded = self
                .trace
                .transport()
                .download_artifacts(dependency, &zip)
                .await;
            let unpacked = match downloaded {
                Ok(()) => {
                    let (zip, into) = (zip.clone(), self.dir.clone());
                    tokio::task::spawn_blocking(move || artifacts::unpack(&zip, &into))
                        .await
                        .map_err(|e| e.to_string())
                        .and_then(|r| r.map_err(|e| e.to_string()))
                }
                Err(err) => Err(err),
            };
            let _ = tokio::fs::remove_file(&zip).await;
            unpacked.map_err(|err| format!("downloading artifacts for {name} failed: {err}"))?;
        }
        if let Some(user) = self.config.job_user.clone() {
            let dir = self.dir.clone();
            tokio::task::spawn_blocking(move || chown_tree(&dir, &user))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("handing the work directory to the job user: {e}"))?;
        }
        let mut env = base_environment(self.config.job_user.as_ref(), &self.dir);
        env.extend(self.job_variables());
        self.write_file_variables(&mut env).await?;
        self.env = env;
        Ok(())
    }

    /// The runner's variables, then the job's (which may override them), after the runner's
    /// expansion pass: what the job's shell is given.
    fn job_variables(&self) -> Vec<(String, String)> {
        let mut all: Vec<(String, String)> = vec![
            (
                "CI_PROJECT_DIR".into(),
                self.dir.to_string_lossy().into_owned(),
            ),
            (
                "CI_BUILDS_DIR".into(),
                self.config.builds_dir.to_string_lossy().into_owned(),
            ),
            ("CI_SERVER".into(), "yes".into()),
        ];
        all.extend(self.spec.variables.iter().cloned());
        let tmp = file_variables_dir(&self.dir);
        let files = &self.spec.file_variables;
        let path_of = |key: &str| {
            files
                .iter()
                .any(|f| f == key)
                .then(|| tmp.join(key).to_string_lossy().into_owned())
        };
        crate::variables::runner_expand(&all, &self.spec.raw_variables, &path_of)
    }

    /// Puts each `file` variable's value in a file of `<work dir>.tmp` (outside the work
    /// directory, so no artifact takes it) and gives the job its path instead.
    async fn write_file_variables(&mut self, env: &mut [(String, String)]) -> Result<(), String> {
        if self.spec.file_variables.is_empty() {
            return Ok(());
        }
        let tmp = file_variables_dir(&self.dir);
        let _ = tokio::fs::remove_dir_all(&tmp).await;
        tokio::fs::create_dir_all(&tmp)
            .await
            .map_err(|e| format!("making {}: {e}", tmp.display()))?;
        for (key, value) in env.iter_mut() {
            if !self.spec.file_variables.contains(key) {
                continue;
            }
            let path = tmp.join(key.as_str());
            tokio::fs::write(&path, value.as_bytes())
                .await
                .map_err(|e| format!("writing the file variable {key}: {e}"))?;
            *value = path.to_string_lossy().into_owned();
        }
        if let Some(user) = self.config.job_user.clone() {
            let dir = tmp.clone();
            tokio::task::spawn_blocking(move || chown_tree(&dir, &user))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("handing file variables to the job user: {e}"))?;
        }
        Ok(())
    }

    /// `before_script` and `script`, in one bash.
    async fn run_script(&mut self, cancel: &mut watch::Receiver<bool>) {
        let commands: Vec<String> = self
            .spec
            .before_script
            .iter()
            .chain(&self.spec.script)
            .cloned()
            .collect();
        let mut env = self.env.clone();
        env.push(("CI_JOB_STATUS".into(), "running".into()));
        let mut coverage = CoverageScanner::new(self.spec.coverage_regex.as_deref());
        let limits = (self.spec.timeout, self.config.kill_grace);
        let exit = self
            .run_commands(&commands, &env, limits, cancel, Some(&mut coverage))
            .await;
        match exit {
            Ok(Exit::Code(0)) => self.outcome.exit_code = Some(0),
            Ok(Exit::Code(code)) => {
                self.outcome.exit_code = Some(code);
                self.outcome.failure = Some(FailureReason::ScriptFailure);
            }
            Ok(Exit::Signaled) => self.outcome.failure = Some(FailureReason::ScriptFailure),
            Ok(Exit::TimedOut) => self.outcome.failure = Some(FailureReason::JobExecutionTimeout),
            Ok(Exit::Canceled) => self.outcome.canceled = true,
            Err(err) => {
                self.trace.note(&format!(
                    "\x1b[31;1mERROR: Could not start bash: {err}\x1b[0;m"
                ));
                self.outcome.failure = Some(FailureReason::RunnerSystemFailure);
            }
        }
        self.outcome.coverage = coverage.finish();
    }

    /// Always, as current GitLab does: after a failure, a timeout and a cancel too.
    async fn run_after_script(&mut self) {
        if self.spec.after_script.is_empty() {
            return;
        }
        self.trace.note("\x1b[32;1mRunning after_script\x1b[0;m");
        let status = match (self.outcome.canceled, self.outcome.failure) {
            (true, _) => "canceled",
            (false, None) => "success",
            (false, Some(_)) => "failed",
        };
        let mut env = self.env.clone();
        env.push(("CI_JOB_STATUS".into(), status.into()));
        // Its own cancel channel: a cancel already handled must not cut after_script short.
        let (_keep, mut never) = watch::channel(false);
        let commands = self.spec.after_script.clone();
        let limits = (AFTER_SCRIPT_TIMEOUT, self.config.kill_grace);
        let after = self
            .run_commands(&commands, &env, limits, &mut never, None)
            .await;
        if !matches!(after, Ok(Exit::Code(0))) {
            self.trace
                .note("\x1b[33;1mWARNING: after_script failed, but the job goes on\x1b[0;m");
        }
    }

    /// Runs `commands` in one bash and pumps its output into the trace until it exits. A
    /// transport that says the job is gone stops it.
    async fn run_commands(
        &mut self,
        commands: &[String],
        env: &[(String, String)],
        limits: (Duration, Duration),
        cancel: &mut watch::Receiver<bool>,
        mut coverage: Option<&mut CoverageScanner>,
    ) -> std::io::Result<Exit> {
        let mut running = Running::spawn(
            &render(commands),
            &self.dir,
            env,
            limits,
            self.config.job_user.as_ref(),
            self.containment.cgroup_procs(),
        )?;
        if let Some(pid) = running.pid() {
            self.containment.started(pid);
        }
        loop {
            let event = running.next(cancel, self.trace.due_in()).await?;
            match event {
                Event::Output(data) => {
                    if let Some(scanner) = coverage.as_deref_mut() {
                        scanner.feed(&data);
                    }
                    self.trace.write(&data).await;
                }
                Event::Idle => self.trace.flush().await,
                Event::Done(exit) => return Ok(exit),
            }
            if self.trace.is_gone() {
                if let Event::Done(exit) = running.cancel().await? {
                    return Ok(exit);
                }
            }
        }
    }

    /// The job's caches, and where they are kept (None when the runner keeps none).
    fn caches(&self) -> Option<(ProjectCache, Vec<CacheSpec>)> {
        let root = self.config.cache_dir.as_ref()?;
        (!self.spec.cache.is_empty()).then(|| {
            (
                ProjectCache::new(root, &self.spec.cache_scope),
                self.spec.cache.clone(),
            )
        })
    }

    async fn restore_caches(&mut self) {
        let Some((store, caches)) = self.caches() else {
            return;
        };
        let (env, into) = (self.job_variables(), self.dir.clone());
        self.cache_step("Restoring cache", move || {
            caches
                .iter()
                .flat_map(|cache| store.restore(cache, &env, &into))
                .collect()
        })
        .await;
    }

    /// After `after_script`, before the artifacts (gitlab-runner's `archive_cache` step); a
    /// canceled job keeps nothing.
    async fn save_caches(&mut self) {
        let Some((store, caches)) = self.caches() else {
            return;
        };
        if self.outcome.canceled || self.trace.is_gone() {
            return;
        }
        let succeeded = self.outcome.failure.is_none();
        let heading = if succeeded {
            "Saving cache for successful job"
        } else {
            "Saving cache for failed job"
        };
        let (env, root, id) = (self.env.clone(), self.dir.clone(), self.spec.id);
        let limit = self.config.max_artifacts_bytes;
        self.cache_step(heading, move || {
            caches
                .iter()
                .flat_map(|cache| store.save(cache, &env, (&root, id), succeeded, limit))
                .collect()
        })
        .await;
    }

    /// Shows `heading`, does the blocking `work` off the runtime, then shows its lines.
    async fn cache_step(
        &mut self,
        heading: &str,
        work: impl FnOnce() -> Vec<String> + Send + 'static,
    ) {
        self.trace.note(&format!("\x1b[32;1m{heading}\x1b[0;m"));
        self.trace.flush().await;
        let lines = tokio::task::spawn_blocking(work)
            .await
            .unwrap_or_else(|e| vec![format!("{heading} failed: {e}")]);
        for line in lines {
            self.trace.note(&line);
        }
    }

    /// Archives and uploads the artifacts, if the job's result asks for them.
    async fn collect_artifacts(&mut self) {
        let job: &'a JobSpec = self.spec;
        let Some(spec) = &job.artifacts else {
            return;
        };
        let wanted = match spec.when {
            ArtifactsWhen::Always => true,
            ArtifactsWhen::OnFailure => self.outcome.failure.is_some(),
            ArtifactsWhen::OnSuccess => self.outcome.failure.is_none(),
        };
        if !wanted || self.outcome.canceled || self.trace.is_gone() {
            return;
        }
        self.trace.note("\x1b[32;1mUploading artifacts…\x1b[0;m");
        let name = archive_name(spec, &self.env);
        let out = self
            .config
            .builds_dir
            .join(format!("{}-artifacts", self.spec.id))
            .join(format!("{name}.zip"));
        match self.archive(spec, &out).await {
            Ok(Some(zip)) => {
                self.trace.flush().await;
                let uploaded = self.trace.transport().upload_artifacts(&zip, &name).await;
                if let Err(err) = uploaded {
                    self.fail_artifacts(&format!("Uploading artifacts failed: {err}"))
                        .await;
                }
            }
            Ok(None) => {}
            Err(err) => {
                self.fail_artifacts(&format!("Archiving artifacts failed: {err}"))
                    .await
            }
        }
        if let Some(parent) = out.parent() {
            let _ = tokio::fs::remove_dir_all(parent).await;
        }
    }

    /// Hands over the `dotenv` report, whatever the job's result (as gitlab-runner uploads
    /// reports `when: always`); a refused report fails the job, as its upload error does.
    async fn report_dotenv(&mut self) {
        if self.spec.dotenv.is_empty() || self.outcome.canceled || self.trace.is_gone() {
            return;
        }
        let paths: Vec<String> = self
            .spec
            .dotenv
            .iter()
            .map(|p| crate::variables::expand_in(p, &self.env))
            .collect();
        let (root, found) = (self.dir.clone(), paths.clone());
        let gz =
            tokio::task::spawn_blocking(move || crate::artifacts::dotenv_report(&root, &found))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()));
        let (gz, missing) = match gz {
            Ok(report) => report,
            Err(err) => {
                self.fail_artifacts(&format!("Reading the dotenv report failed: {err}"))
                    .await;
                return;
            }
        };
        for path in missing {
            self.trace.note(&format!(
                "\x1b[33;1mWARNING: {path}: no matching files\x1b[0;m"
            ));
        }
        if gz.is_empty() {
            return;
        }
        self.trace
            .note("\x1b[32;1mUploading artifacts as \"dotenv\"…\x1b[0;m");
        self.trace.flush().await;
        if let Err(err) = self.trace.transport().upload_dotenv(&gz).await {
            self.fail_artifacts(&format!("Uploading the dotenv report failed: {err}"))
                .await;
        }
    }

    /// Zips the artifacts into `out`: Some(archive) to upload, None when there is nothing
    /// to upload or it was too large (the job then failed).
    async fn archive(
        &mut self,
        spec: &ArtifactsSpec,
        out: &Path,
    ) -> Result<Option<PathBuf>, String> {
        let (root, target) = (self.dir.clone(), out.to_path_buf());
        let expand = |path: &String| artifacts::expand_path(path, &self.env, &root);
        let what = ArtifactsSpec {
            paths: spec.paths.iter().map(expand).collect(),
            exclude: spec.exclude.iter().map(expand).collect(),
            ..spec.clone()
        };
        let limit = self.config.max_artifacts_bytes;
        let archive = tokio::task::spawn_blocking(move || {
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            artifacts::archive(&root, &what, &target, limit)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        for pattern in &archive.unmatched {
            self.trace.note(&format!(
                "\x1b[33;1mWARNING: {pattern}: no matching files\x1b[0;m"
            ));
        }
        if archive.size > limit {
            self.trace
                .note(&format!(
                    "\x1b[31;1mERROR: Uploading artifacts failed: the archive passed {} bytes, over the limit of {limit} bytes (--max-artifacts-size)\x1b[0;m",
                    archive.size
                ));
            self.outcome.failure = Some(FailureReason::ArtifactsTooLarge);
            return Ok(None);
        }
        if archive.files == 0 {
            self.trace
                .note("\x1b[33;1mWARNING: no files to upload\x1b[0;m");
            return Ok(None);
        }
        self.trace
            .note(&format!("{} files, {} bytes", archive.files, archive.size));
        Ok(Some(archive.path))
    }

    async fn fail_artifacts(&mut self, message: &str) {
        self.trace
            .note(&format!("\x1b[31;1mERROR: {message}\x1b[0;m"));
        self.outcome.failure = Some(FailureReason::RunnerSystemFailure);
    }
}

/// The builds dir: private to the runner, or, with a job user, traversable but not listable
/// by it (each job's own directory is then the job user's, 0700).
async fn create_builds_dir(config: &ExecutorConfig) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    tokio::fs::create_dir_all(&config.builds_dir)
        .await
        .map_err(|e| e.to_string())?;
    let mode = if config.job_user.is_some() {
        0o711
    } else {
        0o700
    };
    tokio::fs::set_permissions(&config.builds_dir, std::fs::Permissions::from_mode(mode))
        .await
        .map_err(|e| e.to_string())
}

/// `artifacts:name` expanded, as a file name: no folders, never empty.
fn archive_name(spec: &ArtifactsSpec, env: &[(String, String)]) -> String {
    let name: String = crate::expand_variables(&spec.name, env)
        .chars()
        .map(|c| {
            if matches!(c, '/' | '\\' | '\0') {
                '_'
            } else {
                c
            }
        })
        .collect();
    if name.trim().is_empty() {
        "artifacts".to_owned()
    } else {
        name
    }
}

fn closing_line(outcome: &Outcome, timeout: Duration) -> String {
    match (outcome.canceled, outcome.failure, outcome.exit_code) {
        (true, _, _) => "\x1b[31;1mERROR: Job failed: canceled\x1b[0;m".to_owned(),
        (false, None, _) => "\x1b[32;1mJob succeeded\x1b[0;m".to_owned(),
        (false, Some(FailureReason::JobExecutionTimeout), _) => format!(
            "\x1b[31;1mERROR: Job failed: execution took longer than {} seconds\x1b[0;m",
            timeout.as_secs()
        ),
        (false, Some(FailureReason::ScriptFailure), Some(code)) => {
            format!("\x1b[31;1mERROR: Job failed: exit code {code}\x1b[0;m")
        }
        (false, Some(reason), _) => {
            format!("\x1b[31;1mERROR: Job failed: {}\x1b[0;m", reason.as_str())
        }
    }
}

fn short(sha: &str) -> &str {
    sha.get(..8).unwrap_or(sha)
}

/// Where a job's `file` variables are written: beside its work directory.
fn file_variables_dir(dir: &std::path::Path) -> PathBuf {
    PathBuf::from(format!("{}.tmp", dir.display()))
}
