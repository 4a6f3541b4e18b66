//! Periodic work of a server: removing expired artifacts, and (when asked) polling project
//! repositories for new branch heads.

use crate::service::pipelines::{self, PipelineRequest};
use crate::AppState;
use std::time::Duration;

const EXPIRY_SWEEP: Duration = Duration::from_secs(60);

pub fn start(app: AppState) {
    tokio::spawn(expire_artifacts(app.clone()));
    if let Some(interval) = app.config.poll_interval {
        tokio::spawn(poll_repositories(app, interval));
    }
}

async fn expire_artifacts(app: AppState) {
    loop {
        if let Err(err) = sweep(&app).await {
            tracing::warn!(error = %err, "artifact expiry sweep failed");
        }
        tokio::time::sleep(EXPIRY_SWEEP).await;
    }
}

/// Removes every artifacts archive whose `expire_in` has passed.
pub async fn sweep(app: &AppState) -> anyhow::Result<usize> {
    let expired = app
        .store
        .builds()
        .expired_artifacts(kiln_store::now_ms())
        .await?;
    for (project_id, build_id, file) in &expired {
        let _ = tokio::fs::remove_file(file).await;
        app.store
            .builds()
            .clear_artifacts(*project_id, *build_id, None)
            .await?;
    }
    Ok(expired.len())
}

async fn poll_repositories(app: AppState, interval: Duration) {
    loop {
        if let Err(err) = poll_once(&app).await {
            tracing::warn!(error = %err, "polling repositories failed");
        }
        tokio::time::sleep(interval).await;
    }
}

/// Creates a pipeline for every branch head that has none yet.
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
            };
            match pipelines::create(app, request).await {
                Ok(_) => created += 1,
                Err(err) => {
                    tracing::warn!(project = project.id, branch, error = %err, "no pipeline")
                }
            }
        }
    }
    Ok(created)
}
