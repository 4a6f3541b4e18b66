//! Webhooks out: the hooks API (v3, v4), and deliveries to a real receiver on 127.0.0.1 —
//! one that answers, one that is down for a while, one that hangs.

use crate::helpers::*;
use kiln_core::{AccessLevel, BuildStatus, Visibility};
use kiln_store::{DeliveryRecord, HookEvent};
use kiln_test_support::{Answer, Receiver};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

const SHA: &str = "97de212e80737a608d939f648d959671fb0a0142";
const WAIT: Duration = Duration::from_secs(40);

fn local_hooks(config: &mut kiln_server::Config) {
    config.allow_local_webhooks = true;
    config.webhook_timeout = Duration::from_secs(1);
}

async fn create_hook(app: &TestApp, owner: &Actor, project: i64, settings: Value) -> i64 {
    let path = format!("/api/v4/projects/{project}/hooks");
    let created = app
        .send_json(Method::POST, &path, Some(&owner.token), settings)
        .await;
    created.assert(201)["id"].as_i64().expect("hook id")
}

/// The hook's deliveries once `done` holds of them.
async fn deliveries_when(
    app: &TestApp,
    hook: i64,
    done: impl Fn(&[DeliveryRecord]) -> bool,
) -> Vec<DeliveryRecord> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let found = app
            .store
            .hooks()
            .deliveries(hook, 0, 100)
            .await
            .expect("deliveries");
        if done(&found) {
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "deliveries: {found:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn all_delivered(found: &[DeliveryRecord]) -> bool {
    !found.is_empty() && found.iter().all(|d| d.state == "delivered")
}

fn kind(request: &kiln_test_support::Received) -> (String, String) {
    let body = request.json();
    match body["object_kind"].as_str() {
        Some("pipeline") => (
            "pipeline".into(),
            body["object_attributes"]["status"]
                .as_str()
                .unwrap_or("")
                .into(),
        ),
        Some("build") => (
            "build".into(),
            body["build_status"].as_str().unwrap_or("").into(),
        ),
        other => (format!("{other:?}"), String::new()),
    }
}

#[tokio::test]
async fn hooks_are_managed_by_maintainers_and_may_not_point_inside() {
    let app = TestApp::spawn().await;
    let (owner, project) = app.owned_project("team/app", Visibility::Private).await;
    let base = format!("/api/v4/projects/{project}/hooks");
    let post = |body: Value| app.send_json(Method::POST, &base, Some(&owner.token), body);
    post(json!({}))
        .await
        .assert_error_key(400, "error", "url is missing");
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest",
        "ftp://93.184.215.14/hook",
        "not a url",
    ] {
        post(json!({ "url": url }))
            .await
            .assert_error_key(422, "error", "Invalid url given");
    }
    assert_eq!(app.store.hooks().list(project).await.unwrap(), vec![]);
    let created = post(json!({ "url": "https://93.184.215.14/hook", "token": "s3cret" })).await;
    let hook = created.assert(201).clone();
    assert_eq!(hook["url"], "https://93.184.215.14/hook");
    assert_eq!(hook["project_id"], project);
    assert_eq!(
        (
            &hook["push_events"],
            &hook["job_events"],
            &hook["pipeline_events"]
        ),
        (&json!(true), &json!(false), &json!(false))
    );
    assert_eq!(hook["enable_ssl_verification"], true);
    assert_eq!(hook["alert_status"], "executable");
    assert_eq!(hook["disabled_until"], Value::Null);
    assert!(
        hook.get("token").is_none(),
        "the token is never shown: {hook}"
    );
    let id = hook["id"].as_i64().unwrap();
    let one = format!("{base}/{id}");
    let updated = app
        .send_json(
            Method::PUT,
            &one,
            Some(&owner.token),
            json!({ "job_events": true, "pipeline_events": "true" }),
        )
        .await;
    let updated = updated.assert(200);
    assert_eq!(
        (&updated["job_events"], &updated["pipeline_events"]),
        (&json!(true), &json!(true))
    );
    app.send_json(
        Method::PUT,
        &one,
        Some(&owner.token),
        json!({ "url": "http://192.168.1.1/" }),
    )
    .await
    .assert_error_key(422, "error", "Invalid url given");
    assert_eq!(
        app.get(&one, &owner).await.assert(200)["url"],
        "https://93.184.215.14/hook"
    );
    assert_eq!(app.get(&base, &owner).await.ids(), vec![id]);
    app.get(&format!("{base}/{}", id + 100), &owner)
        .await
        .assert_error(404, "404 Hook Not Found");
    app.get(&format!("{base}/abc"), &owner)
        .await
        .assert_error_key(400, "error", "hook_id is invalid");
    app.post(&format!("{one}/test/issues_events"), &owner)
        .await
        .assert_error_key(400, "error", "trigger does not have a valid value");
    app.post(&format!("{one}/test/pipeline_events"), &owner)
        .await
        .assert_error(422, "Ensure the project has CI pipelines.");

    let developer = app.user("dev", false).await;
    app.member(project, &developer, AccessLevel::Developer)
        .await;
    app.get(&base, &developer).await.assert(403);

    // v3: GitLab 8.x's entity (build_events) and a DELETE that answers with the hook.
    let v3 = format!("/api/v3/projects/{project}/hooks/{id}");
    let old = app.get(&v3, &owner).await.assert(200).clone();
    assert_eq!(old["build_events"], true);
    assert!(old.get("job_events").is_none());
    let removed = app.request(Method::DELETE, &v3, Some(&owner.token)).await;
    assert_eq!(removed.assert(200)["id"], id);
    let second = create_hook(
        &app,
        &owner,
        project,
        json!({ "url": "https://93.184.215.14/b" }),
    )
    .await;
    let gone = app
        .request(
            Method::DELETE,
            &format!("{base}/{second}"),
            Some(&owner.token),
        )
        .await;
    assert_eq!(gone.status.as_u16(), 204);
    assert_eq!(app.get(&base, &owner).await.ids(), Vec::<i64>::new());
}

#[tokio::test]
async fn every_status_change_reaches_the_receiver_once_with_gitlabs_headers() {
    let app = TestApp::spawn_configured(0, local_hooks).await;
    let (owner, project) = app.owned_project("team/app", Visibility::Private).await;
    let receiver = Receiver::start().await;
    let settings = json!({
        "url": receiver.url, "token": "s3cret",
        "job_events": true, "pipeline_events": true, "push_events": false,
    });
    let hook = create_hook(&app, &owner, project, settings).await;
    let builds = app.pipeline(project, SHA, &[BuildStatus::Pending]).await;
    let pipeline = app.store.pipelines().of_build(builds[0]).await.unwrap().id;
    app.post(
        &format!("/api/v4/projects/{project}/pipelines/{pipeline}/cancel"),
        &owner,
    )
    .await
    .assert(200);
    let got = receiver
        .wait_until(WAIT, |r| r.len() >= 4)
        .await
        .expect("four deliveries");
    let delivered = deliveries_when(&app, hook, |d| d.len() == 4 && all_delivered(d)).await;
    let told: BTreeSet<(String, String)> = got.iter().map(kind).collect();
    // The fixture's pipeline is made running, its build pending.
    let expected: BTreeSet<(String, String)> = [
        ("build", "pending"),
        ("build", "canceled"),
        ("pipeline", "running"),
        ("pipeline", "canceled"),
    ]
    .iter()
    .map(|(k, s)| (k.to_string(), s.to_string()))
    .collect();
    assert_eq!(told, expected);
    for request in &got {
        assert_eq!(
            (request.method.as_str(), request.path.as_str()),
            ("POST", "/hook")
        );
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(request.header("x-gitlab-token"), Some("s3cret"));
        assert_eq!(request.header("x-gitlab-instance"), Some(app.base.as_str()));
        let event = if kind(request).0 == "pipeline" {
            "Pipeline Hook"
        } else {
            "Job Hook"
        };
        assert_eq!(request.header("x-gitlab-event"), Some(event));
        assert_eq!(
            request.header("idempotency-key"),
            request.header("x-gitlab-event-uuid")
        );
        let body = request.json();
        assert_eq!(body["project"]["id"], project);
        assert_eq!(body["project"]["path_with_namespace"], "team/app");
        if body["object_kind"] == "build" {
            assert_eq!(
                (body["build_id"].as_i64(), body["pipeline_id"].as_i64()),
                (Some(builds[0]), Some(pipeline))
            );
            assert_eq!(body["sha"], SHA);
            assert_eq!(body["commit"]["id"], pipeline);
        } else {
            assert_eq!(body["object_attributes"]["id"], pipeline);
            assert_eq!(body["object_attributes"]["stages"], json!(["test"]));
            assert_eq!(body["commit"]["id"], SHA);
            assert_eq!(body["builds"][0]["id"], builds[0]);
        }
        let created = body["object_attributes"]["created_at"]
            .as_str()
            .or(body["build_created_at"].as_str())
            .unwrap_or("");
        assert!(
            created.ends_with(" UTC") && created.len() == 23,
            "{created}"
        );
    }
    // One uuid per change, each delivered once, and the log tells the same.
    let sent: BTreeSet<&str> = got
        .iter()
        .filter_map(|r| r.header("x-gitlab-event-uuid"))
        .collect();
    assert_eq!(sent.len(), 4);
    let stored: BTreeSet<&str> = delivered.iter().map(|d| d.event_uuid.as_str()).collect();
    assert_eq!(sent, stored);
    let log = app
        .get(
            &format!("/api/v4/projects/{project}/hooks/{hook}/events"),
            &owner,
        )
        .await;
    let log = log.assert(200).as_array().unwrap().clone();
    let logged: BTreeSet<&str> = log
        .iter()
        .filter_map(|e| e["request_headers"]["X-Gitlab-Event-UUID"].as_str())
        .collect();
    assert_eq!(logged, sent);
    for entry in &log {
        assert_eq!(entry["response_status"], "200");
        assert_eq!(entry["request_headers"]["X-Gitlab-Token"], "[REDACTED]");
        assert!(entry["execution_duration"].as_f64().is_some(), "{entry}");
        assert!(["job_hooks", "pipeline_hooks"].contains(&entry["trigger"].as_str().unwrap()));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.count(), 4, "nothing is sent twice");
    let scrape = app.scrape().await;
    for event in ["job", "pipeline"] {
        let labels = [("event", event), ("outcome", "delivered")];
        assert_eq!(
            metric(&scrape, "kiln_webhook_attempts_total", &labels),
            Some(2.0)
        );
    }
    assert_eq!(
        metric(&scrape, "kiln_webhook_pending_deliveries", &[]),
        Some(0.0)
    );
}

#[tokio::test]
async fn a_receiver_that_was_down_hears_what_it_missed_with_the_same_uuid() {
    let app = TestApp::spawn_configured(0, local_hooks).await;
    let (owner, project) = app.owned_project("team/app", Visibility::Private).await;
    let port = Receiver::free_port().await;
    let settings = json!({
        "url": format!("http://127.0.0.1:{port}/hook"), "pipeline_events": true, "push_events": false,
    });
    let hook = create_hook(&app, &owner, project, settings).await;
    app.pipeline(project, SHA, &[BuildStatus::Pending]).await;
    let failed = deliveries_when(&app, hook, |d| d.len() == 1 && d[0].attempts >= 2).await;
    assert_eq!(failed[0].state, "pending");
    assert!(
        failed[0].error.as_deref().unwrap_or("").contains("connect"),
        "{failed:?}"
    );
    let record = app.store.hooks().find(project, hook).await.unwrap();
    assert!(record.recent_failures >= 2, "{record:?}");

    let receiver = Receiver::start_on(port).await;
    let got = receiver
        .wait_until(WAIT, |r| !r.is_empty())
        .await
        .expect("delivered");
    let delivered = deliveries_when(&app, hook, all_delivered).await;
    assert_eq!(
        got[0].header("x-gitlab-event-uuid"),
        Some(delivered[0].event_uuid.as_str())
    );
    assert!(delivered[0].attempts >= 3, "{delivered:?}");
    assert_eq!(delivered[0].response_status, Some(200));
    let record = app.store.hooks().find(project, hook).await.unwrap();
    assert_eq!(record.recent_failures, 0);
    let shown = app
        .get(&format!("/api/v4/projects/{project}/hooks/{hook}"), &owner)
        .await;
    assert_eq!(shown.assert(200)["alert_status"], "executable");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.count(), 1);
    let scrape = app.scrape().await;
    let failed = [("event", "pipeline"), ("outcome", "failed")];
    let failures = metric(&scrape, "kiln_webhook_attempts_total", &failed).unwrap_or(0.0);
    assert_eq!(failures, (delivered[0].attempts - 1) as f64);
}

#[tokio::test]
async fn a_receiver_that_hangs_times_out_without_holding_up_builds() {
    let app = TestApp::spawn_configured(0, local_hooks).await;
    let (owner, project) = app.owned_project("team/app", Visibility::Private).await;
    let receiver = Receiver::start().await;
    receiver.answer(Answer::Hang);
    let settings = json!({ "url": receiver.url, "pipeline_events": true, "push_events": false });
    let hook = create_hook(&app, &owner, project, settings).await;
    let builds = app.pipeline(project, SHA, &[BuildStatus::Pending]).await;
    let pipeline = app.store.pipelines().of_build(builds[0]).await.unwrap().id;
    let first = receiver
        .wait_until(WAIT, |r| !r.is_empty())
        .await
        .expect("first attempt")[0]
        .clone();
    // While the receiver holds the first delivery, the pipeline moves on.
    app.post(
        &format!("/api/v4/projects/{project}/pipelines/{pipeline}/cancel"),
        &owner,
    )
    .await
    .assert(200);
    let build = app.store.builds().get(project, builds[0]).await.unwrap();
    assert_eq!(build.status, BuildStatus::Canceled);
    let first_uuid = first.header("x-gitlab-event-uuid").unwrap_or("").to_owned();
    let timed_out = |d: &DeliveryRecord| {
        d.event_uuid == first_uuid && d.error.as_deref() == Some("execution expired")
    };
    let found = deliveries_when(&app, hook, |d| d.iter().any(timed_out)).await;
    let expired = found
        .iter()
        .find(|d| timed_out(d))
        .expect("a timed-out attempt");
    assert!(expired.duration_ms.unwrap_or(0) >= 1000, "{expired:?}");

    receiver.answer(Answer::Status(200, "ok"));
    let delivered = deliveries_when(&app, hook, |d| d.len() == 2 && all_delivered(d)).await;
    let got = receiver.received();
    let retried: Vec<_> = got
        .iter()
        .filter(|r| r.header("x-gitlab-event-uuid") == Some(expired.event_uuid.as_str()))
        .collect();
    assert!(
        retried.len() >= 2,
        "the timed-out delivery is sent again: {got:?}"
    );
    assert_ne!(
        retried[0].header("x-gitlab-webhook-uuid"),
        retried[1].header("x-gitlab-webhook-uuid"),
        "each attempt has its own webhook uuid"
    );
    assert_eq!(
        retried[0].body, retried[1].body,
        "a redelivery sends the same body"
    );
    assert_eq!(
        delivered.iter().map(|d| d.event).collect::<Vec<_>>(),
        vec![HookEvent::Pipeline; 2]
    );
}

#[tokio::test]
async fn a_test_delivery_is_sent_at_once_and_logged() {
    let app = TestApp::spawn_configured(0, local_hooks).await;
    let (owner, project) = app.owned_project("team/app", Visibility::Private).await;
    let receiver = Receiver::start().await;
    let hook = create_hook(
        &app,
        &owner,
        project,
        json!({ "url": receiver.url, "push_events": false }),
    )
    .await;
    app.pipeline(project, SHA, &[BuildStatus::Success]).await;
    let test = format!("/api/v4/projects/{project}/hooks/{hook}/test");
    let created = app.post(&format!("{test}/pipeline_events"), &owner).await;
    assert_eq!(created.assert(201), &json!({ "message": "201 Created" }));
    let got = receiver.received();
    assert_eq!(got.len(), 1, "sent before the answer");
    assert_eq!(got[0].header("x-gitlab-event"), Some("Pipeline Hook"));
    assert_eq!(got[0].json()["object_attributes"]["sha"], SHA);
    app.post(&format!("{test}/job_events"), &owner)
        .await
        .assert(201);
    assert_eq!(receiver.received()[1].json()["object_kind"], "build");
    let push = app.post(&format!("{test}/push_events"), &owner).await;
    push.assert(201);
    let pushed = receiver.received()[2].json();
    assert_eq!(
        (&pushed["object_kind"], &pushed["after"]),
        (&json!("push"), &json!(SHA))
    );

    receiver.answer(Answer::Status(500, "boom"));
    app.post(&format!("{test}/pipeline_events"), &owner)
        .await
        .assert_error(422, "boom");
    let log = app
        .get(
            &format!("/api/v4/projects/{project}/hooks/{hook}/events?per_page=2"),
            &owner,
        )
        .await;
    let entries = log.assert(200).as_array().unwrap().clone();
    let statuses: Vec<_> = entries
        .iter()
        .map(|e| e["response_status"].clone())
        .collect();
    assert_eq!(statuses, vec![json!("500"), json!("200")]);
    assert_eq!(entries[0]["response_body"], "boom");
    assert_eq!(log.header("x-next-page"), "2");
}

#[tokio::test]
async fn a_branch_push_is_told_to_push_hooks_and_a_tag_push_is_not() {
    let ci = "build:\n  script: [\"true\"]\n";
    let (app, owner, repo, project) = TestApp::with_repo_configured(0, ci, local_hooks).await;
    let receiver = Receiver::start().await;
    create_hook(&app, &owner, project, json!({ "url": receiver.url })).await;
    let path = format!("/api/v4/projects/{project}");
    app.send_json(
        Method::PUT,
        &path,
        Some(&owner.token),
        json!({ "push_hook_secret": "s" }),
    )
    .await
    .assert(200);
    let head = repo.git(&["rev-parse", "HEAD"]);
    repo.git(&["tag", "v1"]);
    for (full_ref, event) in [
        ("refs/tags/v1", "Tag Push Hook"),
        ("refs/heads/master", "Push Hook"),
    ] {
        let body = json!({ "ref": full_ref, "after": head }).to_string();
        let made = app
            .client
            .post(format!("{}{path}/push_hook", app.base))
            .header("X-Gitlab-Event", event)
            .header("X-Gitlab-Token", "s")
            .body(body)
            .send()
            .await
            .expect("push hook");
        assert_eq!(made.status().as_u16(), 201);
    }
    let got = receiver
        .wait_until(WAIT, |r| !r.is_empty())
        .await
        .expect("a push event");
    assert_eq!(got[0].header("x-gitlab-event"), Some("Push Hook"));
    let body = got[0].json();
    assert_eq!(
        (&body["ref"], &body["after"]),
        (&json!("refs/heads/master"), &json!(head))
    );
    assert_eq!(body["project"]["id"], project);
    // Both pipelines are made and told to nobody else: the tag push is not a push event.
    let hooks = app.store.hooks().list(project).await.unwrap();
    let all = app
        .store
        .hooks()
        .deliveries(hooks[0].id, 0, 10)
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|d| d.event).collect::<Vec<_>>(),
        vec![HookEvent::Push]
    );
}
