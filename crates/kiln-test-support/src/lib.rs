//! What Kiln's tests (and benchmarks) share, kept out of the production crates: fresh
//! databases on either backend, pipeline fixtures, and checks on real processes.

mod database;
mod receiver;

pub use database::TestDatabase;
pub use receiver::{Answer, Received, Receiver};

use kiln_store::{CommitRecord, NewBuild, NewPipeline};
use std::path::Path;
use std::time::{Duration, Instant};

/// The commit of GitLab's API examples, at `sha`.
pub fn commit(sha: &str) -> CommitRecord {
    CommitRecord {
        sha: sha.to_owned(),
        message: "Test the CI integration.\n\nWith a body.".to_owned(),
        author_name: "Administrator".to_owned(),
        author_email: "admin@example.com".to_owned(),
        authored_at: 1_450_972_274_000,
        author_tz_offset_minutes: 60,
    }
}

/// A running pipeline on `master` at `sha` with `builds`, as a push makes it.
pub fn pipeline(project_id: i64, sha: &str, builds: Vec<NewBuild>) -> NewPipeline {
    NewPipeline {
        status: "running".into(),
        ..NewPipeline::new(project_id, commit(sha), "master", builds)
    }
}

/// Whether process `pid` still runs (a zombie does not).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.get(s.rfind(')')? + 2..).map(|r| !r.starts_with('Z')))
        .unwrap_or(false)
}

/// Waits (at most 30 s) for the file `path` to hold a pid, and returns it.
pub async fn pid_in(path: &Path) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(pid) = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "no pid appeared in {}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until `pid` is gone, failing if it still runs after `within`; returns how long.
pub async fn assert_gone_within(pid: i32, within: Duration, what: &str) -> Duration {
    let started = Instant::now();
    while alive(pid) {
        assert!(
            started.elapsed() < within,
            "{what} (pid {pid}) still runs after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    started.elapsed()
}
