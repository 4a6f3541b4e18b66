//! Hostile `.gitlab-ci.yml` in a real `kiln serve`: through the open v3 lint (whose body is at
//! most 1 MB) and as a pushed 2 MB file, a small text that stands for gigabytes is refused with
//! GitLab's error (a failed pipeline for the push), two at a time, while the server's peak
//! memory (its pid's VmHWM) stays within a bound and other requests keep being answered.

mod support;

use kiln_test_support::TestDatabase;
use std::time::{Duration, Instant};

const TOO_BIG: &str = "The parsed YAML is too big";

/// Texts of about `size` bytes: one anchored string used 1,000 times, aliases of a 1 KB
/// string, and a base that 1,000 jobs extend.
fn hostile_documents(size: usize) -> Vec<(&'static str, String)> {
    let big = "x".repeat(size - 20_000);
    let anchored = format!(
        "s: &s \"{big}\"\njob:\n  script: x\n  variables:\n{}",
        (0..1000)
            .map(|i| format!("    V{i}: *s\n"))
            .collect::<String>()
    );
    let mut aliases = format!("a: &a \"{}\"\nlist: [", "y".repeat(1024));
    while aliases.len() < size - 10 {
        aliases.push_str("*a, ");
    }
    aliases.push_str("*a]\njob: {script: x}\n");
    let extends = format!(
        ".base: {{script: [\"{}\"]}}\n{}",
        "z".repeat(size - 20_000),
        (0..1000)
            .map(|i| format!("j{i}: {{extends: .base}}\n"))
            .collect::<String>()
    );
    vec![
        ("an anchored string used 1000 times", anchored),
        ("aliases of a 1 KB string", aliases),
        ("a base extended 1000 times", extends),
    ]
}

fn peak_memory_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_yaml_is_refused_quickly_with_bounded_memory() {
    let db = TestDatabase::new().await;
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("server");
    let repo = dir.path().join("repo");
    let pushed = hostile_documents(2_000_000).remove(1).1;
    support::git_repo(&repo, &pushed, &[]);
    let (token, project) = support::admin_and_project(&data, &db.url, &repo);
    let server = support::serve(&data, &db.url, &["--no-embedded-runner"]);
    let client = reqwest::Client::new();
    let lint = |content: String| {
        let (client, url) = (client.clone(), format!("{}/api/v3/ci/lint", server.url));
        async move {
            let started = Instant::now();
            let response = client
                .post(url)
                .json(&serde_json::json!({ "content": content }))
                .send()
                .await
                .expect("lint");
            assert_eq!(response.status(), 200);
            let body: serde_json::Value = response.json().await.expect("json");
            (body, started.elapsed())
        }
    };
    // Warm up, then take the baseline.
    let (ok, _) = lint("job: {script: x}\n".into()).await;
    assert_eq!(ok["status"], "valid");
    let pid = server.child.id();
    let baseline = peak_memory_kib(pid);

    let mut slowest = Duration::ZERO;
    for (what, text) in hostile_documents(1_000_000) {
        assert!(text.len() < 1_020_000, "{what}: {} bytes", text.len());
        // Two at once, and a small lint beside them that must still be answered.
        let (a, b, small) = tokio::join!(
            lint(text.clone()),
            lint(text),
            lint("job: {script: x}\n".into())
        );
        for (body, took) in [a, b] {
            assert_eq!(
                body,
                serde_json::json!({ "status": "invalid", "errors": [TOO_BIG] }),
                "{what}"
            );
            slowest = slowest.max(took);
        }
        assert_eq!(small.0["status"], "valid", "{what}");
    }
    // The pushed 2 MB file: a failed pipeline that carries the error, not a 500.
    let pipelines = format!("{}/api/v4/projects/{project}/pipeline", server.url);
    let started = Instant::now();
    let created = client
        .post(&pipelines)
        .header("PRIVATE-TOKEN", &token)
        .json(&serde_json::json!({ "ref": "main" }))
        .send()
        .await
        .expect("create");
    slowest = slowest.max(started.elapsed());
    assert!(created.status().is_client_error() || created.status() == 201);
    let get = |url: String| {
        let request = client.get(url).header("PRIVATE-TOKEN", &token);
        async move {
            let response = request.send().await.expect("get");
            response.json::<serde_json::Value>().await.expect("json")
        }
    };
    let list = get(format!("{pipelines}s")).await;
    let id = list[0]["id"].as_i64().expect("a pipeline was made");
    let one = get(format!("{pipelines}s/{id}")).await;
    assert_eq!(one["status"], "failed");
    assert_eq!(one["yaml_errors"], TOO_BIG);

    let grown_mib = peak_memory_kib(pid).saturating_sub(baseline) / 1024;
    println!("slowest hostile lint: {slowest:?}; peak memory grew {grown_mib} MiB");
    // Before the byte budget: 3.3 GB for one request, 5.7 GB for two.
    assert!(grown_mib < 300, "peak memory grew {grown_mib} MiB");
    // A backstop for a debug build on a busy machine; the release figure is in the notes.
    assert!(slowest < Duration::from_secs(5), "slowest took {slowest:?}");
}
