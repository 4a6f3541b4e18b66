//! The executor with real bash processes in temp directories.

use kiln_runner::{execute, ArtifactsSpec, ExecutorConfig, FailureReason, JobSpec, TraceSink};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::sync::watch;

#[derive(Default)]
struct Collect(Vec<u8>);

impl TraceSink for Collect {
    async fn append(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }
}

impl Collect {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

fn spec(script: &[&str]) -> JobSpec {
    JobSpec {
        id: 1,
        name: "job".into(),
        stage: "test".into(),
        repo: None,
        workdir: None,
        sha: "0".repeat(40),
        ref_name: "master".into(),
        before_script: vec![],
        script: script.iter().map(|s| s.to_string()).collect(),
        after_script: vec![],
        variables: vec![("GREETING".into(), "hello".into())],
        timeout: Duration::from_secs(30),
        artifacts: None,
        coverage_regex: None,
        dependencies: vec![],
    }
}

fn config(dir: &Path) -> ExecutorConfig {
    ExecutorConfig {
        kill_grace: Duration::from_millis(500),
        ..ExecutorConfig::new(dir.join("builds"))
    }
}

/// The entries of a zip archive, sorted.
fn zip_names(path: &Path) -> Vec<String> {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut names: Vec<String> = (0..zip.len())
        .map(|i| zip.by_index(i).unwrap().name().to_owned())
        .collect();
    names.sort();
    names
}

async fn run(spec: &JobSpec, config: &ExecutorConfig) -> (kiln_runner::Outcome, String) {
    let (_tx, rx) = watch::channel(false);
    let mut sink = Collect::default();
    let outcome = execute(spec, config, &mut sink, rx).await;
    (outcome, sink.text())
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
    let marker = dir.path().join("marker");
    let mut job = spec(&[
        &format!("(sleep 2; touch {}) &", marker.display()),
        "sleep 30",
    ]);
    job.timeout = Duration::from_millis(500);
    let started = Instant::now();
    let (outcome, trace) = run(&job, &config(dir.path())).await;
    assert_eq!(outcome.failure, Some(FailureReason::JobExecutionTimeout));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(trace.contains("execution took longer than"), "{trace}");
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(
        !marker.exists(),
        "the background child was killed with its group"
    );
}

#[tokio::test]
async fn cancel_kills_a_running_sleep_and_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    let job = spec(&[&format!("(sleep 1; touch {}) & sleep 30", marker.display())]);
    let (tx, rx) = watch::channel(false);
    let cfg = config(dir.path());
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _ = tx.send(true);
        tx
    });
    let mut sink = Collect::default();
    let outcome = execute(&job, &cfg, &mut sink, rx).await;
    let _tx = canceller.await.unwrap();
    assert!(outcome.canceled);
    assert!(!outcome.success());
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(!marker.exists(), "the marker file never appears");
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
async fn a_job_dropped_midway_takes_its_process_group_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    let started = dir.path().join("started");
    let job = spec(&[&format!(
        "touch {}; (sleep 1; touch {}) & sleep 30",
        started.display(),
        marker.display()
    )]);
    let cfg = config(dir.path());
    let (_tx, rx) = watch::channel(false);
    let mut sink = Collect::default();
    // The server shutting down drops the job's future wherever it is.
    let run = execute(&job, &cfg, &mut sink, rx);
    let dropped = tokio::time::timeout(Duration::from_millis(500), run).await;
    assert!(dropped.is_err(), "the job was still running");
    assert!(started.exists(), "the script had started");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(!marker.exists(), "the marker file never appears");
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
        when: "on_success".into(),
    });
    let (outcome, trace) = run(&job, &config(dir.path())).await;
    assert!(outcome.success(), "{trace}");
    assert!(trace.contains("missing/: no matching files"), "{trace}");
    let zip_path = outcome.artifacts.expect("artifacts");
    assert_eq!(zip_path.file_name().unwrap(), "report-hello.zip");
    let names = zip_names(&zip_path);
    assert_eq!(names, vec!["out/report.txt", "y.bin"]);

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
        when: "on_success".into(),
    });
    let (outcome, trace) = run(&job, &config(dir.path())).await;
    assert!(outcome.success(), "{trace}");
    let zip_path = outcome.artifacts.expect("artifacts");
    let names = zip_names(&zip_path);
    assert_eq!(names, vec![".gitignore", "ignored/i.txt", "untracked.txt"]);
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
    job.repo = Some(repo.to_string_lossy().into_owned());
    job.sha = sha.trim().to_owned();
    let (outcome, trace) = run(&job, &config(dir.path())).await;
    assert!(outcome.success(), "{trace}");
    assert!(
        trace.contains("first") && !trace.contains("second"),
        "{trace}"
    );
}
