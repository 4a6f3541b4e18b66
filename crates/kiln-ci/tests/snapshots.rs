//! Fixture files (GitLab documentation examples) compiled under several pipeline contexts and
//! compared with reviewed JSON snapshots in `tests/snapshots/<fixture>__<context>.json`.
//! Run with `UPDATE_SNAPSHOTS=1` to rewrite the snapshots, then review the diff.

mod common;

use std::path::Path;

fn check(fixture: &str, contexts: &[&str]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let text = std::fs::read_to_string(dir.join("fixtures").join(format!("{fixture}.yml")))
        .unwrap_or_else(|e| panic!("fixture {fixture}: {e}"));
    let update = std::env::var("UPDATE_SNAPSHOTS").is_ok_and(|v| v == "1");
    let mut mismatches = Vec::new();
    for context in contexts {
        let actual = match common::run(&text, context) {
            Ok(plan) => serde_json::to_string_pretty(&plan).expect("plan serialises"),
            Err(e) => serde_json::to_string_pretty(
                &serde_json::json!({"error": {"path": e.path, "message": e.message}}),
            )
            .expect("json"),
        } + "\n";
        let path = dir
            .join("snapshots")
            .join(format!("{fixture}__{context}.json"));
        if update {
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, &actual).expect("write snapshot");
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(expected) if expected == actual => {}
            Ok(expected) => mismatches.push(format!(
                "{}: snapshot differs\n--- expected\n{expected}\n--- actual\n{actual}",
                path.display()
            )),
            Err(_) => mismatches.push(format!(
                "{}: missing snapshot (run with UPDATE_SNAPSHOTS=1)\n{actual}",
                path.display()
            )),
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn basic_stages() {
    check("basic_stages", &["main", "tag", "lint"]);
}

#[test]
fn anchors_merge() {
    check("anchors_merge", &["main"]);
}

#[test]
fn extends_multi_level() {
    check("extends_multi_level", &["main", "feature", "lint"]);
}

#[test]
fn default_legacy() {
    check("default_legacy", &["main"]);
}

#[test]
fn include_local() {
    check("include_local", &["main", "lint"]);
}

#[test]
fn rules() {
    check(
        "rules",
        &[
            "main",
            "feature",
            "tag",
            "schedule",
            "merge_request",
            "lint",
        ],
    );
}

#[test]
fn only_except() {
    check(
        "only_except",
        &["main", "feature", "tag", "schedule", "merge_request", "web"],
    );
}

#[test]
fn needs_dag() {
    check("needs_dag", &["main", "feature", "lint"]);
}

#[test]
fn artifacts_coverage() {
    check("artifacts_coverage", &["main"]);
}

#[test]
fn manual_jobs() {
    check("manual_jobs", &["main"]);
}

#[test]
fn hidden_jobs() {
    check("hidden_jobs", &["main"]);
}

#[test]
fn workflow() {
    check("workflow", &["main", "tag", "feature", "schedule", "lint"]);
}

#[test]
fn parallel() {
    check("parallel", &["main"]);
}

#[test]
fn reference() {
    check("reference", &["main"]);
}
