//! Starting the downstream pipelines of bridges (`trigger:` jobs). Every server follows the
//! change feed: when a build becomes pending it looks for pending bridges, compiles each
//! one's child pipeline (a file made of its `trigger: include:`, at the parent's commit,
//! `source: parent_pipeline`) and hands it to the store, which makes it only if the bridge is
//! still pending, so two servers racing make one child. A bridge whose pipeline cannot be
//! made fails, with the reason as its description. A sweep every few seconds catches a
//! wake-up missed while a server was busy.

use crate::service::definition::{self, JobDefinition};
use crate::service::pipelines::{self, PipelineRequest, Source, CONFIG_PATH};
use crate::{ApiError, AppState};
use kiln_store::{Change, PendingBridge, Upstream};
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// Bridges taken per look.
const BATCH: i64 = 50;

/// Follows the change feed for as long as the server runs.
pub fn follow(app: AppState) {
    let mut changes = app.store.feed().subscribe();
    tokio::spawn(async move {
        // A sweep on a fixed beat, however busy the feed, for a wake-up that was missed.
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        loop {
            tokio::select! {
                _ = sweep.tick() => {}
                change = changes.recv() => match change {
                    Ok(Change::Pending) | Err(RecvError::Lagged(_)) => {}
                    Ok(_) => continue,
                    Err(RecvError::Closed) => return,
                },
            }
            match start_pending(&app).await {
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "starting downstream pipelines failed"),
            }
        }
    });
}

/// Why a bridge's child was not made.
enum Unmade {
    /// It cannot be: the bridge fails with this reason.
    Refused(String),
    /// Not now (the store, the mirror or git failed): the bridge stays pending and is tried
    /// again, until it has waited `GIVE_UP_AFTER_MS`.
    Transient(String),
}

/// How long a bridge may wait on errors that might pass before it fails.
const GIVE_UP_AFTER_MS: i64 = 5 * 60 * 1000;

/// Starts the downstream pipeline of every pending bridge; returns how many were started.
/// One bridge's trouble never holds up the others.
pub async fn start_pending(app: &AppState) -> Result<usize, ApiError> {
    let mut started = 0;
    for bridge in app.store.builds().pending_bridges(BATCH).await? {
        let outcome = match child_of(app, bridge).await {
            Ok(child) => app
                .store
                .builds()
                .start_downstream(bridge, &child)
                .await
                .map(|made| started += usize::from(made.is_some())),
            Err(Unmade::Refused(reason)) => app
                .store
                .builds()
                .fail_bridge(bridge, &reason)
                .await
                .map(|_| ()),
            Err(Unmade::Transient(reason)) => {
                let waited = app
                    .store
                    .builds()
                    .get(bridge.project_id, bridge.build_id)
                    .await
                    .ok()
                    .and_then(|b| b.queued_at)
                    .is_some_and(|at| kiln_store::now_ms() - at > GIVE_UP_AFTER_MS);
                tracing::warn!(bridge = bridge.build_id, %reason, "the downstream pipeline was not made yet");
                if waited {
                    app.store
                        .builds()
                        .fail_bridge(bridge, &reason)
                        .await
                        .map(|_| ())
                } else {
                    Ok(())
                }
            }
        };
        if let Err(err) = outcome {
            tracing::warn!(bridge = bridge.build_id, error = %err, "could not move a bridge on");
        }
    }
    Ok(started)
}

/// The child pipeline of `bridge`, or why it cannot be made.
async fn child_of(
    app: &AppState,
    bridge: PendingBridge,
) -> Result<kiln_store::NewPipeline, Unmade> {
    let described =
        |e: &dyn std::fmt::Display| format!("downstream pipeline can not be created: {e}");
    let unmade = |e: &dyn std::fmt::Display| Unmade::Refused(described(e));
    let transient = |e: &dyn std::fmt::Display| Unmade::Transient(described(e));
    let store = &app.store;
    let build = store
        .builds()
        .get(bridge.project_id, bridge.build_id)
        .await
        .map_err(|e| transient(&e))?;
    let parent = store
        .pipelines()
        .get(bridge.pipeline_id)
        .await
        .map_err(|e| transient(&e))?;
    let project = store
        .projects()
        .get(&kiln_store::ProjectRef::Id(bridge.project_id))
        .await
        .map_err(|e| transient(&e))?;
    let plan = match definition::decode(&build.options).map_err(|e| unmade(&e))? {
        JobDefinition::Compiled(plan) => plan,
        JobDefinition::Commands => return Err(unmade(&"the bridge has no trigger")),
    };
    let trigger = plan
        .trigger
        .clone()
        .ok_or_else(|| unmade(&"the bridge has no trigger"))?;
    let Some(include) = &trigger.include else {
        return Err(unmade(
            &"Kiln does not start other projects' pipelines (trigger: project)",
        ));
    };
    let url = project
        .repo_url
        .as_deref()
        .ok_or_else(|| unmade(&"the project has no repository"))?;
    let mirror = app
        .mirrors
        .sync(project.id, url)
        .await
        .map_err(|e| transient(&e))?;
    let (at, sha) = (mirror.clone(), parent.sha.clone());
    let (commit, _, _) =
        tokio::task::spawn_blocking(move || crate::git::read_for_pipeline(&at, &sha, CONFIG_PATH))
            .await
            .map_err(|e| transient(&e))?
            .map_err(|e| transient(&e))?;
    let request = PipelineRequest {
        project: &project,
        ref_name: &parent.ref_name,
        source: "parent_pipeline",
        user_id: build.user.as_ref().map(|u| u.id),
        variables: forwarded(&trigger, &plan, &parent),
        trigger_request_id: None,
        push_key: None,
    };
    let source = Source {
        mirror,
        commit,
        tag: parent.tag,
        text: Some(kiln_ci::child_config(include)),
        before: None,
    };
    let mut child = pipelines::compose(&request, source)
        .await
        .map_err(|e| match e {
            // Nothing to run ("No stages / jobs", filtered out by workflow rules).
            ApiError::BadRequest(_) => unmade(&e.message()),
            _ => transient(&e.message()),
        })?;
    child.upstream = Some(Upstream {
        bridge_id: bridge.build_id,
        depends: trigger.depend,
    });
    Ok(child)
}

/// The child's pipeline variables (GitLab's `forward:`): the parent's pipeline variables when
/// asked, then the bridge's own variables unless told not to.
fn forwarded(
    trigger: &kiln_ci::TriggerPlan,
    plan: &kiln_ci::JobPlan,
    parent: &kiln_store::PipelineRecord,
) -> Vec<(String, String)> {
    let mut variables: Vec<(String, String)> = Vec::new();
    if trigger.forward_pipeline_variables {
        variables.extend(
            serde_json::from_str::<Vec<(String, String)>>(&parent.variables).unwrap_or_default(),
        );
    }
    if trigger.forward_yaml_variables {
        variables.extend(plan.variables.iter().cloned());
    }
    variables
}
