//! Wakes runners when builds become pending, and tells running builds they were canceled.
//! In-process signals only; runners also poll, so builds made by other servers sharing a
//! PostgreSQL database are picked up within the poll interval.

use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::{watch, Notify};

#[derive(Default)]
pub struct Dispatcher {
    pending: Notify,
    cancels: Mutex<HashMap<i64, watch::Sender<bool>>>,
}

impl Dispatcher {
    /// `enqueued` builds became pending: wake the waiting runners.
    pub fn wake(&self, enqueued: usize) {
        if enqueued > 0 {
            self.pending.notify_waiters();
        }
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

    /// Signals the build's runner, if it runs here.
    pub fn cancel(&self, build_id: i64) {
        if let Ok(map) = self.cancels.lock() {
            if let Some(tx) = map.get(&build_id) {
                let _ = tx.send(true);
            }
        }
    }
}
