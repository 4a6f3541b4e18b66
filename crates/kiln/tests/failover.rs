//! Servers that die: two `kiln serve` processes on one PostgreSQL database run 200 builds
//! with their embedded runners; one is killed with SIGKILL midway and a new one (with a new
//! data dir) takes its place. Every build runs once, every trace is complete, and the dead
//! server's builds are failed by the others soon after its lease ran out. PostgreSQL only
//! (`KILN_TEST_DATABASE_URL`): SQLite is one server's database.

mod support;

use kiln_core::BuildStatus;
use kiln_store::Store;
use kiln_test_support::TestDatabase;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};
use support::{admin_and_project, all_builds, git_repo, report, signal, Leftovers, Server};

/// A server whose embedded runner's lease is `LEASE`.
fn serve(data: &Path, url: &str) -> Server {
    support::serve(
        data,
        url,
        &[
            "--builds-concurrency",
            "3",
            "--embedded-lease",
            &LEASE.to_string(),
        ],
    )
}

const PIPELINES: usize = 40;
const JOBS: usize = 5;
/// The embedded lease the servers run with, in seconds.
const LEASE: u64 = 2;

#[test]
fn a_killed_server_loses_no_build_and_runs_none_twice() {
    let admin = match std::env::var("KILN_TEST_DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => url,
        _ => {
            eprintln!("skipped: needs KILN_TEST_DATABASE_URL=postgres://… (several servers share PostgreSQL only)");
            return;
        }
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let db = runtime
        .block_on(TestDatabase::with_postgres(&admin))
        .expect("database");
    let url = db.url.clone();
    let dir = tempfile::tempdir().expect("dir");
    let (repo, ledger) = (dir.path().join("repo"), dir.path().join("ledger"));
    let mut ci = String::new();
    for j in 0..JOBS {
        ci.push_str(&format!(
            "job{j}:\n  script:\n    - echo \"start $CI_JOB_ID\" >> {l}\n    - sleep 0.3\n    - echo \"end $CI_JOB_ID\" >> {l}\n",
            l = ledger.display()
        ));
    }
    git_repo(&repo, &ci, &[]);
    let (a_dir, b_dir, c_dir) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    let setup = dir.path().join("setup");
    let (token, project) = admin_and_project(&setup, &url, &repo);

    let mut a = serve(&a_dir, &url);
    // Whatever happens, nothing of the server that is killed outlives the test.
    let _leftovers = Leftovers(format!(
        "kiln-{}",
        std::fs::read_to_string(a_dir.join("runner-id"))
            .unwrap()
            .trim()
    ));
    let mut b = serve(&b_dir, &url);
    let (a_url, b_url) = (a.url.clone(), b.url.clone());
    let store = runtime.block_on(Store::open(&url)).expect("store");
    let client = reqwest::Client::new();
    runtime.block_on(async {
        for i in 0..PIPELINES {
            let base = if i % 2 == 0 { &a_url } else { &b_url };
            let response = client
                .post(format!(
                    "{base}/api/v4/projects/{project}/pipeline?ref=main"
                ))
                .header("PRIVATE-TOKEN", &token)
                .send()
                .await
                .expect("create pipeline");
            assert_eq!(response.status(), 201);
        }
    });
    // Midway, A dies without a word; C, on a data dir of its own, takes its place.
    let deadline = Instant::now() + Duration::from_secs(120);
    runtime.block_on(async {
        loop {
            let builds = all_builds(&store, project).await;
            let done = builds
                .iter()
                .filter(|b| b.status == BuildStatus::Success)
                .count();
            if done >= PIPELINES * JOBS / 3 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the builds never got going: {}",
                report(&builds, &[&a, &b])
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    signal(&a, "-KILL");
    let killed_at = Instant::now();
    let _ = a.child.wait();
    let mut c = serve(&c_dir, &url);
    let builds = runtime.block_on(async {
        loop {
            let builds = all_builds(&store, project).await;
            if builds.iter().all(|b| b.status.is_complete()) && builds.len() >= PIPELINES * JOBS {
                break builds;
            }
            assert!(
                Instant::now() < deadline,
                "builds left unfinished: {}",
                report(&builds, &[&a, &b, &c])
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let settled = killed_at.elapsed();

    // Exactly the builds of the pipelines: no copies, nothing retried.
    assert_eq!(builds.len(), PIPELINES * JOBS);
    let ledger = std::fs::read_to_string(&ledger).unwrap_or_default();
    let mut starts: BTreeMap<i64, usize> = BTreeMap::new();
    let mut ends: BTreeMap<i64, usize> = BTreeMap::new();
    for line in ledger.lines() {
        let (what, id) = line.split_once(' ').expect("ledger line");
        let id: i64 = id.parse().expect("job id");
        *match what {
            "start" => &mut starts,
            _ => &mut ends,
        }
        .entry(id)
        .or_default() += 1;
    }
    let mut reaped = 0;
    for build in &builds {
        let trace = runtime
            .block_on(store.builds().trace(build.id))
            .expect("trace");
        let trace = String::from_utf8_lossy(&trace);
        assert!(
            starts.get(&build.id).copied().unwrap_or(0) <= 1,
            "build {} ran twice",
            build.id
        );
        match build.status {
            BuildStatus::Success => {
                assert_eq!(
                    starts.get(&build.id),
                    Some(&1),
                    "build {} ran once",
                    build.id
                );
                assert_eq!(
                    ends.get(&build.id),
                    Some(&1),
                    "build {} ran to its end",
                    build.id
                );
                assert!(
                    trace.contains("Job succeeded"),
                    "build {}'s trace is complete: {trace}",
                    build.id
                );
            }
            BuildStatus::Failed => {
                // Only the dead server's builds fail, and the reaper says why.
                assert!(
                    trace.contains("its lease expired"),
                    "build {}: {trace}",
                    build.id
                );
                reaped += 1;
            }
            other => panic!("build {} ended {other}", build.id),
        }
    }
    assert!(
        (1..=3).contains(&reaped),
        "the dead server's running builds were reaped: {reaped}"
    );
    // The lease, then at most the reaper's own lease moving to a live server and its period.
    assert!(
        settled < Duration::from_secs(LEASE + 15 + 5 + 10),
        "the dead server's builds were failed {settled:?} after it died"
    );

    for server in [&b, &c] {
        signal(server, "-TERM");
    }
    for server in [&mut b, &mut c] {
        let status = server.child.wait().expect("wait");
        assert!(status.success(), "a server stopped with {status}");
    }
    // What the dead server's jobs left in their cgroups.
    let tag = format!(
        "kiln-{}",
        std::fs::read_to_string(a_dir.join("runner-id"))
            .unwrap()
            .trim()
    );
    let ids: Vec<i64> = builds.iter().map(|b| b.id).collect();
    kiln_executor::kill_leftover_cgroups(&tag, &ids);
    runtime.block_on(store.close());
}
