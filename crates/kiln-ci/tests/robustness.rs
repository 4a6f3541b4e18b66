//! Garbage in, an error (or a plan) out, never a panic.

mod common;

use kiln_ci::lint;

const GARBAGE: &[&str] = &[
    "",
    " ",
    "\n\n\n",
    "\t",
    "\tjob:\n\t\tscript: x\n",
    "[]",
    "{}",
    "42",
    "-1.5",
    "~",
    "---",
    "---\n...\n---\n",
    "...",
    "'just a string'",
    "job:",
    "job: ~",
    "job: []",
    "job: {script: }",
    "job: {script: [[[[[[[[[[[[x]]]]]]]]]]]]}",
    "job:\n  script: x\n  needs: [[]]\n",
    "job:\n  script: x\n  rules: [[[[[[[[[[[[{}]]]]]]]]]]]]\n",
    "job:\n  script: x\n  variables: {A: {value: [1]}}\n",
    "job:\n  script: x\n  parallel: {matrix: [{}]}\n",
    "job:\n  script: x\n  parallel: {matrix: [{A: []}]}\n",
    "job:\n  script: x\n  parallel: {matrix: [{A: [1,2,3,4,5,6,7,8,9,10], B: [1,2,3,4,5,6,7,8,9,10], C: [1,2,3,4,5,6,7,8,9,10]}]}\n",
    "? [complex, key]\n: value\n",
    "? {a: b}\n: c\n",
    "&a a: *a\n",
    "a: &a [*a]\n",
    "<<: {job: {script: x}}\n",
    "<<: [1, 2]\njob: {script: x}\n",
    "job: {script: x, extends: []}\n",
    "job: {script: x, extends: [[]]}\n",
    "job: {script: !reference []}\n",
    "job: {script: !reference [1, 2]}\n",
    "job: {script: !reference [job, script]}\n",
    "!!binary aGVsbG8=\n",
    "%TAG ! tag:example.com,2000:\njob: !foo {script: x}\n",
    "job: {script: x, rules: [{if: '$A =~ /'}]}\n",
    "job: {script: x, rules: [{if: '(((((((((('}]}\n",
    "job: {script: x, rules: [{if: '\"'}]}\n",
    "job: {script: x, coverage: '/'}\n",
    "job: {script: x, timeout: 99999999999999999999 years}\n",
    "job: {script: x, retry: 99999999999999999999}\n",
    "job: {script: x, artifacts: {paths: [a], expire_in: '1:2:3:4'}}\n",
    "include: [[]]\n",
    "include: {}\n",
    "include: [{local: []}]\n",
    "stages: [[[[[[]]]]]]\njob: {script: x}\n",
    "\u{feff}job: {script: x}\n",
    "job: {script: \"\\u0000\"}\n",
    "\u{0}",
    "job:\n  script: x\n  only: {refs: [/(?P<x>/]}\n",
    "workflow: []\njob: {script: x}\n",
    "default: []\njob: {script: x}\n",
];

#[test]
fn garbage_inputs_do_not_panic() {
    for text in GARBAGE {
        for context in ["main", "tag", "lint"] {
            let _ = common::run(text, context);
        }
    }
    let deep = "[".repeat(10_000);
    assert!(lint(&deep, &kiln_ci::NoRepository).is_err());
    let deep_map = "a: ".repeat(5_000) + "b";
    assert!(lint(&deep_map, &kiln_ci::NoRepository).is_err());
    let long_expression = format!(
        "job:\n  script: x\n  rules:\n    - if: '{}'\n",
        "$A || ".repeat(2000) + "$A"
    );
    assert!(common::run(&long_expression, "main").is_err());
}

/// Deterministic mutations of every fixture: swap a byte for YAML punctuation.
#[test]
fn mutated_fixtures_do_not_panic() {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let specials = b":-[]{}&*!|>'\"\n\t #%@`,?$/";
    let dir = common::fixtures_dir();
    let mut fixtures: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    fixtures.sort();
    for path in fixtures {
        let original = std::fs::read(&path).expect("fixture");
        for _ in 0..150 {
            let mut bytes = original.clone();
            for _ in 0..1 + next() % 3 {
                let pos = (next() as usize) % bytes.len().max(1);
                let replacement = specials[(next() as usize) % specials.len()];
                if let Some(b) = bytes.get_mut(pos) {
                    *b = replacement;
                }
            }
            let text = String::from_utf8_lossy(&bytes);
            let _ = common::run(&text, "main");
            let _ = common::run(&text, "lint");
        }
    }
}

/// Large but legal files stay fast (linear lookups), and absurd ones are refused.
#[test]
fn large_inputs_are_bounded() {
    let mut text = String::from("variables:\n");
    for i in 0..300 {
        text.push_str(&format!("  V{i}: value{i}\n"));
    }
    text.push_str(".base:\n  image: alpine\n  tags: [docker]\n");
    for i in 0..3000 {
        text.push_str(&format!(
            "job{i}:\n  extends: .base\n  script: [echo {i}]\n  rules:\n    - if: $V{} == \"value{}\"\n",
            i % 300,
            i % 300
        ));
    }
    let started = std::time::Instant::now();
    let plan = common::run(&text, "main").expect("compiles");
    assert_eq!(plan.jobs.len(), 3000);
    assert!(
        started.elapsed().as_secs() < 20,
        "took {:?}",
        started.elapsed()
    );

    let mut many = String::new();
    for i in 0..60 {
        many.push_str(&format!("job{i}:\n  script: x\n  parallel: 200\n"));
    }
    let e = common::run(&many, "main").err().map(|e| e.message);
    assert_eq!(
        e.as_deref(),
        Some("The pipeline has too many jobs (maximum is 10000)")
    );
}

const TOO_BIG: &str = "The parsed YAML is too big";

/// A head holding a 900 KB string (written `B`) and 200 jobs of `job` (`{i}` their number):
/// extends, `!reference`, defaults, `parallel:` and global variables each copy it into jobs.
fn big_part_copied(head: &str, job: &str) -> (String, String) {
    let big = format!("\"{}\"", "z".repeat(900_000));
    let jobs: String = (0..200)
        .filter(|_| !job.is_empty())
        .map(|i| job.replace("{i}", &i.to_string()) + "\n")
        .collect();
    (
        format!("{head} / {job}"),
        head.replace('B', &big) + "\n" + &jobs,
    )
}

/// Each way a small text can stand for a huge configuration, refused before it is built.
/// `amplifiers()` pairs a name with a text of at most 2 MB.
fn amplifiers() -> Vec<(String, String)> {
    let big = "x".repeat(1_500_000);
    let kilo = "y".repeat(1024);
    let mut aliases = format!("a: &a \"{kilo}\"\nlist: [");
    while aliases.len() < 2_000_000 {
        aliases.push_str("*a, ");
    }
    aliases.push_str("*a]\njob: {script: x}\n");
    vec![
        (
            "a 1.5 MB anchored string used 1,000 times".to_string(),
            format!(
                "s: &s \"{big}\"\njob:\n  script: x\n  variables:\n{}",
                (0..1000)
                    .map(|i| format!("    V{i}: *s\n"))
                    .collect::<String>()
            ),
        ),
        ("2 MB of aliases to a 1 KB string".to_string(), aliases),
        big_part_copied(".base: {script: [B]}", "j{i}: {extends: .base}"),
        big_part_copied(
            ".base: {script: [B]}",
            "j{i}: {script: !reference [.base, script]}",
        ),
        big_part_copied("default: {before_script: [B]}", "j{i}: {script: x}"),
        big_part_copied("job: {script: [B], parallel: 200}", ""),
        big_part_copied("variables: {V: B}", "j{i}: {script: x}"),
    ]
}

#[test]
fn amplified_documents_are_refused_as_too_big() {
    for (what, text) in amplifiers() {
        assert!(text.len() <= 2_100_000, "{what}: {} bytes", text.len());
        for context in ["main", "lint"] {
            let error = common::run(&text, context).err().map(|e| e.message);
            assert_eq!(error.as_deref(), Some(TOO_BIG), "{what} ({context})");
        }
    }
}

/// The same shapes at a size real files have still compile: the limits are about bytes.
#[test]
fn modest_copies_still_compile() {
    let text = format!(
        ".base: {{script: [\"{}\"]}}\ndefault: {{before_script: [\"{}\"]}}\n{}",
        "z".repeat(10_000),
        "b".repeat(10_000),
        (0..200)
            .map(|i| format!("j{i}: {{extends: .base, parallel: 5}}\n"))
            .collect::<String>()
    );
    let plan = common::run(&text, "main").expect("compiles");
    assert_eq!(plan.jobs.len(), 1000);
}
