//! Runs one job from start to end: work directory, checkout, `before_script` + `script` in
//! one bash (`-e -o pipefail`), `after_script` in another whatever happened (unless
//! canceled), coverage, artifacts, and the closing line GitLab users know.

use crate::artifacts;
use crate::checkout::checkout;
use crate::coverage::CoverageScanner;
use crate::process::{Event, Exit, Running};
use crate::script::render;
use crate::trace::{TraceSink, TraceWriter};
use crate::{ExecutorConfig, FailureReason, JobSpec, Outcome};
use std::time::Duration;
use tokio::sync::watch;

/// How long `after_script` may take (gitlab-runner's default).
const AFTER_SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);
/// Output that sits in the batch this long is written out, so a quiet job's trace is current.
const IDLE_FLUSH: Duration = Duration::from_millis(200);

pub async fn execute<S: TraceSink>(
    spec: &JobSpec,
    config: &ExecutorConfig,
    sink: &mut S,
    mut cancel: watch::Receiver<bool>,
) -> Outcome {
    let mut trace = TraceWriter::new(sink, config.max_trace_bytes);
    let mut outcome = Outcome {
        failure: None,
        canceled: false,
        exit_code: None,
        coverage: None,
        artifacts: None,
    };
    trace
        .note(&format!(
            "\x1b[1mRunning with kiln {} (shell executor, bash)\x1b[0;m",
            env!("CARGO_PKG_VERSION")
        ))
        .await;

    let fresh = spec.workdir.is_none();
    let dir = spec
        .workdir
        .clone()
        .unwrap_or_else(|| config.builds_dir.join(spec.id.to_string()));
    if fresh {
        let _ = tokio::fs::remove_dir_all(&dir).await;
        let prepared = match &spec.repo {
            Some(repo) => {
                trace
                    .note(&format!(
                        "Fetching changes, checking out {}…",
                        short(&spec.sha)
                    ))
                    .await;
                if let Err(e) = tokio::fs::create_dir_all(&config.builds_dir).await {
                    Err(e.to_string())
                } else {
                    checkout(repo, &spec.sha, &dir).await
                }
            }
            None => tokio::fs::create_dir_all(&dir)
                .await
                .map_err(|e| e.to_string()),
        };
        if let Err(err) = prepared {
            trace
                .note(&format!(
                    "\x1b[31;1mERROR: Preparing the work directory failed: {err}\x1b[0;m"
                ))
                .await;
            outcome.failure = Some(FailureReason::RunnerSystemFailure);
            trace.flush().await;
            return outcome;
        }
    }

    for (name, zip) in &spec.dependencies {
        trace
            .note(&format!("Downloading artifacts for {name}…"))
            .await;
        let (zip, into) = (zip.clone(), dir.clone());
        let unpacked = tokio::task::spawn_blocking(move || artifacts::unpack(&zip, &into)).await;
        if !matches!(unpacked, Ok(Ok(()))) {
            trace
                .note(&format!(
                    "\x1b[31;1mERROR: Downloading artifacts for {name} failed\x1b[0;m"
                ))
                .await;
            outcome.failure = Some(FailureReason::RunnerSystemFailure);
            trace.flush().await;
            return outcome;
        }
    }

    let mut env = spec.variables.clone();
    env.push(("CI_PROJECT_DIR".into(), dir.to_string_lossy().into_owned()));
    env.push((
        "CI_BUILDS_DIR".into(),
        config.builds_dir.to_string_lossy().into_owned(),
    ));
    env.push(("CI_SERVER".into(), "yes".into()));

    let mut coverage = CoverageScanner::new(spec.coverage_regex.as_deref());
    let main: Vec<String> = spec
        .before_script
        .iter()
        .chain(&spec.script)
        .cloned()
        .collect();
    let exit = match Running::spawn(&render(&main), &dir, &env, spec.timeout, config.kill_grace) {
        Err(err) => Err(err),
        Ok(mut running) => loop {
            match running.next(&mut cancel, IDLE_FLUSH).await {
                Ok(Event::Output(data)) => {
                    coverage.feed(&data);
                    trace.write(&data).await;
                }
                Ok(Event::Idle) => trace.flush().await,
                Ok(Event::Done(exit)) => break Ok(exit),
                Err(err) => break Err(err),
            }
        },
    };
    match exit {
        Ok(Exit::Code(0)) => outcome.exit_code = Some(0),
        Ok(Exit::Code(code)) => {
            outcome.exit_code = Some(code);
            outcome.failure = Some(FailureReason::ScriptFailure);
        }
        Ok(Exit::Signaled) => outcome.failure = Some(FailureReason::ScriptFailure),
        Ok(Exit::TimedOut) => outcome.failure = Some(FailureReason::JobExecutionTimeout),
        Ok(Exit::Canceled) => outcome.canceled = true,
        Err(err) => {
            trace
                .note(&format!(
                    "\x1b[31;1mERROR: Could not start bash: {err}\x1b[0;m"
                ))
                .await;
            outcome.failure = Some(FailureReason::RunnerSystemFailure);
        }
    }
    outcome.coverage = coverage.finish();

    // Always, as current GitLab does: after a failure, a timeout and a cancel too.
    if !spec.after_script.is_empty() {
        trace.note("\x1b[32;1mRunning after_script\x1b[0;m").await;
        let mut env = env.clone();
        let status = match (outcome.canceled, outcome.failure) {
            (true, _) => "canceled",
            (false, None) => "success",
            (false, Some(_)) => "failed",
        };
        env.push(("CI_JOB_STATUS".into(), status.into()));
        // Its own cancel channel: a cancel already handled must not cut after_script short.
        let (_keep, mut never) = watch::channel(false);
        let after = match Running::spawn(
            &render(&spec.after_script),
            &dir,
            &env,
            AFTER_SCRIPT_TIMEOUT,
            config.kill_grace,
        ) {
            Err(err) => Err(err),
            Ok(mut running) => loop {
                match running.next(&mut never, IDLE_FLUSH).await {
                    Ok(Event::Output(data)) => trace.write(&data).await,
                    Ok(Event::Idle) => trace.flush().await,
                    Ok(Event::Done(exit)) => break Ok(exit),
                    Err(err) => break Err(err),
                }
            },
        };
        if !matches!(after, Ok(Exit::Code(0))) {
            trace
                .note("\x1b[33;1mWARNING: after_script failed, but the job goes on\x1b[0;m")
                .await;
        }
    }

    if let Some(spec_artifacts) = &spec.artifacts {
        let wanted = match spec_artifacts.when.as_str() {
            "always" => true,
            "on_failure" => outcome.failure.is_some(),
            _ => outcome.failure.is_none(),
        };
        if wanted && !outcome.canceled {
            trace.note("\x1b[32;1mUploading artifacts…\x1b[0;m").await;
            let name = crate::expand_variables(&spec_artifacts.name, &env);
            // A file name: no folders, never empty.
            let name: String = name
                .chars()
                .map(|c| {
                    if matches!(c, '/' | '\\' | '\0') {
                        '_'
                    } else {
                        c
                    }
                })
                .collect();
            let name = if name.trim().is_empty() {
                "artifacts".to_owned()
            } else {
                name
            };
            let out = config
                .builds_dir
                .join(format!("{}-artifacts", spec.id))
                .join(format!("{name}.zip"));
            let (root, what, target) = (dir.clone(), spec_artifacts.clone(), out.clone());
            let limit = config.max_artifacts_bytes;
            let archived = tokio::task::spawn_blocking(move || {
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                artifacts::archive(&root, &what, &target, limit)
            })
            .await;
            match archived {
                Ok(Ok(archive)) => {
                    for pattern in &archive.unmatched {
                        trace
                            .note(&format!(
                                "\x1b[33;1mWARNING: {pattern}: no matching files\x1b[0;m"
                            ))
                            .await;
                    }
                    if archive.size > config.max_artifacts_bytes {
                        trace
                            .note(&format!(
                                "\x1b[31;1mERROR: Uploading artifacts failed: the archive passed {} bytes, over the limit of {} bytes (--max-artifacts-size)\x1b[0;m",
                                archive.size, config.max_artifacts_bytes
                            ))
                            .await;
                        let _ = tokio::fs::remove_file(&archive.path).await;
                        outcome.failure = Some(FailureReason::ArtifactsTooLarge);
                    } else if archive.files == 0 {
                        trace
                            .note("\x1b[33;1mWARNING: no files to upload\x1b[0;m")
                            .await;
                        let _ = tokio::fs::remove_file(&archive.path).await;
                    } else {
                        trace
                            .note(&format!("{} files, {} bytes", archive.files, archive.size))
                            .await;
                        outcome.artifacts = Some(archive.path);
                    }
                }
                Ok(Err(err)) => {
                    trace
                        .note(&format!(
                            "\x1b[31;1mERROR: Archiving artifacts failed: {err}\x1b[0;m"
                        ))
                        .await;
                    outcome.failure = Some(FailureReason::RunnerSystemFailure);
                }
                Err(err) => {
                    trace
                        .note(&format!(
                            "\x1b[31;1mERROR: Archiving artifacts failed: {err}\x1b[0;m"
                        ))
                        .await;
                    outcome.failure = Some(FailureReason::RunnerSystemFailure);
                }
            }
        }
    }

    if fresh {
        let _ = tokio::fs::remove_dir_all(&dir).await;
    }
    let closing = match (outcome.canceled, outcome.failure, outcome.exit_code) {
        (true, _, _) => "\x1b[31;1mERROR: Job failed: canceled\x1b[0;m".to_owned(),
        (false, None, _) => "\x1b[32;1mJob succeeded\x1b[0;m".to_owned(),
        (false, Some(FailureReason::JobExecutionTimeout), _) => format!(
            "\x1b[31;1mERROR: Job failed: execution took longer than {} seconds\x1b[0;m",
            spec.timeout.as_secs()
        ),
        (false, Some(FailureReason::ScriptFailure), Some(code)) => {
            format!("\x1b[31;1mERROR: Job failed: exit code {code}\x1b[0;m")
        }
        (false, Some(reason), _) => {
            format!("\x1b[31;1mERROR: Job failed: {}\x1b[0;m", reason.as_str())
        }
    };
    trace.note(&closing).await;
    trace.flush().await;
    outcome
}

fn short(sha: &str) -> &str {
    sha.get(..8).unwrap_or(sha)
}
