//! Live pages: Server-Sent Events fed by the change feed, never by polling.
//!
//! - `GET /NS/PROJECT/-/jobs/ID/events` follows a job: `log` events carry the whole lines
//!   it printed since the reader's offset (rendered, with the offset after them as the
//!   event's id, so a reconnecting `EventSource` resumes with `Last-Event-ID` from the last
//!   byte it had), `status` events its status, and `end` says the log is complete.
//! - `GET /NS/PROJECT/-/events` says `changed` when the project's builds or pipelines did
//!   (coalesced), and the page fetches its live parts again.

use super::jobs::job_of;
use super::pipelines::{failed, project_for};
use super::session::Visitor;
use crate::service::job_logs::{self, Keep, WINDOW_BYTES};
use crate::{ApiError, AppState};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use kiln_core::BuildStatus;
use kiln_store::Change;
use serde_json::json;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::broadcast::{error::RecvError, Receiver};

/// How long a stream waits for a change before it looks again anyway (a lost notification
/// costs at most this); while the feed is disconnected, much less.
const RECHECK: Duration = Duration::from_secs(30);
const RECHECK_DISCONNECTED: Duration = Duration::from_secs(2);
/// Changes within this time make one `changed` event.
const COALESCE: Duration = Duration::from_millis(100);

/// `GET /NS/PROJECT/-/jobs/ID/events?from=OFFSET`
pub async fn job_events(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((namespace, repo, id)): Path<(String, String, String)>,
    query: crate::query::QueryPairs,
    headers: HeaderMap,
) -> Response {
    let found = job_of(&state, &visitor, (&namespace, &repo), &id).await;
    let (project, build) = match found {
        Ok(found) => (found.project, found.build),
        Err(err) => return failed(&visitor, err),
    };
    let resumed = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .or(query.get("from"));
    let offset = resumed.and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    let follow = Follow {
        changes: state.store.feed().subscribe(),
        state,
        project_id: project.id,
        build_id: build.id,
        offset: offset.max(0),
        status: None,
        ready: VecDeque::new(),
        done: false,
    };
    let events = stream::unfold(follow, |mut follow| async move {
        let event = follow.next().await?;
        Some((Ok::<_, std::convert::Infallible>(event), follow))
    });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// A job followed for one reader.
struct Follow {
    state: AppState,
    changes: Receiver<Change>,
    project_id: i64,
    build_id: i64,
    /// The reader has the log up to here (a line start).
    offset: i64,
    status: Option<BuildStatus>,
    ready: VecDeque<Event>,
    done: bool,
}

impl Follow {
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some(event);
            }
            if self.done {
                return None;
            }
            if let Err(err) = self.look().await {
                tracing::debug!(error = %err, build = self.build_id, "a followed job is gone");
                self.done = true;
                continue;
            }
            if self.ready.is_empty() && !self.done {
                let (project, build) = (self.project_id, self.build_id);
                // Whether something changed or not, look again.
                let _ = wait(&self.state, &mut self.changes, |change| match change {
                    Change::Trace(id) => id == build,
                    Change::Builds(id) => id == project,
                    Change::AllBuilds => true,
                    _ => false,
                })
                .await;
            }
        }
    }

    /// Queues what changed since the reader's last event.
    async fn look(&mut self) -> Result<(), ApiError> {
        let store = &self.state.store;
        let build = store.builds().get(self.project_id, self.build_id).await?;
        if self.status != Some(build.status) {
            self.status = Some(build.status);
            let data = json!({ "status": build.status.as_str() }).to_string();
            self.ready
                .push_back(Event::default().event("status").data(data));
        }
        let over = job_logs::log_is_final(build.status);
        if self.offset < build.trace_size {
            let range = (self.offset, self.offset + WINDOW_BYTES, Keep::First);
            let window =
                job_logs::window(store, self.build_id, range, (build.trace_size, over)).await?;
            if window.end > window.start {
                let html = super::log::render(
                    &String::from_utf8_lossy(&window.text),
                    window.first_line as usize,
                );
                let data = json!({
                    "start": window.start,
                    "end": window.end,
                    "first_line": window.first_line,
                    "lines": window.lines,
                    "html": html,
                })
                .to_string();
                self.offset = window.end;
                self.ready.push_back(
                    Event::default()
                        .event("log")
                        .id(window.end.to_string())
                        .data(data),
                );
                // More may be stored than one window: the next look sends it.
                return Ok(());
            }
        }
        if over && self.offset >= build.trace_size {
            let data = json!({ "size": build.trace_size }).to_string();
            self.ready
                .push_back(Event::default().event("end").data(data));
            self.done = true;
        }
        Ok(())
    }
}

/// Waits until a change `wanted` says is of interest arrives (true), or the recheck time
/// passes (false; true while the feed is disconnected, as changes may have been missed).
async fn wait(
    state: &AppState,
    changes: &mut Receiver<Change>,
    wanted: impl Fn(Change) -> bool,
) -> bool {
    let connected = state.store.feed().is_connected();
    let recheck = if connected {
        RECHECK
    } else {
        RECHECK_DISCONNECTED
    };
    let deadline = tokio::time::sleep(recheck);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            received = changes.recv() => match received {
                Ok(change) if wanted(change) => return true,
                Ok(_) => {}
                // Changes were missed: look again.
                Err(RecvError::Lagged(_)) => return true,
                Err(RecvError::Closed) => {
                    (&mut deadline).await;
                    return !connected;
                }
            },
            _ = &mut deadline => return !connected,
        }
    }
}

/// What a page was rendered from: this server and its change counter of the project's
/// builds, read before the page read them. A stream given it knows whether the page
/// already missed a change (made before the stream subscribed).
fn version(state: &AppState, project_id: i64) -> String {
    let counter = state.store.feed().versions().builds(project_id);
    format!("{}.{counter}", state.instance_id)
}

/// The address of `project`'s event stream for a page about to read its builds.
pub(super) fn events_url(state: &AppState, project: &kiln_store::ProjectRecord) -> String {
    format!(
        "/{}/-/events?since={}",
        project.full_path(),
        version(state, project.id)
    )
}

/// `GET /NS/PROJECT/-/events?since=VERSION`
pub async fn project_events(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((namespace, repo)): Path<(String, String)>,
    query: crate::query::QueryPairs,
) -> Response {
    let project = match project_for(&state, &visitor, (&namespace, &repo)).await {
        Ok((project, _)) => project,
        Err(err) => return failed(&visitor, err),
    };
    let changes = state.store.feed().subscribe();
    // Subscribed first, compared second: a change is either counted here or received.
    // A version of another server (or none) cannot be compared: the page looks again.
    let stale = query.get("since") != Some(version(&state, project.id).as_str());
    let watch = (changes, state, project.id, 0u64, stale);
    let events = stream::unfold(
        watch,
        |(mut changes, state, project, count, stale)| async move {
            let wanted = |change| {
                matches!(change, Change::Builds(id) if id == project) || change == Change::AllBuilds
            };
            if !stale {
                // A recheck with nothing new sends nothing (the keep-alive keeps the line open).
                while !wait(&state, &mut changes, wanted).await {}
            }
            // What else changes meanwhile is part of the same event.
            tokio::time::sleep(COALESCE).await;
            while changes.try_recv().is_ok() {}
            let event = Event::default()
                .event("changed")
                .id((count + 1).to_string())
                .data("{}");
            Some((
                Ok::<_, std::convert::Infallible>(event),
                (changes, state, project, count + 1, false),
            ))
        },
    );
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}
