//! Periodic work of the cluster, each done by one server at a time under a cluster lease:
//! the reaper (builds whose runner is gone), the artifact expiry sweep (and old webhook
//! deliveries), and (when asked) the poller of project repositories for new branch heads;
//! and, on every server, the runs of due pipeline schedules.

use crate::service::jobs;
use crate::service::pipelines::{self, PipelineRequest};
use crate::AppState;
use kiln_store::Holder;
use std::future::Future;
use std::time::Duration;

const REAP_EVERY: Duration = Duration::from_secs(5);
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// How often each server looks for due pipeline schedules.
const SCHEDULES_EVERY: Duration = Duration::from_secs(1);

pub fn start(app: AppState) {
    every(app.clone(), "reaper", REAP_EVERY, |app| async move {
        reap(&app).await.map(|_| ())
    });
    every(
        app.clone(),
        "artifact-sweep",
        SWEEP_EVERY,
        |app| async move { sweep(&app).await.map(|_| ()) },
    );
    // Every server: a slot's run is made once by its pipeline key, whoever looks first.
    tokio::spawn({
        let app = app.clone();
        async move {
            loop {
                if let Err(err) = crate::service::schedules::run_due(&app).await {
                    tracing::warn!(error = %format!("{err:#}"), "pipeline schedules: could not run");
                }
                tokio::time::sleep(SCHEDULES_EVERY).await;
            }
        }
    });
    if let Some(interval) = app.config.poll_interval {
        every(app, "poller", interval, |app| async move {
            poll_once(&app).await.map(|_| ())
        });
    }
}

/// Runs `work` every `interval` on whichever server holds the lease `name` (held for a few
/// intervals and renewed each time, so it moves to another server only when its holder is
/// gone).
fn every<F, Fut>(app: AppState, name: &'static str, interval: Duration, work: F)
where
    F: Fn(AppState) -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    tokio::spawn(async move {
        let ttl = (interval.as_millis() as i64 * 3).max(15_000);
        loop {
            match app
                .store
                .leases()
                .acquire(name, &app.instance_id, ttl)
                .await
            {
                Ok(true) => {
                    if let Err(err) = work(app.clone()).await {
                        tracing::warn!(task = name, error = %format!("{err:#}"), "background work failed");
                    }
                }
                Ok(false) => {}
                Err(err) => tracing::warn!(task = name, error = %err, "could not take the lease"),
            }
            tokio::time::sleep(interval).await;
        }
    });
}

/// Fails every running build whose lease ran out (its runner or server is gone) as a
/// system failure, with a line in its trace, and moves its pipeline on.
pub async fn reap(app: &AppState) -> anyhow::Result<usize> {
    let expired = app
        .store
        .builds()
        .expired_leases(kiln_store::now_ms())
        .await?;
    let mut reaped = 0;
    for build in expired {
        let reason = "the runner stopped answering (its lease expired)";
        match jobs::fail(app, Holder::ExpiredLease, build, reason).await {
            Ok(kiln_core::BuildStatus::Failed) => reaped += 1,
            Ok(_) => {}
            Err(err) => tracing::warn!(build, error = %err, "could not reap a build"),
        }
    }
    if reaped > 0 {
        tracing::warn!(count = reaped, "failed builds whose runner is gone");
    }
    Ok(reaped)
}

/// Removes every artifacts archive whose `expire_in` has passed.
pub async fn sweep(app: &AppState) -> anyhow::Result<usize> {
    let expired = app
        .store
        .builds()
        .expired_artifacts(kiln_store::now_ms())
        .await?;
    for (project_id, build_id, location) in &expired {
        app.store
            .builds()
            .clear_artifacts(*project_id, *build_id, None)
            .await?;
        app.artifacts.delete(&app.store, *build_id, location).await;
    }
    // A hook's log keeps a week of deliveries, as GitLab's does.
    let week_ago = kiln_store::now_ms() - 7 * 24 * 3600 * 1000;
    app.store.hooks().prune(week_ago).await?;
    Ok(expired.len())
}

/// Creates a pipeline for every branch head that has none yet. The push key makes a second
/// pipeline for the same head impossible, whichever server polls.
pub async fn poll_once(app: &AppState) -> anyhow::Result<usize> {
    let mut created = 0;
    for project in app.store.projects().with_repository().await? {
        let Some(url) = project.repo_url.as_deref() else {
            continue;
        };
        let mirror = match app.mirrors.sync(project.id, url).await {
            Ok(mirror) => mirror,
            Err(err) => {
                tracing::warn!(project = project.id, error = %err, "fetch failed");
                continue;
            }
        };
        let heads = tokio::task::spawn_blocking(move || crate::git::branches(&mirror)).await??;
        for (branch, sha) in heads {
            if app
                .store
                .pipelines()
                .exists_for(project.id, &branch, &sha)
                .await?
            {
                continue;
            }
            let request = PipelineRequest {
                project: &project,
                ref_name: &branch,
                source: "push",
                user_id: None,
                variables: vec![],
                trigger_request_id: None,
                push_key: Some(format!("{}:{branch}:{sha}", project.id)),
            };
            match pipelines::create(app, request).await {
                Ok(_) => created += 1,
                // Another server made it first.
                Err(crate::ApiError::Conflict(_)) => {}
                Err(err) => {
                    tracing::warn!(project = project.id, branch, error = %err, "no pipeline")
                }
            }
        }
    }
    Ok(created)
}
