//! The web UI in a real Chromium, driven over WebDriver: sign-in, a pipeline and a job's log
//! arriving live without a reload, sections, search, the action buttons, what a reporter may
//! not do, hostile text rendered inert, and a 100 MB log.
//!
//! They need Debian's `chromium` and `chromium-driver` and are `#[ignore]`d in the plain test
//! run; `.ci/run` installs both and runs them with
//! `cargo test -p kiln-server --test browser -- --ignored --test-threads 1`.
//! `KILN_SCREENSHOTS=DIR` also writes the README's screenshots to DIR.

#[allow(dead_code, unused_imports)]
#[path = "../api/helpers.rs"]
mod helpers;
mod webdriver;

use helpers::*;
use kiln_core::{AccessLevel, BuildStatus, Visibility};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use webdriver::Browser;

/// One Chromium at a time: two cores do not run several well.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const PASSWORD: &str = "a long password";

/// Signs `actor` in through the sign-in form, as a person would.
async fn sign_in(browser: &Browser, app: &TestApp, actor: &Actor, login: &str) {
    app.set_password(actor, PASSWORD).await;
    browser.goto(&format!("{}/users/sign_in", app.base)).await;
    browser
        .type_into(&browser.find("#user_login").await, login)
        .await;
    browser
        .type_into(&browser.find("#user_password").await, PASSWORD)
        .await;
    browser
        .click(&browser.find("form button[type=submit]").await)
        .await;
    let who = browser.wait_for(".who", Duration::from_secs(10)).await;
    assert_eq!(browser.text(&who).await, login);
}

/// Marks the loaded document so that a reload (which would lose the mark) is seen.
async fn mark_document(browser: &Browser) {
    browser.script("window.kilnTestMark = 42;", json!([])).await;
}

async fn assert_not_reloaded(browser: &Browser) {
    let mark = browser
        .script("return window.kilnTestMark;", json!([]))
        .await;
    assert_eq!(mark, json!(42), "the page was reloaded");
}

async fn log_text(browser: &Browser) -> String {
    let text = browser
        .script(
            "return document.getElementById('log').textContent;",
            json!([]),
        )
        .await;
    text.as_str().unwrap_or_default().to_owned()
}

async fn heading_status(browser: &Browser) -> String {
    let status = browser
        .script(
            "return document.querySelector('#job-heading .status').className;",
            json!([]),
        )
        .await;
    status.as_str().unwrap_or_default().to_owned()
}

/// Saves a screenshot for the README when `KILN_SCREENSHOTS` names a directory.
async fn screenshot(browser: &Browser, name: &str) {
    let Some(dir) = std::env::var_os("KILN_SCREENSHOTS") else {
        return;
    };
    let png = browser.screenshot().await;
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    // A relative directory is the workspace's (tests run in the crate's directory).
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(dir);
    let path = dir.join(name);
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    std::fs::write(path, png).expect("write screenshot");
}

/// A file the job waits for, so the test decides when it goes on.
struct Gate {
    dir: tempfile::TempDir,
}

impl Gate {
    fn new() -> Gate {
        Gate {
            dir: tempfile::tempdir().expect("gate dir"),
        }
    }
    fn path(&self) -> String {
        self.dir.path().join("open").to_string_lossy().into_owned()
    }
    fn open(&self) {
        std::fs::write(self.path(), b"").expect("open the gate");
    }
}

fn gated_ci(gate: &Gate) -> String {
    format!(
        "stages: [build, test]\n\
         compile:\n  stage: build\n  script:\n    - for i in 1 2 3; do echo tick $i; done\n    \
         - while [ ! -e '{gate}' ]; do sleep 0.05; done\n    - echo \"re\"\"leased\"\n\
         check:\n  stage: test\n  needs: [compile]\n  script: [echo checked]\n",
        gate = gate.path()
    )
}

#[tokio::test]
#[ignore = "drives Chromium: cargo test -p kiln-server --test browser -- --ignored"]
async fn a_pipeline_and_its_log_arrive_live_after_sign_in() {
    let _one = ONE_AT_A_TIME.lock().await;
    let gate = Gate::new();
    let (app, owner, _repo, project) = TestApp::with_repo(1, &gated_ci(&gate)).await;
    let browser = Browser::start(1280, 800).await;
    sign_in(&browser, &app, &owner, "owner").await;

    // The pipelines page, open before the pipeline exists, shows it when it starts.
    browser
        .goto(&format!("{}/team/app/-/pipelines", app.base))
        .await;
    mark_document(&browser).await;
    let created = app.create_pipeline(project, "master", &owner).await;
    let pipeline = created.assert(201)["id"].as_i64().expect("pipeline id");
    let link = format!("/team/app/-/pipelines/{pipeline}");
    browser
        .wait_until(
            "the new pipeline is listed",
            "return document.querySelector('#live-list a[href=\"' + arguments[0] + '\"]') !== null;",
            json!([link]),
        )
        .await;
    assert_not_reloaded(&browser).await;

    // The job page while the job runs: what it printed so far, then the rest as it comes.
    let builds = app.builds_by_name(project, &owner).await;
    let compile = builds["compile"]["id"].as_i64().expect("compile id");
    app.wait_for_build(project, compile, &owner, |b| b["status"] == "running")
        .await;
    browser
        .goto(&format!("{}/team/app/-/jobs/{compile}", app.base))
        .await;
    mark_document(&browser).await;
    browser
        .wait_until(
            "the first lines are shown",
            "return document.getElementById('log').textContent.includes('tick 3');",
            json!([]),
        )
        .await;
    assert!(!log_text(&browser).await.contains("released"));
    assert!(heading_status(&browser).await.contains("status-running"));
    gate.open();
    browser
        .wait_until(
            "the last line streams in",
            "return [...document.querySelectorAll('#log .line .t')].some(t => t.textContent === 'released');",
            json!([]),
        )
        .await;
    browser
        .wait_until(
            "the status flips to success",
            "return document.querySelector('#job-heading .status-success') !== null;",
            json!([]),
        )
        .await;
    assert_not_reloaded(&browser).await;
    let heading = browser.text(&browser.find("#job-heading").await).await;
    assert!(heading.starts_with("success compile"), "{heading}");

    // The pipeline page follows the second stage to its end.
    browser.goto(&format!("{}{link}", app.base)).await;
    let builds = app.wait_for_pipeline(project, pipeline, &owner).await;
    assert_eq!(builds["check"]["status"], "success", "{builds:?}");
    mark_document(&browser).await;
    browser
        .wait_until(
            "the pipeline succeeds",
            "return document.querySelector('#pipeline-live h1 .status-success') !== null;",
            json!([]),
        )
        .await;
    assert_not_reloaded(&browser).await;
}

/// Prints sections (one collapsed), colours and a few matching lines.
const SECTIONS_CI: &str = r#"sections:
  script:
    - printf '\033[0Ksection_start:%s:prepare[collapsed=true]\r\033[0KPreparing things\n' "$(date +%s)"
    - echo hidden inside prepare
    - printf '\033[0Ksection_end:%s:prepare\r\033[0K\n' "$(date +%s)"
    - printf '\033[0Ksection_start:%s:work\r\033[0KWorking\n' "$(date +%s)"
    - printf '\033[1;32mgreen needle\033[0m\n'
    - printf 'plain NEEDLE\n'
    - printf '\033[0Ksection_end:%s:work\r\033[0K\n' "$(date +%s)"
"#;

async fn section_open(browser: &Browser, name: &str) -> Value {
    browser
        .script(
            "const s = document.querySelector('details[data-section=\"' + arguments[0] + '\"]'); return s && s.open;",
            json!([name]),
        )
        .await
}

#[tokio::test]
#[ignore = "drives Chromium: cargo test -p kiln-server --test browser -- --ignored"]
async fn sections_fold_and_the_search_steps_through_matches() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (app, owner, _repo, project) = TestApp::with_repo(1, SECTIONS_CI).await;
    let (_, builds) = app.run_pipeline(project, "master", &owner).await;
    assert_eq!(builds["sections"]["status"], "success", "{builds:?}");
    let id = builds["sections"]["id"].as_i64().expect("id");
    let browser = Browser::start(1280, 800).await;
    sign_in(&browser, &app, &owner, "owner").await;
    browser
        .goto(&format!("{}/team/app/-/jobs/{id}", app.base))
        .await;

    // The collapsed section starts closed and opens and closes by its summary.
    assert_eq!(section_open(&browser, "prepare").await, json!(false));
    assert_eq!(section_open(&browser, "work").await, json!(true));
    let summary = browser
        .find("details[data-section=prepare] > summary")
        .await;
    browser.click(&summary).await;
    assert_eq!(section_open(&browser, "prepare").await, json!(true));
    browser.click(&summary).await;
    assert_eq!(section_open(&browser, "prepare").await, json!(false));
    let green = browser
        .script(
            "const g = [...document.querySelectorAll('#log .fg2.b')].find(e => e.textContent.includes('green needle')); return g !== undefined;",
            json!([]),
        )
        .await;
    assert_eq!(green, json!(true), "bold green is styled");

    // The server's matches, stepped through with highlights.
    let found = app
        .client
        .get(format!(
            "{}/team/app/-/jobs/{id}/log/search?q=needle",
            app.base
        ))
        .header("cookie", session_cookie(&browser).await)
        .send()
        .await
        .expect("search");
    let found: Value = found.json().await.expect("json");
    let lines: Vec<i64> = found["matches"]
        .as_array()
        .expect("matches")
        .iter()
        .filter_map(|m| m["line"].as_i64())
        .collect();
    assert!(lines.len() >= 2, "{found}");
    browser
        .type_into(&browser.find("#log-q").await, "needle")
        .await;
    browser
        .click(&browser.find(".log-search button[type=submit]").await)
        .await;
    for (step, line) in lines.iter().enumerate() {
        let expected = format!("{} of {}", step + 1, lines.len());
        browser
            .wait_until(
                "the search status",
                "return document.querySelector('.search-status').textContent === arguments[0] && document.querySelector('.line.hit') && document.querySelector('.line.hit').id;",
                json!([expected]),
            )
            .await;
        let hit = browser
            .script(
                "const h = document.querySelector('.line.hit'); return [h.id, [...h.querySelectorAll('mark')].map(m => m.textContent.toLowerCase())];",
                json!([]),
            )
            .await;
        assert_eq!(hit[0], json!(format!("L{line}")));
        assert!(
            hit[1]
                .as_array()
                .is_some_and(|m| !m.is_empty() && m.iter().all(|t| t == "needle")),
            "{hit}"
        );
        browser
            .click(&browser.find(".search-step[data-step='1']").await)
            .await;
    }

    // A match inside the collapsed section opens it.
    let q = browser.find("#log-q").await;
    browser.clear(&q).await;
    browser.type_into(&q, "hidden inside").await;
    browser
        .click(&browser.find(".log-search button[type=submit]").await)
        .await;
    browser
        .wait_until(
            "the collapsed section opens for its match",
            "const s = document.querySelector('details[data-section=\"prepare\"]'); return s.open && s.querySelector('.line.hit') !== null;",
            json!([]),
        )
        .await;
}

/// The session cookie isn't readable by scripts (HttpOnly): WebDriver hands it over.
async fn session_cookie(browser: &Browser) -> String {
    browser
        .cookies()
        .await
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("; ")
}

const SLOW_CI: &str = "slow:\n  script:\n    - echo started\n    - sleep 60\n";

#[tokio::test]
#[ignore = "drives Chromium: cargo test -p kiln-server --test browser -- --ignored"]
async fn a_job_is_canceled_and_retried_from_its_page() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (app, owner, _repo, project) = TestApp::with_repo(1, SLOW_CI).await;
    let browser = Browser::start(1280, 800).await;
    sign_in(&browser, &app, &owner, "owner").await;
    let created = app.create_pipeline(project, "master", &owner).await;
    created.assert(201);
    let slow = app.builds_by_name(project, &owner).await["slow"]["id"]
        .as_i64()
        .expect("id");
    app.wait_for_build(project, slow, &owner, |b| b["status"] == "running")
        .await;
    let page = format!("{}/team/app/-/jobs/{slow}", app.base);
    browser.goto(&page).await;
    assert!(browser
        .find_all("form[action$='/retry'] button")
        .await
        .is_empty());
    browser
        .click(&browser.find("form[action$='/cancel'] button").await)
        .await;
    browser
        .wait_until(
            "the job shows canceled",
            "return document.querySelector('#job-heading .status-canceled') !== null;",
            json!([]),
        )
        .await;
    let canceled = app
        .wait_for_build(project, slow, &owner, |b| b["status"] == "canceled")
        .await;
    assert_eq!(canceled["status"], "canceled");

    // Retry makes a new job and opens its page.
    browser
        .click(&browser.find("form[action$='/retry'] button").await)
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let retried = loop {
        let url = browser.current_url().await;
        if url != page && url.starts_with(&format!("{}/team/app/-/jobs/", app.base)) {
            break url;
        }
        assert!(Instant::now() < deadline, "still on {url}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let new_id: i64 = retried
        .rsplit('/')
        .next()
        .and_then(|id| id.parse().ok())
        .expect("a job id");
    assert_ne!(new_id, slow);
    let newest = app.builds_by_name(project, &owner).await["slow"]["id"].as_i64();
    assert_eq!(newest, Some(new_id));
    let heading = browser.text(&browser.find("#job-heading").await).await;
    assert!(
        heading.starts_with("pending slow") || heading.starts_with("running slow"),
        "{heading}"
    );
    // Stop it: nothing is left running when the test ends.
    browser
        .click(&browser.find("form[action$='/cancel'] button").await)
        .await;
    app.wait_for_build(project, new_id, &owner, |b| b["status"] == "canceled")
        .await;
}

/// POSTs `path` from the page with `token` as its CSRF token (none when null); the status.
async fn post_from_page(browser: &Browser, path: &str, token: Value) -> Value {
    browser
        .script_async(
            "const [path, token, done] = arguments;
             const body = new URLSearchParams();
             if (token !== null) body.set('authenticity_token', token);
             fetch(path, { method: 'POST', body, redirect: 'manual', credentials: 'same-origin' })
               .then(r => done(r.type === 'opaqueredirect' ? 303 : r.status), e => done(String(e)));",
            json!([path, token]),
        )
        .await
}

#[tokio::test]
#[ignore = "drives Chromium: cargo test -p kiln-server --test browser -- --ignored"]
async fn a_reporter_is_offered_no_action_and_forged_posts_are_refused() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (app, owner, _repo, project) =
        TestApp::with_repo(1, "fails:\n  script: [\"exit 1\"]\n").await;
    let (_, builds) = app.run_pipeline(project, "master", &owner).await;
    let id = builds["fails"]["id"].as_i64().expect("id");
    assert_eq!(builds["fails"]["status"], "failed");
    let reporter = app.user("reporter", false).await;
    app.member(project, &reporter, AccessLevel::Reporter).await;
    let retry = format!("/team/app/-/jobs/{id}/retry");

    let browser = Browser::start(1280, 800).await;
    sign_in(&browser, &app, &reporter, "reporter").await;
    browser
        .goto(&format!("{}/team/app/-/jobs/{id}", app.base))
        .await;
    assert!(browser.find_all("form[action$='/retry']").await.is_empty());
    assert!(browser.find_all(".actions button").await.is_empty());
    let token = browser
        .script(
            "return document.querySelector('input[name=authenticity_token]').value;",
            json!([]),
        )
        .await;
    assert!(token.as_str().is_some_and(|t| t.len() >= 20), "{token}");
    assert_eq!(post_from_page(&browser, &retry, token).await, json!(403));
    drop(browser);

    // The owner may retry, but not without the page's token, nor with a made-up one.
    let browser = Browser::start(1280, 800).await;
    sign_in(&browser, &app, &owner, "owner").await;
    browser
        .goto(&format!("{}/team/app/-/jobs/{id}", app.base))
        .await;
    assert_eq!(
        post_from_page(&browser, &retry, Value::Null).await,
        json!(422)
    );
    assert_eq!(
        post_from_page(&browser, &retry, json!("forged-token-forged-token")).await,
        json!(422)
    );
    let newest = app.builds_by_name(project, &owner).await["fails"]["id"].as_i64();
    assert_eq!(newest, Some(id), "nothing was retried");
    browser
        .click(&browser.find("form[action$='/retry'] button").await)
        .await;
    browser
        .wait_until(
            "the retried job's page",
            "return location.pathname !== arguments[0];",
            json!([format!("/team/app/-/jobs/{id}")]),
        )
        .await;
    let newest = app.builds_by_name(project, &owner).await["fails"]["id"].as_i64();
    assert_ne!(newest, Some(id), "the owner's retry made a new job");
}

/// A log that tries to run script, draw markup and smuggle links through escape sequences.
const HOSTILE_CI: &str = r#"hostile:
  script:
    - printf '<script>window.kilnPwned = "log"</script>\n'
    - printf '<img src=x onerror="window.kilnPwned = 1">\n'
    - printf '\033[31m<b>red</b>\033[0m and \033]8;;javascript:window.kilnPwned=2\033\\click me\033]8;;\033\\\n'
    - printf '\033[2J\033[Hafter a clear \033[38;5;196mbright\033[0m\n'
"#;

async fn pwned(browser: &Browser) -> Value {
    browser
        .script(
            "return [window.kilnPwned === undefined, document.querySelectorAll('main script, main img, main a[href^=\"javascript\"], #log b').length];",
            json!([]),
        )
        .await
}

#[tokio::test]
#[ignore = "drives Chromium: cargo test -p kiln-server --test browser -- --ignored"]
async fn hostile_commit_messages_and_logs_stay_text() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (app, owner, repo, project) = TestApp::with_repo(1, HOSTILE_CI).await;
    let title =
        "<script>window.kilnPwned = 'title'</script><img src=x onerror=\"window.kilnPwned=3\">";
    repo.commit(&[("README", "hostile\n")], title);
    let (pipeline, builds) = app.run_pipeline(project, "master", &owner).await;
    assert_eq!(builds["hostile"]["status"], "success", "{builds:?}");
    let id = builds["hostile"]["id"].as_i64().expect("id");
    let browser = Browser::start(1280, 800).await;
    sign_in(&browser, &app, &owner, "owner").await;

    for page in [
        format!("/team/app/-/pipelines/{pipeline}"),
        "/team/app/-/pipelines".to_owned(),
        format!("/team/app/-/jobs/{id}"),
    ] {
        browser.goto(&format!("{}{page}", app.base)).await;
        let main = browser.text(&browser.find("main").await).await;
        assert!(
            main.contains(title),
            "{page}: the title is shown as text: {main}"
        );
        assert_eq!(pwned(&browser).await, json!([true, 0]), "{page}");
    }
    let log = log_text(&browser).await;
    assert!(
        log.contains("<script>window.kilnPwned = \"log\"</script>"),
        "{log}"
    );
    assert!(log.contains("<img src=x onerror="), "{log}");
    assert!(log.contains("<b>red</b> and click me"), "{log}");
    assert!(log.contains("after a clear bright"), "{log}");
    let red = browser
        .script(
            "return [...document.querySelectorAll('#log .fg1')].some(e => e.textContent === '<b>red</b>');",
            json!([]),
        )
        .await;
    assert_eq!(red, json!(true), "the colour is kept, the markup is text");
}

/// 100 MiB of 100-byte lines.
const BIG_LINES: usize = 1_048_576;

fn big_line(n: usize) -> String {
    format!("line {n:07} {}\n", "x".repeat(86))
}

/// A finished build whose log is `BIG_LINES` lines, written through the store in 1 MiB parts.
async fn build_with_a_big_log(app: &TestApp, project: i64) -> (i64, usize) {
    let build = app.pipeline(project, "bbbb", &[BuildStatus::Pending]).await[0];
    let store = &app.store;
    let runner = store.runners().find_or_create("big").await.expect("runner");
    let claimed = store
        .builds()
        .claim(runner, i64::MAX, &kiln_store::new_secret())
        .await
        .expect("claim")
        .expect("a build");
    assert_eq!(claimed.build_id, build);
    let mut offset = 0;
    let per_part = 10_486;
    for first in (1..=BIG_LINES).step_by(per_part) {
        let part: String = (first..(first + per_part).min(BIG_LINES + 1))
            .map(big_line)
            .collect();
        store
            .builds()
            .append_trace_at(build, runner, offset as i64, part.as_bytes(), i64::MAX)
            .await
            .expect("append");
        offset += part.len();
    }
    let success = kiln_store::Finish {
        success: true,
        ..kiln_store::Finish::system_failure()
    };
    store
        .builds()
        .finish(build, kiln_store::Holder::Runner(runner), &success, b"")
        .await
        .expect("finish");
    (build, offset)
}

#[tokio::test]
#[ignore = "drives Chromium: cargo test -p kiln-server --test browser -- --ignored"]
async fn a_100_mb_log_opens_at_once_and_scrolls_by_windows() {
    let _one = ONE_AT_A_TIME.lock().await;
    let app = TestApp::spawn().await;
    let owner = app.user("owner", false).await;
    let project = app.project("team/big", Visibility::Private).await;
    app.member(project, &owner, AccessLevel::Master).await;
    let (build, size) = build_with_a_big_log(&app, project).await;
    assert_eq!(size, BIG_LINES * 100);
    let browser = Browser::start(1280, 800).await;
    sign_in(&browser, &app, &owner, "owner").await;

    browser
        .goto(&format!("{}/team/big/-/jobs/{build}", app.base))
        .await;
    let figures = browser
        .wait_until(
            "the first paint",
            "const paint = performance.getEntriesByName('first-contentful-paint')[0];
             const nav = performance.getEntriesByType('navigation')[0];
             if (!paint || !nav || !nav.loadEventEnd) return null;
             return { paint: paint.startTime, load: nav.loadEventEnd, bytes: nav.decodedBodySize,
                      heap: performance.memory ? performance.memory.usedJSHeapSize : 0,
                      nodes: document.getElementsByTagName('*').length,
                      lines: document.querySelectorAll('#log .line').length };",
            json!([]),
        )
        .await;
    println!("100 MiB log, first visit: {figures}");
    let last = format!("line {BIG_LINES:07}");
    assert!(log_text(&browser).await.contains(&last));
    let lines = figures["lines"].as_u64().expect("lines");
    assert!((1..=2000).contains(&lines), "{figures}");
    assert!(
        figures["bytes"].as_u64().expect("bytes") < 2 * 1024 * 1024,
        "{figures}"
    );

    // Scrolling up fetches the windows before, keeping at most six in the page.
    let mut first_start = u64::MAX;
    for _ in 0..10 {
        let start = browser
            .wait_until(
                "an earlier window",
                "const log = document.getElementById('log');
                 const start = Number(log.querySelector('.chunk').dataset.start);
                 if (start >= arguments[0]) { log.scrollTop = 0; log.dispatchEvent(new Event('scroll')); return null; }
                 return start;",
                json!([first_start]),
            )
            .await;
        first_start = start.as_u64().expect("start");
    }
    let chunks = browser
        .script(
            "return document.querySelectorAll('#log > .chunk').length;",
            json!([]),
        )
        .await;
    assert!(
        chunks.as_u64().is_some_and(|n| n <= 6),
        "{chunks} windows kept"
    );
    // Every line shown is the one its number says.
    let consistent = browser
        .script(
            "return [...document.querySelectorAll('#log .line')].every(l => l.textContent.includes('line ' + l.id.slice(1).padStart(7, '0')));",
            json!([]),
        )
        .await;
    assert_eq!(consistent, json!(true));
    let heap = browser
        .script(
            "return performance.memory ? performance.memory.usedJSHeapSize : 0;",
            json!([]),
        )
        .await;
    println!("after scrolling ten windows up: first byte {first_start}, {chunks} windows, JS heap {heap}");

    // A search jumps to the first line, far before the windows in the page.
    browser
        .type_into(&browser.find("#log-q").await, "line 0000001 ")
        .await;
    browser
        .click(&browser.find(".log-search button[type=submit]").await)
        .await;
    browser
        .wait_until(
            "the first line found",
            "const h = document.querySelector('.line.hit'); return h && h.id === 'L1';",
            json!([]),
        )
        .await;
}

/// The README's pipeline: stages, needs across them, a failure allowed, a manual deploy.
const SHOWCASE_CI: &str = r#"stages: [build, test, deploy]
compile:
  stage: build
  script:
    - printf '\033[0Ksection_start:%s:deps[collapsed=true]\r\033[0KInstalling dependencies\n' "$(date +%s)"
    - for i in 1 2 3 4 5 6; do echo "fetched crate $i of 6"; done
    - printf '\033[0Ksection_end:%s:deps\r\033[0K\n' "$(date +%s)"
    - printf '\033[0Ksection_start:%s:build\r\033[0KBuilding\n' "$(date +%s)"
    - printf '\033[1;32m   Compiling\033[0m kiln v0.1.0\n'
    - printf '\033[33mwarning\033[0m unused variable x in src/main.rs\n'
    - printf '\033[1;32m    Finished\033[0m release [optimized] target(s) in 0.42s\n'
    - printf '\033[0Ksection_end:%s:build\r\033[0K\n' "$(date +%s)"
docs:
  stage: build
  script: [echo docs built]
unit tests:
  stage: test
  needs: [compile]
  script: ['echo "Coverage: 87.5%"']
  coverage: '/Coverage: \d+\.\d+%/'
style:
  stage: test
  needs: [compile]
  script: [echo 3 warnings, exit 1]
  allow_failure: true
package:
  stage: test
  needs: [compile, docs]
  script: [echo packaged]
deploy:
  stage: deploy
  needs: [unit tests, package]
  script: [echo deployed]
  when: manual
"#;

#[tokio::test]
#[ignore = "drives Chromium: cargo test -p kiln-server --test browser -- --ignored"]
async fn the_readme_screenshots_show_a_pipeline_graph_and_a_job_log() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (app, owner, _repo, project) = TestApp::with_repo(2, SHOWCASE_CI).await;
    let (pipeline, builds) = app.run_pipeline(project, "master", &owner).await;
    let record = app.store.pipelines().get(pipeline).await.expect("pipeline");
    assert_eq!(record.yaml_errors, None);
    assert_eq!(
        builds.get("style").map(|b| &b["status"]),
        Some(&json!("failed"))
    );
    assert_eq!(builds["deploy"]["status"], "manual", "{builds:?}");
    let browser = Browser::start(1100, 1000).await;
    sign_in(&browser, &app, &owner, "owner").await;
    browser
        .goto(&format!("{}/team/app/-/pipelines/{pipeline}", app.base))
        .await;
    // Six jobs, six needs, and a Run button for the manual deploy.
    let drawn = browser
        .script(
            "return [document.querySelectorAll('.dag .node').length, document.querySelectorAll('.dag .edge').length];",
            json!([]),
        )
        .await;
    assert_eq!(drawn, json!([6, 6]));
    assert_eq!(
        browser
            .find_all("button[aria-label='Run deploy']")
            .await
            .len(),
        1
    );
    screenshot(&browser, "pipeline.png").await;

    let compile = builds["compile"]["id"].as_i64().expect("id");
    browser
        .goto(&format!("{}/team/app/-/jobs/{compile}", app.base))
        .await;
    assert_eq!(section_open(&browser, "deps").await, json!(false));
    assert_eq!(section_open(&browser, "build").await, json!(true));
    screenshot(&browser, "job-log.png").await;
}

/// A job that prints the time (ms since the epoch) on each line, 20 lines a second.
const STAMPS_CI: &str = "stamps:\n  script:\n    - for i in $(seq 1 200); do echo \"stamp $(date +%s%3N)\"; sleep 0.05; done\n";

/// Not a pass/fail threshold (timed tests lie on a busy machine): it measures and prints
/// the time from a job printing a line to the line being in an open page's DOM.
#[tokio::test]
#[ignore = "drives Chromium: cargo test -p kiln-server --test browser -- --ignored"]
async fn bench_a_printed_line_reaches_an_open_page() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (app, owner, _repo, project) = TestApp::with_repo(1, STAMPS_CI).await;
    let browser = Browser::start(1280, 800).await;
    sign_in(&browser, &app, &owner, "owner").await;
    app.create_pipeline(project, "master", &owner)
        .await
        .assert(201);
    let id = app.builds_by_name(project, &owner).await["stamps"]["id"]
        .as_i64()
        .expect("id");
    app.wait_for_build(project, id, &owner, |b| b["status"] == "running")
        .await;
    browser
        .goto(&format!("{}/team/app/-/jobs/{id}", app.base))
        .await;
    // Every line added to the log after the page loaded, with when it arrived.
    browser
        .script(
            "window.kilnLatencies = [];
             new MutationObserver(records => {
               const now = Date.now();
               for (const record of records) for (const node of record.addedNodes) {
                 if (!(node instanceof Element)) continue;
                 const lines = node.matches('.line') ? [node] : [...node.querySelectorAll('.line')];
                 for (const line of lines) {
                   const m = /^stamp (\\d+)$/.exec(line.querySelector('.t').textContent);
                   if (m) window.kilnLatencies.push(now - Number(m[1]));
                 }
               }
             }).observe(document.getElementById('log'), { childList: true, subtree: true });",
            json!([]),
        )
        .await;
    app.wait_for_build(project, id, &owner, |b| b["status"] == "success")
        .await;
    browser
        .wait_until(
            "the log is complete on the page",
            "return document.getElementById('log').textContent.includes('Job succeeded');",
            json!([]),
        )
        .await;
    let measured = browser
        .script("return window.kilnLatencies;", json!([]))
        .await;
    let mut latencies: Vec<i64> = measured
        .as_array()
        .expect("latencies")
        .iter()
        .filter_map(Value::as_i64)
        .collect();
    assert!(latencies.len() >= 100, "{} lines measured", latencies.len());
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    println!(
        "a printed line reaches an open page: p50 {} ms, p99 {} ms, max {} ms over {} lines",
        at(0.5),
        at(0.99),
        at(1.0),
        latencies.len()
    );
}
