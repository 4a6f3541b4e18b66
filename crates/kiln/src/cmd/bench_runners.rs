//! `kiln bench --runners [--postgres URL]`: the runner protocol under load, over real HTTP.
//!
//! - `claims/s`: 32 registered runners drain a queue of pending builds through
//!   `POST /api/v4/jobs/request` as fast as they can; every build must be claimed exactly
//!   once. The in-run baseline is the store's own claim (no HTTP, no job payload) by 32 tasks.
//! - `pickup`: a runner waits in a long poll; a build becomes pending; the time until the
//!   runner has it, p50 and p99, on one server and (PostgreSQL) across two servers.
//! - `idle`: 1,000 runners long-poll one `kiln serve` process that has nothing for them; its
//!   RSS and CPU meanwhile.

use super::bench_dispatch::percentile;
use kiln_core::{BuildStatus, Visibility};
use kiln_store::{NewBuild, NewPipeline, Store};
use kiln_test_support::TestDatabase;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const RUNNERS: usize = 32;
const CLAIM_BUILDS: usize = 4_000;
const PICKUPS: usize = 200;
const IDLE_RUNNERS: usize = 1_000;
const IDLE_SECONDS: u64 = 20;

pub async fn run(postgres: Option<&str>) -> anyhow::Result<()> {
    kiln_server::http::raise_file_limit();
    let backend = if postgres.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    claims(postgres, backend).await?;
    pickup(postgres, backend).await?;
    idle().await?;
    Ok(())
}

struct Bench {
    _dir: tempfile::TempDir,
    _db: Option<TestDatabase>,
    url: String,
    store: Store,
    project: i64,
}

async fn bench_store(postgres: Option<&str>) -> anyhow::Result<Bench> {
    let dir = tempfile::tempdir()?;
    let (url, db) = match postgres {
        Some(admin) => {
            let db = TestDatabase::with_postgres(admin).await?;
            (db.url.clone(), Some(db))
        }
        None => (
            dir.path().join("kiln.db").to_string_lossy().into_owned(),
            None,
        ),
    };
    let store = Store::open(&url).await?;
    let project = store
        .projects()
        .create("bench", "app", Visibility::Private, None)
        .await?;
    Ok(Bench {
        _dir: dir,
        _db: db,
        url,
        store,
        project,
    })
}

/// `count` pending one-line builds, in pipelines of ten.
async fn pending_builds(store: &Store, project: i64, count: usize) -> anyhow::Result<()> {
    let plan = kiln_ci::JobPlan {
        name: "job".into(),
        stage: "test".into(),
        script: vec!["true".into()],
        ..Default::default()
    };
    let options = kiln_server::service::definition::encode(&plan);
    for chunk in 0..count.div_ceil(10) {
        let builds = (0..10.min(count - chunk * 10))
            .map(|i| NewBuild {
                options: options.clone(),
                queued_at: Some(kiln_store::now_ms()),
                ..NewBuild::new(&format!("job{i}"), "test", 0, BuildStatus::Pending)
            })
            .collect();
        let sha = format!("{:040x}", chunk + 1);
        let pipeline = NewPipeline {
            status: "pending".into(),
            ..kiln_test_support::pipeline(project, &sha, builds)
        };
        store.pipelines().create(&pipeline).await?;
    }
    Ok(())
}

/// A server in this process without an embedded runner; its base URL.
async fn server(
    store: Store,
    data_dir: &Path,
    long_poll: Duration,
    cache: Duration,
) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let mut config = kiln_server::Config::new(base.clone(), data_dir);
    config.builds_concurrency = 0;
    config.long_poll_timeout = long_poll;
    config.read_cache_ttl = cache;
    let state = kiln_server::start(store, config).await?;
    tokio::spawn(kiln_server::serve(
        listener,
        kiln_server::router(state),
        kiln_server::HttpLimits::default(),
        std::future::pending(),
    ));
    Ok(base)
}

async fn register(client: &reqwest::Client, base: &str, token: &str) -> anyhow::Result<String> {
    let response = client
        .post(format!("{base}/api/v4/runners"))
        .json(&json!({ "token": token, "description": "bench" }))
        .send()
        .await?;
    anyhow::ensure!(response.status() == 201, "register: {}", response.status());
    let body: Value = response.json().await?;
    Ok(body["token"].as_str().unwrap_or_default().to_owned())
}

/// One job request; the job's id on a 201.
async fn request(client: &reqwest::Client, base: &str, token: &str) -> anyhow::Result<Option<i64>> {
    let response = client
        .post(format!("{base}/api/v4/jobs/request"))
        .json(&json!({ "token": token }))
        .send()
        .await?;
    match response.status().as_u16() {
        201 => Ok(response.json::<Value>().await?["id"].as_i64()),
        204 => Ok(None),
        other => anyhow::bail!("jobs/request answered {other}"),
    }
}

async fn claims(postgres: Option<&str>, backend: &str) -> anyhow::Result<()> {
    // Baseline: the store's claim alone, by as many tasks.
    let baseline = bench_store(postgres).await?;
    pending_builds(&baseline.store, baseline.project, CLAIM_BUILDS).await?;
    let runner = baseline.store.runners().find_or_create("baseline").await?;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..RUNNERS {
        let store = baseline.store.clone();
        tasks.spawn(async move {
            let mut ids = Vec::new();
            while let Ok(Some(claimed)) = store
                .builds()
                .claim(runner, i64::MAX, &kiln_store::new_secret())
                .await
            {
                ids.push(claimed.build_id);
            }
            ids
        });
    }
    let mut store_ids = Vec::new();
    while let Some(ids) = tasks.join_next().await {
        store_ids.extend(ids?);
    }
    let store_rate = store_ids.len() as f64 / started.elapsed().as_secs_f64();

    for (label, cache) in [
        ("", Duration::from_secs(1)),
        (" [no cache]", Duration::ZERO),
    ] {
        http_claims(postgres, backend, label, cache, store_rate).await?;
    }
    Ok(())
}

async fn http_claims(
    postgres: Option<&str>,
    backend: &str,
    label: &str,
    cache: Duration,
    store_rate: f64,
) -> anyhow::Result<()> {
    let bench = bench_store(postgres).await?;
    pending_builds(&bench.store, bench.project, CLAIM_BUILDS).await?;
    let base = server(
        bench.store.clone(),
        bench._dir.path(),
        Duration::from_millis(200),
        cache,
    )
    .await?;
    let registration = bench
        .store
        .runners()
        .issue_registration_token(None, false)
        .await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(RUNNERS)
        .build()?;
    let mut tokens = Vec::new();
    for _ in 0..RUNNERS {
        tokens.push(register(&client, &base, &registration).await?);
    }
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for token in tokens {
        let (client, base) = (client.clone(), base.clone());
        tasks.spawn(async move {
            let mut ids = Vec::new();
            let mut last = Instant::now();
            while let Ok(Some(id)) = request(&client, &base, &token).await {
                ids.push(id);
                last = Instant::now();
            }
            (ids, last)
        });
    }
    let (mut ids, mut last) = (Vec::new(), started);
    while let Some(done) = tasks.join_next().await {
        let (got, at) = done?;
        ids.extend(got);
        last = last.max(at);
    }
    let claimed = ids.len();
    let unique: HashSet<i64> = ids.into_iter().collect();
    let rate = claimed as f64 / (last - started).as_secs_f64();
    println!(
        "claims/s {backend}{label}: {rate:.0} over HTTP by {RUNNERS} runners ({claimed} of {CLAIM_BUILDS} builds, {} duplicates); store alone {store_rate:.0}/s; HTTP/store {:.0}%",
        claimed - unique.len(),
        100.0 * rate / store_rate
    );
    anyhow::ensure!(
        unique.len() == CLAIM_BUILDS,
        "not every build was claimed once"
    );
    let _ = bench.url;
    Ok(())
}

/// Pending → in the runner's hands, `PICKUPS` times: the runner waits on `runner_base`, the
/// build is made through `store`.
async fn pickups(
    store: &Store,
    project: i64,
    runner_base: &str,
    token: &str,
) -> anyhow::Result<Vec<f64>> {
    let client = reqwest::Client::new();
    let mut latencies = Vec::with_capacity(PICKUPS);
    for _ in 0..PICKUPS {
        let waiting = {
            let (client, base, token) = (client.clone(), runner_base.to_owned(), token.to_owned());
            tokio::spawn(async move {
                let got = request(&client, &base, &token).await;
                (got, Instant::now())
            })
        };
        // Let the request reach its wait.
        tokio::time::sleep(Duration::from_millis(30)).await;
        let made = Instant::now();
        pending_builds(store, project, 1).await?;
        let (got, at) = waiting.await?;
        anyhow::ensure!(got?.is_some(), "the waiting runner got nothing");
        latencies.push((at - made).as_secs_f64() * 1000.0);
    }
    Ok(latencies)
}

async fn pickup(postgres: Option<&str>, backend: &str) -> anyhow::Result<()> {
    let bench = bench_store(postgres).await?;
    let base = server(
        bench.store.clone(),
        bench._dir.path(),
        Duration::from_secs(30),
        Duration::from_secs(1),
    )
    .await?;
    let registration = bench
        .store
        .runners()
        .issue_registration_token(None, false)
        .await?;
    let client = reqwest::Client::new();
    let token = register(&client, &base, &registration).await?;
    let mut one = pickups(&bench.store, bench.project, &base, &token).await?;
    println!(
        "pickup {backend} one server: p50 {:.2} ms, p99 {:.2} ms ({PICKUPS} builds; gitlab-runner's default poll is 3,000 ms)",
        percentile(&mut one, 0.5),
        percentile(&mut one, 0.99)
    );
    if postgres.is_some() {
        // The runner waits on B, with its own pool and listener; the build is made on A's store.
        let second = Store::open(&bench.url).await?;
        let other_dir = tempfile::tempdir()?;
        let b = server(
            second,
            other_dir.path(),
            Duration::from_secs(30),
            Duration::from_secs(1),
        )
        .await?;
        let mut across = pickups(&bench.store, bench.project, &b, &token).await?;
        println!(
            "pickup {backend} across two servers: p50 {:.2} ms, p99 {:.2} ms",
            percentile(&mut across, 0.5),
            percentile(&mut across, 0.99)
        );
    }
    Ok(())
}

/// The process's resident memory (KiB) and CPU time used (clock ticks).
fn usage(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap_or(0) + 2..]
        .split(' ')
        .collect();
    let ticks = fields
        .get(11)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        + fields
            .get(12)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    Ok((rss, ticks))
}

async fn idle() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let exe = std::env::current_exe()?;
    let log = dir.path().join("serve.log");
    let mut child = tokio::process::Command::new(&exe)
        .arg("--data-dir")
        .arg(&data)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--no-embedded-runner",
            "--long-poll-timeout",
            "50",
        ])
        .env("RUST_LOG", "info,sqlx=warn")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().ok_or_else(|| anyhow::anyhow!("no pid"))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let base = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(rest) = text.split("bound=").nth(1) {
            break format!("http://{}", rest.split_whitespace().next().unwrap_or(""));
        }
        anyhow::ensure!(Instant::now() < deadline, "serve did not start: {text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let store = Store::open(&data.join("kiln.db").to_string_lossy()).await?;
    let registration = store
        .runners()
        .issue_registration_token(None, false)
        .await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(IDLE_RUNNERS)
        .timeout(Duration::from_secs(120))
        .build()?;
    let mut tokens = Vec::with_capacity(IDLE_RUNNERS);
    for _ in 0..IDLE_RUNNERS {
        tokens.push(register(&client, &base, &registration).await?);
    }
    let (rss_before, _) = usage(pid)?;
    let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut polls = tokio::task::JoinSet::new();
    for token in tokens {
        let (client, base, answered) = (client.clone(), base.clone(), answered.clone());
        polls.spawn(async move {
            let _ = request(&client, &base, &token).await;
            answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        });
    }
    // Let every poll arrive and settle into its wait, then measure a quiet stretch.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (_, ticks_start) = usage(pid)?;
    let measured = Instant::now();
    tokio::time::sleep(Duration::from_secs(IDLE_SECONDS)).await;
    let (rss, ticks_end) = usage(pid)?;
    let seconds = measured.elapsed().as_secs_f64();
    // SAFETY: sysconf(3) only reads a constant of the system.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let cpu = (ticks_end - ticks_start) as f64 / hz / seconds * 100.0;
    let early = answered.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "idle: {IDLE_RUNNERS} long-polling runners on one server: RSS {:.1} MB (before the polls {:.1} MB), CPU {cpu:.2}% of a core over {seconds:.0} s; {early} answered early",
        rss as f64 / 1024.0,
        rss_before as f64 / 1024.0
    );
    polls.abort_all();
    store.close().await;
    let _ = child.kill().await;
    Ok(())
}
