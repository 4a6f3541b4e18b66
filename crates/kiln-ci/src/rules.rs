//! `rules:` for jobs, `workflow:rules:` and include `rules:` (GitLab's `Entry::Rules::Rule` and
//! `Build::Rules`): parsing with GitLab's validation messages, and first-match evaluation.
//!
//! A rule matches when all of its clauses hold: `if` (see expression.rs), `exists` (a listed
//! file, or a file matching a listed glob, is in the commit) and `changes` (the push touched a
//! file matching a listed pattern; always true when what it changed is unknown, as GitLab does
//! for tags, schedules, web and API pipelines and new branches). A rule without clauses always
//! matches.

use std::collections::BTreeMap;

use crate::error::{CompileError, Result};
use crate::expression::Expression;
use crate::keywords::{self, NeedSpec};
use crate::load::expand_variables;
use crate::repository::{glob_matches, is_glob, Checkout};
use crate::value::Value;

/// Which `rules:` we are reading; they differ in allowed keys and `when` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RulesKind {
    Job,
    Workflow,
    Include,
}

impl RulesKind {
    fn allowed_keys(self) -> &'static [&'static str] {
        match self {
            RulesKind::Job => &[
                "if",
                "changes",
                "exists",
                "when",
                "start_in",
                "allow_failure",
                "variables",
                "needs",
                "interruptible",
            ],
            RulesKind::Workflow => &[
                "if",
                "changes",
                "exists",
                "when",
                "variables",
                "auto_cancel",
            ],
            RulesKind::Include => &["if", "changes", "exists", "when"],
        }
    }

    fn allowed_when(self) -> &'static [&'static str] {
        match self {
            RulesKind::Job => &[
                "on_success",
                "on_failure",
                "always",
                "never",
                "manual",
                "delayed",
            ],
            RulesKind::Workflow | RulesKind::Include => &["always", "never"],
        }
    }
}

/// A rule's `when:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RuleWhen {
    OnSuccess,
    OnFailure,
    Always,
    Manual,
    Delayed,
    Never,
}

/// One parsed rule.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    condition: Option<Expression>,
    exists: Option<Vec<String>>,
    /// `changes:` patterns; they hold when the push touched a matching file, or when what the
    /// push changed is not known (see `Repository::changed_files`).
    changes: Option<Vec<String>>,
    pub(crate) when: Option<RuleWhen>,
    pub(crate) allow_failure: Option<bool>,
    pub(crate) variables: Vec<(String, String)>,
    pub(crate) needs: Option<Vec<NeedSpec>>,
}

impl Rule {
    pub(crate) fn is_never(&self) -> bool {
        self.when == Some(RuleWhen::Never)
    }

    fn matches(&self, vars: &BTreeMap<String, String>, checkout: &Checkout<'_>) -> bool {
        if let Some(expr) = &self.condition {
            if !expr.evaluate(vars) {
                return false;
            }
        }
        if let Some(paths) = &self.exists {
            let found = paths.iter().any(|p| {
                let path = expand_variables(p, vars);
                let path = path.trim_start_matches("./").trim_start_matches('/');
                if is_glob(path) {
                    !checkout.matching(path).is_empty()
                } else {
                    checkout.read_file(path).is_some()
                }
            });
            if !found {
                return false;
            }
        }
        if let (Some(patterns), Some(changed)) = (&self.changes, checkout.changed_files()) {
            let touched = patterns.iter().any(|p| {
                let pattern = expand_variables(p, vars);
                let pattern = pattern.trim_start_matches("./").trim_start_matches('/');
                changed.iter().any(|file| glob_matches(pattern, file))
            });
            if !touched {
                return false;
            }
        }
        true
    }
}

/// The first matching rule, if any.
pub(crate) fn first_match<'r>(
    rules: &'r [Rule],
    vars: &BTreeMap<String, String>,
    checkout: &Checkout<'_>,
) -> Option<&'r Rule> {
    rules.iter().find(|r| r.matches(vars, checkout))
}

/// Parses `<parent>:rules` (e.g. parent "jobs:rspec", "workflow" or "include").
pub(crate) fn parse_rules(value: &Value, parent: &str, kind: RulesKind) -> Result<Vec<Rule>> {
    if matches!(value, Value::Seq(items) if items.is_empty()) {
        // `validates :config, presence: true`.
        return Err(CompileError::entry(
            &format!("{parent}:rules"),
            "config can't be blank",
        ));
    }
    let mut flat = Vec::new();
    if !flatten(value, 0, &mut flat) {
        return Err(CompileError::entry(
            parent,
            "rules should be an array containing hashes and arrays of hashes",
        ));
    }
    flat.into_iter()
        .map(|r| parse_rule(r, parent, kind))
        .collect()
}

/// Rules may nest arrays (from `!reference`) up to 10 levels; everything else must be a hash.
fn flatten<'v>(value: &'v Value, level: usize, out: &mut Vec<&'v Value>) -> bool {
    match value {
        Value::Seq(items) if level < 10 => items.iter().all(|item| match item {
            Value::Seq(_) => flatten(item, level + 1, out),
            other => {
                out.push(other);
                true
            }
        }),
        _ => false,
    }
}

fn parse_rule(value: &Value, parent: &str, kind: RulesKind) -> Result<Rule> {
    let location = format!("{parent}:rules:rule");
    let map = match value {
        Value::Map(map) if !map.is_empty() => map,
        Value::Map(_) | Value::Null => {
            return Err(CompileError::entry(&location, "config can't be blank"))
        }
        _ => return Err(CompileError::entry(&location, "config should be a hash")),
    };
    let unknown = map.unknown_keys(kind.allowed_keys());
    if !unknown.is_empty() {
        return Err(CompileError::entry(
            &location,
            &format!("config contains unknown keys: {}", unknown.join(", ")),
        ));
    }
    let condition = match map.get("if") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_str()
                .and_then(|s| Expression::parse(s).ok())
                .ok_or_else(|| {
                    CompileError::new(
                        format!("{parent}:rules:if"),
                        format!("{location} if invalid expression syntax"),
                    )
                })?,
        ),
    };
    let when = match map.get("when") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let text = v.scalar_to_string().unwrap_or_default();
            if !kind.allowed_when().contains(&text.as_str()) {
                return Err(CompileError::entry(
                    &location,
                    &format!("when unknown value: {text}"),
                ));
            }
            Some(match text.as_str() {
                "on_success" => RuleWhen::OnSuccess,
                "on_failure" => RuleWhen::OnFailure,
                "always" => RuleWhen::Always,
                "manual" => RuleWhen::Manual,
                "delayed" => RuleWhen::Delayed,
                _ => RuleWhen::Never,
            })
        }
    };
    let allow_failure = match map.get("allow_failure") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            return Err(CompileError::entry(
                &location,
                "allow failure should be a boolean value",
            ))
        }
    };
    if let Some(v) = map.get("interruptible").filter(|v| !v.is_null()) {
        if !matches!(v, Value::Bool(_)) {
            return Err(CompileError::entry(
                &location,
                "interruptible should be a boolean value",
            ));
        }
    }
    check_start_in(map.get("start_in"), when, &location)?;
    let variables = match map.get("variables") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => keywords::parse_variables(v, &format!("{location}:variables"))?,
    };
    let needs = match map.get("needs") {
        None | Some(Value::Null) => None,
        Some(v) => Some(keywords::parse_needs(v, &format!("{location}:needs"))?),
    };
    let exists = match map.get("exists") {
        None | Some(Value::Null) => None,
        Some(v) => Some(parse_paths(v, &format!("{location}:exists"))?),
    };
    let changes = match map.get("changes").filter(|v| !v.is_null()) {
        None => None,
        Some(v) => Some(parse_paths(v, &format!("{location}:changes"))?),
    };
    Ok(Rule {
        condition,
        exists,
        changes,
        when,
        allow_failure,
        variables,
        needs,
    })
}

/// `start_in` belongs to `when: delayed` rules only and must be at most a week.
fn check_start_in(value: Option<&Value>, when: Option<RuleWhen>, location: &str) -> Result<()> {
    let value = value.filter(|v| !v.is_null());
    if when != Some(RuleWhen::Delayed) {
        if value.is_some() {
            return Err(CompileError::entry(
                location,
                "config contains disallowed keys: start_in",
            ));
        }
        return Ok(());
    }
    let Some(value) = value else {
        return Err(CompileError::entry(location, "start in can't be blank"));
    };
    keywords::check_start_in_value(value, location).map(|_| ())
}

/// `exists:`/`changes:`: a string, an array of strings, or `{paths: [...], …}`.
fn parse_paths(value: &Value, location: &str) -> Result<Vec<String>> {
    let invalid = || CompileError::entry(location, "config should be an array of strings");
    let list = match value {
        Value::Map(map) => map.get("paths").ok_or_else(invalid)?,
        other => other,
    };
    match list {
        Value::Str(s) => Ok(vec![s.clone()]),
        Value::Seq(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string).ok_or_else(invalid))
            .collect(),
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str, kind: RulesKind) -> Result<Vec<Rule>> {
        let value = crate::load::parse_yaml(text)?;
        parse_rules(&value, "jobs:x", kind)
    }

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn first_match_wins() {
        let parsed = rules(
            "- if: '$A == \"1\"'\n  when: manual\n- if: $B\n  when: never\n- when: on_success\n",
            RulesKind::Job,
        )
        .unwrap();
        let none = Checkout::new(&crate::NoRepository);
        let hit = first_match(&parsed, &vars(&[("A", "1"), ("B", "x")]), &none);
        assert_eq!(hit.and_then(|r| r.when), Some(RuleWhen::Manual));
        let hit = first_match(&parsed, &vars(&[("B", "x")]), &none);
        assert!(hit.is_some_and(Rule::is_never));
        let hit = first_match(&parsed, &vars(&[]), &none);
        assert_eq!(hit.and_then(|r| r.when), Some(RuleWhen::OnSuccess));
    }

    /// A commit with `files`, of which the push changed `changed`.
    struct Commit {
        files: Vec<&'static str>,
        changed: Option<Vec<&'static str>>,
    }

    impl crate::Repository for Commit {
        fn read_file(&self, path: &str) -> Option<String> {
            self.files.contains(&path).then(String::new)
        }
        fn files(&self) -> Vec<String> {
            self.files.iter().map(|f| f.to_string()).collect()
        }
        fn changed_files(&self) -> Option<Vec<String>> {
            self.changed
                .as_ref()
                .map(|c| c.iter().map(|f| f.to_string()).collect())
        }
    }

    #[test]
    fn exists_reads_files_and_matches_globs() {
        let parsed = rules("- exists: [Dockerfile, 'docs/**/*.md']\n", RulesKind::Job).unwrap();
        let matches = |files: Vec<&'static str>| {
            let commit = Commit {
                files,
                changed: None,
            };
            first_match(&parsed, &vars(&[]), &Checkout::new(&commit)).is_some()
        };
        assert!(matches(vec!["Dockerfile"]));
        assert!(matches(vec!["docs/a/b/guide.md"]));
        assert!(matches(vec!["docs/index.md"]));
        assert!(!matches(vec!["README.md", "src/Dockerfile"]));
    }

    #[test]
    fn changes_match_what_the_push_changed() {
        let parsed = rules("- changes: ['src/**/*', '*.toml']\n", RulesKind::Job).unwrap();
        let matches = |changed: Option<Vec<&'static str>>| {
            let commit = Commit {
                files: Vec::new(),
                changed,
            };
            first_match(&parsed, &vars(&[]), &Checkout::new(&commit)).is_some()
        };
        assert!(matches(Some(vec!["src/main.rs"])));
        assert!(matches(Some(vec!["Cargo.toml"])));
        assert!(!matches(Some(vec!["README.md", "sub/Cargo.toml"])));
        assert!(!matches(Some(Vec::new())));
        // Unknown (a tag, a schedule, a new branch): every `changes` holds.
        assert!(matches(None));
    }

    #[test]
    fn rule_errors() {
        let msg = |text: &str, kind| rules(text, kind).err().map(|e| (e.path, e.message));
        assert_eq!(
            msg("- if: '$A ==='\n", RulesKind::Job),
            Some((
                "jobs:x:rules:if".into(),
                "jobs:x:rules:rule if invalid expression syntax".into()
            ))
        );
        assert_eq!(
            msg("- when: sometimes\n", RulesKind::Job).map(|e| e.1),
            Some("jobs:x:rules:rule when unknown value: sometimes".into())
        );
        assert_eq!(
            msg("- when: manual\n", RulesKind::Workflow).map(|e| e.1),
            Some("jobs:x:rules:rule when unknown value: manual".into())
        );
        assert_eq!(
            msg("- foo: 1\n", RulesKind::Job).map(|e| e.1),
            Some("jobs:x:rules:rule config contains unknown keys: foo".into())
        );
        assert_eq!(
            msg("- allow_failure: maybe\n", RulesKind::Job).map(|e| e.1),
            Some("jobs:x:rules:rule allow failure should be a boolean value".into())
        );
        assert_eq!(
            msg("- when: delayed\n", RulesKind::Job).map(|e| e.1),
            Some("jobs:x:rules:rule start in can't be blank".into())
        );
        assert_eq!(
            msg("- start_in: 1 hour\n", RulesKind::Job).map(|e| e.1),
            Some("jobs:x:rules:rule config contains disallowed keys: start_in".into())
        );
        assert_eq!(
            msg("if: $A\n", RulesKind::Job).map(|e| e.1),
            Some("jobs:x rules should be an array containing hashes and arrays of hashes".into())
        );
        assert_eq!(
            msg("- 5\n", RulesKind::Job).map(|e| e.1),
            Some("jobs:x:rules:rule config should be a hash".into())
        );
        assert!(
            rules("- [{if: $A}, [{when: never}]]\n", RulesKind::Job).is_ok_and(|r| r.len() == 2)
        );
    }
}
