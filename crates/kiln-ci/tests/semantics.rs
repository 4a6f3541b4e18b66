//! Behaviour checks that are easier to read as assertions than as snapshots.

mod common;

use std::collections::HashMap;

use kiln_ci::{lint, parse_duration, When};

fn job<'a>(plan: &'a kiln_ci::PipelinePlan, name: &str) -> &'a kiln_ci::JobPlan {
    plan.jobs
        .iter()
        .find(|j| j.name == name)
        .unwrap_or_else(|| panic!("no job {name} in {plan:#?}"))
}

fn names(plan: &kiln_ci::PipelinePlan) -> Vec<&str> {
    plan.jobs.iter().map(|j| j.name.as_str()).collect()
}

fn var<'a>(job: &'a kiln_ci::JobPlan, key: &str) -> Option<&'a str> {
    job.variables
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[test]
fn manual_allow_failure_defaults() {
    let text = "\
job-manual:
  script: x
  when: manual
rule-manual:
  script: x
  rules:
    - when: manual
rule-manual-allowed:
  script: x
  rules:
    - when: manual
      allow_failure: true
job-allow-rule-manual:
  script: x
  allow_failure: true
  rules:
    - when: manual
manual-not-allowed:
  script: x
  when: manual
  allow_failure: false
";
    let plan = common::run(text, "main").unwrap();
    let af = |n: &str| (job(&plan, n).when, job(&plan, n).allow_failure);
    assert_eq!(af("job-manual"), (When::Manual, true));
    assert_eq!(af("rule-manual"), (When::Manual, false));
    assert_eq!(af("rule-manual-allowed"), (When::Manual, true));
    assert_eq!(af("job-allow-rule-manual"), (When::Manual, true));
    assert_eq!(af("manual-not-allowed"), (When::Manual, false));
}

#[test]
fn rule_when_defaults_to_job_when() {
    let text = "job:\n  script: x\n  when: manual\n  rules:\n    - if: $CI_COMMIT_BRANCH\n";
    let plan = common::run(text, "main").unwrap();
    assert_eq!(
        (plan.jobs[0].when, plan.jobs[0].allow_failure),
        (When::Manual, true)
    );
}

#[test]
fn rule_variables_see_file_job_and_context_variables() {
    let text = "\
variables:
  DEPLOY: \"false\"
  GLOBAL_ONLY: \"yes\"
from-global:
  script: x
  rules:
    - if: $GLOBAL_ONLY == \"yes\"
from-job:
  script: x
  variables:
    LOCAL: \"1\"
  rules:
    - if: $LOCAL == \"1\"
deploy:
  script: x
  rules:
    - if: $DEPLOY == \"true\"
";
    let plan = common::run(text, "main").unwrap();
    assert_eq!(names(&plan), ["from-global", "from-job"]);
    // A trigger/web variable overrides the file's default for rule evaluation.
    let plan = common::run_with_vars(text, &[("DEPLOY", "true")]).unwrap();
    assert_eq!(names(&plan), ["from-global", "from-job", "deploy"]);
}

#[test]
fn variables_precedence_in_plan() {
    let text = "\
variables:
  A: global
  B: global
  C: global
job:
  script: x
  variables:
    B: job
    C: job
  rules:
    - variables:
        C: rule
";
    let plan = common::run(text, "main").unwrap();
    let j = &plan.jobs[0];
    assert_eq!(
        j.variables,
        [("A", "global"), ("B", "job"), ("C", "rule")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .to_vec()
    );
    // `variables: {}` in a job keeps the globals.
    let plan = common::run(
        "variables: {A: g}\njob:\n  script: x\n  variables: {}\n",
        "main",
    )
    .unwrap();
    assert_eq!(var(&plan.jobs[0], "A"), Some("g"));
}

#[test]
fn workflow_rule_variables_override_globals() {
    let text = "\
workflow:
  rules:
    - if: $CI_COMMIT_BRANCH == \"main\"
      variables:
        ENV: production
    - when: always
variables:
  ENV: staging
deploy:
  script: x
  rules:
    - if: $ENV == \"production\"
build:
  script: x
";
    let main = common::run(text, "main").unwrap();
    assert_eq!(names(&main), ["deploy", "build"]);
    assert_eq!(var(job(&main, "build"), "ENV"), Some("production"));
    let feature = common::run(text, "feature").unwrap();
    assert_eq!(names(&feature), ["build"]);
    assert_eq!(var(job(&feature, "build"), "ENV"), Some("staging"));
}

#[test]
fn workflow_rules_remove_default_only() {
    // Without workflow:rules a job with no only/rules runs on branches and tags only.
    let text = "job:\n  script: x\n";
    assert!(common::run(text, "merge_request").unwrap().jobs.is_empty());
    let with_workflow = "workflow:\n  rules:\n    - when: always\njob:\n  script: x\n";
    assert_eq!(
        names(&common::run(with_workflow, "merge_request").unwrap()),
        ["job"]
    );
}

#[test]
fn stage_ordering_is_stable_and_unused_stages_dropped() {
    let text = "\
stages: [build, test, deploy, unused]
d1: {stage: deploy, script: x}
t1: {script: x}
b1: {stage: build, script: x}
d2: {stage: deploy, script: x}
post: {stage: .post, script: x}
pre: {stage: .pre, script: x}
t2: {stage: test, script: x}
";
    let plan = common::run(text, "main").unwrap();
    assert_eq!(plan.stages, [".pre", "build", "test", "deploy", ".post"]);
    assert_eq!(names(&plan), ["pre", "b1", "t1", "t2", "d1", "d2", "post"]);
    let idx: Vec<usize> = plan.jobs.iter().map(|j| j.stage_idx).collect();
    assert_eq!(idx, [0, 1, 2, 2, 3, 3, 4]);
}

#[test]
fn stages_types_and_type_legacy_and_nesting() {
    let text = "types: [compile, [check, [ship]]]\na: {type: compile, script: x}\nb: {type: ship, script: x}\n";
    let plan = common::run(text, "main").unwrap();
    assert_eq!(plan.stages, ["compile", "ship"]);
    let user_edges = "stages: [.post, build, .pre]\na: {stage: build, script: x}\n";
    assert_eq!(common::run(user_edges, "main").unwrap().stages, ["build"]);
}

#[test]
fn include_merge_order_and_dedup() {
    let files: HashMap<&str, &str> = [
        (
            "a.yml",
            "include: [b.yml, c.yml]\nvariables: {X: a, A: a}\njob-a:\n  script: a\n",
        ),
        (
            "b.yml",
            "include: a.yml\nvariables: {X: b, B: b}\njob-b:\n  script: b\n",
        ),
        (
            "c.yml",
            "variables: {X: c, C: c}\njob-b:\n  script: from-c\n  tags: [c]\n",
        ),
    ]
    .into_iter()
    .collect();
    let read = |p: &str| files.get(p).map(|s| s.to_string());
    let plan = lint(
        "include: a.yml\nvariables: {X: main}\nmain-job:\n  script: m\n",
        &read,
    )
    .unwrap();
    // Included files come first in file order; a cycle back to a.yml is ignored.
    assert_eq!(names(&plan), ["job-b", "job-a", "main-job"]);
    let b = job(&plan, "job-b");
    assert_eq!(b.script, ["from-c"]);
    assert_eq!(b.tags, ["c"]);
    assert_eq!(var(b, "X"), Some("main"));
    assert_eq!(
        (var(b, "A"), var(b, "B"), var(b, "C")),
        (Some("a"), Some("b"), Some("c"))
    );
}

#[test]
fn include_rules_and_variables_in_paths() {
    let text = "\
include:
  - local: ci/$CI_COMMIT_REF_NAME.yml
  - local: ci/tags.yml
    rules:
      - if: $CI_COMMIT_TAG
base:
  script: x
";
    let plan = common::run(text, "main");
    assert_eq!(
        plan.err().map(|e| e.message),
        Some("Local file `ci/main.yml` does not exist!".to_string())
    );
    let files: HashMap<&str, &str> = [
        ("ci/main.yml", "from-main:\n  script: x\n"),
        ("ci/v1.0.yml", "from-tag-file:\n  script: x\n"),
        ("ci/tags.yml", "tag-only:\n  script: x\n"),
    ]
    .into_iter()
    .collect();
    let read = |p: &str| files.get(p).map(|s| s.to_string());
    let run = |ctx_name: &str| {
        let c = common::ctx(ctx_name);
        kiln_ci::compile(
            text,
            &kiln_ci::CompileContext {
                ref_name: c.ref_name,
                tag: c.tag,
                source: c.source,
                variables: &c.vars,
                repository: &read,
            },
        )
        .unwrap()
    };
    assert_eq!(names(&run("main")), ["from-main", "base"]);
    assert_eq!(names(&run("tag")), ["from-tag-file", "tag-only", "base"]);
}

#[test]
fn needs_same_stage_and_optional_filtering() {
    let text = "\
a:
  script: x
b:
  script: x
  needs: [a, {job: c, optional: true}]
c:
  script: x
  only: [tags]
d:
  stage: deploy
  script: x
  dependencies: [c, a]
";
    let plan = common::run(text, "main").unwrap();
    let b = job(&plan, "b");
    assert_eq!(b.needs.as_ref().map(Vec::len), Some(1));
    assert_eq!(
        job(&plan, "d").dependencies.as_deref(),
        Some(&["a".to_string()][..])
    );
    let tag = common::run(text, "tag").unwrap();
    assert_eq!(job(&tag, "b").needs.as_ref().map(Vec::len), Some(2));
}

#[test]
fn lint_keeps_everything() {
    let text = "\
workflow:
  rules:
    - when: never
a:
  script: x
  rules:
    - when: never
b:
  script: x
  only: [tags]
  except: [/.*/]
";
    let plan = lint(text, &kiln_ci::NoRepository).unwrap();
    assert_eq!(names(&plan), ["a", "b"]);
}

#[test]
fn default_keys_and_inherit() {
    let text = "\
default:
  before_script: [setup]
  after_script: [teardown]
  services: [postgres]
  interruptible: true
image: alpine
own:
  script: x
  before_script: []
  services: [redis]
  image: ruby
inherits:
  script: x
partial:
  script: x
  inherit:
    default: [image]
";
    let plan = common::run(text, "main").unwrap();
    let own = job(&plan, "own");
    assert!(own.before_script.is_empty());
    assert_eq!(own.after_script, ["teardown"]);
    assert_eq!(
        (own.image.as_deref(), own.services.as_slice()),
        (Some("ruby"), &["redis".to_string()][..])
    );
    let inherits = job(&plan, "inherits");
    assert_eq!(inherits.before_script, ["setup"]);
    assert_eq!(inherits.image.as_deref(), Some("alpine"));
    let partial = job(&plan, "partial");
    assert_eq!(partial.image.as_deref(), Some("alpine"));
    assert!(partial.before_script.is_empty() && partial.services.is_empty());
}

#[test]
fn yaml_1_1_scalars_like_psych() {
    let text = "job:\n  script: x\n  allow_failure: yes\n  variables:\n    SWITCH: on\n    OCT: 010\n    VERSION: 1.10\n    BIG: 1e3\n";
    let plan = common::run(text, "main").unwrap();
    let j = &plan.jobs[0];
    assert!(j.allow_failure);
    assert_eq!(var(j, "SWITCH"), Some("true"));
    assert_eq!(var(j, "OCT"), Some("8"));
    assert_eq!(var(j, "VERSION"), Some("1.1"));
    assert_eq!(var(j, "BIG"), Some("1e3"));
}

#[test]
fn only_except_sources_and_variables() {
    let text = "\
scheduled:
  script: x
  only: [schedules]
not-scheduled:
  script: x
  except: [schedules]
release:
  script: x
  only:
    variables: [$RELEASE]
nightly:
  script: x
  except:
    variables: [$CI_PIPELINE_SOURCE == \"schedule\"]
";
    let sched = common::run(text, "schedule").unwrap();
    assert_eq!(names(&sched), ["scheduled"]);
    let main = common::run_with_vars(text, &[("RELEASE", "1")]).unwrap();
    assert_eq!(names(&main), ["not-scheduled", "release", "nightly"]);
}

#[test]
fn exists_and_changes() {
    let text = "\
docker:
  script: x
  rules:
    - exists: [Dockerfile]
make:
  script: x
  rules:
    - exists: [Makefile]
changed:
  script: x
  rules:
    - changes: [src/**/*]
      when: manual
";
    let plan = common::run(text, "main").unwrap();
    assert_eq!(names(&plan), ["docker", "changed"]);
}

#[test]
fn parallel_needs_and_dependencies_expand() {
    let text = "build:\n  stage: build\n  script: x\n  parallel: 2\ntest:\n  script: x\n  dependencies: [build]\n";
    let plan = common::run(text, "main").unwrap();
    assert_eq!(names(&plan), ["build 1/2", "build 2/2", "test"]);
    assert_eq!(
        job(&plan, "test").dependencies.as_deref(),
        Some(&["build 1/2".to_string(), "build 2/2".to_string()][..])
    );
}

#[test]
fn public_duration_parser() {
    assert_eq!(parse_duration("1h 30m"), Some(5400));
    assert_eq!(parse_duration("never"), None);
}

#[test]
fn when_strings() {
    let all = [
        When::OnSuccess,
        When::OnFailure,
        When::Always,
        When::Manual,
        When::Delayed,
    ];
    let strs: Vec<&str> = all.iter().map(|w| w.as_str()).collect();
    assert_eq!(
        strs,
        ["on_success", "on_failure", "always", "manual", "delayed"]
    );
    for w in all {
        assert_eq!(
            serde_json::to_value(w).unwrap(),
            serde_json::json!(w.as_str())
        );
    }
}

#[test]
fn empty_pipeline_after_filtering_is_an_empty_plan() {
    for text in [
        "test:\n  script: x\n  only: [tags]\n",
        "test:\n  script: x\n  rules:\n    - if: $NOPE\n",
        // Only `.pre`/`.post` jobs do not make a pipeline either.
        "pre:\n  stage: .pre\n  script: x\nbuild:\n  script: x\n  only: [tags]\n",
    ] {
        let plan = common::run(text, "main").unwrap();
        assert!(plan.jobs.is_empty() && plan.stages.is_empty(), "{text}");
    }
}

#[test]
fn parallel_one_makes_one_numbered_job() {
    let plan = common::run("build:\n  script: x\n  parallel: 1\n", "main").unwrap();
    assert_eq!(names(&plan), ["build 1/1"]);
    let vars = &job(&plan, "build 1/1").variables;
    assert!(vars.contains(&("CI_NODE_TOTAL".to_string(), "1".to_string())));
}

#[test]
fn raw_variables_follow_the_winning_definition() {
    let text = "variables:\n  G: {value: '$X', expand: false}\n  H: {value: '$X', expand: false}\n  N:\njob:\n  script: x\n  variables:\n    H: plain\n    J: {value: '$Y', expand: false}\n";
    let plan = common::run(text, "main").unwrap();
    let job = job(&plan, "job");
    assert_eq!(job.raw_variables, ["G", "J"]);
    assert!(job.variables.contains(&("N".to_string(), String::new())));
}

#[test]
fn needs_with_parallel_matrix_name_the_copies() {
    let text = "build:
  stage: build
  script: x
  parallel:
    matrix:
      - PROVIDER: aws
        STACK: [monitoring, app1]
      - PROVIDER: gcp
        STACK: [data]
deploy:
  stage: deploy
  script: x
  needs:
    - job: build
      parallel:
        matrix:
          - PROVIDER: aws
            STACK: app1
          - PROVIDER: gcp
            STACK: data
    - job: all
all:
  stage: build
  script: x
";
    let plan = common::run(text, "main").unwrap();
    let needs: Vec<String> = job(&plan, "deploy")
        .needs
        .iter()
        .flatten()
        .map(|n| n.job.clone())
        .collect();
    assert_eq!(needs, ["build: [aws, app1]", "build: [gcp, data]", "all"]);
    let wrong = text.replace("STACK: data\n    - job: all", "STACK: nope\n    - job: all");
    let error = common::run(&wrong, "main").err().map(|e| e.message);
    assert_eq!(
        error.as_deref(),
        Some("jobs:deploy job: undefined need: build: [gcp, nope]")
    );
}

/// A commit holding `files` (path, text).
struct Files(Vec<(&'static str, &'static str)>);

impl kiln_ci::Repository for Files {
    fn read_file(&self, path: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, t)| t.to_string())
    }
    fn files(&self) -> Vec<String> {
        self.0.iter().map(|(p, _)| p.to_string()).collect()
    }
}

#[test]
fn include_local_globs_include_every_matching_file_in_path_order() {
    let repo = Files(vec![
        ("configs/b.yml", "b:\n  script: x\n"),
        ("configs/a.yml", "a:\n  script: x\n"),
        ("configs/deep/c.yml", "c:\n  script: x\n"),
        ("configs/readme.md", "not: yaml: here"),
        ("Dockerfile", "FROM x"),
    ]);
    let lint = |text: &str| {
        kiln_ci::lint(text, &repo).map(|p| {
            names(&p)
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<String>>()
        })
    };
    assert_eq!(
        lint("include: 'configs/*.yml'\n").ok(),
        Some(vec!["a".to_string(), "b".to_string()])
    );
    assert_eq!(
        lint("include:\n  - local: 'configs/**/*.yml'\n").ok(),
        Some(vec!["a".to_string(), "b".to_string(), "c".to_string()])
    );
    // A glob that matches nothing includes nothing.
    assert_eq!(
        lint("include: 'none/*.yml'\nmain:\n  script: x\n").ok(),
        Some(vec!["main".to_string()])
    );
    let exists = "docker:\n  script: x\n  rules:\n    - exists: ['**/Dockerfile']\nnope:\n  script: x\n  rules:\n    - exists: ['*.nope']\n";
    let plan = kiln_ci::compile(
        exists,
        &kiln_ci::CompileContext {
            ref_name: "main",
            tag: false,
            source: "push",
            variables: &Default::default(),
            repository: &repo,
        },
    )
    .unwrap();
    assert_eq!(names(&plan), ["docker"]);
}

/// `include: inputs:` fill a file's `spec: inputs:`; the same file may be included twice
/// with different inputs; a bad input fails the file with GitLab's message, naming it.
#[test]
fn include_inputs_interpolate_the_included_file() {
    let template = "spec:\n  inputs:\n    name:\n    stage: {default: test, options: [build, test]}\n    parallel: {type: number, default: 1}\n---\n\"$[[ inputs.name ]]-job\":\n  stage: $[[ inputs.stage ]]\n  parallel: $[[ inputs.parallel ]]\n  script: [\"echo $[[ inputs.name | truncate(0,3) ]]\"]\n";
    let repo = |path: &str| (path == "templates/job.yml").then(|| template.to_owned());
    let main = "stages: [build, test]\ninclude:\n  - local: templates/job.yml\n    inputs: {name: compile, stage: build, parallel: 2}\n  - local: templates/job.yml\n    inputs: {name: check}\n";
    let plan = kiln_ci::lint(main, &repo).expect("compiles");
    let names: Vec<&str> = plan.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(
        names,
        ["compile-job 1/2", "compile-job 2/2", "check-job 1/1"]
    );
    assert_eq!(plan.jobs[0].stage, "build");
    assert_eq!(plan.jobs[2].stage, "test");
    assert_eq!(plan.jobs[2].script, ["echo che"]);
    let bad = "include:\n  - local: templates/job.yml\n    inputs: {name: x, stage: deploy}\n";
    let err = kiln_ci::lint(bad, &repo).expect_err("refused");
    assert_eq!(
        err.message,
        "`templates/job.yml`: `stage` input: `deploy` cannot be used because it is not in the list of allowed options"
    );
    let missing = "include:\n  - local: templates/job.yml\n";
    assert_eq!(
        kiln_ci::lint(missing, &repo).expect_err("required").message,
        "`templates/job.yml`: `name` input: required value has not been provided"
    );
    // The pipeline's own file may declare inputs too: their defaults apply.
    let own = "spec:\n  inputs:\n    greeting: {default: hello}\n---\njob:\n  script: [\"echo $[[ inputs.greeting ]]\"]\n";
    let plan = kiln_ci::lint(own, &kiln_ci::NoRepository).expect("own inputs");
    assert_eq!(plan.jobs[0].script, ["echo hello"]);
}

/// `rules: if:` sees variables that refer to others expanded, as GitLab's rules do.
#[test]
fn rules_see_variables_expanded() {
    let text = "variables:\n  BASE: release\n  TARGET: \"$BASE-$CI_COMMIT_REF_NAME\"\nship:\n  script: x\n  rules:\n    - if: $TARGET == \"release-main\"\nnever:\n  script: x\n  rules:\n    - if: $TARGET == \"$BASE-main\"\n";
    let plan = common::run(text, "main").expect("compiles");
    assert_eq!(names(&plan), ["ship"]);
}
