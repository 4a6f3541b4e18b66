//! Change counters that readers use to know their cached copies are stale. Every write this
//! process makes through the store bumps the counter of what it touched: a project's builds,
//! or the access data (users, tokens, projects, members). Writes by other processes are not
//! seen here; caches bound those by a time-to-live.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct Versions {
    access: AtomicU64,
    all_builds: AtomicU64,
    projects: Mutex<HashMap<i64, u64>>,
}

impl Versions {
    /// Changes whenever users, tokens, projects or members change.
    pub fn access(&self) -> u64 {
        self.access.load(Ordering::Acquire)
    }

    /// Changes whenever a runner's settings change (they appear in every project's builds,
    /// so a runner change is a change of all builds).
    pub fn runners(&self) -> u64 {
        self.all_builds.load(Ordering::Acquire)
    }

    /// Changes whenever a build or pipeline of `project_id` changes.
    pub fn builds(&self, project_id: i64) -> u64 {
        let base = self.all_builds.load(Ordering::Acquire);
        let own = self
            .projects
            .lock()
            .map(|m| m.get(&project_id).copied().unwrap_or(0))
            .unwrap_or(u64::MAX);
        base.wrapping_add(own)
    }

    pub(crate) fn bump_access(&self) {
        self.access.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn bump_all_builds(&self) {
        self.all_builds.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn bump_builds(&self, project_id: i64) {
        match self.projects.lock() {
            Ok(mut map) => *map.entry(project_id).or_default() += 1,
            // A poisoned map cannot say which project changed: make every project stale.
            Err(_) => self.bump_all_builds(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bumps_change_only_what_they_touch() {
        let v = Versions::default();
        let (a, p1, p2) = (v.access(), v.builds(1), v.builds(2));
        v.bump_builds(1);
        assert_ne!(v.builds(1), p1);
        assert_eq!(v.builds(2), p2);
        assert_eq!(v.access(), a);
        v.bump_access();
        assert_ne!(v.access(), a);
    }
}
