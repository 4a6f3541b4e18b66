//! The job log for people, over HTTP: windows of a long log by byte range with their line
//! numbers, the server-side search (JSON for the script, a list for a page without one), and
//! the live streams (Server-Sent Events) that follow a running job and a project, resumed
//! from the last byte a reader had.

use super::helpers::*;
use super::web::Browser;
use serde_json::Value;
use std::time::Duration;

/// 100,000 numbered lines (about 575 KiB, more than two windows), then a marker.
const LONG_CI: &str = "long:\n  script:\n    - seq 1 100000\n    - echo needle here\n";

const TICKING_CI: &str =
    "ticking:\n  script:\n    - for i in 1 2 3 4; do echo tick $i; sleep 0.4; done\n";

async fn signed_in(app: &TestApp, owner: &Actor) -> Browser {
    app.set_password(owner, "owner password").await;
    let mut browser = Browser::new(app);
    assert_eq!(browser.sign_in("owner", "owner password").await.status, 303);
    browser
}

async fn json(browser: &mut Browser, path: &str) -> Value {
    let page = browser.get(path).await;
    assert_eq!(page.status, 200, "{path}: {}", page.body);
    serde_json::from_str(&page.body).expect("json")
}

/// The line number of the line that starts at byte `offset` of `log`.
fn line_at(log: &str, offset: usize) -> i64 {
    1 + log.as_bytes()[..offset]
        .iter()
        .filter(|b| **b == b'\n')
        .count() as i64
}

/// The lines of `log` that contain `needle` (lowercase), as the search answers them.
fn expected_matches(log: &str, needle: &str) -> Value {
    let mut offset = 0;
    let mut found = Vec::new();
    for (i, line) in log.split('\n').enumerate() {
        if line.to_ascii_lowercase().contains(needle) {
            found.push(serde_json::json!({ "line": i + 1, "offset": offset }));
        }
        offset += line.len() + 1;
    }
    Value::Array(found)
}

#[tokio::test]
async fn a_long_log_comes_in_windows_of_whole_numbered_lines_and_is_searched_whole() {
    let (app, owner, _repo, project) = TestApp::with_repo(1, LONG_CI).await;
    let (_, builds) = app.run_pipeline(project, "master", &owner).await;
    assert_eq!(builds["long"]["status"], "success", "{builds:?}");
    let id = builds["long"]["id"].as_i64().expect("id");
    let raw = app.trace(project, id, &owner).await;
    let mut browser = signed_in(&app, &owner).await;
    let base = format!("/team/app/-/jobs/{id}");

    // The page shows the end of the log, whole lines, numbered from where it starts.
    let page = browser.get(&base).await;
    assert_eq!(page.status, 200);
    assert!(page.body.len() < 4 * 1024 * 1024, "{}", page.body.len());
    assert!(page.body.contains(">needle here</span>"));
    assert!(page.body.contains("Earlier lines"));
    let tail = json(&mut browser, &format!("{base}/log")).await;
    let start = tail["start"].as_u64().expect("start") as usize;
    assert_eq!(tail["end"].as_u64(), Some(raw.len() as u64));
    assert_eq!(tail["size"].as_u64(), Some(raw.len() as u64));
    assert_eq!(tail["complete"], true);
    assert!(start > 0 && raw.as_bytes()[start - 1] == b'\n', "{start}");
    assert_eq!(tail["first_line"].as_i64(), Some(line_at(&raw, start)));
    let first_line = line_at(&raw, start);
    assert!(
        tail["html"]
            .as_str()
            .unwrap_or("")
            .starts_with(&format!("<div class=\"line\" id=\"L{first_line}\">")),
        "{}",
        &tail["html"].as_str().unwrap_or("")[..200]
    );

    // The window before it ends exactly where it starts, and so on to the first line.
    let before = json(&mut browser, &format!("{base}/log?to={start}")).await;
    assert_eq!(before["end"].as_u64(), Some(start as u64));
    let earlier_start = before["start"].as_u64().expect("start") as usize;
    assert_eq!(
        before["first_line"].as_i64(),
        Some(line_at(&raw, earlier_start))
    );
    let first = json(&mut browser, &format!("{base}/log?from=0")).await;
    assert_eq!(
        (first["start"].as_u64(), first["first_line"].as_i64()),
        (Some(0), Some(1))
    );
    // A window asked from the middle of a line starts at the next line.
    let middle = json(&mut browser, &format!("{base}/log?from=300001")).await;
    let middle_start = middle["start"].as_u64().expect("start") as usize;
    assert!(middle_start > 300_001 && raw.as_bytes()[middle_start - 1] == b'\n');
    assert_eq!(
        middle["first_line"].as_i64(),
        Some(line_at(&raw, middle_start))
    );

    // The search reads the whole log: each matching line once, with where it starts.
    let found = json(&mut browser, &format!("{base}/log/search?q=NEEDLE")).await;
    assert_eq!(found["matches"], expected_matches(&raw, "needle"));
    assert_eq!(
        found["matches"].as_array().map(Vec::len),
        Some(2),
        "the command and its output"
    );
    let nines = json(&mut browser, &format!("{base}/log/search?q=9999")).await;
    assert_eq!(nines["matches"], expected_matches(&raw, "9999"));
    assert_eq!(nines["more"], false);
    let empty = browser.get(&format!("{base}/log/search?q=")).await;
    assert_eq!(empty.status, 400, "{}", empty.body);

    // Without a script, the page lists the matching lines, each linked to its window.
    let listed = browser.get(&format!("{base}?q=needle")).await;
    let line = found["matches"][1]["line"].as_i64().expect("line");
    assert!(
        listed.body.contains(&format!("#L{line}\">Line {line}</a>")),
        "{}",
        listed.body
    );
}

/// One Server-Sent Event.
#[derive(Debug)]
struct Event {
    event: String,
    id: Option<String>,
    data: String,
}

/// A stream of events over a signed-in browser's cookies.
struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    async fn open(browser: &Browser, path: &str, last_id: Option<&str>) -> Events {
        let jar: Vec<String> = browser
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut request = browser
            .client
            .get(format!("{}{path}", browser.base))
            .header("cookie", jar.join("; "));
        if let Some(id) = last_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.expect("events");
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("text/event-stream"));
        Events {
            response,
            buffer: String::new(),
        }
    }

    /// The next event, or None when the stream ends or 30 s pass without one.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(at) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..at + 2).collect();
                let mut event = Event {
                    event: "message".into(),
                    id: None,
                    data: String::new(),
                };
                let mut any = false;
                for line in block.lines() {
                    if let Some((key, value)) = line.split_once(':') {
                        let value = value.strip_prefix(' ').unwrap_or(value);
                        match key {
                            "event" => event.event = value.to_owned(),
                            "id" => event.id = Some(value.to_owned()),
                            "data" => event.data.push_str(value),
                            _ => continue,
                        }
                        any = true;
                    }
                }
                if any {
                    return Some(event);
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(30), self.response.chunk())
                .await
                .ok()?
                .ok()??;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

#[tokio::test]
async fn a_running_job_streams_its_lines_and_status_and_a_reader_resumes_where_it_was() {
    let (app, owner, _repo, project) = TestApp::with_repo(1, TICKING_CI).await;
    let browser = signed_in(&app, &owner).await;
    let mut project_events = Events::open(&browser, "/team/app/-/events", None).await;
    let created = app.create_pipeline(project, "master", &owner).await;
    let pipeline = created.assert(201)["id"].as_i64().expect("pipeline");
    let id = app.builds_by_name(project, &owner).await["ticking"]["id"]
        .as_i64()
        .expect("id");
    // The project's page hears that its builds changed.
    let changed = project_events.next().await.expect("a change");
    assert_eq!(changed.event, "changed");

    let mut job = Events::open(
        &browser,
        &format!("/team/app/-/jobs/{id}/events?from=0"),
        None,
    )
    .await;
    let mut statuses = Vec::new();
    let mut html = String::new();
    let mut resumed_at = None;
    let mut last_end = 0;
    while let Some(event) = job.next().await {
        let data: Value = serde_json::from_str(&event.data).expect("data");
        match event.event.as_str() {
            "status" => statuses.push(data["status"].as_str().unwrap_or("").to_owned()),
            "log" => {
                // Parts follow each other, and each event's id is where the next begins.
                assert_eq!(data["start"].as_i64(), Some(last_end), "{data}");
                last_end = data["end"].as_i64().expect("end");
                assert_eq!(event.id.as_deref(), Some(last_end.to_string().as_str()));
                let part = data["html"].as_str().unwrap_or("");
                if part.contains("tick 1") && resumed_at.is_none() {
                    resumed_at = Some(last_end);
                }
                html.push_str(part);
            }
            "end" => {
                assert_eq!(data["size"].as_i64(), Some(last_end));
                break;
            }
            other => panic!("unexpected event {other}"),
        }
    }
    for tick in 1..=4 {
        assert!(html.contains(&format!(">tick {tick}</span>")), "{html}");
    }
    assert!(
        matches!(
            statuses.first().map(String::as_str),
            Some("pending" | "running")
        ),
        "{statuses:?}"
    );
    assert_eq!(
        statuses.last().map(String::as_str),
        Some("success"),
        "{statuses:?}"
    );
    let finished = app.wait_for_pipeline(project, pipeline, &owner).await;
    assert_eq!(finished["ticking"]["status"], "success");
    let raw = app.trace(project, id, &owner).await;
    assert_eq!(last_end, raw.len() as i64);

    // A reader that reconnects with the last id it had gets only what follows it.
    let resumed_at = resumed_at.expect("tick 1 was streamed");
    let path = format!("/team/app/-/jobs/{id}/events?from=0");
    let mut again = Events::open(&browser, &path, Some(&resumed_at.to_string())).await;
    let mut first_log = None;
    while let Some(event) = again.next().await {
        if event.event == "log" && first_log.is_none() {
            first_log = Some(serde_json::from_str::<Value>(&event.data).expect("data"));
        }
        if event.event == "end" {
            break;
        }
    }
    let first_log = first_log.expect("the rest of the log");
    assert_eq!(first_log["start"].as_i64(), Some(resumed_at));
    assert!(!first_log["html"].as_str().unwrap_or("").contains("tick 1<"));

    // Streams are the job's readers' only: a visitor who may not read the project gets none.
    let stranger = Browser::new(&app);
    let refused = stranger
        .client
        .get(format!("{}/team/app/-/jobs/{id}/events", stranger.base))
        .send()
        .await
        .expect("events");
    assert_eq!(refused.status(), 404);
}

/// The project's event address a page was rendered with (`data-live`, HTML-escaped).
fn live_address(body: &str) -> String {
    const ATTR: &str = "data-live=\"";
    let at = body.find(ATTR).expect("a live page") + ATTR.len();
    body[at..at + body[at..].find('"').expect("end")].to_owned()
}

/// A change made after a page read its data but before its stream subscribed is not lost:
/// the page's address carries the version it was rendered from, and a stream given an
/// older one says `changed` at once.
#[tokio::test]
async fn a_page_hears_of_a_change_made_before_its_stream_opened() {
    let (app, owner, _repo, project) = TestApp::with_repo(0, TICKING_CI).await;
    let mut browser = signed_in(&app, &owner).await;
    let before = live_address(&browser.get("/team/app/-/pipelines").await.body);
    assert!(before.starts_with("/team/app/-/events?since="), "{before}");
    // No runner: nothing changes after this one change.
    app.pipeline(project, "aaaa", &[kiln_core::BuildStatus::Pending])
        .await;
    let after = live_address(&browser.get("/team/app/-/pipelines").await.body);
    assert_ne!(before, after, "the version moved with the change");
    let mut late = Events::open(&browser, &before, None).await;
    let changed = late.next().await.expect("the missed change");
    assert_eq!(changed.event, "changed");
}
