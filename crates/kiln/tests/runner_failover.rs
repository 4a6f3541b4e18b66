//! Remote runners through a server's death: two `kiln serve` processes on one PostgreSQL
//! database and eight `kiln runner` processes (four on each) run 1,000 builds; midway one
//! server is killed with SIGKILL and started again on its port. Every build ends, none runs
//! twice, every build that ran has its whole trace, and none stays running. PostgreSQL only
//! (`KILN_TEST_DATABASE_URL`).

mod support;

use kiln_core::BuildStatus;
use kiln_store::Store;
use kiln_test_support::TestDatabase;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::{
    admin_and_project, all_builds, git_repo, kiln, register_runner, serve_on, signal,
    RunnerProcess, Server,
};

const PIPELINES: usize = 100;
const JOBS: usize = 10;
const RUNNERS: usize = 8;
/// The servers' build lease (s): a claim whose answer died with its server is failed soon.
const BUILD_LEASE: &str = "15";

fn port_of(server: &Server) -> String {
    server.url.trim_start_matches("http://").to_owned()
}

#[test]
fn remote_runners_lose_no_build_and_run_none_twice_when_a_server_dies() {
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
    let mut ci = String::from("variables:\n  GIT_STRATEGY: none\n");
    for j in 0..JOBS {
        ci.push_str(&format!(
            "job{j}:\n  script:\n    - echo \"start $CI_JOB_ID\" >> {l}\n    - for i in $(seq 1 50); do echo \"line $i of $CI_JOB_ID\"; done\n    - echo \"end $CI_JOB_ID\" >> {l}\n    - echo \"done $CI_JOB_ID\"\n",
            l = ledger.display()
        ));
    }
    git_repo(&repo, &ci, &[]);
    let setup = dir.path().join("setup");
    let (token, project) = admin_and_project(&setup, &url, &repo);
    let registration = kiln(&setup, &url, &["admin", "runner", "registration-token"]);
    let serve_args = ["--no-embedded-runner", "--build-lease", BUILD_LEASE];
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    let mut a = serve_on(&a_dir, &url, "127.0.0.1:0", &serve_args);
    let mut b = serve_on(&b_dir, &url, "127.0.0.1:0", &serve_args);
    let a_listen = port_of(&a);
    let mut runners = Vec::new();
    for i in 0..RUNNERS {
        let server = if i % 2 == 0 { &a.url } else { &b.url };
        let config = dir.path().join(format!("runner{i}.toml"));
        register_runner(server, &registration, &config, &[]);
        let builds = dir.path().join(format!("builds{i}"));
        runners.push(RunnerProcess::start(&config, &builds, 2));
    }
    let store = runtime.block_on(Store::open(&url)).expect("store");
    let client = reqwest::Client::new();
    runtime.block_on(async {
        for i in 0..PIPELINES {
            let base = if i % 2 == 0 { &a.url } else { &b.url };
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
    let total = PIPELINES * JOBS;
    let deadline = Instant::now() + Duration::from_secs(600);
    let counts = |builds: &[kiln_store::BuildRecord]| {
        let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
        for build in builds {
            *counts.entry(build.status.as_str()).or_default() += 1;
        }
        format!("{counts:?}")
    };
    // A third of the way, A dies without a word and comes back on its port.
    runtime.block_on(async {
        loop {
            let builds = all_builds(&store, project).await;
            let done = builds.iter().filter(|b| b.status.is_complete()).count();
            if done >= total / 3 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the builds never got going: {}",
                counts(&builds)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    signal(&a, "-KILL");
    let _ = a.child.wait();
    drop(a);
    let mut a = serve_on(&a_dir, &url, &a_listen, &serve_args);
    let builds = runtime.block_on(async {
        loop {
            let builds = all_builds(&store, project).await;
            if builds.len() >= total && builds.iter().all(|b| b.status.is_complete()) {
                break builds;
            }
            assert!(
                Instant::now() < deadline,
                "builds left unfinished: {}",
                counts(&builds)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let ledger = std::fs::read_to_string(&ledger).unwrap_or_default();
    let mut starts: BTreeMap<i64, usize> = BTreeMap::new();
    let mut ends: BTreeMap<i64, usize> = BTreeMap::new();
    for line in ledger.lines() {
        let (kind, id) = line.split_once(' ').expect("ledger line");
        let id: i64 = id.parse().expect("id");
        let map = if kind == "start" {
            &mut starts
        } else {
            &mut ends
        };
        *map.entry(id).or_default() += 1;
    }
    let twice: Vec<_> = starts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "builds ran more than once: {twice:?}");
    let mut lost = Vec::new();
    for build in &builds {
        let ran = starts.get(&build.id).copied().unwrap_or(0);
        match build.status {
            BuildStatus::Success => {
                assert_eq!(ran, 1, "build {} succeeded without running once", build.id);
                assert_eq!(ends.get(&build.id), Some(&1));
                let trace = runtime
                    .block_on(store.builds().trace(build.id))
                    .expect("trace");
                let trace = String::from_utf8_lossy(&trace);
                for i in 1..=50 {
                    assert!(
                        trace.contains(&format!("line {i} of {}\n", build.id)),
                        "build {}: line {i} missing from its trace:\n{trace}",
                        build.id
                    );
                }
                assert!(trace.contains(&format!("done {}", build.id)), "{trace}");
            }
            // Claimed by the dying server, whose answer never reached a runner: failed
            // when its lease ran out, never run.
            BuildStatus::Failed => {
                assert_eq!(ran, 0, "build {} ran and yet failed", build.id);
                lost.push(build.id);
            }
            other => panic!("build {} ended {other}", build.id),
        }
    }
    eprintln!(
        "{} builds: {} succeeded, {} lost with the killed server's answers ({lost:?})",
        builds.len(),
        builds.len() - lost.len(),
        lost.len()
    );
    assert!(lost.len() <= RUNNERS * 2, "too many builds lost: {lost:?}");
    drop(runners);
    for server in [&a, &b] {
        signal(server, "-TERM");
    }
    for server in [&mut a, &mut b] {
        let _ = server.child.wait();
    }
    runtime.block_on(store.close());
}
