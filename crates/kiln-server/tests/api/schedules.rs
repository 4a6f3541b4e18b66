//! Pipeline schedules: the API in current GitLab's shapes, runs made once per slot across
//! two servers, and one catch-up run after a downtime.

use crate::helpers::*;
use kiln_core::AccessLevel;
use kiln_store::ScheduleSettings;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const CI: &str = "build:\n  script: [\"echo $NIGHTLY\"]\n";

async fn send(app: &TestApp, method: Method, path: &str, actor: &Actor, body: Value) -> Response {
    app.send_json(method, path, Some(&actor.token), body).await
}

/// Pipelines of the project by source.
async fn scheduled_pipelines(app: &TestApp, project: i64, actor: &Actor) -> Vec<Value> {
    let listed = app
        .get(
            &format!("/api/v4/projects/{project}/pipelines?source=schedule&per_page=100"),
            actor,
        )
        .await;
    listed.assert(200).as_array().cloned().unwrap_or_default()
}

/// Makes the schedule's next run `ago` in the past, as after a downtime.
async fn overdue(app: &TestApp, project: i64, schedule: i64, ago: Duration) {
    let past = kiln_store::now_ms() - ago.as_millis() as i64;
    let settings = ScheduleSettings {
        next_run_at: Some(past),
        ..ScheduleSettings::default()
    };
    app.store
        .schedules()
        .update(project, schedule, &settings)
        .await
        .expect("overdue");
}

#[tokio::test]
async fn schedules_are_made_checked_changed_and_played() {
    let (app, owner, _repo, project) = TestApp::with_repo(0, CI).await;
    let base = format!("/api/v4/projects/{project}/pipeline_schedules");
    send(&app, Method::POST, &base, &owner, json!({}))
        .await
        .assert_error_key(
            400,
            "error",
            "description is missing, ref is missing, cron is missing",
        );
    let bad_cron = json!({ "description": "nightly", "ref": "master", "cron": "61 * * * *" });
    let refused = send(&app, Method::POST, &base, &owner, bad_cron).await;
    assert_eq!(
        refused.assert(400),
        &json!({ "message": { "cron": ["syntax is invalid"] } })
    );
    let bad_zone = json!({ "description": "n", "ref": "master", "cron": "0 1 * * *", "cron_timezone": "Mars/Base" });
    let refused = send(&app, Method::POST, &base, &owner, bad_zone).await;
    assert_eq!(
        refused.assert(400),
        &json!({ "message": { "cron_timezone": ["syntax is invalid"] } })
    );

    let settings = json!({
        "description": "nightly", "ref": "master", "cron": "0 2 * * *", "cron_timezone": "Europe/Berlin",
    });
    let created = send(&app, Method::POST, &base, &owner, settings).await;
    let created = created.assert(201).clone();
    let id = created["id"].as_i64().unwrap();
    assert_eq!(
        (&created["active"], &created["cron_timezone"]),
        (&json!(true), &json!("Europe/Berlin"))
    );
    assert_eq!(created["owner"]["username"], "owner");
    assert_eq!(
        (&created["last_pipeline"], &created["variables"]),
        (&Value::Null, &json!([]))
    );
    let next = created["next_run_at"].as_str().unwrap().to_owned();
    // 02:00 in Berlin is 00:00 or 01:00 UTC.
    assert!(
        next.ends_with(":00:00.000Z") && (next.contains("T00:") || next.contains("T01:")),
        "{next}"
    );

    let one = format!("{base}/{id}");
    let changed = send(
        &app,
        Method::PUT,
        &one,
        &owner,
        json!({ "cron": "30 4 * * *", "cron_timezone": "UTC" }),
    )
    .await;
    let changed = changed.assert(200);
    assert!(
        changed["next_run_at"]
            .as_str()
            .unwrap()
            .contains("T04:30:00.000Z"),
        "{changed}"
    );
    let off = send(&app, Method::PUT, &one, &owner, json!({ "active": false })).await;
    assert_eq!(
        (&off.assert(200)["active"], &off.body["next_run_at"]),
        (&json!(false), &Value::Null)
    );
    assert_eq!(
        app.get(&format!("{base}?scope=active"), &owner).await.ids(),
        Vec::<i64>::new()
    );
    assert_eq!(
        app.get(&format!("{base}?scope=inactive"), &owner)
            .await
            .ids(),
        vec![id]
    );
    app.get(&format!("{base}?scope=sometimes"), &owner)
        .await
        .assert(400);
    app.get(&format!("{base}/{}", id + 50), &owner)
        .await
        .assert_error(404, "404 Pipeline Schedule Not Found");

    let variables = format!("{one}/variables");
    let added = send(
        &app,
        Method::POST,
        &variables,
        &owner,
        json!({ "key": "NIGHTLY", "value": "yes" }),
    )
    .await;
    assert_eq!(added.assert(201)["value"], "yes");
    send(
        &app,
        Method::POST,
        &variables,
        &owner,
        json!({ "key": "NIGHTLY", "value": "again" }),
    )
    .await
    .assert(400);
    send(
        &app,
        Method::POST,
        &variables,
        &owner,
        json!({ "key": "bad key", "value": "x" }),
    )
    .await
    .assert(400);
    let updated = send(
        &app,
        Method::PUT,
        &format!("{variables}/NIGHTLY"),
        &owner,
        json!({ "value": "very" }),
    )
    .await;
    assert_eq!(updated.assert(200)["value"], "very");
    let shown = app.get(&one, &owner).await;
    assert_eq!(shown.assert(200)["variables"][0]["key"], "NIGHTLY");

    let played = app.post(&format!("{one}/play"), &owner).await;
    assert_eq!(played.assert(201), &json!({ "message": "201 Created" }));
    let made = scheduled_pipelines(&app, project, &owner).await;
    assert_eq!(made.len(), 1);
    let pipeline = made[0]["id"].as_i64().unwrap();
    let passed = app
        .get(
            &format!("/api/v4/projects/{project}/pipelines/{pipeline}/variables"),
            &owner,
        )
        .await;
    assert!(
        passed
            .assert(200)
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["key"] == "NIGHTLY" && v["value"] == "very"),
        "{}",
        passed.body
    );
    assert_eq!(
        app.get(&one, &owner).await.assert(200)["last_pipeline"]["id"],
        pipeline
    );

    // A developer plays and makes schedules; another's they may not change. A maintainer
    // takes it over.
    let developer = app.user("dev", false).await;
    app.member(project, &developer, AccessLevel::Developer)
        .await;
    app.post(&format!("{one}/play"), &developer)
        .await
        .assert(201);
    send(
        &app,
        Method::PUT,
        &one,
        &developer,
        json!({ "description": "mine" }),
    )
    .await
    .assert(403);
    let theirs = json!({ "description": "dev's", "ref": "master", "cron": "@daily" });
    let theirs = send(&app, Method::POST, &base, &developer, theirs).await;
    let theirs = theirs.assert(201)["id"].as_i64().unwrap();
    let taken = app
        .post(&format!("{base}/{theirs}/take_ownership"), &owner)
        .await;
    assert_eq!(taken.assert(201)["owner"]["username"], "owner");
    let deleted = send(
        &app,
        Method::DELETE,
        &format!("{variables}/NIGHTLY"),
        &owner,
        json!({}),
    )
    .await;
    assert_eq!(deleted.assert(202)["key"], "NIGHTLY");
    let gone = app.request(Method::DELETE, &one, Some(&owner.token)).await;
    assert_eq!(gone.status.as_u16(), 204);
    assert_eq!(app.get(&base, &owner).await.ids(), vec![theirs]);
}

#[tokio::test]
async fn a_schedule_that_missed_many_runs_makes_one_and_waits_for_the_next_slot() {
    let (app, owner, _repo, project) = TestApp::with_repo(0, CI).await;
    let base = format!("/api/v4/projects/{project}/pipeline_schedules");
    let settings = json!({ "description": "often", "ref": "master", "cron": "*/5 * * * *" });
    let id = send(&app, Method::POST, &base, &owner, settings)
        .await
        .assert(201)["id"]
        .as_i64()
        .unwrap();
    // Down for three hours: 36 slots missed.
    overdue(&app, project, id, Duration::from_secs(3 * 3600)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let schedule = loop {
        let schedule = app.store.schedules().find(project, id).await.unwrap();
        if schedule.next_run_at > kiln_store::now_ms() {
            break schedule;
        }
        assert!(Instant::now() < deadline, "the schedule never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let made = scheduled_pipelines(&app, project, &owner).await;
    assert_eq!(made.len(), 1, "one catch-up run: {made:?}");
    assert_eq!(schedule.last_pipeline_id, made[0]["id"].as_i64());
    assert_eq!(
        (&made[0]["ref"], &made[0]["source"]),
        (&json!("master"), &json!("schedule"))
    );
    // The next slot is the first five-minute mark after now.
    let wait = schedule.next_run_at - kiln_store::now_ms();
    assert!(wait > 0 && wait <= 5 * 60 * 1000, "{wait} ms");
    assert_eq!(schedule.next_run_at % (5 * 60 * 1000), 0);
}

#[tokio::test]
async fn two_servers_make_each_due_run_once() {
    let (app, owner, _repo, project) = TestApp::with_repo(0, CI).await;
    let second = Server::beside(&app, 0, |_| {}).await;
    let base = format!("/api/v4/projects/{project}/pipeline_schedules");
    let mut ids = Vec::new();
    for n in 0..8 {
        let settings =
            json!({ "description": format!("s{n}"), "ref": "master", "cron": "0 0 1 1 *" });
        let created = send(&app, Method::POST, &base, &owner, settings).await;
        ids.push(created.assert(201)["id"].as_i64().unwrap());
    }
    for id in &ids {
        overdue(&app, project, *id, Duration::from_secs(60)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let schedules = app.store.schedules().list(project, None).await.unwrap();
        let now = kiln_store::now_ms();
        if schedules
            .iter()
            .all(|s| s.next_run_at > now && s.last_pipeline_id.is_some())
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every schedule ran: {schedules:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let made = scheduled_pipelines(&app, project, &owner).await;
    assert_eq!(made.len(), ids.len(), "one pipeline per schedule: {made:?}");
    let schedules = app.store.schedules().list(project, None).await.unwrap();
    let mut last: Vec<i64> = schedules
        .iter()
        .filter_map(|s| s.last_pipeline_id)
        .collect();
    let mut listed: Vec<i64> = made.iter().filter_map(|p| p["id"].as_i64()).collect();
    last.sort_unstable();
    listed.sort_unstable();
    assert_eq!(last, listed);
    drop(second);
}
