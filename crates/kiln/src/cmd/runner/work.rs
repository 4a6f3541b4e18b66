//! `kiln runner run`: workers that long-poll the server for jobs and run them with the
//! executor the embedded runner uses. Errors back off exponentially with jitter; a stop
//! (Ctrl-C, SIGTERM) ends the running jobs (their process trees killed) and reports them.

use super::coordinator::{CallError, Coordinator};
use super::job::{HttpTransport, Payload};
use rand::Rng;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::Instrument;

/// How often a running job tells the server it is alive, and learns whether it was canceled
/// when it prints nothing (GitLab's trace update interval while someone watches).
const KEEPALIVE: Duration = Duration::from_secs(3);
/// A poll that came back empty faster than this was not long-polled (the runner is paused,
/// or the server does not hold requests): wait before the next, never spin.
const QUICK_EMPTY: Duration = Duration::from_secs(1);
/// How long the final update of a job keeps trying while the server is unreachable.
const FINAL_PATIENCE: Duration = Duration::from_secs(600);

/// Exponential back-off with jitter, from `min` to `max` (gitlab-runner: 100 ms to 60 s).
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max,
            next: min,
        }
    }

    pub fn reset(&mut self) {
        self.next = self.min;
    }

    /// The next delay: the current step with ±50 % jitter; the step then doubles.
    pub fn next_delay(&mut self) -> Duration {
        let step = self.next;
        self.next = (self.next * 2).min(self.max);
        let jitter = rand::thread_rng().gen_range(0.5..1.5);
        step.mul_f64(jitter).min(self.max)
    }
}

pub struct Runner {
    pub coordinator: Coordinator,
    pub token: String,
    pub executor: kiln_executor::ExecutorConfig,
}

/// One worker: polls, runs, repeats, until `stopped`.
pub async fn worker(runner: Arc<Runner>, index: usize, mut stopped: watch::Receiver<bool>) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(60));
    loop {
        if *stopped.borrow() {
            return;
        }
        let asked = tokio::time::Instant::now();
        let answer = tokio::select! {
            answer = runner.coordinator.request_job(&runner.token) => answer,
            _ = stopped.changed() => return,
        };
        let pause = match answer {
            Ok(Some(payload)) => {
                backoff.reset();
                let span = tracing::info_span!(
                    "job",
                    id = payload["id"].as_i64().unwrap_or(0),
                    worker = index
                );
                run_job(&runner, payload, &mut stopped)
                    .instrument(span)
                    .await;
                continue;
            }
            Ok(None) => {
                backoff.reset();
                (asked.elapsed() < QUICK_EMPTY).then_some(QUICK_EMPTY)
            }
            Err(err) => {
                match &err {
                    CallError::Status { status: 403, .. } => tracing::error!(
                        "the server refused this runner's token (403): was it removed? \
                         Register it again with `kiln runner register`"
                    ),
                    _ => tracing::warn!(error = %err, "asking for a job failed"),
                }
                Some(backoff.next_delay())
            }
        };
        if let Some(pause) = pause {
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stopped.changed() => return,
            }
        }
    }
}

/// Runs one job to its end and reports it.
async fn run_job(runner: &Runner, payload: Value, stopped: &mut watch::Receiver<bool>) {
    let (id, token) = (
        payload["id"].as_i64().unwrap_or(0),
        payload["token"].as_str().unwrap_or("").to_owned(),
    );
    let payload: Payload = match serde_json::from_value(payload) {
        Ok(payload) => payload,
        Err(err) => {
            tracing::error!(error = %err, "the job could not be read");
            let body = json!({ "state": "failed", "failure_reason": "runner_system_failure" });
            let _ = finish(runner, id, &token, body).await;
            return;
        }
    };
    let spec = payload.spec();
    let mut transport = HttpTransport {
        coordinator: runner.coordinator.clone(),
        job_id: id,
        token: token.clone(),
        dependency_tokens: payload.dependency_tokens(),
        gone: false,
    };
    let (cancel, canceled) = watch::channel(false);
    let keepalive = tokio::spawn(keep_alive(
        runner.coordinator.clone(),
        id,
        token.clone(),
        cancel.clone(),
    ));
    let mut stopping = false;
    let outcome = {
        let execution = kiln_executor::execute(&spec, &runner.executor, &mut transport, canceled);
        tokio::pin!(execution);
        loop {
            tokio::select! {
                outcome = &mut execution => break outcome,
                _ = stopped.changed(), if !stopping => {
                    // Stopping: the job is killed, then reported as the runner's failure.
                    stopping = true;
                    let _ = cancel.send(true);
                }
            }
        }
    };
    keepalive.abort();
    let gone = transport.gone || keepalive_saw_gone(&cancel, stopping);
    if gone {
        tracing::info!("the job ended on the server (canceled or failed there)");
        return;
    }
    let body = if stopping {
        json!({ "state": "failed", "failure_reason": "runner_system_failure" })
    } else if outcome.success() {
        json!({ "state": "success", "exit_code": outcome.exit_code.unwrap_or(0) })
    } else {
        json!({
            "state": "failed",
            "failure_reason": outcome.failure.map_or("unknown_failure", |f| f.as_str()),
            "exit_code": outcome.exit_code,
        })
    };
    match finish(runner, id, &token, body).await {
        Ok(()) => tracing::info!(success = outcome.success() && !stopping, "job finished"),
        Err(err) => tracing::error!(error = %err, "could not report the job's end"),
    }
}

/// Whether the cancel came from the keep-alive (the server said the job ended) rather
/// than from stopping.
fn keepalive_saw_gone(cancel: &watch::Sender<bool>, stopping: bool) -> bool {
    *cancel.borrow() && !stopping
}

/// Tells the server the job is alive every `KEEPALIVE`; when it answers that the job ended
/// (a cancel), the job is stopped.
async fn keep_alive(coordinator: Coordinator, id: i64, token: String, cancel: watch::Sender<bool>) {
    loop {
        tokio::time::sleep(KEEPALIVE).await;
        match coordinator
            .update(id, &token, json!({ "state": "running" }))
            .await
        {
            Err(err) if err.job_is_gone() => {
                let _ = cancel.send(true);
                return;
            }
            Err(err) => tracing::warn!(error = %err, "keep-alive failed"),
            Ok(()) => {}
        }
    }
}

/// The job's final update, resent while the server is unreachable (it may be restarting).
async fn finish(runner: &Runner, id: i64, token: &str, body: Value) -> Result<(), CallError> {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    let give_up = tokio::time::Instant::now() + FINAL_PATIENCE;
    loop {
        match runner.coordinator.update(id, token, body.clone()).await {
            Ok(()) => return Ok(()),
            // An earlier try was stored but its answer lost: the job has the state sent.
            Err(CallError::Status {
                job_status: Some(now),
                ..
            }) if body["state"] == now.as_str() => return Ok(()),
            Err(err) if err.job_is_gone() => return Err(err),
            Err(err @ CallError::Status { status, .. }) if status < 500 => return Err(err),
            Err(err) if tokio::time::Instant::now() >= give_up => return Err(err),
            Err(err) => {
                tracing::warn!(error = %err, "reporting the job's end failed; trying again");
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Backoff;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_up_to_its_cap_with_jitter() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(60));
        let delays: Vec<Duration> = (0..15).map(|_| backoff.next_delay()).collect();
        assert!(delays[0] >= Duration::from_millis(50) && delays[0] <= Duration::from_millis(150));
        assert!(delays[5] >= Duration::from_millis(1600));
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(60)));
        assert!(delays[14] >= Duration::from_secs(30));
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(150));
    }
}
