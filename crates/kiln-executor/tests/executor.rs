//! The executor with real bash processes in temp directories.

use kiln_executor::{
    execute, ArtifactsSpec, ArtifactsWhen, Dependency, ExecutorConfig, FailureReason, GitSource,
    Isolation, JobSpec, JobUser, SinkError, Transport,
};
use kiln_test_support::{alive, pid_in};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// A transport that keeps everything in memory: the trace (with when each part arrived),
/// uploaded archives, and archives to hand out as dependencies.
#[derive(Default)]
struct Collect {
    trace: Vec<u8>,
    arrivals: Vec<(Instant, Vec<u8>)>,
    uploads: Vec<(String, Vec<u8>)>,
    archives: std::collections::HashMap<i64, Vec<u8>>,
    /// Answer "job gone" to appends from this byte on.
    gone_after: Option<usize>,
}

impl Transport for Collect {
    async fn append_trace(&mut self, offset: u64, data: &[u8]) -> Result<(), SinkError> {
        assert_eq!(
            offset as usize,
            self.trace.len(),
            "appends follow each other"
        );
        if self.gone_after.is_some_and(|n| self.trace.len() >= n) {
            return Err(SinkError::JobGone);
        }
        self.trace.extend_from_slice(data);
        self.arrivals.push((Instant::now(), data.to_vec()));
        Ok(())
    }

    async fn download_artifacts(
        &mut self,
        dependency: &Dependency,
        zip: &Path,
    ) -> Result<(), String> {
        let data = self.archives.get(&dependency.id).ok_or("no such archive")?;
        std::fs::write(zip, data).map_err(|e| e.to_string())
    }

    async fn upload_artifacts(&mut self, zip: &Path, name: &str) -> Result<(), String> {
        let data = std::fs::read(zip).map_err(|e| e.to_string())?;
        self.uploads.push((name.to_owned(), data));
        Ok(())
    }

    async fn upload_dotenv(&mut self, gz: &[u8]) -> Result<(), String> {
        self.uploads.push(("dotenv".to_owned(), gz.to_vec()));
        Ok(())
    }
}

impl Collect {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.trace).into_owned()
    }
}

fn spec(script: &[&str]) -> JobSpec {
    JobSpec {
        id: 1,
        name: "job".into(),
        stage: "test".into(),
        git: None,
        workdir: None,
        before_script: vec![],
        script: script.iter().map(|s| s.to_string()).collect(),
        after_script: vec![],
        variables: vec![("GREETING".into(), "hello".into())],
        timeout: Duration::from_secs(30),
        artifacts: None,
        coverage_regex: None,
        dependencies: vec![],
        masked: vec![],
        file_variables: vec![],
        raw_variables: vec![],
        dotenv: vec![],
        cache: vec![],
        cache_scope: "group/project".into(),
        warnings: vec![],
    }
}

fn config(dir: &Path) -> ExecutorConfig {
    ExecutorConfig {
        kill_grace: Duration::from_millis(500),
        ..ExecutorConfig::new(dir.join("builds"))
    }
}

/// The entries of a zip archive, sorted.
fn zip_names(data: &[u8]) -> Vec<String> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(data)).unwrap();
    let mut names: Vec<String> = (0..zip.len())
        .map(|i| zip.by_index(i).unwrap().name().to_owned())
        .collect();
    names.sort();
    names
}

async fn run(spec: &JobSpec, config: &ExecutorConfig) -> (kiln_executor::Outcome, String) {
    let (outcome, sink) = run_with(spec, config, Collect::default()).await;
    (outcome, sink.text())
}

async fn run_with(
    spec: &JobSpec,
    config: &ExecutorConfig,
    mut sink: Collect,
) -> (kiln_executor::Outcome, Collect) {
    let (_tx, rx) = watch::channel(false);
    let outcome = execute(spec, config, &mut sink, rx).await;
    (outcome, sink)
}

/// Asserts that `pid` is gone within two seconds (a SIGKILL takes a moment to land).
async fn assert_gone(pid: i32, what: &str) {
    kiln_test_support::assert_gone_within(pid, Duration::from_secs(2), what).await;
}

/// Runs `job` until the pid files `pids` are written, then cancels it; returns the pids.
async fn cancel_once_started(
    job: &JobSpec,
    cfg: &ExecutorConfig,
    pids: &[PathBuf],
) -> (kiln_executor::Outcome, Vec<i32>, String) {
    let (tx, rx) = watch::channel(false);
    let files = pids.to_vec();
    let canceller = tokio::spawn(async move {
        let mut found = Vec::new();
        for file in &files {
            found.push(pid_in(file).await);
        }
        let _ = tx.send(true);
        (tx, found)
    });
    let mut sink = Collect::default();
    let outcome = execute(job, cfg, &mut sink, rx).await;
    let (_tx, found) = canceller.await.unwrap();
    (outcome, found, sink.text())
}

#[tokio::test]
async fn a_passing_script_succeeds_with_its_output_and_variables() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = spec(&["echo $GREETING from $CI_PROJECT_DIR", "echo done"]);
    job.before_script = vec!["echo before".into()];
    let (outcome, trace) = run(&job, &config(dir.path())).await;
    assert!(outcome.success(), "{trace}");
    assert!(
        trace.contains("$ echo $GREETING from $CI_PROJECT_DIR"),
        "{trace}"
    );
    assert!(trace.contains("hello from "), "{trace}");
    assert!(trace.find("before").unwrap() < trace.find("hello from").unwrap());
    assert!(trace.contains("Job succeeded"));
}

#[tokio::test]
async fn a_failing_command_stops_the_script_and_fails_with_its_code() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = spec(&["echo one", "exit 3", "echo never"]);
    job.script.insert(1, "true".into());
    let (outcome, trace) = run(&job, &config(dir.path())).await;
    assert_eq!(outcome.failure, Some(FailureReason::ScriptFailure));
    assert_eq!(outcome.exit_code, Some(3));
    assert!(!trace.contains("\nnever"), "{trace}");
    assert!(trace.contains("ERROR: Job failed: exit code 3"), "{trace}");
    let (outcome, _) = run(
        &spec(&["false || true", "set +e; false | cat; echo $?"]),
        &config(dir.path()),
    )
    .await;
    assert!(outcome.success());
    let (outcome, _) = run(&spec(&["false | cat"]), &config(dir.path())).await;
    assert_eq!(
        outcome.failure,
        Some(FailureReason::ScriptFailure),
        "pipefail is on"
    );
}

#[tokio::test]
async fn after_script_runs_after_a_failure_and_cannot_fail_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = spec(&["exit 1"]);
    job.after_script = vec![
        "echo after with status $CI_JOB_STATUS".into(),
        "exit 5".into(),
    ];
    let (outcome, trace) = run(&job, &config(dir.path())).await;
    assert_eq!(outcome.failure, Some(FailureReason::ScriptFailure));
    assert!(trace.contains("after with status failed"), "{trace}");
    let mut ok = spec(&["true"]);
    ok.after_script = vec!["exit 5".into()];
    assert!(run(&ok, &config(dir.path())).await.0.success());
}

#[tokio::test]
async fn coverage_comes_from_the_last_matching_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = spec(&[
        "echo 'Coverage: 50.0%'",
        "echo 'Coverage: 81.25%'",
        "echo tail",
    ]);
    job.coverage_regex = Some(r"Coverage: \d+\.\d+%".into());
    let (outcome, _) = run(&job, &config(dir.path())).await;
    assert_eq!(outcome.coverage, Some(81.25));
}

#[tokio::test]
async fn a_timeout_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("child.pid");
    let mut job = spec(&[
        &format!("sleep 60 & echo $! > {}", pid_file.display()),
        "sleep 30",
    ]);
    job.timeout = Duration::from_millis(500);
    let started = Instant::now();
    let (outcome, trace) = run(&job, &config(dir.path())).await;
    assert_eq!(outcome.failure, Some(FailureReason::JobExecutionTimeout));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(trace.contains("execution took longer than"), "{trace}");
    assert_gone(pid_in(&pid_file).await, "the background child").await;
}

/// A job's children that left its process group (`setsid`), and those that also emptied
/// their environment (`setsid env -i`), die with it on cancel, with either containment.
async fn setsid_children_die_on_cancel(isolation: Isolation) {
    let dir = tempfile::tempdir().unwrap();
    let (plain, detached, bare) = (
        dir.path().join("plain.pid"),
        dir.path().join("detached.pid"),
        dir.path().join("bare.pid"),
    );
    let job = spec(&[
        &format!("sleep 600 & echo $! > {}", plain.display()),
        &format!("(setsid sleep 600 & echo $! > {})", detached.display()),
        &format!("(setsid env -i sleep 600 & echo $! > {})", bare.display()),
        "sleep 600",
    ]);
    let cfg = ExecutorConfig {
        isolation,
        ..config(dir.path())
    };
    let (outcome, pids, trace) = cancel_once_started(&job, &cfg, &[plain, detached, bare]).await;
    assert!(outcome.canceled, "{trace}");
    for (pid, what) in pids
        .iter()
        .zip(["plain child", "setsid child", "setsid env -i child"])
    {
        assert_gone(*pid, what).await;
    }
}

#[tokio::test]
async fn setsid_children_die_on_cancel_in_a_cgroup_or_the_fallback() {
    setsid_children_die_on_cancel(Isolation::Auto).await;
}

#[tokio::test]
async fn setsid_children_die_on_cancel_with_process_tree_tracking() {
    setsid_children_die_on_cancel(Isolation::ProcessTree).await;
}

#[tokio::test]
async fn the_trace_says_how_the_job_is_contained() {
    let dir = tempfile::tempdir().unwrap();
    let (_, trace) = run(&spec(&["true"]), &config(dir.path())).await;
    assert!(trace.contains("the job's processes are kept in"), "{trace}");
    let cfg = ExecutorConfig {
        isolation: Isolation::ProcessTree,
        ..config(dir.path())
    };
    let (_, trace) = run(&spec(&["true"]), &cfg).await;
    assert!(
        trace.contains("process-tree tracking (child subreaper)"),
        "{trace}"
    );
}

#[tokio::test]
async fn cancel_kills_a_running_sleep_and_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("child.pid");
    let job = spec(&[&format!(
        "(sleep 60; echo late) & echo $! > {}; sleep 30",
        pid_file.display()
    )]);
    let (outcome, pids, _) = cancel_once_started(&job, &config(dir.path()), &[pid_file]).await;
    assert!(outcome.canceled);
    assert!(!outcome.success());
    assert_gone(pids[0], "the background child").await;
}

#[tokio::test]
async fn a_job_does_not_see_the_runners_environment() {
    // cargo gives the test process this variable: the job must not inherit it.
    assert!(std::env::var("CARGO_MANIFEST_DIR").is_ok());
    let dir = tempfile::tempdir().unwrap();
    let (outcome, trace) = run(
        &spec(&[
            "echo \"manifest=${CARGO_MANIFEST_DIR:-none} greeting=$GREETING path=${PATH:+set}\"",
        ]),
        &config(dir.path()),
    )
    .await;
    assert!(outcome.success(), "{trace}");
    assert!(
        trace.contains("manifest=none greeting=hello path=set"),
        "{trace}"
    );
}

#[tokio::test]
async fn the_live_trace_shows_output_while_the_job_sleeps() {
    let dir = tempfile::tempdir().unwrap();
    let job = spec(&["date +%s%N; sleep 1"]);
    let started = Instant::now();
    let (outcome, sink) = run_with(&job, &config(dir.path()), Collect::default()).await;
    assert!(outcome.success(), "{}", sink.text());
    let printed = sink
        .arrivals
        .iter()
        .find(|(_, data)| {
            String::from_utf8_lossy(data)
                .lines()
                .any(|l| l.len() == 19 && l.bytes().all(|b| b.is_ascii_digit()))
        })
        .expect("the timestamp line arrived");
    let line = String::from_utf8_lossy(&printed.1)
        .lines()
        .find(|l| l.len() == 19 && l.bytes().all(|b| b.is_ascii_digit()))
        .unwrap()
        .to_owned();
    let printed_ns: u128 = line.parse().unwrap();
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let arrived_ns = now_ns - printed.0.elapsed().as_nanos();
    let lag_ms = (arrived_ns.saturating_sub(printed_ns)) / 1_000_000;
    assert!(lag_ms < 200, "the line arrived {lag_ms} ms after its print");
    // And it arrived during the sleep, not after it.
    assert!(printed.0.duration_since(started) < Duration::from_millis(900));
}

#[tokio::test]
async fn a_transport_that_says_the_job_is_gone_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("child.pid");
    let job = spec(&[
        &format!("sleep 60 & echo $! > {}", pid_file.display()),
        "while true; do echo tick; sleep 0.05; done",
    ]);
    let sink = Collect {
        gone_after: Some(2_000),
        ..Collect::default()
    };
    let started = Instant::now();
    let (outcome, _) = run_with(&job, &config(dir.path()), sink).await;
    assert!(outcome.canceled);
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_gone(pid_in(&pid_file).await, "the job's child").await;
}

#[tokio::test]
async fn a_job_user_cannot_read_the_runners_files() {
    // Switching users needs root; CI runs as root.
    if unsafe { libc_geteuid() } != 0 {
        eprintln!("not root: the job-user test needs root to switch users");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The runner's data: private to it.
    let secret = dir.path().join("kiln.db");
    std::fs::write(&secret, "token hashes").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    // The builds dir must be reachable by the job user.
    let builds = tempfile::tempdir().unwrap();
    std::fs::set_permissions(builds.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let cfg = ExecutorConfig {
        job_user: Some(JobUser::lookup("nobody").expect("the nobody account")),
        ..ExecutorConfig::new(builds.path().join("b"))
    };
    let job = spec(&[
        "echo uid=$(id -u)",
        &format!(
            "if cat {} 2>/dev/null; then echo READ; else echo refused; fi",
            secret.display()
        ),
        "echo made > mine.txt && cat mine.txt",
    ]);
    let (outcome, trace) = run(&job, &cfg).await;
    assert!(outcome.success(), "{trace}");
    assert!(
        trace.contains(&format!("uid={}", JobUser::lookup("nobody").unwrap().uid)),
        "{trace}"
    );
    assert!(
        trace.contains("\nrefused\n") && !trace.contains("\nREAD\n"),
        "{trace}"
    );
    assert!(trace.contains("\nmade"), "{trace}");
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

#[tokio::test]
async fn after_script_runs_after_a_cancel_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = spec(&["sleep 30"]);
    job.after_script = vec!["echo cleaning up after $CI_JOB_STATUS".into()];
    let (tx, rx) = watch::channel(false);
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _ = tx.send(true);
        tx
    });
    let mut sink = Collect::default();
    let outcome = execute(&job, &config(dir.path()), &mut sink, rx).await;
    let _tx = canceller.await.unwrap();
    assert!(outcome.canceled);
    let trace = sink.text();
    assert!(trace.contains("cleaning up after canceled"), "{trace}");
}

#[tokio::test]
async fn a_job_dropped_midway_takes_its_processes_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("child.pid");
    let job = spec(&[&format!(
        "(setsid sleep 60 & echo $! > {}); sleep 30",
        pid_file.display()
    )]);
    let cfg = config(dir.path());
    let (_tx, rx) = watch::channel(false);
    let mut sink = Collect::default();
    // The server shutting down drops the job's future wherever it is.
    let mut run = Box::pin(execute(&job, &cfg, &mut sink, rx));
    let pid = tokio::select! {
        _ = &mut run => panic!("the job ended by itself"),
        pid = pid_in(&pid_file) => pid,
    };
    assert!(alive(pid));
    drop(run);
    assert_gone(pid, "the job's detached child").await;
}

#[tokio::test]
async fn artifacts_are_zipped_and_too_large_ones_fail_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = spec(&[
        "mkdir -p out/sub",
        "echo report > out/report.txt",
        "echo x > out/sub/x.log",
        "echo y > y.bin",
    ]);
    job.artifacts = Some(ArtifactsSpec {
        name: "report-$GREETING".into(),
        untracked: false,
        paths: vec!["out/".into(), "*.bin".into(), "missing/".into()],
        exclude: vec!["out/sub/*.log".into()],
        when: ArtifactsWhen::OnSuccess,
    });
    let (outcome, sink) = run_with(&job, &config(dir.path()), Collect::default()).await;
    let trace = sink.text();
    assert!(outcome.success(), "{trace}");
    assert!(trace.contains("missing/: no matching files"), "{trace}");
    let [(name, zip)] = &sink.uploads[..] else {
        panic!("one upload: {:?}", sink.uploads.len())
    };
    assert_eq!(name, "report-hello");
    assert_eq!(zip_names(zip), vec!["out/report.txt", "y.bin"]);

    let mut big = job.clone();
    big.script = vec!["head -c 300000 /dev/urandom > y.bin".into()];
    let small = ExecutorConfig {
        max_artifacts_bytes: 1_000,
        ..config(dir.path())
    };
    let (outcome, trace) = run(&big, &small).await;
    assert_eq!(outcome.failure, Some(FailureReason::ArtifactsTooLarge));
    assert!(trace.contains("over the limit of 1000 bytes"), "{trace}");

    // Archiving stops once past the limit: 40 MB of output never becomes a 40 MB archive.
    big.script = vec!["head -c 40000000 /dev/urandom > y.bin".into()];
    let limited = ExecutorConfig {
        max_artifacts_bytes: 1_000_000,
        ..config(dir.path())
    };
    let (outcome, trace) = run(&big, &limited).await;
    assert_eq!(outcome.failure, Some(FailureReason::ArtifactsTooLarge));
    let passed: u64 = trace
        .split("the archive passed ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("size in the trace");
    assert!(passed < 3_000_000, "stopped at {passed} bytes");
}

#[tokio::test]
async fn artifact_paths_are_expanded_with_the_jobs_variables() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = spec(&[
        "mkdir -p out",
        "echo a > out/a.txt",
        "echo b > hello.log",
        "echo c > c.txt",
    ]);
    job.artifacts = Some(ArtifactsSpec {
        name: "artifacts".into(),
        untracked: false,
        paths: vec![
            "$CI_PROJECT_DIR/out/*.txt".into(),
            "${GREETING}.log".into(),
            "c.txt".into(),
        ],
        exclude: vec!["$CI_PROJECT_DIR/c.txt".into()],
        when: ArtifactsWhen::OnSuccess,
    });
    let (outcome, sink) = run_with(&job, &config(dir.path()), Collect::default()).await;
    assert!(outcome.success(), "{}", sink.text());
    let [(_, zip)] = &sink.uploads[..] else {
        panic!("one upload: {}", sink.text())
    };
    assert_eq!(zip_names(zip), vec!["hello.log", "out/a.txt"]);
}

#[tokio::test]
async fn variables_get_the_runners_expansion_pass() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = spec(&["echo \"[$WHERE] [$ESC] [$RAW] [$CONF_AT]\""]);
    job.variables.extend([
        ("WHERE".to_string(), "$CI_PROJECT_DIR/x".to_string()),
        ("ESC".to_string(), "$$GREETING".to_string()),
        ("RAW".to_string(), "$GREETING".to_string()),
        ("CONF".to_string(), "contents".to_string()),
        ("CONF_AT".to_string(), "$CONF".to_string()),
    ]);
    job.raw_variables = vec!["RAW".into()];
    job.file_variables = vec!["CONF".into()];
    let (outcome, trace) = run(&job, &config(dir.path())).await;
    assert!(outcome.success(), "{trace}");
    let line = trace
        .lines()
        .find(|l| l.starts_with('[') && l.contains("/x]"))
        .unwrap_or_default();
    assert!(line.contains("] [$GREETING] [$GREETING] ["), "{trace}");
    assert!(line.ends_with("/CONF]"), "{trace}");
}

#[tokio::test]
async fn untracked_artifacts_are_the_files_git_does_not_track() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = spec(&[
        "git init -q .",
        "echo t > tracked.txt",
        "git add tracked.txt",
        "echo u > untracked.txt",
        "mkdir -p ignored && echo i > ignored/i.txt && echo ignored/ > .gitignore",
    ]);
    job.artifacts = Some(ArtifactsSpec {
        name: "artifacts".into(),
        untracked: true,
        paths: vec![],
        exclude: vec![],
        when: ArtifactsWhen::OnSuccess,
    });
    let (outcome, sink) = run_with(&job, &config(dir.path()), Collect::default()).await;
    assert!(outcome.success(), "{}", sink.text());
    assert_eq!(
        zip_names(&sink.uploads[0].1),
        vec![".gitignore", "ignored/i.txt", "untracked.txt"]
    );

    // The archive reaches a later job through its transport.
    let mut later = spec(&["cat untracked.txt ignored/i.txt"]);
    later.id = 2;
    later.dependencies = vec![Dependency {
        id: 1,
        name: "job".into(),
    }];
    let mut archives = std::collections::HashMap::new();
    archives.insert(1, sink.uploads[0].1.clone());
    let (outcome, sink) = run_with(
        &later,
        &config(dir.path()),
        Collect {
            archives,
            ..Collect::default()
        },
    )
    .await;
    let trace = sink.text();
    assert!(outcome.success(), "{trace}");
    assert!(trace.contains("Downloading artifacts for job"), "{trace}");
    assert!(trace.contains("\nu\ni\n"), "{trace}");
}

#[tokio::test]
async fn the_trace_is_capped_with_a_notice() {
    let dir = tempfile::tempdir().unwrap();
    let job = spec(&["head -c 200000 /dev/zero | tr '\\0' 'a'", "echo finished"]);
    let cfg = ExecutorConfig {
        max_trace_bytes: 10_000,
        ..config(dir.path())
    };
    let (outcome, trace) = run(&job, &cfg).await;
    assert!(outcome.success());
    assert!(
        trace.contains("Job's log exceeded limit of 10000 bytes."),
        "{}",
        &trace[..200]
    );
    assert!(trace.len() < 11_000, "{}", trace.len());
}

#[tokio::test]
async fn checkout_of_a_real_repository() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let git = |args: &[&str]| {
        let ok = std::process::Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(args)
            .status()
            .unwrap()
            .success();
        assert!(ok, "git {args:?}");
    };
    std::fs::create_dir_all(&repo).unwrap();
    git(&["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("file.txt"), "first\n").unwrap();
    git(&["add", "."]);
    git(&[
        "-c",
        "user.name=T",
        "-c",
        "user.email=t@x",
        "commit",
        "-qm",
        "one",
    ]);
    let sha = String::from_utf8(
        std::process::Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(["rev-parse", "HEAD"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    std::fs::write(repo.join("file.txt"), "second\n").unwrap();
    git(&[
        "-c",
        "user.name=T",
        "-c",
        "user.email=t@x",
        "commit",
        "-qam",
        "two",
    ]);
    let mut job = spec(&["cat file.txt"]);
    job.git = Some(GitSource {
        url: repo.to_string_lossy().into_owned(),
        sha: sha.trim().to_owned(),
        ref_name: "main".into(),
    });
    let (outcome, trace) = run(&job, &config(dir.path())).await;
    assert!(outcome.success(), "{trace}");
    assert!(
        trace.contains("first") && !trace.contains("second"),
        "{trace}"
    );
}
