//! `kiln bench --webhooks N [--postgres URL]`: webhook deliveries to a real HTTP receiver on
//! 127.0.0.1, from a server in this process.
//!
//! - Throughput: N deliveries to one hook queued (N pipelines made) before the server
//!   starts; deliveries per second from its start to the last request received.
//! - Baseline, same run: the same body POSTed N times straight to the receiver by 32 tasks
//!   of a plain HTTP client, the most this machine and receiver take.
//! - Delay: N status changes one after another (a pipeline made, 20 ms apart), each told to
//!   one hook; the time from the change (its delivery's `created_at`, in its transaction) to
//!   the receiver reading the request, p50 and p99.

use super::bench_dispatch::{database, percentile, server_with};
use kiln_core::{BuildStatus, Visibility};
use kiln_store::{HookSettings, NewBuild, Store};
use kiln_test_support::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SHA: &str = "97de212e80737a608d939f648d959671fb0a0142";

pub async fn run(changes: usize, postgres: Option<&str>) -> anyhow::Result<()> {
    anyhow::ensure!(changes >= 10, "--webhooks needs at least 10 changes");
    let dir = tempfile::tempdir()?;
    let (url, _cleanup) = database(dir.path(), postgres).await?;
    let store = Store::open(&url).await?;
    let receiver = Receiver::start().await;

    // Throughput: the backlog is queued before the server starts, then drained.
    let burst = project(&store, "burst").await?;
    hook(&store, burst, &receiver.url).await?;
    for _ in 0..changes {
        new_pipeline(&store, burst).await?;
    }
    let started = kiln_store::now_ms();
    server_with(store.clone(), &dir.path().join("data"), |config| {
        config.builds_concurrency = 0;
        config.allow_local_webhooks = true;
    })
    .await?;
    wait_for(&receiver, changes).await?;
    let last = receiver
        .received()
        .iter()
        .map(|r| r.at_ms)
        .max()
        .unwrap_or(started);
    let kiln_rate = changes as f64 / ((last - started).max(1) as f64 / 1000.0);
    println!(
        "a backlog of {changes} deliveries to one hook on {}, drained by a server that starts: {kiln_rate:.0} deliveries/s",
        store.backend_name()
    );
    let body = receiver.received()[0].body.clone();
    let baseline = baseline(&receiver.url, body, changes).await?;
    println!(
        "baseline (32 tasks POSTing the same bodies straight to the receiver): {baseline:.0} requests/s; Kiln at {:.3} of it",
        kiln_rate / baseline
    );

    // Delay: another hook, changes one at a time.
    let single = project(&store, "single").await?;
    hook(&store, single, &receiver.url).await?;
    let before = receiver.count();
    for _ in 0..changes {
        new_pipeline(&store, single).await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_for(&receiver, before + changes).await?;
    let logged = all_deliveries(&store, single, changes).await?;
    let mut delays = Vec::with_capacity(changes);
    for request in receiver.received() {
        let uuid = request.header("x-gitlab-event-uuid").unwrap_or("");
        if let Some(created) = logged.get(uuid) {
            delays.push((request.at_ms - created) as f64);
        }
    }
    anyhow::ensure!(
        delays.len() == changes,
        "{} of {changes} delays matched",
        delays.len()
    );
    println!(
        "{changes} changes 20 ms apart, each told to one hook: change → delivery p50 {:.1} ms, p99 {:.1} ms",
        percentile(&mut delays.clone(), 0.5),
        percentile(&mut delays, 0.99)
    );
    Ok(())
}

async fn project(store: &Store, name: &str) -> anyhow::Result<i64> {
    Ok(store
        .projects()
        .create("bench", name, Visibility::Private, None)
        .await?)
}

async fn hook(store: &Store, project: i64, url: &str) -> anyhow::Result<i64> {
    let settings = HookSettings {
        url: Some(url.to_owned()),
        pipeline_events: Some(true),
        push_events: Some(false),
        ..HookSettings::default()
    };
    Ok(store.hooks().create(project, &settings).await?.id)
}

/// A running pipeline with one created build: one Pipeline Hook delivery per hook.
async fn new_pipeline(store: &Store, project: i64) -> anyhow::Result<()> {
    let builds = vec![NewBuild::new("test", "test", 0, BuildStatus::Created)];
    let pipeline = kiln_test_support::pipeline(project, SHA, builds);
    store.pipelines().create(&pipeline).await?;
    Ok(())
}

/// Each delivery's event uuid and when its change was made.
async fn all_deliveries(
    store: &Store,
    project: i64,
    expected: usize,
) -> anyhow::Result<std::collections::HashMap<String, i64>> {
    let mut found = std::collections::HashMap::new();
    for hook in store.hooks().list(project).await? {
        for d in store
            .hooks()
            .deliveries(hook.id, 0, expected as i64)
            .await?
        {
            found.insert(d.event_uuid, d.created_at);
        }
    }
    Ok(found)
}

async fn wait_for(receiver: &Receiver, count: usize) -> anyhow::Result<()> {
    receiver
        .wait_until(Duration::from_secs(300), |r| r.len() >= count)
        .await
        .map(|_| ())
        .ok_or_else(|| anyhow::anyhow!("the receiver got {} of {count}", receiver.count()))
}

/// Requests per second of 32 tasks POSTing `body` `total` times to `url`.
async fn baseline(url: &str, body: String, total: usize) -> anyhow::Result<f64> {
    let client = reqwest::Client::new();
    let body = Arc::new(body);
    let left = Arc::new(std::sync::atomic::AtomicUsize::new(total));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (client, body, left, url) =
            (client.clone(), body.clone(), left.clone(), url.to_owned());
        tasks.push(tokio::spawn(async move {
            while left
                .fetch_update(
                    std::sync::atomic::Ordering::SeqCst,
                    std::sync::atomic::Ordering::SeqCst,
                    |n| n.checked_sub(1),
                )
                .is_ok()
            {
                client
                    .post(&url)
                    .header("Content-Type", "application/json")
                    .body(body.as_str().to_owned())
                    .send()
                    .await?
                    .error_for_status()?;
            }
            Ok::<(), reqwest::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}
