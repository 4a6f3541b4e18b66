//! Several servers on one database (on PostgreSQL each with its own pool and change-feed
//! listener, as separate processes would have; on SQLite one process's store), and what a
//! job may not touch on any server.

use crate::helpers::{assert_gone_within, pid_in, GitRepo, Server, TestApp};
use std::time::{Duration, Instant};

/// A job that starts a child in a new session, writes its pid and then waits.
fn sleeper_ci(pid_file: &std::path::Path) -> String {
    format!(
        "sleeper:\n  script:\n    - \"(setsid sleep 600 & echo $! > {})\"\n    - sleep 600\n",
        pid_file.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_on_one_server_stops_the_job_running_under_the_other() {
    let pids = tempfile::tempdir().unwrap();
    let pid_file = pids.path().join("child.pid");
    let (app, owner, _repo, project) = TestApp::with_repo(1, &sleeper_ci(&pid_file)).await;
    let other = Server::beside(&app, 0, |_| {}).await;
    let pipeline = app.create_pipeline(project, "master", &owner).await;
    pipeline.assert(201);
    let child = pid_in(&pid_file).await;
    let build = app.builds_by_name(project, &owner).await["sleeper"]["id"]
        .as_i64()
        .unwrap();
    let canceled = app
        .client
        .post(format!(
            "{}/api/v3/projects/{project}/builds/{build}/cancel",
            other.base
        ))
        .header("PRIVATE-TOKEN", &owner.token)
        .send()
        .await
        .unwrap();
    assert_eq!(canceled.status(), 201);
    // The job's child, in a session of its own, dies within a second of the cancel.
    assert_gone_within(child, Duration::from_secs(1), "the job's setsid child").await;
    let body = app
        .wait_for_build(project, build, &owner, |b| b["status"] == "canceled")
        .await;
    assert_eq!(body["status"], "canceled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_on_one_server_is_refused_by_the_other() {
    // A minute of cache: only the change feed can make the other server notice in time.
    let long_cache = |c: &mut kiln_server::Config| c.read_cache_ttl = Duration::from_secs(60);
    let app = TestApp::spawn_configured(0, long_cache).await;
    let other = Server::beside(&app, 0, long_cache).await;
    let user = app.user("dev", false).await;
    let url = format!("{}/api/v3/projects/1/builds", other.base);
    let get = || {
        app.client
            .get(&url)
            .header("PRIVATE-TOKEN", &user.token)
            .send()
    };
    // Authenticated (the project is missing: 404, not 401), and now cached there.
    assert_eq!(get().await.unwrap().status(), 404);
    assert_eq!(get().await.unwrap().status(), 404);
    assert!(app.store.users().revoke_token(&user.token).await.unwrap());
    let revoked = Instant::now();
    loop {
        if get().await.unwrap().status() == 401 {
            break;
        }
        assert!(
            revoked.elapsed() < Duration::from_secs(1),
            "the other server still accepts the revoked token"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poller_on_two_servers_makes_one_pipeline_per_push() {
    let (app, _owner, repo, project) = TestApp::with_repo(0, "job:\n  script: [\"true\"]\n").await;
    let other = Server::beside(&app, 0, |_| {}).await;
    for push in 0..3 {
        if push > 0 {
            repo.commit(&[("f.txt", &push.to_string())], "Another push");
        }
        let (a, b) = tokio::join!(
            kiln_server::background::poll_once(&app.state),
            kiln_server::background::poll_once(&other.state),
        );
        assert_eq!(
            a.unwrap() + b.unwrap(),
            1,
            "push {push}: one pipeline between the two servers"
        );
    }
    let count = app
        .store
        .builds()
        .count(project, &kiln_core::Scope::all())
        .await
        .unwrap();
    assert_eq!(count, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_artifact_stored_by_one_server_downloads_from_the_other() {
    let ci = "make:\n  script: [mkdir -p out, echo made-here > out/file.txt]\n  artifacts:\n    paths: [out/]\n";
    // On SQLite the servers share a directory (as they would a mount); on PostgreSQL the
    // archive is in the database and the servers share nothing else.
    let shared = tempfile::tempdir().unwrap();
    let setting = |c: &mut kiln_server::Config| {
        if c.artifacts == kiln_server::ArtifactsSetting::Auto {
            c.artifacts = kiln_server::ArtifactsSetting::Directory(shared.path().to_owned());
        }
    };
    let app = TestApp::spawn_configured(1, |c| {
        if std::env::var("KILN_TEST_DATABASE_URL").is_err() {
            setting(c)
        }
    })
    .await;
    let owner = app.user("owner", false).await;
    let repo = GitRepo::with_ci(ci);
    let project = app.project_on("team/app", &repo, &owner).await;
    let other = Server::beside(&app, 0, |c| {
        if std::env::var("KILN_TEST_DATABASE_URL").is_err() {
            setting(c)
        }
    })
    .await;
    let (_, builds) = app.run_pipeline(project, "master", &owner).await;
    assert_eq!(builds["make"]["status"], "success");
    let id = builds["make"]["id"].as_i64().unwrap();
    let response = app
        .client
        .get(format!(
            "{}/api/v3/projects/{project}/builds/{id}/artifacts",
            other.base
        ))
        .header("PRIVATE-TOKEN", &owner.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let zip = response.bytes().await.unwrap();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip.to_vec())).unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut archive.by_name("out/file.txt").unwrap(), &mut text)
        .unwrap();
    assert_eq!(text, "made-here\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_whose_runner_vanished_is_failed_and_the_pipeline_moves_on() {
    let ci = "stages: [one, two]\nlost:\n  stage: one\n  script: [sleep 600]\n\
              after:\n  stage: two\n  when: always\n  script: [\"true\"]\n";
    let (app, owner, _repo, project) = TestApp::with_repo(0, ci).await;
    app.create_pipeline(project, "master", &owner)
        .await
        .assert(201);
    // A runner claims the build and is never heard of again (its machine died).
    let vanished = app
        .store
        .runners()
        .find_or_create("vanished")
        .await
        .unwrap();
    let lease_end = kiln_store::now_ms() + 500;
    let claimed = app
        .store
        .builds()
        .claim(vanished, lease_end, &kiln_store::new_secret())
        .await
        .unwrap()
        .expect("a pending build");
    let other = Server::beside(&app, 0, |_| {}).await;
    let body = app
        .wait_for_build(project, claimed.build_id, &owner, |b| {
            b["status"] == "failed"
        })
        .await;
    assert_eq!(body["status"], "failed", "{body}");
    let trace = app.trace(project, claimed.build_id, &owner).await;
    assert!(
        trace.contains("its lease expired"),
        "the reaper says why: {trace}"
    );
    let record = app
        .store
        .builds()
        .get(project, claimed.build_id)
        .await
        .unwrap();
    assert!(record.finished_at.is_some());
    // The next stage (when: always) is queued: the pipeline moved on.
    let after = &app.builds_by_name(project, &owner).await["after"];
    assert_eq!(after["status"], "pending", "{after}");
    drop(other);
}

#[tokio::test]
async fn a_job_sees_neither_the_servers_environment_nor_its_files() {
    // The test process has these; the server's jobs must not.
    assert!(std::env::var("CARGO_MANIFEST_DIR").is_ok());
    let root = unsafe_geteuid() == 0;
    let ci = "peek:\n  script:\n    - echo \"manifest=${CARGO_MANIFEST_DIR:-none} db=${KILN_TEST_DATABASE_URL:-none}\"\n    - echo \"user=$(id -un)\"\n    - if cat \"$DATA_DIR/runner-id\" >/dev/null 2>&1; then echo data=READ; else echo data=refused; fi\n";
    let (app, owner, _repo, project) = TestApp::with_repo_configured(1, ci, |c| {
        if root {
            c.job_user = Some(kiln_executor::JobUser::lookup("nobody").expect("nobody"));
        }
    })
    .await;
    // Tell the job where the data dir is, as a pipeline variable.
    let data_dir = app.server.data_dir.path().to_string_lossy().into_owned();
    let created = app
        .client
        .post(format!("{}/api/v4/projects/{project}/pipeline", app.base))
        .header("PRIVATE-TOKEN", &owner.token)
        .json(&serde_json::json!({
            "ref": "master",
            "variables": [{"key": "DATA_DIR", "value": data_dir}]
        }))
        .send()
        .await
        .unwrap();
    let pipeline = TestApp::read(created).await.assert(201)["id"]
        .as_i64()
        .unwrap();
    let builds = app.wait_for_pipeline(project, pipeline, &owner).await;
    let id = builds["peek"]["id"].as_i64().unwrap();
    let trace = app.trace(project, id, &owner).await;
    assert!(trace.contains("\nmanifest=none db=none\n"), "{trace}");
    if root {
        assert!(trace.contains("\nuser=nobody\n"), "{trace}");
        assert!(trace.contains("\ndata=refused\n"), "{trace}");
    } else {
        eprintln!("not root: the job-user half of this test needs root");
    }
}

#[tokio::test]
async fn the_live_trace_shows_a_line_within_200_ms_of_its_print() {
    let ci = "talk:\n  script:\n    - date +%s%N\n    - sleep 3\n";
    let (app, owner, _repo, project) = TestApp::with_repo(1, ci).await;
    app.create_pipeline(project, "master", &owner)
        .await
        .assert(201);
    let deadline = Instant::now() + Duration::from_secs(30);
    let build = loop {
        if let Some(id) = app.builds_by_name(project, &owner).await["talk"]["id"].as_i64() {
            break id;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    loop {
        let trace = app.trace(project, build, &owner).await;
        let seen_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let printed = trace
            .lines()
            .find(|l| l.len() == 19 && l.bytes().all(|b| b.is_ascii_digit()));
        if let Some(printed) = printed {
            let lag_ms = seen_ns.saturating_sub(printed.parse().unwrap()) / 1_000_000;
            assert!(lag_ms < 200, "the line showed {lag_ms} ms after its print");
            let status = app.store.builds().status(build).await.unwrap();
            assert_eq!(
                status,
                kiln_core::BuildStatus::Running,
                "while the job sleeps"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the line never showed: {trace:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn unsafe_geteuid() -> u32 {
    // SAFETY: geteuid(2) only reads this process's credentials.
    unsafe { libc::geteuid() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_server_fails_its_running_build_and_kills_its_processes() {
    let pids = tempfile::tempdir().unwrap();
    let pid_file = pids.path().join("child.pid");
    let (app, owner, _repo, project) = TestApp::with_repo(1, &sleeper_ci(&pid_file)).await;
    app.create_pipeline(project, "master", &owner)
        .await
        .assert(201);
    let child = pid_in(&pid_file).await;
    let build = app.builds_by_name(project, &owner).await["sleeper"]["id"]
        .as_i64()
        .unwrap();
    // What SIGTERM does after the HTTP server stopped, before the pool closes.
    kiln_server::stop(&app.state).await;
    let record = app.store.builds().get(project, build).await.unwrap();
    assert_eq!(record.status, kiln_core::BuildStatus::Failed);
    let trace = app.trace(project, build, &owner).await;
    assert!(trace.contains("the server shut down"), "{trace}");
    assert_gone_within(child, Duration::from_secs(5), "the job's setsid child").await;
}

#[tokio::test]
async fn a_build_whose_definition_does_not_read_fails_with_the_reason() {
    let app = TestApp::spawn_with(1).await;
    let (owner, project) = app
        .owned_project("team/app", kiln_core::Visibility::Private)
        .await;
    let future = kiln_store::NewBuild {
        options: r#"{"version":99,"name":"future","script":["echo never"]}"#.into(),
        commands: "echo never".into(),
        ..kiln_store::NewBuild::new("future", "test", 0, kiln_core::BuildStatus::Pending)
    };
    let id = app
        .pipeline_of_builds(project, &"a".repeat(40), vec![future], Some(&owner))
        .await[0];
    let body = app
        .wait_for_build(project, id, &owner, |b| b["status"] == "failed")
        .await;
    assert_eq!(body["status"], "failed", "{body}");
    let trace = app.trace(project, id, &owner).await;
    assert!(trace.contains("written by a newer Kiln"), "{trace}");
    assert!(!trace.contains("\nnever"), "nothing of it ran: {trace}");
}
