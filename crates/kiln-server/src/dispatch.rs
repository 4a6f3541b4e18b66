//! Wakes runners when builds become pending, and tells running builds they were canceled,
//! following the change feed: a build made pending or canceled on any server sharing the
//! database reaches this one's runners within milliseconds.

use kiln_store::Change;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{watch, Notify};

#[derive(Default)]
pub struct Dispatcher {
    pending: Notify,
    cancels: Mutex<HashMap<i64, watch::Sender<bool>>>,
}

impl Dispatcher {
    /// Wakes the waiting runners: there may be work.
    pub fn wake(&self) {
        self.pending.notify_waiters();
    }

    /// Resolves at the next `wake`. Enable it before looking for work, so a wake between the
    /// look and the wait is not lost.
    pub fn woken(&self) -> tokio::sync::futures::Notified<'_> {
        self.pending.notified()
    }

    /// A running build's cancel signal.
    pub fn register(&self, build_id: i64) -> watch::Receiver<bool> {
        let (tx, rx) = watch::channel(false);
        if let Ok(mut map) = self.cancels.lock() {
            map.insert(build_id, tx);
        }
        rx
    }

    pub fn unregister(&self, build_id: i64) {
        if let Ok(mut map) = self.cancels.lock() {
            map.remove(&build_id);
        }
    }

    /// The builds running here.
    pub fn registered(&self) -> Vec<i64> {
        self.cancels
            .lock()
            .map(|map| map.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Signals the build's runner, if it runs here.
    pub fn cancel(&self, build_id: i64) {
        if let Ok(map) = self.cancels.lock() {
            if let Some(tx) = map.get(&build_id) {
                let _ = tx.send(true);
            }
        }
    }

    /// Follows the store's change feed for as long as the server runs.
    pub fn follow(app: crate::AppState) {
        let mut changes = app.store.feed().subscribe();
        tokio::spawn(async move {
            loop {
                match changes.recv().await {
                    Ok(Change::Pending) => app.dispatcher.wake(),
                    Ok(Change::Canceled(build)) => app.dispatcher.cancel(build),
                    Ok(_) => {}
                    // Changes were missed: look for work; the heartbeat catches missed cancels.
                    Err(RecvError::Lagged(_)) => app.dispatcher.wake(),
                    Err(RecvError::Closed) => return,
                }
            }
        });
    }
}
