//! `kiln bench`: loads a generated history of N builds, starts the real `kiln serve` as a
//! child process, and drives it with keep-alive connections, printing req/s, p50 and p99 per
//! scenario and the server's peak RSS. In the same run it measures a baseline: a bare hyper
//! server serializing the same 20 builds from memory, the most this machine can do for a page.

use crate::Cli;
use anyhow::{bail, Context};
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Empty, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use kiln_core::{PageRequest, Scope, Visibility};
use kiln_server::present::v3::Presenter;
use kiln_store::Store;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Builds in the generated history (10 per pipeline).
    #[arg(long, default_value_t = 1_000_000)]
    pub builds: usize,
    /// Run against this PostgreSQL server (a fresh database is made on it) instead of SQLite.
    #[arg(long)]
    pub postgres: Option<String>,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Seconds per scenario.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Instead: trigger this many pipelines one after another through the Triggers API and
    /// measure trigger → first build running, with the embedded runner.
    #[arg(long)]
    pub dispatch: Option<usize>,
    /// With --dispatch: trigger on one server and run on another (needs --postgres).
    #[arg(long)]
    pub across: bool,
    /// Instead: this many writes on one server, each read on another until seen; prints the
    /// cross-server staleness (needs --postgres).
    #[arg(long)]
    pub staleness: Option<usize>,
    /// Instead: this many one-job pipelines on a `kiln serve` process; prints its CPU per
    /// finished build.
    #[arg(long)]
    pub build_cpu: Option<usize>,
    /// Instead: the runner protocol: claims per second by 32 runners, pending → claimed with
    /// long polling, and 1,000 idle long polls on one server.
    #[arg(long)]
    pub runners: bool,
    /// Instead: webhook deliveries to a local receiver: the delay from N status changes to
    /// their delivery (p50/p99), and deliveries per second of a burst against a plain
    /// client's baseline.
    #[arg(long)]
    pub webhooks: Option<usize>,
    /// Instead of the scenarios: the hot list endpoint with and without request metrics.
    #[arg(long)]
    pub metrics_overhead: bool,
    /// With --build-cpu: the Kiln binary to measure (default: this one).
    #[arg(long)]
    pub kiln: Option<std::path::PathBuf>,
    /// With --build-cpu: jobs per pipeline, one measurement for each (e.g. 1,10,10000); N
    /// is then the builds of each measurement, N / jobs pipelines (at least one).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub pipeline_jobs: Vec<usize>,
}

struct Scenario {
    name: &'static str,
    paths: Vec<String>,
    /// The X-Total every answer must carry, if checked.
    total: Option<u64>,
    /// Sent as the Cookie header (the web pages' signed-in session).
    cookie: Option<String>,
}

pub async fn run(_cli: &Cli, args: &BenchArgs) -> anyhow::Result<()> {
    if let Some(pipelines) = args.dispatch {
        return super::bench_dispatch::run(pipelines, args.postgres.as_deref(), args.across).await;
    }
    if let Some(reads) = args.staleness {
        return super::bench_dispatch::staleness(reads, args.postgres.as_deref()).await;
    }
    if let Some(changes) = args.webhooks {
        return super::bench_webhooks::run(changes, args.postgres.as_deref()).await;
    }
    if args.runners {
        return super::bench_runners::run(args.postgres.as_deref()).await;
    }
    if let Some(builds) = args.build_cpu {
        return super::bench_cpu::run(builds, &args.pipeline_jobs, args.kiln.clone()).await;
    }
    let dir = tempfile::tempdir()?;
    let (url, _cleanup) = match &args.postgres {
        Some(admin) => {
            let db = kiln_test_support::TestDatabase::with_postgres(admin).await?;
            (db.url.clone(), Some(db))
        }
        None => (
            dir.path().join("kiln.db").to_string_lossy().into_owned(),
            None,
        ),
    };
    let store = Store::open(&url).await?;
    let user = store
        .users()
        .create("bench", "Bench Admin", "bench@example.com", true)
        .await?;
    let token = store.users().create_token(user, "bench").await?;
    let project = store
        .projects()
        .create("bench", "app", Visibility::Private, None)
        .await?;
    let pipelines = args.builds.div_ceil(10);
    let started = Instant::now();
    let written = kiln_store::generate::generate(&store, project, pipelines, 1).await?;
    println!(
        "loaded {written} builds into {} in {:.1} s",
        store.backend_name(),
        started.elapsed().as_secs_f64()
    );
    let first_page = store
        .builds()
        .list(project, &Scope::all(), PageRequest::default())
        .await?;
    let top_id = first_page.builds.first().map_or(0, |b| b.id);
    let top_pipeline = first_page.builds.first().map_or(0, |b| b.pipeline_id);
    let session = store.sessions().start(user, 86_400_000).await?;
    let cookie = Some(format!("{}={session}", kiln_server::web::SESSION_COOKIE));
    let failed = store
        .builds()
        .count(project, &Scope::of(&[kiln_core::BuildStatus::Failed]))
        .await?;
    store.close().await;

    let baseline_addr = start_baseline(first_page.builds).await?;
    let base = format!("/api/v3/projects/{project}/builds");
    let with_token = |p: String| {
        format!(
            "{p}{}private_token={token}",
            if p.contains('?') { "&" } else { "?" }
        )
    };
    let v4 = format!("/api/v4/projects/{project}/jobs");
    // Keyset page k (20 a page, newest first) starts below the id 20 × (k − 1) under the top.
    let deep_cursor = top_id - 20 * (50_000 - 1) + 1;
    let build_ids: Vec<String> = (0..997)
        .map(|i| with_token(format!("{base}/{}", 1 + (i * 1_003) % written)))
        .collect();
    let scenarios = [
        Scenario {
            name: "page 1",
            paths: vec![with_token(base.clone())],
            total: Some(written),
            cookie: None,
        },
        Scenario {
            name: "page 10,000",
            paths: vec![with_token(format!("{base}?page=10000"))],
            total: Some(written),
            cookie: None,
        },
        Scenario {
            name: "scope=failed",
            paths: vec![with_token(format!("{base}?scope=failed"))],
            total: Some(failed),
            cookie: None,
        },
        Scenario {
            name: "GET build",
            paths: build_ids,
            total: None,
            cookie: None,
        },
        Scenario {
            name: "v4 jobs page 1",
            paths: vec![with_token(v4.clone())],
            total: Some(written),
            cookie: None,
        },
        Scenario {
            name: "v4 jobs keyset page 50,000",
            paths: vec![with_token(format!(
                "{v4}?pagination=keyset&order_by=id&sort=desc&cursor={}",
                kiln_server::api::v4::jobs::encode_cursor(deep_cursor)
            ))],
            total: None,
            cookie: None,
        },
        // The web UI's pages, rendered on the server for a signed-in user.
        Scenario {
            name: "web pipelines page",
            paths: vec!["/bench/app/-/pipelines".to_owned()],
            total: None,
            cookie: cookie.clone(),
        },
        Scenario {
            name: "web pipeline page",
            paths: vec![format!("/bench/app/-/pipelines/{top_pipeline}")],
            total: None,
            cookie: cookie.clone(),
        },
        Scenario {
            name: "web job page",
            paths: (0..997)
                .map(|i| format!("/bench/app/-/jobs/{}", 1 + (i * 1_003) % written))
                .collect(),
            total: None,
            cookie,
        },
    ];
    if args.metrics_overhead {
        let jobs = with_token(v4.clone());
        return metrics_overhead(&url, dir.path(), &jobs, written, args).await;
    }
    println!(
        "{:<30} {:>10} {:>10} {:>10}   ({} connections, {} s each)",
        "scenario", "req/s", "p50 ms", "p99 ms", args.connections, args.seconds
    );
    let duration = Duration::from_secs(args.seconds);
    let baseline = load(
        baseline_addr,
        &["/baseline".to_owned()],
        (None, None),
        args.connections,
        duration,
    )
    .await?;
    baseline.print("baseline (hyper, memory)");
    // With the read cache (the default; still exact, keyed on the store's change counters)
    // and without it: every request then goes to the database.
    for (label, ttl_ms) in [("", 1_000), (" [no cache]", 0)] {
        let (mut server, server_addr) = spawn_server(&url, dir.path(), ttl_ms, &[]).await?;
        let pid = server.id().context("server pid")?;
        let (mut page_one, mut v4_page_one, mut v4_p50) = (0.0, 0.0, 0.0_f64);
        for scenario in &scenarios {
            let result = load(
                server_addr,
                &scenario.paths,
                (scenario.total, scenario.cookie.as_deref()),
                args.connections,
                duration,
            )
            .await?;
            result.print(&format!("{}{label}", scenario.name));
            match scenario.name {
                "page 1" => page_one = result.rps,
                "v4 jobs page 1" => v4_page_one = result.rps,
                "v4 jobs keyset page 50,000" => println!(
                    "v4 keyset page 50,000 p50 / page 1 p50{label}: {:.2}×   (page 1: {:.0}% of baseline)",
                    result.p50_ms / v4_p50.max(f64::MIN_POSITIVE),
                    100.0 * v4_page_one / baseline.rps
                ),
                _ => {}
            }
            if scenario.name == "v4 jobs page 1" {
                v4_p50 = result.p50_ms;
            }
        }
        println!(
            "page 1 / baseline{label}: {:.0}%",
            100.0 * page_one / baseline.rps
        );
        println!(
            "server peak RSS{label}: {:.1} MB",
            peak_rss_kb(pid)? as f64 / 1024.0
        );
        let _ = server.kill().await;
    }
    Ok(())
}

/// The hot list endpoint on a server that counts requests for `/-/metrics` and on one that
/// does not, in alternating rounds (so that drift hits both), with the cache on and off.
async fn metrics_overhead(
    url: &str,
    dir: &std::path::Path,
    path: &str,
    total: u64,
    args: &BenchArgs,
) -> anyhow::Result<()> {
    let duration = Duration::from_secs(args.seconds);
    println!(
        "v4 jobs page 1, {} connections, {} s a round, 3 rounds each, alternating",
        args.connections, args.seconds
    );
    for (label, ttl_ms) in [("cache on", 1_000), ("cache off", 0)] {
        let (mut counted, counted_addr) = spawn_server(url, dir, ttl_ms, &[]).await?;
        let (mut bare, bare_addr) = spawn_server(url, dir, ttl_ms, &["--no-http-metrics"]).await?;
        let (mut with, mut without) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            for (addr, into) in [(counted_addr, &mut with), (bare_addr, &mut without)] {
                let result = load(
                    addr,
                    &[path.to_owned()],
                    (Some(total), None),
                    args.connections,
                    duration,
                )
                .await?;
                into.push(result.rps);
            }
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let (with, without) = (mean(&with), mean(&without));
        println!(
            "{label}: with metrics {with:.0} req/s, without {without:.0} req/s: {:.3}× ({:+.1}%)",
            with / without,
            100.0 * (with - without) / without
        );
        let _ = counted.kill().await;
        let _ = bare.kill().await;
    }
    Ok(())
}

async fn spawn_server(
    url: &str,
    data_dir: &std::path::Path,
    read_cache_ttl_ms: u64,
    extra: &[&str],
) -> anyhow::Result<(tokio::process::Child, SocketAddr)> {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
        probe.local_addr()?.port()
    };
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let child = tokio::process::Command::new(std::env::current_exe()?)
        .args([
            "serve",
            "--listen",
            &addr.to_string(),
            "--database-url",
            url,
            // Only the API is measured: the generated history's pending builds stay pending.
            "--no-embedded-runner",
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--read-cache-ttl-ms", &read_cache_ttl_ms.to_string()])
        .args(extra)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()?;
    for _ in 0..200 {
        if TcpStream::connect(addr).await.is_ok() {
            return Ok((child, addr));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    bail!("kiln serve did not start on {addr}")
}

/// A bare hyper server that serializes the given builds on every request.
async fn start_baseline(builds: Vec<kiln_store::BuildRecord>) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let builds = Arc::new(builds);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let builds = builds.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |_req: Request<hyper::body::Incoming>| {
                        let builds = builds.clone();
                        async move {
                            let presenter = Presenter {
                                external_url: "http://127.0.0.1",
                            };
                            let body: Vec<_> = builds.iter().map(|b| presenter.build(b)).collect();
                            let json = serde_json::to_vec(&body).unwrap_or_default();
                            Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(json)))
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

struct LoadResult {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

impl LoadResult {
    fn print(&self, name: &str) {
        println!(
            "{name:<30} {:>10.0} {:>10.2} {:>10.2}",
            self.rps, self.p50_ms, self.p99_ms
        );
    }
}

/// Drives `addr` with `connections` keep-alive connections cycling through `paths`, each
/// answer checked for its X-Total (if given) and sent with the cookie (if any).
async fn load(
    addr: SocketAddr,
    paths: &[String],
    (total, cookie): (Option<u64>, Option<&str>),
    connections: usize,
    duration: Duration,
) -> anyhow::Result<LoadResult> {
    let paths = Arc::new(paths.to_vec());
    let cookie = cookie.map(str::to_owned);
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for c in 0..connections {
        let paths = paths.clone();
        let cookie = cookie.clone();
        tasks.push(tokio::spawn(async move {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            let mut latencies = Vec::with_capacity(100_000);
            let mut i = c;
            while Instant::now() < deadline {
                let path = &paths[i % paths.len()];
                i += 1;
                let mut request = Request::get(path.as_str()).header("host", "127.0.0.1");
                if let Some(cookie) = &cookie {
                    request = request.header("cookie", cookie.as_str());
                }
                let request = request.body(Empty::<Bytes>::new())?;
                let sent = Instant::now();
                let response = sender.send_request(request).await?;
                let status = response.status();
                let x_total = response
                    .headers()
                    .get("x-total")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let body = response.into_body().collect().await?.to_bytes();
                latencies.push(sent.elapsed().as_micros() as u32);
                if !status.is_success() || body.is_empty() {
                    bail!("{path}: status {status}");
                }
                if let Some(want) = total {
                    if x_total.as_deref() != Some(want.to_string().as_str()) {
                        bail!("{path}: X-Total {x_total:?}, want {want}");
                    }
                }
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    Ok(LoadResult {
        rps: all.len() as f64 / duration.as_secs_f64(),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    })
}

fn peak_rss_kb(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .context("VmHWM")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("VmHWM value")?
        .parse()?)
}
