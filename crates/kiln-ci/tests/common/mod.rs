//! Shared helpers for the integration tests: pipeline contexts and a fixture repository.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_ci::{compile, lint, CompileContext, CompileError, PipelinePlan};

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
}

/// Reads `tests/fixtures/repo/<path>`, the repository the fixtures include from.
pub fn read_repo(path: &str) -> Option<String> {
    if path.split('/').any(|part| part == "..") {
        return None;
    }
    std::fs::read_to_string(fixtures_dir().join("repo").join(path)).ok()
}

/// A named pipeline: ref, tag flag, source and the predefined variables GitLab would set.
pub struct Ctx {
    pub name: &'static str,
    pub ref_name: &'static str,
    pub tag: bool,
    pub source: &'static str,
    pub vars: BTreeMap<String, String>,
}

fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn ctx(name: &str) -> Ctx {
    let branch = |name, ref_name, source| Ctx {
        name,
        ref_name,
        tag: false,
        source,
        vars: vars(&[
            ("CI_COMMIT_BRANCH", ref_name),
            ("CI_COMMIT_REF_NAME", ref_name),
            ("CI_DEFAULT_BRANCH", "main"),
            ("CI_PIPELINE_SOURCE", source),
        ]),
    };
    match name {
        "main" => branch("main", "main", "push"),
        "feature" => branch("feature", "feature/login", "push"),
        "schedule" => branch("schedule", "main", "schedule"),
        "web" => branch("web", "main", "web"),
        "tag" => Ctx {
            name: "tag",
            ref_name: "v1.0",
            tag: true,
            source: "push",
            vars: vars(&[
                ("CI_COMMIT_TAG", "v1.0"),
                ("CI_COMMIT_REF_NAME", "v1.0"),
                ("CI_DEFAULT_BRANCH", "main"),
                ("CI_PIPELINE_SOURCE", "push"),
            ]),
        },
        "merge_request" => Ctx {
            name: "merge_request",
            ref_name: "refs/merge-requests/1/head",
            tag: false,
            source: "merge_request_event",
            vars: vars(&[
                ("CI_MERGE_REQUEST_IID", "1"),
                ("CI_COMMIT_REF_NAME", "feature/login"),
                ("CI_DEFAULT_BRANCH", "main"),
                ("CI_PIPELINE_SOURCE", "merge_request_event"),
            ]),
        },
        other => panic!("unknown context {other}"),
    }
}

/// Compiles `text` for the named context ("lint" runs the linter instead).
pub fn run(text: &str, context: &str) -> Result<PipelinePlan, CompileError> {
    if context == "lint" {
        return lint(text, &read_repo);
    }
    let c = ctx(context);
    compile(
        text,
        &CompileContext {
            ref_name: c.ref_name,
            tag: c.tag,
            source: c.source,
            variables: &c.vars,
            repository: &read_repo,
        },
    )
}

/// Compiles for the "main" context with extra variables (trigger variables).
pub fn run_with_vars(text: &str, extra: &[(&str, &str)]) -> Result<PipelinePlan, CompileError> {
    let mut c = ctx("main");
    c.vars
        .extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    compile(
        text,
        &CompileContext {
            ref_name: c.ref_name,
            tag: c.tag,
            source: c.source,
            variables: &c.vars,
            repository: &read_repo,
        },
    )
}
