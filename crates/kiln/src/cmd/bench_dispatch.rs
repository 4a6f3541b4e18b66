//! `kiln bench --dispatch N [--across]`: how fast a trigger becomes a running build. A real
//! git repository, real servers in this process with their embedded runners, N pipelines
//! triggered one after another over HTTP; for each, the time from sending the trigger to the
//! first build's `started_at` (set when a runner claims it). With `--across` the trigger goes
//! to a server without runners and a second server (its own pool and change-feed listener,
//! as another process would have) runs the build: the wake-up crosses servers.
//!
//! `kiln bench --staleness N --postgres URL`: two servers with read caches on (a minute of
//! TTL, so only the change feed can refresh them); N times, a build is read on B (cached),
//! canceled on A, and read on B until it shows `canceled`. Prints the staleness p50/p99.

use kiln_core::Visibility;
use kiln_core::{BuildStatus, PageRequest, Scope};
use kiln_store::{NewBuild, NewPipeline, Store};
use kiln_test_support::TestDatabase;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A database for the bench: a fresh one on `postgres`, or a SQLite file in `dir`.
pub async fn database(
    dir: &Path,
    postgres: Option<&str>,
) -> anyhow::Result<(String, Option<TestDatabase>)> {
    Ok(match postgres {
        Some(admin) => {
            let db = TestDatabase::with_postgres(admin).await?;
            (db.url.clone(), Some(db))
        }
        None => (dir.join("kiln.db").to_string_lossy().into_owned(), None),
    })
}

/// A server in this process on an ephemeral port; returns its base URL.
async fn server(
    store: Store,
    data_dir: &Path,
    workers: usize,
    cache_ttl: Option<Duration>,
) -> anyhow::Result<String> {
    server_with(store, data_dir, |config| {
        config.builds_concurrency = workers;
        if let Some(ttl) = cache_ttl {
            config.read_cache_ttl = ttl;
        }
    })
    .await
}

/// A server in this process on an ephemeral port, configured by `tweak`; its base URL.
pub async fn server_with(
    store: Store,
    data_dir: &Path,
    tweak: impl FnOnce(&mut kiln_server::Config),
) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let mut config = kiln_server::Config::new(base.clone(), data_dir);
    tweak(&mut config);
    let state = kiln_server::start(store, config).await?;
    tokio::spawn(kiln_server::serve(
        listener,
        kiln_server::router(state),
        kiln_server::HttpLimits::default(),
        std::future::pending(),
    ));
    Ok(base)
}

pub fn git_repo(repo: &Path, ci: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(repo)?;
    std::fs::write(repo.join(".gitlab-ci.yml"), ci)?;
    for args in [
        &["init", "-q"][..],
        &["checkout", "-q", "-B", "master"],
        &["add", "."],
        &["commit", "-q", "-m", "bench"],
    ] {
        let ok = Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(["-c", "user.name=B", "-c", "user.email=b@x"])
            .args(args)
            .status()?
            .success();
        anyhow::ensure!(ok, "git {args:?}");
    }
    Ok(())
}

pub async fn run(pipelines: usize, postgres: Option<&str>, across: bool) -> anyhow::Result<()> {
    anyhow::ensure!(
        !across || postgres.is_some(),
        "--across needs --postgres: servers share PostgreSQL only"
    );
    let dir = tempfile::tempdir()?;
    let (url, _db) = database(dir.path(), postgres).await?;
    let repo = dir.path().join("repo");
    git_repo(
        &repo,
        "first:\n  script: [\"true\"]\nsecond:\n  stage: deploy\n  script: [\"true\"]\n",
    )?;
    let store = Store::open(&url).await?;
    let project = store
        .projects()
        .create(
            "bench",
            "dispatch",
            Visibility::Private,
            Some(&repo.to_string_lossy()),
        )
        .await?;
    let token = store.triggers().create(project, "bench").await?;
    let base = if across {
        let runner_store = Store::open(&url).await?;
        server(runner_store, &dir.path().join("runner"), 2, None).await?;
        server(store.clone(), &dir.path().join("api"), 0, None).await?
    } else {
        server(store.clone(), &dir.path().join("data"), 2, None).await?
    };
    let client = reqwest::Client::new();
    let trigger_url = format!("{base}/api/v3/projects/{project}/trigger/builds");
    let mut latencies = Vec::with_capacity(pipelines);
    let mut api = Vec::with_capacity(pipelines);
    for _ in 0..pipelines {
        let sent_ms = now_ms();
        let sent = Instant::now();
        let response = client
            .post(&trigger_url)
            .form(&[("token", token.as_str()), ("ref", "master")])
            .send()
            .await?;
        anyhow::ensure!(
            response.status() == 201,
            "trigger answered {}",
            response.status()
        );
        api.push(sent.elapsed().as_secs_f64() * 1000.0);
        let deadline = Instant::now() + Duration::from_secs(10);
        let (started, first_build) = loop {
            let page = store
                .builds()
                .list(
                    project,
                    &Scope::all(),
                    PageRequest {
                        page: 1,
                        per_page: 2,
                    },
                )
                .await?;
            // The newest pipeline's first-stage build is the second newest build.
            if let Some(build) = page.builds.get(1) {
                if let Some(started) = build.started_at {
                    break (started, build.id);
                }
            }
            anyhow::ensure!(Instant::now() < deadline, "the build never started");
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        latencies.push((started - sent_ms) as f64);
        // Measure dispatch on an idle runner: let this pipeline finish before the next.
        let pipeline = store.pipelines().of_build(first_build).await?.id;
        while !matches!(
            store.pipelines().get(pipeline).await?.status.as_str(),
            "success" | "failed"
        ) {
            anyhow::ensure!(Instant::now() < deadline, "the pipeline never finished");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let runners = if across {
        "triggered on one server, run by the embedded runner (2 workers) of another"
    } else {
        "embedded runner (2 workers)"
    };
    println!(
        "{pipelines} pipelines on {}, {runners}, one pipeline at a time",
        store.backend_name()
    );
    println!(
        "trigger → first build running: p50 {:.0} ms, p99 {:.0} ms",
        percentile(&mut latencies, 0.5),
        percentile(&mut latencies, 0.99)
    );
    println!(
        "trigger API call (git fetch + compile + insert): p50 {:.1} ms, p99 {:.1} ms",
        percentile(&mut api, 0.5),
        percentile(&mut api, 0.99)
    );
    Ok(())
}

/// `kiln bench --staleness N`: see the module's doc.
pub async fn staleness(reads: usize, postgres: Option<&str>) -> anyhow::Result<()> {
    let Some(admin) = postgres else {
        anyhow::bail!("--staleness needs --postgres: only servers sharing PostgreSQL can disagree");
    };
    let dir = tempfile::tempdir()?;
    let (url, _db) = database(dir.path(), Some(admin)).await?;
    let store = Store::open(&url).await?;
    let user = store
        .users()
        .create("bench", "Bench", "bench@example.com", true)
        .await?;
    let token = store.users().create_token(user, "bench").await?;
    let project = store
        .projects()
        .create("bench", "stale", Visibility::Private, None)
        .await?;
    let builds = (0..reads)
        .map(|i| NewBuild::new(&format!("job{i}"), "test", 0, BuildStatus::Pending))
        .collect();
    let pipeline = NewPipeline {
        status: "pending".into(),
        ..NewPipeline::new(
            project,
            kiln_test_support::commit(&"0".repeat(40)),
            "master",
            builds,
        )
    };
    let (_, ids) = store.pipelines().create(&pipeline).await?;
    let minute = Some(Duration::from_secs(60));
    let a = server(store.clone(), &dir.path().join("a"), 0, minute).await?;
    let b = server(Store::open(&url).await?, &dir.path().join("b"), 0, minute).await?;
    let client = reqwest::Client::new();
    let status_on_b = |id: i64| {
        let request = client
            .get(format!("{b}/api/v3/projects/{project}/builds/{id}"))
            .header("PRIVATE-TOKEN", &token);
        async move {
            let body: serde_json::Value = request.send().await?.json().await?;
            anyhow::Ok(body["status"].as_str().unwrap_or("").to_owned())
        }
    };
    let mut stale_ms = Vec::with_capacity(reads);
    let mut stale_reads = 0_usize;
    for id in ids {
        // Cached on B.
        for _ in 0..2 {
            anyhow::ensure!(status_on_b(id).await? == "pending", "not pending");
        }
        let canceled = client
            .post(format!("{a}/api/v3/projects/{project}/builds/{id}/cancel"))
            .header("PRIVATE-TOKEN", &token)
            .send()
            .await?;
        anyhow::ensure!(
            canceled.status() == 201,
            "cancel answered {}",
            canceled.status()
        );
        let written = Instant::now();
        loop {
            if status_on_b(id).await? == "canceled" {
                break;
            }
            stale_reads += 1;
            anyhow::ensure!(
                written.elapsed() < Duration::from_secs(30),
                "B never saw it"
            );
        }
        stale_ms.push(written.elapsed().as_secs_f64() * 1000.0);
    }
    println!(
        "{reads} writes on server A, each read on server B until seen (read cache on, 60 s TTL)"
    );
    println!(
        "staleness after the write's answer: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; stale reads: {stale_reads}",
        percentile(&mut stale_ms.clone(), 0.5),
        percentile(&mut stale_ms.clone(), 0.99),
        percentile(&mut stale_ms, 1.0),
    );
    Ok(())
}

/// The value at fraction `p` (0.5: the median) of `values`, sorted here.
pub fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[((values.len() as f64 * p) as usize).min(values.len() - 1)]
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
