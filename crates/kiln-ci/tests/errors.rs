//! Every compile error the compiler reports, with its exact path and message.

mod common;

use std::collections::HashMap;

use kiln_ci::{compile, lint, CompileContext};

/// Runs `text` for the "main" branch pipeline and returns (path, message) of the error.
fn err(text: &str) -> (String, String) {
    err_in(text, "main")
}

fn err_in(text: &str, context: &str) -> (String, String) {
    match common::run(text, context) {
        Ok(plan) => panic!("expected an error for {text:?}, got {plan:#?}"),
        Err(e) => (e.path, e.message),
    }
}

fn pair(path: &str, message: &str) -> (String, String) {
    (path.to_string(), message.to_string())
}

#[test]
fn yaml_syntax_errors_carry_line_and_column() {
    assert_eq!(
        err("job:\n  script: x\n bad: 1\n"),
        pair("", "(<unknown>): did not find expected key while parsing a block mapping at line 3 column 5")
    );
    assert_eq!(
        err("a: [1, 2\n"),
        pair(
            "",
            "(<unknown>): expected ',' or ']' while parsing a flow sequence at line 2 column 1"
        )
    );
    assert_eq!(
        err("job:\n  script: *nope\n"),
        pair(
            "",
            "(<unknown>): found unknown anchor while parsing node at line 2 column 11"
        )
    );
}

#[test]
fn empty_and_non_mapping_files() {
    assert_eq!(
        err(""),
        pair("root", "Please provide content of .gitlab-ci.yml")
    );
    assert_eq!(
        err("  \n\n"),
        pair("root", "Please provide content of .gitlab-ci.yml")
    );
    for text in [
        "[]",
        "42",
        "just text",
        "---\n",
        "# only a comment\n",
        "- a\n- b\n",
    ] {
        assert_eq!(
            err(text),
            pair("root", "Invalid configuration format"),
            "{text:?}"
        );
    }
}

#[test]
fn jobs_must_have_script() {
    let expected = pair(
        "jobs:rspec",
        "jobs:rspec config should implement the script:, run:, or trigger: keyword",
    );
    assert_eq!(err("rspec:\n  stage: test\n"), expected);
    assert_eq!(err("rspec: echo hello\n"), expected);
    assert_eq!(err("rspec: [echo]\n"), expected);
    assert_eq!(
        err("deploy:\n  trigger: {include: child.yml}\n  script: [make]\n"),
        pair(
            "jobs:deploy",
            "jobs:deploy config contains unknown keys: script"
        )
    );
    assert_eq!(
        err("deploy:\n  trigger: {include: child.yml}\n  when: delayed\n"),
        pair(
            "jobs:deploy",
            "jobs:deploy when should be one of: on_success, on_failure, always, manual"
        )
    );
}

#[test]
fn at_least_one_visible_job() {
    let expected = pair(
        "jobs",
        "jobs config should contain at least one visible job",
    );
    assert_eq!(err(".hidden:\n  script: x\n"), expected);
    assert_eq!(err("variables:\n  A: b\nstages: [build]\n"), expected);
    assert_eq!(
        err(".hidden:\nvisible:\n  script: x\n"),
        pair("jobs:.hidden", "jobs:.hidden config can't be blank")
    );
}

#[test]
fn unknown_job_keys() {
    assert_eq!(
        err("rspec:\n  script: x\n  foo: 1\n  bar: 2\n"),
        pair(
            "jobs:rspec",
            "jobs:rspec config contains unknown keys: foo, bar"
        )
    );
    // GitLab's validators downcase the whole sentence.
    assert_eq!(
        err("RSpec:\n  script: x\n  Foo: 1\n"),
        pair("jobs:RSpec", "jobs:rspec config contains unknown keys: foo")
    );
}

#[test]
fn unknown_stage() {
    assert_eq!(
        err("stages: [build]\nrspec:\n  script: x\n  stage: deploy\n"),
        pair(
            "jobs:rspec:stage",
            "jobs:rspec chosen stage deploy does not exist; available stages are .pre, build, .post"
        )
    );
    assert_eq!(
        err("rspec:\n  script: x\n  stage: lint\n"),
        pair(
            "jobs:rspec:stage",
            "jobs:rspec chosen stage lint does not exist; available stages are .pre, build, test, deploy, .post"
        )
    );
    // The default stage is `test`, which a custom list may not have.
    assert_eq!(
        err("stages: [build]\nrspec:\n  script: x\n").1,
        "jobs:rspec chosen stage test does not exist; available stages are .pre, build, .post"
    );
    assert_eq!(
        err("rspec:\n  script: x\n  stage: [test]\n"),
        pair(
            "jobs:rspec:stage",
            "jobs:rspec:stage config should be a string"
        )
    );
}

#[test]
fn rules_cannot_be_combined_with_only_except() {
    assert_eq!(
        err("rspec:\n  script: x\n  only: [main]\n  rules:\n    - when: always\n"),
        pair(
            "jobs:rspec",
            "jobs:rspec config key may not be used with `rules`: only"
        )
    );
    assert_eq!(
        err(
            "rspec:\n  script: x\n  only: [main]\n  except: [tags]\n  rules:\n    - when: always\n"
        )
        .1,
        "jobs:rspec config key may not be used with `rules`: only, except"
    );
}

#[test]
fn rules_errors() {
    assert_eq!(
        err("rspec:\n  script: x\n  rules:\n    - if: '$CI_COMMIT_BRANCH = \"main\"'\n"),
        pair(
            "jobs:rspec:rules:if",
            "jobs:rspec:rules:rule if invalid expression syntax"
        )
    );
    assert_eq!(
        err("rspec:\n  script: x\n  rules:\n    - if: '($A == \"1\"'\n").0,
        "jobs:rspec:rules:if"
    );
    assert_eq!(
        err("rspec:\n  script: x\n  rules:\n    - when: sometimes\n"),
        pair(
            "jobs:rspec:rules:rule",
            "jobs:rspec:rules:rule when unknown value: sometimes"
        )
    );
    assert_eq!(
        err("rspec:\n  script: x\n  rules:\n    - iff: $A\n").1,
        "jobs:rspec:rules:rule config contains unknown keys: iff"
    );
    assert_eq!(
        err("rspec:\n  script: x\n  rules:\n    if: $A\n").1,
        "jobs:rspec rules should be an array containing hashes and arrays of hashes"
    );
    // Expressions are validated even for jobs the pipeline would filter out, and in lint.
    assert_eq!(
        err_in("rspec:\n  script: x\n  rules:\n    - if: $A ==\n", "lint").0,
        "jobs:rspec:rules:if"
    );
    assert_eq!(
        err("workflow:\n  rules:\n    - if: $A ==\nrspec:\n  script: x\n"),
        pair(
            "workflow:rules:if",
            "workflow:rules:rule if invalid expression syntax"
        )
    );
    assert_eq!(
        err("workflow:\n  rules:\n    - when: manual\nrspec:\n  script: x\n").1,
        "workflow:rules:rule when unknown value: manual"
    );
}

#[test]
fn needs_errors() {
    assert_eq!(
        err("test:\n  script: x\n  needs: [build]\n"),
        pair("jobs:test:needs", "jobs:test job: undefined need: build")
    );
    assert_eq!(
        err("test:\n  stage: test\n  script: x\n  needs: [deploy]\ndeploy:\n  stage: deploy\n  script: x\n"),
        pair(
            "jobs:test:needs",
            "jobs:test job: need deploy is not defined in current or prior stages"
        )
    );
    assert_eq!(
        err("test:\n  script: x\n  needs: [a, b, a]\na:\n  stage: build\n  script: x\nb:\n  stage: build\n  script: x\n"),
        pair("jobs:test:needs", "jobs:test has the following needs duplicated: a.")
    );
    assert_eq!(
        err("a:\n  script: x\n  needs: [b]\nb:\n  script: x\n  needs: [a]\n"),
        pair("jobs", "The pipeline has circular dependencies")
    );
    // An optional need may name a job that does not exist at all.
    assert!(common::run(
        "test:\n  script: x\n  needs: [{job: ghost, optional: true}]\n",
        "main"
    )
    .is_ok());
}

#[test]
fn need_on_filtered_out_job() {
    let text = "build:\n  stage: build\n  script: x\n  rules:\n    - if: $CI_COMMIT_TAG\n\
                test:\n  script: x\n  needs: [build]\n";
    assert_eq!(
        err(text),
        pair(
            "jobs:test:needs",
            "'test' job needs 'build' job, but 'build' does not exist in the pipeline. This might be \
             because of the only, except, or rules keywords. To need a job that sometimes does not \
             exist in the pipeline, use needs:optional."
        )
    );
    // Lint keeps every job, so the same file is valid there.
    assert!(common::run(text, "lint").is_ok());
}

#[test]
fn dependencies_errors() {
    assert_eq!(
        err("test:\n  script: x\n  dependencies: [nope]\n"),
        pair(
            "jobs:test:dependencies",
            "jobs:test job: undefined dependency: nope"
        )
    );
    assert_eq!(
        err("test:\n  script: x\n  dependencies: [pack]\npack:\n  stage: deploy\n  script: x\n"),
        pair(
            "jobs:test:dependencies",
            "jobs:test job: dependency pack is not defined in current or prior stages"
        )
    );
    assert_eq!(
        err(
            "build:\n  stage: build\n  script: x\nlint:\n  stage: build\n  script: x\n\
             test:\n  script: x\n  needs: [build]\n  dependencies: [build, lint]\n"
        ),
        pair(
            "jobs:test",
            "jobs:test dependencies the lint should be part of needs"
        )
    );
    assert_eq!(
        err("test:\n  script: x\n  dependencies: build\n"),
        pair(
            "jobs:test",
            "jobs:test dependencies should be an array of strings"
        )
    );
}

#[test]
fn keyword_type_errors() {
    let cases: &[(&str, &str, &str)] = &[
        ("test:\n  script: 42\n", "jobs:test:script",
         "jobs:test:script config should be a string or a nested array of strings up to 10 levels deep"),
        ("test:\n  script: [echo, [1]]\n", "jobs:test:script",
         "jobs:test:script config should be a string or a nested array of strings up to 10 levels deep"),
        ("test:\n  script: []\n", "jobs:test", "jobs:test script can't be blank"),
        ("test:\n  script:\n", "jobs:test", "jobs:test script can't be blank"),
        ("test:\n  script: x\n  before_script: {a: b}\n", "jobs:test:before_script",
         "jobs:test:before_script config should be a string or a nested array of strings up to 10 levels deep"),
        ("test:\n  script: x\n  coverage: 'Coverage: (\\d+)%'\n", "jobs:test:coverage",
         "jobs:test:coverage config must be a regular expression with re2 syntax"),
        ("test:\n  script: x\n  coverage: '/(unclosed/'\n", "jobs:test:coverage",
         "jobs:test:coverage config must be a regular expression with re2 syntax"),
        ("test:\n  script: x\n  retry: 3\n", "jobs:test:retry",
         "jobs:test:retry config must be less than or equal to 2"),
        ("test:\n  script: x\n  retry: {max: -1}\n", "jobs:test:retry",
         "jobs:test:retry max must be greater than or equal to 0"),
        ("test:\n  script: x\n  retry: {max: 1, when: [nope]}\n", "jobs:test:retry",
         "jobs:test:retry when contains unknown values: nope"),
        ("test:\n  script: x\n  retry: twice\n", "jobs:test:retry",
         "jobs:test:retry config has to be either an integer or a hash"),
        ("test:\n  script: x\n  when: later\n", "jobs:test",
         "jobs:test when should be one of: on_success, on_failure, always, manual, delayed"),
        ("test:\n  script: x\n  when: delayed\n", "jobs:test", "jobs:test start in should be a duration"),
        ("test:\n  script: x\n  when: delayed\n  start_in: 2 weeks\n", "jobs:test",
         "jobs:test start in should not exceed the limit"),
        ("test:\n  script: x\n  start_in: 1 hour\n", "jobs:test", "jobs:test start in must be blank"),
        ("test:\n  script: x\n  timeout: soon\n", "jobs:test:timeout", "jobs:test:timeout config should be a duration"),
        ("test:\n  script: x\n  tags: [1, 2]\n", "jobs:test:tags", "jobs:test:tags config should be an array of strings"),
        ("test:\n  script: x\n  image: [ruby]\n", "jobs:test:image", "jobs:test:image config should be a hash or a string"),
        ("test:\n  script: x\n  image: {entrypoint: ['']}\n", "jobs:test:image", "jobs:test:image name can't be blank"),
        ("test:\n  script: x\n  services: postgres\n", "jobs:test:services", "jobs:test:services config should be a array"),
        ("test:\n  script: x\n  environment: [prod]\n", "jobs:test:environment",
         "jobs:test:environment config should be a hash or a string"),
        ("test:\n  script: x\n  allow_failure: sometimes\n", "jobs:test:allow_failure",
         "jobs:test:allow_failure config should be a hash or a boolean value"),
        ("test:\n  script: x\n  artifacts: {paths: [a], expire_in: later}\n", "jobs:test:artifacts",
         "jobs:test:artifacts expire in should be a duration"),
        ("test:\n  script: x\n  artifacts: {pathes: [a]}\n", "jobs:test:artifacts",
         "jobs:test:artifacts config contains unknown keys: pathes"),
        ("test:\n  script: x\n  artifacts: {paths: a}\n", "jobs:test:artifacts",
         "jobs:test:artifacts paths should be an array of strings"),
        ("test:\n  script: x\n  variables: [A]\n", "jobs:test:variables",
         "jobs:test:variables config should be a hash of key value pairs, value can be a hash"),
        ("test:\n  script: x\n  only: main\n", "jobs:test:only",
         "jobs:test:only has to be either an array of conditions or a hash"),
        ("test:\n  script: x\n  except: [/(/]\n", "jobs:test:except",
         "jobs:test:except config should be an array of strings or regular expressions using re2 syntax"),
        ("test:\n  script: x\n  parallel: 0\n", "jobs:test:parallel",
         "jobs:test:parallel config must be greater than or equal to 1"),
        ("test:\n  script: x\n  parallel: 500\n", "jobs:test:parallel",
         "jobs:test:parallel config must be less than or equal to 200"),
        ("test:\n  script: x\n  interruptible: maybe\n", "jobs:test:interruptible",
         "jobs:test:interruptible config should be a boolean value"),
        ("test:\n  script: x\n  extends: 5\n", "jobs:test:extends",
         "jobs:test extends should be an array of strings or a string"),
        ("test:\n  script: x\n  needs: [{artifacts: true}]\n", "jobs:test:needs:need",
         "jobs:test:needs:need job should be a string"),
        ("test:\n  script: x\n  needs: build\n", "jobs:test:needs",
         "jobs:test:needs config can only be a hash or an array"),
        ("test:\n  script: x\n  needs: {}\n", "jobs:test:needs",
         "jobs:test:needs config can not be an empty hash"),
        ("test:\n  script: x\n  rules: []\n", "jobs:test:rules",
         "jobs:test:rules config can't be blank"),
        ("test:\n  script: x\n  rules:\n    - if: '${X} == \"y\"'\n", "jobs:test:rules:if",
         "jobs:test:rules:rule if invalid expression syntax"),
    ];
    for (text, path, message) in cases {
        assert_eq!(err(text), pair(path, message), "{text}");
    }
}

#[test]
fn global_keyword_errors() {
    assert_eq!(
        err("variables: [A]\ntest:\n  script: x\n"),
        pair(
            "variables",
            "variables config should be a hash of key value pairs, value can be a hash"
        )
    );
    assert_eq!(
        err("stages: build\ntest:\n  script: x\n"),
        pair("stages", "stages config should be an array of strings")
    );
    assert_eq!(
        err("stages: [build, [test, 3]]\ntest:\n  script: x\n"),
        pair("stages", "stages config should be an array of strings")
    );
    assert_eq!(
        err("default:\n  foo: 1\ntest:\n  script: x\n"),
        pair("default", "default config contains unknown keys: foo")
    );
    assert_eq!(
        err("default:\n  image: ruby\nimage: alpine\ntest:\n  script: x\n"),
        pair(
            "default",
            "image is defined in top-level and `default:` entry"
        )
    );
    assert_eq!(
        err("default:\n  before_script: [a]\nbefore_script: [b]\ntest:\n  script: x\n").1,
        "before_script is defined in top-level and `default:` entry"
    );
    assert_eq!(
        err("default:\n  retry: 5\ntest:\n  script: x\n"),
        pair(
            "default:retry",
            "default:retry config must be less than or equal to 2"
        )
    );
    assert_eq!(
        err("workflow:\n  rulez: []\ntest:\n  script: x\n"),
        pair("workflow", "workflow config contains unknown keys: rulez")
    );
}

/// What Kiln cannot honour is left out with a warning, not a refusal of the whole file.
#[test]
fn unfetchable_includes_and_needs_elsewhere_are_warnings() {
    let text = "include:\n  - 'https://example.com/ci.yml'\n  - template: Auto-DevOps.gitlab-ci.yml\n  - component: gitlab.com/org/comp/build@1.0\n  - project: other/repo\n    file: ci.yml\nbuild:\n  script: x\ntest:\n  script: x\n  needs: [build, {project: other/repo, job: pack, ref: main}, {pipeline: $PARENT_PIPELINE_ID, job: gen}]\n";
    let plan = kiln_ci::lint(text, &kiln_ci::NoRepository).expect("compiles");
    assert_eq!(
        plan.warnings,
        [
            "include: remote file `https://example.com/ci.yml` was left out: Kiln does not fetch remote files",
            "include: GitLab template `Auto-DevOps.gitlab-ci.yml` was left out: Kiln does not fetch GitLab templates",
            "include: CI/CD catalog component `gitlab.com/org/comp/build@1.0` was left out: Kiln does not fetch CI/CD catalog components",
            "include: other project's file `other/repo` was left out: Kiln does not fetch other project's files",
            "jobs:test needs: job `pack` of project `other/repo` was left out: Kiln does not run cross-project or parent-pipeline needs",
            "jobs:test needs: job `gen` of the parent pipeline was left out: Kiln does not run cross-project or parent-pipeline needs",
        ]
    );
    let test = plan.jobs.iter().find(|j| j.name == "test").expect("test");
    let needs: Vec<&str> = test
        .needs
        .iter()
        .flatten()
        .map(|n| n.job.as_str())
        .collect();
    assert_eq!(needs, ["build"]);
    assert_eq!(test.warnings.len(), 2);
}

#[test]
fn include_errors() {
    assert_eq!(
        err("include: missing.yml\ntest:\n  script: x\n"),
        pair("include", "Local file `missing.yml` does not exist!")
    );
    assert_eq!(
        err("include:\n  - local: /templates/missing.yml\ntest:\n  script: x\n"),
        pair(
            "include",
            "Local file `/templates/missing.yml` does not exist!"
        )
    );
    assert_eq!(
        err("include:\n  - {local: a.yml, remote: b.yml}\ntest:\n  script: x\n"),
        pair(
            "include",
            "Include `{\"local\":\"a.yml\",\"remote\":\"b.yml\"}` needs to match exactly one accessor!"
        )
    );

    let files: HashMap<&str, &str> = [
        ("bad.yml", "a: [1\n"),
        ("list.yml", "- a\n- b\n"),
        ("empty.yml", "\n"),
    ]
    .into_iter()
    .collect();
    let read = |p: &str| files.get(p).map(|s| s.to_string());
    let check = |name: &str, message: &str| {
        let text = format!("include: {name}\ntest:\n  script: x\n");
        let e = lint(&text, &read).err().map(|e| (e.path, e.message));
        assert_eq!(e, Some(pair("include", message)), "{name}");
    };
    check(
        "bad.yml",
        "Included file `bad.yml` does not have valid YAML syntax!",
    );
    check(
        "list.yml",
        "Included file `list.yml` does not have valid YAML syntax!",
    );
    check("empty.yml", "Local file `empty.yml` is empty!");
}

#[test]
fn include_limit() {
    // A chain of 200 files, each including the next.
    let read = |p: &str| {
        let n: usize = p.strip_prefix("f")?.strip_suffix(".yml")?.parse().ok()?;
        Some(format!("include: f{}.yml\n.h{n}:\n  script: x\n", n + 1))
    };
    let e = lint("include: f0.yml\ntest:\n  script: x\n", &read).err();
    assert_eq!(
        e.map(|e| (e.path, e.message)),
        Some(pair(
            "include",
            "Maximum of 150 nested includes are allowed!"
        ))
    );
}

/// Repeated includes count toward the limit too (GitLab's `ci_includes_count_duplicates`).
#[test]
fn include_limit_counts_repeats() {
    let read = |p: &str| (p == "a.yml").then(|| ".h:\n  script: x\n".to_string());
    let list = |n: usize| {
        format!(
            "include: [{}]\ntest:\n  script: x\n",
            vec!["a.yml"; n].join(", ")
        )
    };
    assert!(lint(&list(150), &read).is_ok());
    assert_eq!(
        lint(&list(151), &read).err().map(|e| e.message),
        Some("Maximum of 150 nested includes are allowed!".to_string())
    );
}

#[test]
fn extends_errors() {
    assert_eq!(
        err("test:\n  extends: .base\n  script: x\n"),
        pair(
            "jobs:test:extends",
            "test: unknown keys in `extends` (.base)"
        )
    );
    assert_eq!(
        err(".a:\n  extends: .b\n.b:\n  extends: .a\ntest:\n  extends: .a\n  script: x\n").1,
        ".a: circular dependency detected in `extends`"
    );
    let mut deep = String::from(".l0:\n  script: x\n");
    for i in 1..=12 {
        deep.push_str(&format!(".l{i}:\n  extends: .l{}\n", i - 1));
    }
    deep.push_str("test:\n  extends: .l12\n");
    assert_eq!(err(&deep).1, ".l1: nesting too deep in `extends`");
}

#[test]
fn reference_errors() {
    assert_eq!(
        err("test:\n  script: !reference [.setup, script]\n"),
        pair(
            "root",
            "!reference [\".setup\", \"script\"] could not be found"
        )
    );
}

#[test]
fn workflow_filters_pipeline() {
    let text = "workflow:\n  rules:\n    - if: $CI_COMMIT_TAG\ntest:\n  script: x\n";
    assert_eq!(
        err(text),
        pair("workflow", "Pipeline filtered out by workflow rules.")
    );
    let never = "workflow:\n  rules:\n    - when: never\ntest:\n  script: x\n";
    assert_eq!(
        err(never),
        pair("workflow", "Pipeline filtered out by workflow rules.")
    );
    assert!(common::run(text, "tag").is_ok());
    assert!(common::run(never, "lint").is_ok());
}

#[test]
fn oversized_yaml() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..8 {
        let p = i - 1;
        text.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    text.push_str("test:\n  script: x\n");
    assert_eq!(err(&text), pair("root", "The parsed YAML is too big"));
    let nested = format!(
        "test:\n  script: x\n  variables: {}{}\n",
        "{a: ".repeat(120),
        "}".repeat(120)
    );
    assert_eq!(err(&nested), pair("root", "The parsed YAML is too big"));
}

#[test]
fn compile_context_read_file_is_used_for_includes() {
    let vars = Default::default();
    let read = |p: &str| (p == "ci/jobs.yml").then(|| "test:\n  script: x\n".to_string());
    let ctx = CompileContext {
        ref_name: "main",
        tag: false,
        source: "push",
        variables: &vars,
        repository: &read,
    };
    assert!(compile("include: ci/jobs.yml\n", &ctx).is_ok());
    assert_eq!(
        compile("include: ci/other.yml\n", &ctx)
            .err()
            .map(|e| e.message),
        Some("Local file `ci/other.yml` does not exist!".to_string())
    );
}
