//! The `kiln` binary end to end: admin commands print only what scripts capture, the history
//! generator, `serve` on an ephemeral port, and a graceful stop on SIGTERM.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

fn kiln(data_dir: &std::path::Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("KILN_DATABASE_URL")
        .output()
        .expect("run kiln");
    assert!(
        output.status.success(),
        "kiln {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

#[test]
fn admin_commands_then_serve_then_sigterm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path();
    let user_id = kiln(
        data,
        &[
            "admin",
            "user",
            "create",
            "--username",
            "ops",
            "--name",
            "Ops",
            "--email",
            "ops@example.com",
        ],
    );
    assert!(user_id.parse::<i64>().is_ok(), "{user_id:?}");
    let token = kiln(data, &["admin", "token", "create", "--username", "ops"]);
    assert_eq!(token.len(), 20, "{token:?}");
    assert!(token.chars().all(|c| c.is_ascii_alphanumeric()));
    let project = kiln(
        data,
        &[
            "admin",
            "project",
            "create",
            "--path",
            "team/app",
            "--visibility",
            "private",
        ],
    );
    assert!(project.parse::<i64>().is_ok(), "{project:?}");
    kiln(
        data,
        &[
            "admin",
            "member",
            "add",
            "--project",
            "team/app",
            "--username",
            "ops",
            "--access",
            "reporter",
        ],
    );
    assert_eq!(
        kiln(
            data,
            &[
                "admin",
                "generate",
                "--project",
                "team/app",
                "--pipelines",
                "30"
            ]
        ),
        "300"
    );

    let failing = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("--data-dir")
        .arg(data)
        .args([
            "admin",
            "member",
            "add",
            "--project",
            "team/app",
            "--username",
            "ops",
            "--access",
            "boss",
        ])
        .output()
        .expect("run kiln");
    assert!(!failing.status.success());

    let mut server = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("--data-dir")
        .arg(data)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .env_remove("KILN_DATABASE_URL")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let mut lines = BufReader::new(server.stderr.take().expect("stderr")).lines();
    let bound = loop {
        let line = lines
            .next()
            .expect("serve printed its address")
            .expect("line");
        if let Some(rest) = line.split("bound=").nth(1) {
            break rest.split_whitespace().next().expect("address").to_owned();
        }
    };
    let url = format!("http://{bound}/api/v3/projects/team%2Fapp/builds?per_page=5");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (status, total, count) = runtime.block_on(async {
        let response = reqwest::Client::new()
            .get(&url)
            .header("PRIVATE-TOKEN", &token)
            .send()
            .await
            .expect("get");
        let status = response.status().as_u16();
        let total = response.headers()["x-total"]
            .to_str()
            .expect("x-total")
            .to_owned();
        let body: serde_json::Value = response.json().await.expect("json");
        (status, total, body.as_array().map(Vec::len))
    });
    assert_eq!((status, total.as_str(), count), (200, "300", Some(5)));

    // SIGTERM through the kill command keeps this test free of unsafe code.
    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = server.try_wait().expect("wait") {
            assert!(status.success(), "serve exited with {status}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "serve did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn git_repo(dir: &std::path::Path, ci: &str) {
    support::git_repo(dir, ci, &[]);
}

fn kiln_in(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run kiln")
}

#[test]
fn kiln_run_runs_the_pipeline_locally_and_fails_when_it_fails() {
    let dir = tempfile::tempdir().expect("dir");
    git_repo(
        dir.path(),
        "stages: [build, test]\nmake:\n  stage: build\n  script: [mkdir -p out, echo made > out/thing, echo FROM_DOTENV=made-$CI_JOB_NAME > make.env]\n  artifacts:\n    paths: [out/]\n    reports: {dotenv: make.env}\ncheck:\n  stage: test\n  script: [cat out/thing, echo uncommitted-$(cat extra.txt), echo dotenv-$FROM_DOTENV]\n",
    );
    std::fs::write(dir.path().join("extra.txt"), "yes").expect("write");
    let out = kiln_in(dir.path(), &["run", "-j", "1"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("made")
            && stdout.contains("uncommitted-yes")
            && stdout.contains("\ndotenv-made-make"),
        "{stdout}"
    );
    assert!(stdout.contains("pipeline: success"), "{stdout}");
    assert!(
        !dir.path().join("out").exists(),
        "jobs run in a copy, not in the working tree"
    );

    std::fs::write(
        dir.path().join(".gitlab-ci.yml"),
        "bad:\n  script: [echo before, exit 4]\nafter:\n  stage: deploy\n  script: [echo never]\n",
    )
    .expect("write");
    let out = kiln_in(dir.path(), &["run"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("ERROR: Job failed: exit code 4") && stdout.contains("skipped"),
        "{stdout}"
    );
    let only = kiln_in(dir.path(), &["run", "after"]);
    assert!(
        only.status.success(),
        "{}",
        String::from_utf8_lossy(&only.stdout)
    );
}

#[test]
fn kiln_run_gives_jobs_the_servers_variables() {
    let dir = tempfile::tempdir().expect("dir");
    git_repo(
        dir.path(),
        "default-only:\n  rules:\n    - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH\n  \
         script: ['echo \"vars $CI_PIPELINE_SOURCE $CI_COMMIT_REF_SLUG $CI_BUILD_REF_NAME $CI_COMMIT_TITLE\"']\n",
    );
    let out = kiln_in(dir.path(), &["run"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("vars push main main ci"), "{stdout}");
}

#[test]
fn kiln_lint_prints_errors() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join(".gitlab-ci.yml"),
        "job:\n  script: [\"true\"]\n",
    )
    .expect("write");
    let ok = kiln_in(dir.path(), &["lint"]);
    assert!(ok.status.success());
    assert!(String::from_utf8_lossy(&ok.stdout).contains("is valid: 1 jobs"));
    std::fs::write(
        dir.path().join("bad.yml"),
        "job:\n  stage: nowhere\n  script: [\"true\"]\n",
    )
    .expect("write");
    let bad = kiln_in(dir.path(), &["lint", "bad.yml"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stdout).contains("nowhere"));
}

#[test]
fn admin_runner_commands_issue_tokens_and_list_pause_resume_and_remove_runners() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = kiln(&data, &["admin", "runner", "registration-token"]);
    let second = kiln(&data, &["admin", "runner", "registration-token"]);
    assert!(first.starts_with("GR1348941") && second != first);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let store = runtime
        .block_on(kiln_store::Store::open(
            &data.join("kiln.db").to_string_lossy(),
        ))
        .unwrap();
    // Both tokens register; --reset revokes the earlier ones.
    for token in [&first, &second] {
        let scope = runtime
            .block_on(store.runners().registration_scope(token))
            .unwrap();
        assert_eq!(scope, Some(None));
    }
    let third = kiln(&data, &["admin", "runner", "registration-token", "--reset"]);
    assert_eq!(
        runtime
            .block_on(store.runners().registration_scope(&first))
            .unwrap(),
        None
    );
    let new = kiln_store::NewRunner {
        description: "box".into(),
        project_id: None,
        active: true,
        locked: false,
        run_untagged: true,
        access_level: "not_protected".into(),
        maximum_timeout: None,
        maintenance_note: String::new(),
        tags: vec!["linux".into()],
        info: Default::default(),
    };
    assert!(runtime
        .block_on(store.runners().registration_scope(&third))
        .unwrap()
        .is_some());
    let (runner, _) = runtime.block_on(store.runners().register(&new)).unwrap();
    let listed = kiln(&data, &["admin", "runner", "list"]);
    let line = format!("{}\tonline\tinstance_type\tlinux\tbox", runner.id);
    assert!(listed.lines().any(|l| l == line), "{listed}");
    let id = runner.id.to_string();
    kiln(&data, &["admin", "runner", "pause", &id]);
    assert!(
        !runtime
            .block_on(store.runners().get(runner.id))
            .unwrap()
            .active
    );
    assert!(kiln(&data, &["admin", "runner", "list"]).contains("\tpaused\t"));
    kiln(&data, &["admin", "runner", "resume", &id]);
    assert!(
        runtime
            .block_on(store.runners().get(runner.id))
            .unwrap()
            .active
    );
    kiln(&data, &["admin", "runner", "remove", &id]);
    assert!(runtime.block_on(store.runners().get(runner.id)).is_err());
    runtime.block_on(store.close());
}

#[test]
fn admin_variable_commands_set_list_and_remove_encrypted_variables() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    kiln(&data, &["admin", "project", "create", "--path", "team/app"]);
    let set = kiln(
        &data,
        &[
            "admin",
            "variable",
            "set",
            "--project",
            "team/app",
            "--key",
            "TOKEN",
            "--value",
            "abcdefgh1234",
            "--masked",
            "--protected",
        ],
    );
    assert_eq!(set, "TOKEN");
    kiln(
        &data,
        &[
            "admin", "variable", "set", "--key", "REGION", "--value", "eu", "--file",
        ],
    );
    let listed = kiln(
        &data,
        &["admin", "variable", "list", "--project", "team/app"],
    );
    assert_eq!(listed, "TOKEN\tenv_var\t*\tprotected,masked");
    let instance = kiln(&data, &["admin", "variable", "list"]);
    assert_eq!(instance, "REGION\tfile\t*");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.join("secret.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let db = std::fs::read(data.join("kiln.db")).unwrap();
    assert!(
        !db.windows(12).any(|w| w == b"abcdefgh1234"),
        "the value is stored encrypted"
    );
    kiln(
        &data,
        &[
            "admin",
            "variable",
            "remove",
            "--project",
            "team/app",
            "--key",
            "TOKEN",
        ],
    );
    assert_eq!(
        kiln(
            &data,
            &["admin", "variable", "list", "--project", "team/app"]
        ),
        ""
    );
}

/// `kiln admin …` with `input` on standard input: (success, stdout, stderr).
fn kiln_with_stdin(
    data_dir: &std::path::Path,
    args: &[&str],
    input: &str,
) -> (bool, String, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("KILN_DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kiln");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    let output = child.wait_with_output().expect("wait");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn passwords_for_the_web_ui_are_read_from_stdin_and_checked() {
    let dir = tempfile::tempdir().expect("dir");
    let create = |name: &str, input: &str| {
        kiln_with_stdin(
            dir.path(),
            &[
                "admin",
                "user",
                "create",
                "--username",
                name,
                "--name",
                name,
                "--email",
                &format!("{name}@x"),
                "--password-stdin",
            ],
            input,
        )
    };
    let (ok, _, err) = create("short", "tiny\n");
    assert!(
        !ok && err.contains("Password is too short (minimum is 8 characters)"),
        "{err}"
    );
    // The refused password made no user: the name is free.
    let (ok, id, err) = create("short", "long enough\n");
    assert!(ok, "{err}");
    assert!(id.parse::<i64>().is_ok(), "{id}");
    let (ok, out, err) = kiln_with_stdin(
        dir.path(),
        &["admin", "user", "password", "--username", "short"],
        "another long one\n",
    );
    assert!(ok && out == "password set", "{out} {err}");
    let (ok, _, err) = kiln_with_stdin(
        dir.path(),
        &["admin", "user", "password", "--username", "nobody"],
        "another long one\n",
    );
    assert!(!ok && err.contains("no user"), "{err}");
}

/// `--log-format json`: one JSON object a line, and each request's line carries the id the
/// response returned.
#[tokio::test]
async fn json_logs_carry_each_requests_id() {
    let dir = tempfile::tempdir().expect("dir");
    let db = kiln_test_support::TestDatabase::new().await;
    let data = dir.path().join("server");
    let server = support::serve(&data, &db.url, &["--log-format", "json"]);
    let response = reqwest::Client::new()
        .get(format!("{}/-/readiness", server.url))
        .header("x-request-id", "probe-7f3a")
        .send()
        .await
        .expect("readiness");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "probe-7f3a");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let line = loop {
        let log = std::fs::read_to_string(&server.log).unwrap_or_default();
        let found = log
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|l| l["span"]["request_id"] == "probe-7f3a" && l["fields"]["status"] == 200);
        if let Some(found) = found {
            assert!(
                log.lines()
                    .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
                "every line is JSON: {log}"
            );
            break found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no request line in {log}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(line["span"]["method"], "GET");
    assert_eq!(line["span"]["path"], "/-/readiness");
    assert!(line["fields"]["duration_ms"].as_f64().is_some(), "{line}");
}

/// `--config kiln.toml`: its keys are the flags' names; a flag wins over a variable, which
/// wins over the file; `config check` says where each value came from and hides secrets;
/// an unknown key is an error that names it.
#[test]
fn a_config_file_sets_what_flags_and_variables_do_not() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("kiln.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:9999\"\nexternal_url = \"https://ci.example.com\"\n\
         database_url = \"postgres://kiln:s3cret@db/kiln\"\nmax_trace_size = 1000\n\
         embedded_runner_tags = [\"docker\", \"linux\"]\n",
    )
    .expect("write");
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kiln"));
        command.arg("--config").arg(&file).args(args);
        for name in [
            "KILN_LISTEN",
            "KILN_MAX_TRACE_SIZE",
            "KILN_DATABASE_URL",
            "KILN_EXTERNAL_URL",
            "KILN_EMBEDDED_RUNNER_TAGS",
            "KILN_CONFIG",
        ] {
            command.env_remove(name);
        }
        command.envs(env.iter().copied()).env("RUST_BACKTRACE", "0");
        command.output().expect("run kiln")
    };
    let out = run(
        &["config", "check", "--listen", "0.0.0.0:8080"],
        &[
            ("KILN_MAX_TRACE_SIZE", "2000"),
            ("KILN_EXTERNAL_URL", "https://env.example.com"),
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "listen = 0.0.0.0:8080   # flag",
        "external_url = https://env.example.com   # environment",
        "max_trace_size = 2000   # environment",
        "database_url = postgres://kiln:(hidden)@db/kiln   # file",
        "embedded_runner_tags = docker,linux   # file",
        "build_lease = 600   # default",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
    assert!(!text.contains("s3cret"), "{text}");

    std::fs::write(&file, "listen = \"127.0.0.1:1\"\nlisen = \"typo\"\n").expect("write");
    let bad = run(&["config", "check"], &[]);
    assert!(!bad.status.success());
    let error = String::from_utf8_lossy(&bad.stderr);
    assert!(error.contains("unknown key `lisen`"), "{error}");
}
