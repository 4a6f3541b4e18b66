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
        loop {
            let woken = tokio::time::timeout(SWEEP_EVERY, changes.recv()).await;
            match woken {
                Ok(Ok(Change::Pending)) | Ok(Err(RecvError::Lagged(_))) | Err(_) => {}
                Ok(Ok(_)) => continue,
                Ok(Err(RecvError::Closed)) => return,
            }
            if let Err(err) = start_pending(&app).await {
                tracing::warn!(error = %err, "starting downstream pipelines failed");
            }
        }
    });
}

/// Starts the downstream pipeline of every pending bridge; returns how many were started.
pub async fn start_pending(app: &AppState) -> Result<usize, ApiError> {
    let mut started = 0;
    for bridge in app.store.builds().pending_bridges(BATCH).await? {
        match child_of(app, bridge).await {
            Ok(child) => {
                if app
                    .store
                    .builds()
                    .start_downstream(bridge, &child)
                    .await?
                    .is_some()
                {
                    started += 1;
                }
            }
            Err(reason) => {
                app.store.builds().fail_bridge(bridge, &reason).await?;
            }
        }
    }
    Ok(started)
}

/// The child pipeline of `bridge`, or why it cannot be made.
async fn child_of(
    app: &AppState,
    bridge: PendingBridge,
) -> Result<kiln_store::NewPipeline, String> {
    let unmade = |e: &dyn std::fmt::Display| format!("downstream pipeline can not be created: {e}");
    let store = &app.store;
    let build = store
        .builds()
        .get(bridge.project_id, bridge.build_id)
        .await
        .map_err(|e| unmade(&e))?;
    let parent = store
        .pipelines()
        .get(bridge.pipeline_id)
        .await
        .map_err(|e| unmade(&e))?;
    let project = store
        .projects()
        .get(&kiln_store::ProjectRef::Id(bridge.project_id))
        .await
        .map_err(|e| unmade(&e))?;
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
        .map_err(|e| unmade(&e))?;
    let (at, sha) = (mirror.clone(), parent.sha.clone());
    let (commit, _, _) =
        tokio::task::spawn_blocking(move || crate::git::read_for_pipeline(&at, &sha, CONFIG_PATH))
            .await
            .map_err(|e| unmade(&e))?
            .map_err(|e| unmade(&e))?;
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
        .map_err(|e| unmade(&e.message()))?;
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
