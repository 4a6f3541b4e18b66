//! Processes for the tests that run the `kiln` binary: servers, runners, admin commands,
//! and the repositories and reads they share.

#![allow(dead_code)]

use kiln_core::{PageRequest, Scope};
use kiln_store::{BuildRecord, Store};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn kiln(data: &Path, url: &str, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("--data-dir")
        .arg(data)
        .arg("--database-url")
        .arg(url)
        .args(args)
        .output()
        .expect("run kiln");
    assert!(
        output.status.success(),
        "kiln {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A `kiln serve` process, killed if the test ends before it stopped it.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub log: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `kiln serve` on an ephemeral port with `extra` arguments, its log in `<data>.log`.
pub fn serve(data: &Path, url: &str, extra: &[&str]) -> Server {
    serve_on(data, url, "127.0.0.1:0", extra)
}

/// `kiln serve` listening on `listen` (a port of its own, to come back on after a kill).
pub fn serve_on(data: &Path, url: &str, listen: &str, extra: &[&str]) -> Server {
    let log = data.with_extension("log");
    let child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("--data-dir")
        .arg(data)
        .arg("--database-url")
        .arg(url)
        .args(["serve", "--listen", listen])
        .args(extra)
        .env("RUST_LOG", "info,sqlx=warn")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("spawn serve");
    let deadline = Instant::now() + Duration::from_secs(30);
    let bound = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        // `bound=ADDR` in text logs, `"bound":"ADDR"` in JSON ones.
        if let Some(rest) = text.split("bound=").nth(1) {
            break rest.split_whitespace().next().expect("address").to_owned();
        }
        if let Some(rest) = text.split("\"bound\":\"").nth(1) {
            break rest.split('"').next().expect("address").to_owned();
        }
        assert!(Instant::now() < deadline, "serve did not start: {text}");
        std::thread::sleep(Duration::from_millis(20));
    };
    Server {
        child,
        url: format!("http://{bound}"),
        log,
    }
}

/// How many builds have each status, and the servers' logs' warnings, for a failure message.
pub fn report(builds: &[BuildRecord], servers: &[&Server]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for build in builds {
        *counts.entry(build.status.as_str()).or_default() += 1;
    }
    let mut out = format!("{} builds: {counts:?}\n", builds.len());
    for server in servers {
        let log = std::fs::read_to_string(&server.log).unwrap_or_default();
        for line in log
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .take(20)
        {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The killed server's job cgroups, emptied and removed when the test ends.
pub struct Leftovers(pub String);

impl Drop for Leftovers {
    fn drop(&mut self) {
        kiln_executor::kill_runner_cgroups(&self.0);
    }
}

pub async fn all_builds(store: &Store, project: i64) -> Vec<BuildRecord> {
    let mut builds = Vec::new();
    for page in 1.. {
        let request = PageRequest {
            page,
            per_page: 100,
        };
        let got = store
            .builds()
            .list(project, &Scope::all(), request)
            .await
            .expect("list");
        if got.builds.is_empty() {
            break;
        }
        builds.extend(got.builds);
    }
    builds
}

pub fn signal(server: &Server, signal: &str) {
    let ok = Command::new("kill")
        .args([signal, &server.child.id().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill {signal}");
}

/// A git repository at `repo` whose `main` has one commit with `.gitlab-ci.yml` = `ci` and
/// the other `files`.
pub fn git_repo(repo: &Path, ci: &str, files: &[(&str, &str)]) {
    std::fs::create_dir_all(repo).expect("repo");
    std::fs::write(repo.join(".gitlab-ci.yml"), ci).expect("ci");
    for (name, content) in files {
        std::fs::write(repo.join(name), content).expect("file");
    }
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "."],
        &["commit", "-qm", "ci"],
    ] {
        let ok = Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(["-c", "user.name=T", "-c", "user.email=t@x"])
            .args(args)
            .status()
            .expect("git")
            .success();
        assert!(ok, "git {args:?}");
    }
}

/// Through `kiln admin` with the data dir `setup`: an admin `ops`, a token of theirs, and
/// the project `team/app` on `repo`. Returns the token and the project's id.
pub fn admin_and_project(setup: &Path, url: &str, repo: &Path) -> (String, i64) {
    kiln(
        setup,
        url,
        &[
            "admin",
            "user",
            "create",
            "--username",
            "ops",
            "--name",
            "Ops",
            "--email",
            "ops@x",
            "--admin",
        ],
    );
    let token = kiln(
        setup,
        url,
        &["admin", "token", "create", "--username", "ops"],
    );
    let project = kiln(
        setup,
        url,
        &[
            "admin",
            "project",
            "create",
            "--path",
            "team/app",
            "--repo",
            &repo.to_string_lossy(),
        ],
    );
    (token, project.parse().expect("project id"))
}

/// `kiln runner register` against `server` with `registration`, writing `config`.
pub fn register_runner(server: &str, registration: &str, config: &Path, extra: &[&str]) {
    let registered = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["runner", "register", "--url", server])
        .args(["--registration-token", registration])
        .args(extra)
        .arg("--config")
        .arg(config)
        .output()
        .expect("register");
    assert!(
        registered.status.success(),
        "register: {}",
        String::from_utf8_lossy(&registered.stderr)
    );
}

/// A `kiln runner run` process, its log beside its config; killed if the test ends first.
pub struct RunnerProcess {
    pub child: Child,
    pub log: std::path::PathBuf,
}

impl Drop for RunnerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RunnerProcess {
    pub fn start(config: &Path, builds: &Path, concurrency: usize) -> RunnerProcess {
        let log = config.with_extension("log");
        let child = Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(["runner", "run", "--concurrency", &concurrency.to_string()])
            .arg("--config")
            .arg(config)
            .arg("--builds-dir")
            .arg(builds)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("spawn runner");
        RunnerProcess { child, log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
