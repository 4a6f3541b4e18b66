//! A server killed with SIGKILL between a status change and its webhook delivery loses
//! nothing: the delivery waits in the outbox, and the server started in its place sends it
//! once, with the event uuid it was given when the change was made. On either backend.

mod support;

use kiln_core::{BuildStatus, Visibility};
use kiln_store::{HookSettings, NewBuild};
use kiln_test_support::{assert_gone_within, Receiver, TestDatabase};
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_delivery_survives_a_killed_server_and_is_made_once() {
    let db = TestDatabase::new().await;
    let store = db.open().await.expect("store");
    let project = store
        .projects()
        .create("team", "app", Visibility::Private, None)
        .await
        .expect("project");
    let port = Receiver::free_port().await;
    let settings = HookSettings {
        url: Some(format!("http://127.0.0.1:{port}/hook")),
        pipeline_events: Some(true),
        push_events: Some(false),
        ..HookSettings::default()
    };
    let hook = store
        .hooks()
        .create(project, &settings)
        .await
        .expect("hook");
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("server");
    let flags = [
        "--allow-local-webhooks",
        "--no-embedded-runner",
        "--webhook-timeout",
        "1",
    ];
    let first = support::serve(&data, &db.url, &flags);

    // The change: a pipeline is made; its receiver is down, so the attempt fails.
    let builds = vec![NewBuild::new("test", "test", 0, BuildStatus::Pending)];
    let made =
        kiln_test_support::pipeline(project, "97de212e80737a608d939f648d959671fb0a0142", builds);
    let (pipeline, _) = store.pipelines().create(&made).await.expect("pipeline");
    let queued = wait_for(|| async {
        let found = store
            .hooks()
            .deliveries(hook.id, 0, 10)
            .await
            .expect("deliveries");
        found.first().filter(|d| d.attempts >= 1).cloned()
    })
    .await;
    assert_eq!(
        (queued.subject_id, queued.state.as_str()),
        (pipeline, "pending")
    );

    let pid = first.child.id() as i32;
    support::signal(&first, "-KILL");
    assert_gone_within(pid, Duration::from_secs(10), "the killed server").await;
    let after_kill = store
        .hooks()
        .deliveries(hook.id, 0, 10)
        .await
        .expect("deliveries");
    assert_eq!(after_kill.len(), 1);
    assert_eq!(
        (after_kill[0].state.as_str(), &after_kill[0].event_uuid),
        ("pending", &queued.event_uuid)
    );

    let receiver = Receiver::start_on(port).await;
    let second = support::serve(&data, &db.url, &flags);
    let got = receiver
        .wait_until(Duration::from_secs(60), |r| !r.is_empty())
        .await
        .expect("the new server delivers");
    assert_eq!(
        got[0].header("x-gitlab-event-uuid"),
        Some(queued.event_uuid.as_str())
    );
    assert_eq!(got[0].json()["object_attributes"]["id"], pipeline);
    let delivered = wait_for(|| async {
        let found = store
            .hooks()
            .deliveries(hook.id, 0, 10)
            .await
            .expect("deliveries");
        found.into_iter().find(|d| d.state == "delivered")
    })
    .await;
    assert_eq!(delivered.event_uuid, queued.event_uuid);
    // A second look a few ticks later: still one request, the outbox empty.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(receiver.count(), 1, "{:?}", receiver.received());
    assert_eq!(store.hooks().pending_count().await.expect("pending"), 0);
    drop(second);
}

/// The value `probe` finds, within a minute.
async fn wait_for<T, F, Fut>(probe: F) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
