//! `kiln bench --dispatch N`: how fast a trigger becomes a running build. A real git
//! repository, the real server in this process with its embedded runner, N pipelines
//! triggered one after another over HTTP; for each, the time from sending the trigger to the
//! first build's `started_at` (set when the runner claims it).

use kiln_core::Visibility;
use kiln_core::{PageRequest, Scope};
use kiln_store::Store;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub async fn run(pipelines: usize, postgres: Option<&str>) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (url, _db) = match postgres {
        Some(admin) => {
            let db = kiln_store::testing::TestDatabase::with_postgres(admin).await?;
            (db.url.clone(), Some(db))
        }
        None => (
            dir.path().join("kiln.db").to_string_lossy().into_owned(),
            None,
        ),
    };
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo)?;
    std::fs::write(
        repo.join(".gitlab-ci.yml"),
        "first:\n  script: [\"true\"]\nsecond:\n  stage: deploy\n  script: [\"true\"]\n",
    )?;
    for args in [
        &["init", "-q"][..],
        &["checkout", "-q", "-B", "master"],
        &["add", "."],
        &["commit", "-q", "-m", "bench"],
    ] {
        let ok = Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(["-c", "user.name=B", "-c", "user.email=b@x"])
            .args(args)
            .status()?
            .success();
        anyhow::ensure!(ok, "git {args:?}");
    }
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let mut config = kiln_server::Config::new(base.clone(), dir.path().join("data"));
    config.builds_concurrency = 2;
    let state = kiln_server::start(store.clone(), config).await?;
    tokio::spawn(kiln_server::serve(
        listener,
        kiln_server::router(state),
        kiln_server::HttpLimits::default(),
        std::future::pending(),
    ));
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
    let pct = |v: &mut Vec<f64>, p: f64| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
    };
    println!(
        "{pipelines} pipelines on {}, embedded runner (2 workers), one pipeline at a time",
        store.backend_name()
    );
    println!(
        "trigger → first build running: p50 {:.0} ms, p99 {:.0} ms",
        pct(&mut latencies, 0.5),
        pct(&mut latencies, 0.99)
    );
    println!(
        "trigger API call (git fetch + compile + insert): p50 {:.1} ms, p99 {:.1} ms",
        pct(&mut api, 0.5),
        pct(&mut api, 0.99)
    );
    Ok(())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
