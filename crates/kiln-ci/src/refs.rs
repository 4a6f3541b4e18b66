//! `only:` / `except:` policies (GitLab's `Entry::Policy` and `Build::Policy::*`).
//!
//! A policy is an array of ref patterns or a hash of specs (`refs`, `variables`, `changes`,
//! `kubernetes`). A job runs iff every spec of `only` is satisfied and no spec of `except` is.
//! Ref patterns: `branches`, `tags`, a pipeline source or its plural (`pushes`, `schedules`, …),
//! `/regex/flags` (unanchored, against the ref name), or an exact ref name.
//!
//! Choices where we cannot do what GitLab does:
//! - `pattern@group/project`: we do not know the project path, so the `@…` part is ignored and
//!   the pattern is matched as if the project were this one (the common use is excluding forks,
//!   which Kiln does not have).
//! - `changes:` has no diff to look at and counts as satisfied (GitLab does the same when a
//!   pipeline has no diff, e.g. for tags, new branches and schedules).
//! - `kubernetes: active` is never satisfied: Kiln has no cluster integration.

use std::collections::BTreeMap;

use crate::error::{CompileError, Result};
use crate::expression::Expression;
use crate::pattern;
use crate::value::Value;

/// The facts about the pipeline that ref patterns look at.
pub(crate) struct RefContext<'a> {
    pub(crate) ref_name: &'a str,
    pub(crate) tag: bool,
    pub(crate) source: &'a str,
}

impl RefContext<'_> {
    /// Merge request pipelines run on `refs/merge-requests/…`, which is neither a branch nor a tag.
    fn branch(&self) -> bool {
        !self.tag && self.source_name() != "merge_request"
    }

    /// GitLab compares against the source without its `_event` suffix.
    fn source_name(&self) -> &str {
        self.source.strip_suffix("_event").unwrap_or(self.source)
    }
}

#[derive(Debug, Clone)]
enum Spec {
    Refs(Vec<String>),
    Variables(Vec<Expression>),
    Changes,
    Kubernetes,
}

/// A parsed `only:` or `except:`.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    specs: Vec<Spec>,
}

impl Policy {
    /// GitLab's default when a job has neither `only` nor `rules`: `only: [branches, tags]`.
    pub(crate) fn default_only() -> Policy {
        Policy {
            specs: vec![Spec::Refs(vec!["branches".into(), "tags".into()])],
        }
    }

    /// For `only`: every spec must be satisfied.
    pub(crate) fn all_satisfied(
        &self,
        ctx: &RefContext<'_>,
        vars: &BTreeMap<String, String>,
    ) -> bool {
        self.specs.iter().all(|s| satisfied(s, ctx, vars))
    }

    /// For `except`: any satisfied spec excludes the job.
    pub(crate) fn any_satisfied(
        &self,
        ctx: &RefContext<'_>,
        vars: &BTreeMap<String, String>,
    ) -> bool {
        self.specs.iter().any(|s| satisfied(s, ctx, vars))
    }
}

fn satisfied(spec: &Spec, ctx: &RefContext<'_>, vars: &BTreeMap<String, String>) -> bool {
    match spec {
        Spec::Refs(patterns) => patterns.iter().any(|p| ref_matches(p, ctx)),
        Spec::Variables(exprs) => exprs.iter().any(|e| e.evaluate(vars)),
        Spec::Changes => true,
        Spec::Kubernetes => false,
    }
}

/// Parses `only:`/`except:` at `location` (e.g. "jobs:rspec:only").
pub(crate) fn parse_policy(value: &Value, location: &str) -> Result<Policy> {
    match value {
        Value::Seq(items) => Ok(Policy {
            specs: vec![Spec::Refs(parse_refs(items, location)?)],
        }),
        Value::Map(map) => {
            if map.is_empty() {
                return Err(CompileError::entry(location, "config can't be blank"));
            }
            let unknown = map.unknown_keys(&["refs", "variables", "changes", "kubernetes"]);
            if !unknown.is_empty() {
                return Err(CompileError::entry(
                    location,
                    &format!("config contains unknown keys: {}", unknown.join(", ")),
                ));
            }
            let mut specs = Vec::new();
            for (key, v) in map.iter() {
                match key.as_str() {
                    "refs" => match v {
                        Value::Seq(items) => specs.push(Spec::Refs(parse_refs(items, location)?)),
                        _ => return Err(refs_error(&format!("{location}:refs"))),
                    },
                    "variables" => specs.push(Spec::Variables(parse_variables(v, location)?)),
                    "changes" => specs.push(Spec::Changes),
                    _ => {
                        if v.as_str() != Some("active") {
                            return Err(CompileError::entry(
                                &format!("{location}:kubernetes"),
                                &format!("config unknown value: {}", display(v)),
                            ));
                        }
                        specs.push(Spec::Kubernetes);
                    }
                }
            }
            Ok(Policy { specs })
        }
        _ => Err(CompileError::entry(
            location,
            "has to be either an array of conditions or a hash",
        )),
    }
}

fn display(v: &Value) -> String {
    v.scalar_to_string()
        .unwrap_or_else(|| v.to_json().to_string())
}

fn refs_error(location: &str) -> CompileError {
    CompileError::entry(
        location,
        "config should be an array of strings or regular expressions using re2 syntax",
    )
}

fn parse_refs(items: &[Value], location: &str) -> Result<Vec<String>> {
    items
        .iter()
        .map(|item| {
            let text = item.as_str().ok_or_else(|| refs_error(location))?;
            if let Some(Err(_)) = pattern::from_literal(text) {
                return Err(refs_error(location));
            }
            Ok(text.to_string())
        })
        .collect()
}

fn parse_variables(value: &Value, location: &str) -> Result<Vec<Expression>> {
    let invalid = || {
        CompileError::entry(
            &format!("{location}:variables"),
            "config should be an array of valid expressions",
        )
    };
    let Value::Seq(items) = value else {
        return Err(invalid());
    };
    items
        .iter()
        .map(|i| {
            i.as_str()
                .and_then(|s| Expression::parse(s).ok())
                .ok_or_else(invalid)
        })
        .collect()
}

/// GitLab `Build::Policy::Refs#matches_pattern?` (the `@project` suffix is ignored, see above).
pub(crate) fn ref_matches(full_pattern: &str, ctx: &RefContext<'_>) -> bool {
    let pattern = full_pattern.split('@').next().unwrap_or(full_pattern);
    if ctx.tag && pattern == "tags" {
        return true;
    }
    if ctx.branch() && pattern == "branches" {
        return true;
    }
    let source = ctx.source_name();
    if !source.is_empty() && (pattern == source || pattern == pluralize(source)) {
        return true;
    }
    // Name patterns only apply to branch and tag pipelines (not merge request refs).
    if !(ctx.branch() || ctx.tag) {
        return false;
    }
    match pattern::from_literal(pattern) {
        Some(Ok(re)) => re.is_match(ctx.ref_name),
        _ => pattern == ctx.ref_name,
    }
}

/// The English plural ActiveSupport gives the source names: push → pushes, schedule → schedules.
fn pluralize(word: &str) -> String {
    if ["s", "x", "z", "sh", "ch"]
        .iter()
        .any(|s| word.ends_with(s))
    {
        format!("{word}es")
    } else {
        format!("{word}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx<'a>(ref_name: &'a str, tag: bool, source: &'a str) -> RefContext<'a> {
        RefContext {
            ref_name,
            tag,
            source,
        }
    }

    #[test]
    fn patterns() {
        let branch = ctx("feature/login", false, "push");
        let tag = ctx("v1.2.0", true, "push");
        let schedule = ctx("main", false, "schedule");
        let mr = ctx("refs/merge-requests/1/head", false, "merge_request_event");
        assert!(ref_matches("branches", &branch));
        assert!(!ref_matches("tags", &branch));
        assert!(ref_matches("tags", &tag));
        assert!(!ref_matches("branches", &tag));
        assert!(ref_matches("pushes", &branch));
        assert!(ref_matches("push", &branch));
        assert!(ref_matches("schedules", &schedule));
        assert!(!ref_matches("schedules", &branch));
        assert!(ref_matches("merge_requests", &mr));
        assert!(!ref_matches("branches", &mr));
        assert!(!ref_matches("/.*/", &mr));
        assert!(ref_matches("/^feature\\//", &branch));
        assert!(ref_matches("/LOGIN/i", &branch));
        assert!(!ref_matches("/^v\\d/", &branch));
        assert!(ref_matches("/^v\\d/", &tag));
        assert!(ref_matches("feature/login", &branch));
        assert!(!ref_matches("feature", &branch));
        assert!(ref_matches("main@group/project", &schedule));
        assert!(ref_matches("branches@group/project", &branch));
        assert!(ref_matches("web", &ctx("main", false, "web")));
        assert!(ref_matches("triggers", &ctx("main", false, "trigger")));
        assert!(ref_matches("api", &ctx("main", false, "api")));
        assert!(ref_matches("pipelines", &ctx("main", false, "pipeline")));
    }

    #[test]
    fn policy_specs() {
        let vars: BTreeMap<String, String> = [("DEPLOY".to_string(), "yes".to_string())]
            .into_iter()
            .collect();
        let c = ctx("main", false, "push");
        let parse = |text: &str| match crate::load::parse_yaml(text) {
            Ok(v) => parse_policy(&v, "jobs:x:only"),
            Err(e) => Err(e),
        };
        let both = parse("{refs: [main], variables: ['$DEPLOY == \"yes\"']}").unwrap();
        assert!(both.all_satisfied(&c, &vars));
        assert!(!both.all_satisfied(&c, &BTreeMap::new()));
        assert!(both.any_satisfied(&c, &BTreeMap::new()));
        let kube = parse("{kubernetes: active}").unwrap();
        assert!(!kube.all_satisfied(&c, &vars));
        assert!(parse("{changes: [a/*]}").unwrap().all_satisfied(&c, &vars));
        assert_eq!(
            parse("master").err().map(|e| e.message).as_deref(),
            Some("jobs:x:only has to be either an array of conditions or a hash")
        );
        assert_eq!(
            parse("[/(/]").err().map(|e| e.message).as_deref(),
            Some("jobs:x:only config should be an array of strings or regular expressions using re2 syntax")
        );
        assert_eq!(
            parse("{foo: 1}").err().map(|e| e.message).as_deref(),
            Some("jobs:x:only config contains unknown keys: foo")
        );
    }
}
