//! The change feed: every committed change that other parts of Kiln react to (a pending
//! build to wake runners for, a cancel to deliver, builds or access data that caches hold).
//!
//! A writing transaction records its changes (`Tx::notify`). On PostgreSQL they are also sent
//! with `NOTIFY kiln_changes` inside that transaction, so they reach every server that
//! `LISTEN`s exactly when the change commits, and never for a change rolled back. Every
//! process publishes its own changes locally at commit, so it reads its own writes at once;
//! on SQLite (one process) that is the whole feed. Subscribers get each change as it comes,
//! and the change counters (`Versions`) that guard the read caches move with it.

use crate::versions::Versions;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::broadcast;

/// The PostgreSQL channel.
pub const CHANNEL: &str = "kiln_changes";

/// Changes queued per subscriber; one that falls further behind is told it lagged.
const BUFFER: usize = 4_096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A build or pipeline of the project changed (status, artifacts, trace erased …).
    Builds(i64),
    /// Something shown inside every project's builds changed (a runner).
    AllBuilds,
    /// Users, tokens, projects or members changed.
    Access,
    /// A build became pending: runners should look for work.
    Pending,
    /// The build was canceled: whoever runs it should stop.
    Canceled(i64),
    /// The build's log grew: open pages that follow it fetch the new bytes.
    Trace(i64),
    /// Webhook deliveries were queued: a server should send them.
    Deliveries,
}

impl Change {
    pub fn encode(self) -> String {
        match self {
            Change::Builds(project) => format!("b{project}"),
            Change::AllBuilds => "B".into(),
            Change::Access => "a".into(),
            Change::Pending => "p".into(),
            Change::Canceled(build) => format!("c{build}"),
            Change::Trace(build) => format!("t{build}"),
            Change::Deliveries => "h".into(),
        }
    }

    pub fn decode(text: &str) -> Option<Change> {
        let (kind, rest) = text.split_at_checked(1)?;
        let id = || rest.parse::<i64>().ok();
        match kind {
            "b" => id().map(Change::Builds),
            "B" if rest.is_empty() => Some(Change::AllBuilds),
            "a" if rest.is_empty() => Some(Change::Access),
            "p" if rest.is_empty() => Some(Change::Pending),
            "c" => id().map(Change::Canceled),
            "t" => id().map(Change::Trace),
            "h" if rest.is_empty() => Some(Change::Deliveries),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub struct ChangeFeed {
    versions: Versions,
    sender: broadcast::Sender<Change>,
    /// False while a PostgreSQL listener is disconnected: other servers' changes may be
    /// missed, so caches must not be trusted.
    connected: AtomicBool,
}

impl Default for ChangeFeed {
    fn default() -> Self {
        ChangeFeed {
            versions: Versions::default(),
            sender: broadcast::channel(BUFFER).0,
            connected: AtomicBool::new(true),
        }
    }
}

impl ChangeFeed {
    pub fn versions(&self) -> &Versions {
        &self.versions
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.sender.subscribe()
    }

    /// Whether every change made anywhere reaches this process (caches may be used).
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    pub(crate) fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Release);
        // Whatever happened while disconnected is unknown: every cached copy is suspect.
        self.publish(&[Change::AllBuilds, Change::Access]);
    }

    /// Bumps the counters and tells the subscribers.
    pub(crate) fn publish(&self, changes: &[Change]) {
        for change in changes {
            match *change {
                Change::Builds(project) => self.versions.bump_builds(project),
                Change::AllBuilds => self.versions.bump_all_builds(),
                Change::Access => self.versions.bump_access(),
                Change::Pending | Change::Canceled(_) | Change::Trace(_) | Change::Deliveries => {}
            }
            // No subscriber is not an error.
            let _ = self.sender.send(*change);
        }
    }
}

/// Follows `LISTEN kiln_changes` for as long as the pool lives, reconnecting after errors.
/// Until it listens, the feed counts as disconnected (caches are not trusted).
pub(crate) fn listen_postgres(pool: sqlx::PgPool, feed: std::sync::Arc<ChangeFeed>) {
    feed.connected.store(false, Ordering::Release);
    tokio::spawn(async move {
        let mut backoff = std::time::Duration::from_millis(100);
        loop {
            if pool.is_closed() {
                return;
            }
            match follow(&pool, &feed).await {
                Ok(()) => return,
                Err(err) => {
                    feed.set_connected(false);
                    tracing::warn!(error = %err, "change feed disconnected; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
                }
            }
        }
    });
}

async fn follow(pool: &sqlx::PgPool, feed: &ChangeFeed) -> Result<(), sqlx::Error> {
    let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
    // Errors are returned, not swallowed: a notification lost to a reconnect must not pass
    // unnoticed, so the caller marks the feed disconnected and everything stale.
    listener.ignore_pool_close_event(false);
    listener.listen(CHANNEL).await?;
    if !feed.is_connected() {
        feed.set_connected(true);
    }
    loop {
        match listener.try_recv().await? {
            Some(note) => {
                if let Some(change) = Change::decode(note.payload()) {
                    feed.publish(&[change]);
                }
            }
            // The connection was lost (and the listener would reconnect silently).
            None if pool.is_closed() => return Ok(()),
            None => return Err(sqlx::Error::PoolClosed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Change;

    #[test]
    fn changes_survive_their_encoding() {
        for change in [
            Change::Builds(42),
            Change::AllBuilds,
            Change::Access,
            Change::Pending,
            Change::Canceled(7),
            Change::Trace(9),
            Change::Deliveries,
        ] {
            assert_eq!(Change::decode(&change.encode()), Some(change));
        }
        assert_eq!(Change::decode("bx"), None);
        assert_eq!(Change::decode(""), None);
        assert_eq!(Change::decode("px"), None);
    }
}
