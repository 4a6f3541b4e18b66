//! The embedded runner: `kiln serve` runs pending builds itself as an in-process client of
//! the jobs service, the same service the runner protocol serves to remote runners, so each
//! build runs once whoever takes it. Its builds' leases follow this server's heartbeat: a
//! server that dies stops renewing them, and any other server's reaper fails them.

use crate::service::jobs::{self, AssignedJob, Caller, JobError, JobOutcome};
use crate::AppState;
use kiln_executor::{Dependency, GitSource, SinkError, Transport};
use kiln_store::{Appended, Holder};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::Instrument;

/// How long an embedded build's lease lasts without a heartbeat (by default).
pub const LEASE: Duration = Duration::from_secs(30);
/// Heartbeats per lease: the leases are renewed (and cancels the feed missed are looked for)
/// this many times before one runs out.
const HEARTBEATS_PER_LEASE: u32 = 6;
/// How often idle workers look for work without a wake (a missed notification).
const POLL: Duration = Duration::from_secs(1);
/// How long a stopping server waits for its builds to be given back or failed.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// A running embedded runner.
pub struct EmbeddedRunner {
    pub runner_id: i64,
    stop: watch::Sender<bool>,
    tasks: tokio::sync::Mutex<tokio::task::JoinSet<()>>,
}

/// Starts `concurrency` workers (none with `--no-embedded-runner`) and the heartbeat. Builds
/// this runner left running before a restart are failed first, workers or not: their
/// processes are gone, and what is left of them is killed.
pub async fn start(app: AppState, concurrency: usize) -> anyhow::Result<Arc<EmbeddedRunner>> {
    let runner_id = app
        .store
        .runners()
        .find_or_create(&embedded_description(&app.config)?)
        .await?;
    let tags = kiln_store::runners::normalize_tags(&app.config.embedded_tags);
    if app.store.runners().get(runner_id).await?.tags != tags {
        let update = kiln_store::RunnerUpdate {
            tags: Some(tags),
            ..Default::default()
        };
        app.store.runners().update(runner_id, &update).await?;
    }
    recover(&app, runner_id).await?;
    let (stop, stopped) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        tasks.spawn(worker(app.clone(), runner_id, stopped.clone()));
    }
    tasks.spawn(heartbeat(app.clone(), runner_id, stopped));
    Ok(Arc::new(EmbeddedRunner {
        runner_id,
        stop,
        tasks: tokio::sync::Mutex::new(tasks),
    }))
}

impl EmbeddedRunner {
    /// Stops taking builds; gives back the builds whose job had not started and fails the
    /// others (their processes are killed), so none stays running after this server.
    pub async fn stop(&self, app: &AppState) {
        let _ = self.stop.send(true);
        let mut tasks = self.tasks.lock().await;
        let all_done = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(STOP_WAIT, all_done).await.is_err() {
            tasks.abort_all();
        }
        let left = app.store.builds().running_of(self.runner_id).await;
        for build in left.unwrap_or_default() {
            let holder = Holder::Runner(self.runner_id);
            if let Err(err) = jobs::fail(app, holder, build, SHUTDOWN).await {
                tracing::error!(build, error = %err, "could not fail a build at shutdown");
            }
        }
    }
}

const SHUTDOWN: &str = "the server shut down while this job ran";

async fn recover(app: &AppState, runner_id: i64) -> anyhow::Result<()> {
    let note = jobs::error_line("the server restarted while this build ran; its process is gone");
    let orphans = app
        .store
        .builds()
        .fail_orphans(runner_id, note.as_bytes())
        .await?;
    if orphans.is_empty() {
        return Ok(());
    }
    // A crash leaves the jobs' processes behind: end them, or a retry would run twice.
    let (builds_dir, tag, ids) = (
        app.executor.builds_dir.clone(),
        app.executor.runner_tag.clone(),
        orphans.clone(),
    );
    let killed = tokio::task::spawn_blocking(move || {
        kiln_executor::kill_leftover_cgroups(&tag, &ids)
            + kiln_executor::kill_leftovers(&builds_dir, &ids)
    })
    .await
    .unwrap_or(0);
    tracing::warn!(
        count = orphans.len(),
        killed,
        "failed builds left running by a previous run"
    );
    Ok(())
}

/// The embedded runner's identity: one per data dir, kept in the file `runner-id` there, so
/// that a restarted server recognises the builds it left running (even in a new container
/// with another host name), and two servers sharing a database never take each other's.
pub fn embedded_description(config: &crate::Config) -> std::io::Result<String> {
    Ok(format!(
        "embedded runner {} ({})",
        runner_identity(&config.data_dir)?,
        config.data_dir.display()
    ))
}

/// The id in `<data dir>/runner-id`, made on first use.
pub fn runner_identity(data_dir: &Path) -> std::io::Result<String> {
    let file = data_dir.join("runner-id");
    match std::fs::read_to_string(&file) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_owned()),
        _ => {
            std::fs::create_dir_all(data_dir)?;
            let id = kiln_store::new_secret()[..12].to_ascii_lowercase();
            std::io::Write::write_all(
                &mut std::os::unix::fs::OpenOptionsExt::mode(
                    std::fs::OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(true),
                    0o600,
                )
                .open(&file)?,
                id.as_bytes(),
            )?;
            Ok(id)
        }
    }
}

async fn worker(app: AppState, runner_id: i64, mut stopped: watch::Receiver<bool>) {
    // The runner's record, read again only when a runner changed (the claim itself reads
    // the live row; the record gives the job its runner's tags and time limit).
    let mut known: Option<(u64, kiln_store::RunnerRecord)> = None;
    loop {
        if *stopped.borrow() {
            return;
        }
        let woken = app.dispatcher.woken();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let version = app.store.versions().runners();
        if known.as_ref().is_none_or(|(seen, _)| *seen != version) {
            known = match app.store.runners().get(runner_id).await {
                Ok(runner) => Some((version, runner)),
                Err(err) => {
                    tracing::error!(error = %err, "reading the embedded runner failed");
                    None
                }
            };
        }
        let claimed = match &known {
            Some((_, runner)) => jobs::claim(&app, runner, app.config.embedded_lease).await,
            None => Ok(None),
        };
        match claimed {
            Ok(Some(job)) => {
                let span = tracing::info_span!(
                    "build",
                    id = job.claimed.build_id,
                    project = job.claimed.project_id
                );
                run(&app, runner_id, job, &mut stopped)
                    .instrument(span)
                    .await;
                continue;
            }
            Ok(None) => {}
            Err(err) => tracing::error!(error = %err, "claiming a build failed"),
        }
        tokio::select! {
            _ = woken => {},
            _ = tokio::time::sleep(POLL) => {},
            _ = stopped.changed() => {},
        }
    }
}

async fn run(
    app: &AppState,
    runner_id: i64,
    job: AssignedJob,
    stopped: &mut watch::Receiver<bool>,
) {
    let build_id = job.claimed.build_id;
    let cancel = app.dispatcher.register(build_id);
    let nothing_to_fetch = job.spec.git.is_none() && job.spec.dependencies.is_empty();
    let prepared = Arc::new(AtomicBool::new(nothing_to_fetch));
    let mut transport = EmbeddedTransport {
        app: app.clone(),
        caller: Caller {
            runner_id,
            lease: app.config.embedded_lease,
        },
        build_id,
        project: job.project.clone(),
        downloads_left: job.spec.dependencies.len(),
        prepared: prepared.clone(),
    };
    let executed = tokio::select! {
        outcome = kiln_executor::execute(&job.spec, &app.executor, &mut transport, cancel) => Some(outcome),
        // The job's future is dropped: its processes are killed with it.
        _ = stopped.changed() => None,
    };
    app.dispatcher.unregister(build_id);
    let result = match executed {
        Some(outcome) => {
            let outcome = JobOutcome {
                success: outcome.success(),
                failure_reason: outcome.failure.map(|r| r.as_str().to_owned()),
                exit_code: outcome.exit_code.map(i64::from),
                coverage: outcome.coverage,
            };
            jobs::finish(app, runner_id, build_id, &outcome).await
        }
        None if !prepared.load(Ordering::Acquire) => {
            match app.store.builds().requeue(build_id, runner_id).await {
                Ok(_) => return tracing::info!("gave the build back at shutdown"),
                Err(err) => Err(err.into()),
            }
        }
        None => jobs::fail(app, Holder::Runner(runner_id), build_id, SHUTDOWN).await,
    };
    match result {
        Ok(status) => tracing::info!(status = %status, "build finished"),
        // Canceled or reaped meanwhile: its status is someone else's to tell.
        Err(JobError::Gone(status)) => tracing::info!(status = %status, "build ended elsewhere"),
        // Its pipeline was deleted while it ran.
        Err(JobError::NotFound) => tracing::info!("the build was deleted"),
        Err(err) => tracing::error!(error = %err, "recording the build's end failed"),
    }
}

/// Renews the leases of this runner's builds, and cancels any that are no longer running
/// (a cancel whose notification was missed).
async fn heartbeat(app: AppState, runner_id: i64, mut stopped: watch::Receiver<bool>) {
    let lease = app.config.embedded_lease;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(lease / HEARTBEATS_PER_LEASE) => {},
            _ = stopped.changed() => return,
        }
        let until = kiln_store::now_ms() + lease.as_millis() as i64;
        if let Err(err) = app.store.builds().renew_leases(runner_id, until).await {
            tracing::warn!(error = %err, "renewing build leases failed");
            continue;
        }
        if let Ok(running) = app.store.builds().running_of(runner_id).await {
            for build in app.dispatcher.registered() {
                if !running.contains(&build) {
                    app.dispatcher.cancel(build);
                }
            }
        }
    }
}

/// The embedded runner's transport: the jobs service, called in-process; the source comes
/// from this server's mirror of the project.
struct EmbeddedTransport {
    app: AppState,
    caller: Caller,
    build_id: i64,
    project: kiln_store::ProjectRecord,
    downloads_left: usize,
    /// The source and dependencies are in place: the job itself has started.
    prepared: Arc<AtomicBool>,
}

impl Transport for EmbeddedTransport {
    async fn append_trace(&mut self, offset: u64, data: &[u8]) -> Result<(), SinkError> {
        let appended =
            jobs::append_trace(&self.app, self.caller, self.build_id, offset as i64, data).await;
        match appended {
            Ok(Appended::Stored { .. }) => Ok(()),
            Ok(Appended::Mismatch { size }) => Err(SinkError::Retry(format!(
                "the trace has {size} bytes, not {offset}"
            ))),
            Err(JobError::Gone(_) | JobError::NotFound) => Err(SinkError::JobGone),
            Err(err) => Err(SinkError::Retry(err.to_string())),
        }
    }

    async fn checkout(&mut self, git: &GitSource, dir: &Path) -> Result<(), String> {
        let url = self.project.repo_url.as_deref().ok_or("no repository")?;
        let mirror = self
            .app
            .mirrors
            .with_commit(self.project.id, url, &git.sha)
            .await
            .map_err(|e| e.to_string())?;
        // A job user cannot read the mirror (it is in the data dir): copy, do not borrow.
        let borrow = self.app.executor.job_user.is_none();
        let repo = mirror.to_string_lossy();
        kiln_executor::checkout_with(&repo, &git.sha, dir, borrow).await?;
        self.mark_prepared_if_done();
        Ok(())
    }

    async fn download_artifacts(
        &mut self,
        dependency: &Dependency,
        zip: &Path,
    ) -> Result<(), String> {
        jobs::download_artifacts(&self.app, dependency.id, zip)
            .await
            .map_err(|e| e.to_string())?;
        self.downloads_left = self.downloads_left.saturating_sub(1);
        self.mark_prepared_if_done();
        Ok(())
    }

    async fn upload_artifacts(&mut self, zip: &Path, name: &str) -> Result<(), String> {
        let expiry = jobs::Expiry::AsTheJobSays;
        jobs::upload_artifacts(&self.app, self.caller, self.build_id, zip, name, expiry)
            .await
            .map_err(|e| e.to_string())
    }

    async fn upload_dotenv(&mut self, gz: &[u8]) -> Result<(), String> {
        jobs::upload_dotenv(&self.app, self.caller, self.build_id, gz)
            .await
            .map_err(|e| e.to_string())
    }
}

impl EmbeddedTransport {
    fn mark_prepared_if_done(&self) {
        if self.downloads_left == 0 {
            self.prepared.store(true, Ordering::Release);
        }
    }
}
