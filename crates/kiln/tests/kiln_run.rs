//! `kiln run`'s choices, each proved by running real jobs: listing, named jobs that keep their
//! `when`, `--needs`, `--stage`, `--manual`, `--variable` and the variables file, `-j N` jobs
//! side by side, `--artifacts-to-host`, and each job's copy of the tree without `.git`.

mod support;

use std::path::Path;
use std::process::{Command, Output};

const PIPELINE: &str = "stages: [build, test, deploy]
build:
  stage: build
  script:
    - mkdir -p out && echo built > out/thing
    - test ! -e .git && echo no-git-here
  artifacts:
    paths: [out/]
lint:
  stage: build
  script: [echo linted]
broken:
  stage: test
  script: [echo breaking, exit 3]
cleanup:
  stage: deploy
  when: always
  script: [echo cleaned]
deploy:
  stage: deploy
  needs: [build]
  when: manual
  script: [cat out/thing, echo \"deployed with $WHO from $SOURCE\"]
";

fn repo(ci: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("dir");
    support::git_repo(dir.path(), ci, &[]);
    dir
}

fn kiln_run(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .current_dir(dir)
        .arg("run")
        .args(args)
        .env("XDG_CONFIG_HOME", dir.join("no-config"))
        // Caches stay with the test's repository (inside .git, which no job copy takes).
        .env("XDG_CACHE_HOME", dir.join(".git").join("cache-home"))
        .output()
        .expect("run kiln");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

/// The status the summary table gives `job`.
fn status_of(out: &str, job: &str) -> String {
    out.lines()
        .rev()
        .find_map(|l| {
            let mut cols = l.split_whitespace();
            (cols.next() == Some(job)).then(|| cols.nth(1).unwrap_or("").to_owned())
        })
        .unwrap_or_default()
}

#[test]
fn list_shows_stage_when_and_needs() {
    let dir = repo(PIPELINE);
    let (code, out) = kiln_run(dir.path(), &["--list"]);
    assert_eq!(code, Some(0), "{out}");
    let deploy = out.lines().find(|l| l.starts_with("deploy")).unwrap_or("");
    assert!(
        deploy.contains("deploy") && deploy.contains("manual") && deploy.ends_with("build"),
        "{out}"
    );
    assert!(out.contains("(stage order)"), "{out}");
    assert!(!out.contains("linted"), "nothing runs: {out}");
}

#[test]
fn the_whole_pipeline_keeps_whens_and_fails_with_its_status() {
    let dir = repo(PIPELINE);
    let (code, out) = kiln_run(dir.path(), &["-j", "1"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("\nno-git-here"), "{out}");
    assert_eq!(status_of(&out, "broken"), "failed", "{out}");
    assert_eq!(
        status_of(&out, "cleanup"),
        "success",
        "when: always runs: {out}"
    );
    assert_eq!(status_of(&out, "deploy"), "manual", "{out}");
}

#[test]
fn named_jobs_keep_their_when_and_needs_brings_what_they_need() {
    let dir = repo(PIPELINE);
    // Named jobs keep their `when`: cleanup (always) runs after broken failed.
    let (code, out) = kiln_run(dir.path(), &["broken", "cleanup"]);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(status_of(&out, "cleanup"), "success", "{out}");
    // A named manual job is played; --needs brings build (not lint).
    std::fs::write(
        dir.path().join(".kiln-variables.yml"),
        "WHO: file\nSOURCE: the-file\n",
    )
    .expect("variables file");
    let (code, out) = kiln_run(
        dir.path(),
        &["deploy", "--needs", "-j", "1", "--variable", "WHO=flag"],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("\ndeployed with flag from the-file"), "{out}");
    assert_eq!(status_of(&out, "build"), "success", "{out}");
    assert!(!out.contains("linted"), "{out}");
    // --stage runs one stage; --manual plays a manual job of the whole pipeline.
    let (_, out) = kiln_run(dir.path(), &["--stage", "build"]);
    assert!(out.contains("linted") && !out.contains("breaking"), "{out}");
    let (_, out) = kiln_run(dir.path(), &["--manual", "deploy"]);
    assert_eq!(status_of(&out, "deploy"), "success", "{out}");
}

#[test]
fn jobs_run_side_by_side_with_j_and_artifacts_come_back_on_request() {
    // Each job waits for the other to have started: only concurrent jobs both succeed.
    let meet = tempfile::tempdir().expect("meeting place");
    let ci = format!(
        "left:
  script:
    - touch {m}/left
    - for i in $(seq 1 100); do test -e {m}/right && break; sleep 0.1; done
    - test -e {m}/right
    - mkdir -p made && echo from-left > made/left.txt
  artifacts:
    paths: [made/]
right:
  script:
    - touch {m}/right
    - for i in $(seq 1 100); do test -e {m}/left && break; sleep 0.1; done
    - test -e {m}/left
",
        m = meet.path().display()
    );
    let dir = repo(&ci);
    let (code, out) = kiln_run(dir.path(), &["-j", "2", "--artifacts-to-host"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("left │ ") && out.contains("right │ "), "{out}");
    let back = std::fs::read_to_string(dir.path().join("made/left.txt")).unwrap_or_default();
    assert_eq!(back.trim(), "from-left");
}

const CACHED: &str = "deps:
  script:
    - if [ -f vendor/stamp ]; then echo \"restored $(cat vendor/stamp)\"; else echo cache-was-empty; fi
    - mkdir -p vendor && echo \"run-$RUN\" > vendor/stamp
  cache:
    key: deps-$CI_COMMIT_REF_SLUG
    paths: [vendor/]
";

#[test]
fn a_runs_cache_is_restored_in_the_next_run() {
    let dir = repo(CACHED);
    let (code, first) = kiln_run(dir.path(), &["--variable", "RUN=one"]);
    assert_eq!(code, Some(0), "{first}");
    assert!(first.contains("cache-was-empty"), "{first}");
    assert!(first.contains("Created cache"), "{first}");
    let (code, second) = kiln_run(dir.path(), &["--variable", "RUN=two"]);
    assert_eq!(code, Some(0), "{second}");
    assert!(second.contains("restored run-one"), "{second}");
    // The key was expanded with the job's variables (the branch's slug).
    let branch = Command::new("git")
        .current_dir(dir.path())
        .args(["rev-parse", "--abbrev-ref", "HEAD"])
        .output()
        .expect("git");
    let branch = String::from_utf8_lossy(&branch.stdout).trim().to_owned();
    assert!(
        second.contains(&format!("Successfully extracted cache deps-{branch}")),
        "{second}"
    );
    assert!(
        !dir.path().join("vendor").exists(),
        "the cache is the jobs', not the working tree's"
    );
}

#[test]
fn what_kiln_cannot_honour_is_a_warning_in_the_jobs_trace() {
    let dir = repo("build:\n  script: [echo built]\ntest:\n  needs: [build, {project: other/repo, job: pack, ref: main}]\n  script: [echo tested]\n");
    let (code, out) = kiln_run(dir.path(), &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("WARNING: needs: job `pack` of project `other/repo` was left out"),
        "{out}"
    );
    assert_eq!(status_of(&out, "test"), "success", "{out}");
}
