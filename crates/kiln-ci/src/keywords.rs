//! Parsers for individual job keywords (and the `default:`/top-level ones they inherit from):
//! scripts, variables, needs, artifacts, retry, timeout, coverage, image, services, environment.
//! Each takes the value and its GitLab location ("jobs:rspec:artifacts") and returns the typed
//! value or GitLab's validation message for that entry.

use crate::duration::parse_duration;
use crate::error::{CompileError, Result};
use crate::pattern;
use crate::plan::{ArtifactsPlan, ArtifactsWhen, RetryPlan};
use crate::value::{Map, Value};

/// `start_in` and `when: delayed` may not wait longer than this (GitLab's limit).
const ONE_WEEK: u64 = 7 * 86_400;
/// Failure reasons `retry:when` accepts (GitLab's `Ci::Build.failure_reasons` plus `always`).
const RETRY_WHEN: &[&str] = &[
    "always",
    "unknown_failure",
    "script_failure",
    "api_failure",
    "stuck_or_timeout_failure",
    "runner_system_failure",
    "runner_unsupported",
    "stale_schedule",
    "job_execution_timeout",
    "archived_failure",
    "unmet_prerequisites",
    "scheduler_failure",
    "data_integrity_failure",
    "missing_dependency_failure",
];

/// A `needs:` entry before the pipeline is known.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NeedSpec {
    pub(crate) job: String,
    pub(crate) artifacts: bool,
    pub(crate) optional: bool,
    /// `parallel: matrix:` of the need: which of a matrix job's copies are needed.
    pub(crate) matrix: Option<Vec<Vec<(String, String)>>>,
}

fn unknown_keys(map: &Map, allowed: &[&str], location: &str) -> Result<()> {
    let unknown = map.unknown_keys(allowed);
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(CompileError::entry(
            location,
            &format!("config contains unknown keys: {}", unknown.join(", ")),
        ))
    }
}

/// `script`, `before_script`, `after_script`: a string or nested arrays of strings (10 levels).
pub(crate) fn parse_script(value: &Value, location: &str) -> Result<Vec<String>> {
    fn walk(value: &Value, level: usize, out: &mut Vec<String>) -> bool {
        match value {
            Value::Str(s) => {
                out.push(s.clone());
                true
            }
            Value::Seq(items) if level < 10 => items.iter().all(|i| walk(i, level + 1, out)),
            _ => false,
        }
    }
    let mut out = Vec::new();
    if !walk(value, 0, &mut out) {
        return Err(CompileError::entry(
            location,
            "config should be a string or a nested array of strings up to 10 levels deep",
        ));
    }
    Ok(out)
}

/// `variables:` (global, job, rule): scalars become strings (Ruby `to_s`), a null value is
/// empty, and the hash form `{value:, description:, expand:, options:}` contributes its value
/// (`raw_keys` tells which of them have `expand: false`).
pub(crate) fn parse_variables(value: &Value, location: &str) -> Result<Vec<(String, String)>> {
    let invalid = || {
        CompileError::entry(
            location,
            "config should be a hash of key value pairs, value can be a hash",
        )
    };
    let Value::Map(map) = value else {
        return Err(invalid());
    };
    let mut out = Vec::with_capacity(map.len());
    for (key, v) in map.iter() {
        let text = match v {
            Value::Map(hash) => {
                unknown_keys(
                    hash,
                    &["value", "description", "expand", "options"],
                    &format!("{location}:{key}"),
                )?;
                if !matches!(hash.get("expand"), None | Some(Value::Bool(_))) {
                    return Err(CompileError::entry(
                        &format!("{location}:{key}"),
                        "config expand should be a boolean value",
                    ));
                }
                match hash.get("value") {
                    None | Some(Value::Null) => String::new(),
                    Some(inner) => inner.scalar_to_string().ok_or_else(invalid)?,
                }
            }
            Value::Null => String::new(),
            other => other.scalar_to_string().ok_or_else(invalid)?,
        };
        out.push((key.clone(), text));
    }
    Ok(out)
}

/// The keys of `variables:` written `{value: …, expand: false}`: the runner passes them on
/// without expanding what they refer to.
pub(crate) fn raw_keys(value: &Value) -> Vec<String> {
    let Value::Map(map) = value else {
        return Vec::new();
    };
    map.iter()
        .filter(|(_, v)| {
            v.as_map()
                .is_some_and(|h| h.get("expand") == Some(&Value::Bool(false)))
        })
        .map(|(k, _)| k.clone())
        .collect()
}

/// An array of strings (tags, dependencies, artifacts paths); `what` names the attribute in
/// the message ("config" for an entry of its own).
pub(crate) fn parse_strings(value: &Value, location: &str, what: &str) -> Result<Vec<String>> {
    let invalid =
        || CompileError::entry(location, &format!("{what} should be an array of strings"));
    let Value::Seq(items) = value else {
        return Err(invalid());
    };
    items
        .iter()
        .map(|i| i.as_str().map(str::to_string).ok_or_else(invalid))
        .collect()
}

/// A job's `needs:`, with the needs on other projects' or the parent pipeline's jobs
/// (`project:`, `pipeline:`) left out, each with a warning: Kiln does not run them, and the
/// job runs without waiting for them instead of the whole file being refused.
pub(crate) fn parse_job_needs(
    value: &Value,
    location: &str,
) -> Result<(Vec<NeedSpec>, Vec<String>)> {
    let elsewhere = |item: &Value| {
        item.as_map()
            .filter(|m| m.contains_key("project") || m.contains_key("pipeline"))
            .map(|m| {
                let job = m.get("job").and_then(Value::scalar_to_string).unwrap_or_default();
                let source = match m.get("project").and_then(Value::scalar_to_string) {
                    Some(project) => format!("project `{project}`"),
                    None => "the parent pipeline".to_owned(),
                };
                format!("needs: job `{job}` of {source} was left out: Kiln does not run cross-project or parent-pipeline needs")
            })
    };
    let (kept, warnings) = match value {
        Value::Seq(items) => {
            let warnings: Vec<String> = items.iter().filter_map(elsewhere).collect();
            let kept = items
                .iter()
                .filter(|i| elsewhere(i).is_none())
                .cloned()
                .collect();
            (Value::Seq(kept), warnings)
        }
        other => match elsewhere(other) {
            Some(warning) => (Value::Seq(Vec::new()), vec![warning]),
            None => (other.clone(), Vec::new()),
        },
    };
    Ok((parse_needs(&kept, location)?, warnings))
}

/// `needs:` — names or `{job:, artifacts: true, optional: false}` hashes.
pub(crate) fn parse_needs(value: &Value, location: &str) -> Result<Vec<NeedSpec>> {
    // GitLab's `Entry::Needs`: a hash is one need, a bare string is refused.
    let items: Vec<&Value> = match value {
        Value::Seq(items) => items.iter().collect(),
        Value::Map(map) if map.is_empty() => {
            return Err(CompileError::entry(
                location,
                "config can not be an empty hash",
            ))
        }
        Value::Map(_) => vec![value],
        _ => {
            return Err(CompileError::entry(
                location,
                "config can only be a hash or an array",
            ))
        }
    };
    let need_location = format!("{location}:need");
    items
        .into_iter()
        .map(|item| match item {
            Value::Str(job) => Ok(NeedSpec {
                job: job.clone(),
                artifacts: true,
                optional: false,
                matrix: None,
            }),
            Value::Map(map) => {
                if map.contains_key("pipeline") || map.contains_key("project") {
                    return Err(CompileError::entry(
                        &need_location,
                        "cross-project and parent-pipeline needs are not supported",
                    ));
                }
                unknown_keys(
                    map,
                    &["job", "artifacts", "optional", "parallel"],
                    &need_location,
                )?;
                let job = map
                    .get("job")
                    .and_then(Value::as_str)
                    .ok_or_else(|| CompileError::entry(&need_location, "job should be a string"))?;
                let flag = |key: &str, default: bool| match map.get(key) {
                    None | Some(Value::Null) => Ok(default),
                    Some(Value::Bool(b)) => Ok(*b),
                    Some(_) => Err(CompileError::entry(
                        &need_location,
                        &format!("{key} should be a boolean value"),
                    )),
                };
                let matrix = match map.get("parallel") {
                    None | Some(Value::Null) => None,
                    Some(parallel) => Some(need_matrix(parallel, &need_location)?),
                };
                Ok(NeedSpec {
                    job: job.to_string(),
                    artifacts: flag("artifacts", true)?,
                    optional: flag("optional", false)?,
                    matrix,
                })
            }
            _ => Err(CompileError::entry(
                &need_location,
                "config should be a string or a hash",
            )),
        })
        .collect()
}

/// A need's `parallel: {matrix: [...]}`, read as a job's matrix is.
fn need_matrix(value: &Value, location: &str) -> Result<Vec<Vec<(String, String)>>> {
    let location = format!("{location}:parallel");
    let Some(map) = value
        .as_map()
        .filter(|m| m.len() == 1 && m.contains_key("matrix"))
    else {
        return Err(CompileError::entry(
            &location,
            "config contains unknown keys or is not a hash with matrix",
        ));
    };
    match crate::job::parse_matrix(
        map.get("matrix").unwrap_or(&Value::Null),
        &format!("{location}:matrix"),
    )? {
        crate::job::Parallel::Matrix(combos) => Ok(combos),
        crate::job::Parallel::Count(_) => Ok(Vec::new()),
    }
}

/// `image:` — a name or `{name:, entrypoint:, …}`; the plan keeps the name.
pub(crate) fn parse_image(value: &Value, location: &str) -> Result<String> {
    const KEYS: &[&str] = &[
        "name",
        "entrypoint",
        "docker",
        "pull_policy",
        "ports",
        "kubernetes",
    ];
    named(value, location, KEYS)
}

/// `services:` — a list of names or `{name:, alias:, …}` hashes.
pub(crate) fn parse_services(value: &Value, location: &str) -> Result<Vec<String>> {
    const KEYS: &[&str] = &[
        "name",
        "entrypoint",
        "command",
        "alias",
        "ports",
        "variables",
        "docker",
        "pull_policy",
        "kubernetes",
    ];
    let Value::Seq(items) = value else {
        // GitLab's wording ("a array") comes from its generic type validator.
        return Err(CompileError::entry(location, "config should be a array"));
    };
    items
        .iter()
        .map(|i| named(i, &format!("{location}:service"), KEYS))
        .collect()
}

/// `environment:` — a name or `{name:, url:, action:, …}`.
pub(crate) fn parse_environment(value: &Value, location: &str) -> Result<String> {
    const KEYS: &[&str] = &[
        "name",
        "url",
        "action",
        "on_stop",
        "auto_stop_in",
        "kubernetes",
        "deployment_tier",
    ];
    named(value, location, KEYS)
}

/// A string, or a hash whose `name` is the string (image, service, environment).
fn named(value: &Value, location: &str, keys: &[&str]) -> Result<String> {
    match value {
        Value::Str(name) => Ok(name.clone()),
        Value::Map(map) => {
            unknown_keys(map, keys, location)?;
            match map.get("name") {
                Some(Value::Str(name)) if !name.trim().is_empty() => Ok(name.clone()),
                Some(Value::Str(_)) | None | Some(Value::Null) => {
                    Err(CompileError::entry(location, "name can't be blank"))
                }
                Some(_) => Err(CompileError::entry(location, "name should be a string")),
            }
        }
        _ => Err(CompileError::entry(
            location,
            "config should be a hash or a string",
        )),
    }
}

/// `timeout:` — a human duration, or (Kiln extension) an integer number of seconds.
pub(crate) fn parse_timeout(value: &Value, location: &str) -> Result<u64> {
    let secs = match value {
        Value::Str(text) => parse_duration(text),
        Value::Int(i) => u64::try_from(*i).ok(),
        _ => None,
    };
    secs.filter(|s| *s > 0)
        .ok_or_else(|| CompileError::entry(location, "config should be a duration"))
}

/// `start_in:` of a delayed job or rule: a positive duration of at most one week.
pub(crate) fn check_start_in_value(value: &Value, location: &str) -> Result<u64> {
    let secs = match value {
        Value::Str(text) => parse_duration(text),
        Value::Int(i) => u64::try_from(*i).ok(),
        _ => None,
    }
    .filter(|s| *s > 0)
    .ok_or_else(|| CompileError::entry(location, "start in should be a duration"))?;
    if secs > ONE_WEEK {
        return Err(CompileError::entry(
            location,
            "start in should not exceed the limit",
        ));
    }
    Ok(secs)
}

/// `coverage: '/regex/'` → the regex without its slashes (flags folded in as `(?i)`).
pub(crate) fn parse_coverage(value: &Value, location: &str) -> Result<String> {
    let invalid = || {
        CompileError::entry(
            location,
            "config must be a regular expression with re2 syntax",
        )
    };
    let text = value.as_str().ok_or_else(invalid)?;
    let (body, flags) = pattern::split_literal(text).ok_or_else(invalid)?;
    if body.is_empty() || pattern::compile(&body, &flags).is_err() {
        return Err(invalid());
    }
    Ok(if flags.is_empty() {
        body
    } else {
        format!("(?{flags}){body}")
    })
}

/// `retry:` — 0..=2, or `{max: 0..=2, when: reason|[reasons], exit_codes: …}`.
pub(crate) fn parse_retry(value: &Value, location: &str) -> Result<RetryPlan> {
    let max = |v: &Value, what: &str| -> Result<u8> {
        match v {
            Value::Int(i) if *i < 0 => Err(CompileError::entry(
                location,
                &format!("{what} must be greater than or equal to 0"),
            )),
            Value::Int(i) if *i > 2 => Err(CompileError::entry(
                location,
                &format!("{what} must be less than or equal to 2"),
            )),
            Value::Int(i) => Ok(u8::try_from(*i).unwrap_or(0)),
            _ => Err(CompileError::entry(
                location,
                &format!("{what} is not a number"),
            )),
        }
    };
    match value {
        Value::Int(_) => Ok(RetryPlan {
            max: max(value, "config")?,
            when: Vec::new(),
        }),
        Value::Map(map) => {
            unknown_keys(map, &["max", "when", "exit_codes"], location)?;
            let max = match map.get("max") {
                None | Some(Value::Null) => 0,
                Some(v) => max(v, "max")?,
            };
            let when = match map.get("when") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Str(s)) => vec![s.clone()],
                Some(v @ Value::Seq(_)) => parse_strings(v, location, "when")?,
                Some(_) => {
                    return Err(CompileError::entry(
                        location,
                        "when should be an array of strings or a string",
                    ))
                }
            };
            let unknown: Vec<&str> = when
                .iter()
                .filter(|w| !RETRY_WHEN.contains(&w.as_str()))
                .map(String::as_str)
                .collect();
            if !unknown.is_empty() {
                return Err(CompileError::entry(
                    location,
                    &format!("when contains unknown values: {}", unknown.join(", ")),
                ));
            }
            match map.get("exit_codes") {
                None | Some(Value::Null) | Some(Value::Int(_)) => {}
                Some(Value::Seq(codes)) if codes.iter().all(|c| matches!(c, Value::Int(_))) => {}
                Some(_) => {
                    return Err(CompileError::entry(
                        location,
                        "exit codes should be an array of integers or an integer",
                    ))
                }
            }
            Ok(RetryPlan { max, when })
        }
        _ => Err(CompileError::entry(
            location,
            "config has to be either an integer or a hash",
        )),
    }
}

/// `artifacts:`; of `reports:`, `dotenv` is kept and the others are accepted and ignored.
/// Returns None when nothing would be archived or reported.
pub(crate) fn parse_artifacts(value: &Value, location: &str) -> Result<Option<ArtifactsPlan>> {
    const KEYS: &[&str] = &[
        "name",
        "untracked",
        "paths",
        "reports",
        "when",
        "expire_in",
        "expose_as",
        "exclude",
        "public",
        "access",
    ];
    let Value::Map(map) = value else {
        return Err(CompileError::entry(location, "config should be a hash"));
    };
    unknown_keys(map, KEYS, location)?;
    let get = |key: &str| map.get(key).filter(|v| !v.is_null());
    let name = match get("name") {
        None => None,
        Some(v @ (Value::Str(_) | Value::Int(_) | Value::Float(_))) => v.scalar_to_string(),
        Some(_) => return Err(CompileError::entry(location, "name should be a string")),
    };
    let paths = get("paths")
        .map(|v| parse_strings(v, location, "paths"))
        .transpose()?
        .unwrap_or_default();
    let exclude = get("exclude")
        .map(|v| parse_strings(v, location, "exclude"))
        .transpose()?
        .unwrap_or_default();
    let untracked = match get("untracked") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(CompileError::entry(
                location,
                "untracked should be a boolean value",
            ))
        }
    };
    let when = match get("when").map(|v| v.scalar_to_string().unwrap_or_default()) {
        None => ArtifactsWhen::OnSuccess,
        Some(w) => match w.as_str() {
            "on_success" => ArtifactsWhen::OnSuccess,
            "on_failure" => ArtifactsWhen::OnFailure,
            "always" => ArtifactsWhen::Always,
            _ => {
                return Err(CompileError::entry(
                    location,
                    "when should be on_success, on_failure or always",
                ))
            }
        },
    };
    let (expire_in, expire_in_secs) = match get("expire_in") {
        None => (None, None),
        Some(v) => {
            let raw = v.scalar_to_string().unwrap_or_default();
            let secs = if raw.trim() == "never" {
                None
            } else {
                let parsed = match v {
                    Value::Int(i) => u64::try_from(*i).ok(),
                    _ => parse_duration(&raw),
                };
                Some(parsed.filter(|s| *s > 0).ok_or_else(|| {
                    CompileError::entry(location, "expire in should be a duration")
                })?)
            };
            (Some(raw), secs)
        }
    };
    let dotenv = match get("reports") {
        None => Vec::new(),
        Some(Value::Map(reports)) => match reports.get("dotenv").filter(|v| !v.is_null()) {
            None => Vec::new(),
            Some(Value::Str(path)) => vec![path.clone()],
            Some(v) => {
                parse_strings(v, &format!("{location}:reports"), "dotenv").map_err(|_| {
                    CompileError::entry(
                        &format!("{location}:reports"),
                        "dotenv should be an array of strings or a string",
                    )
                })?
            }
        },
        Some(_) => {
            return Err(CompileError::entry(
                &format!("{location}:reports"),
                "config should be a hash",
            ));
        }
    };
    if paths.is_empty() && !untracked && dotenv.is_empty() {
        return Ok(None);
    }
    Ok(Some(ArtifactsPlan {
        name,
        paths,
        exclude,
        untracked,
        when,
        expire_in,
        expire_in_secs,
        dotenv,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::parse_yaml;

    fn v(text: &str) -> Value {
        parse_yaml(text).unwrap()
    }

    fn err<T: std::fmt::Debug>(r: Result<T>) -> String {
        r.err().map(|e| e.message).unwrap_or_default()
    }

    #[test]
    fn scripts_flatten() {
        assert_eq!(parse_script(&v("echo hi"), "x").unwrap(), ["echo hi"]);
        assert_eq!(
            parse_script(&v("[a, [b, [c]], d]"), "x").unwrap(),
            ["a", "b", "c", "d"]
        );
        assert_eq!(
            err(parse_script(&v("42"), "jobs:j:script")),
            "jobs:j:script config should be a string or a nested array of strings up to 10 levels deep"
        );
        assert!(parse_script(&v("[a, 1]"), "x").is_err());
    }

    #[test]
    fn variables_to_strings() {
        let vars = parse_variables(
            &v("{A: 1, B: 1.10, C: true, D: text, E: {value: v, description: d}, F: {description: only}}"),
            "variables",
        )
        .unwrap();
        let expected: Vec<(String, String)> = [
            ("A", "1"),
            ("B", "1.1"),
            ("C", "true"),
            ("D", "text"),
            ("E", "v"),
            ("F", ""),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(vars, expected);
        assert_eq!(
            err(parse_variables(&v("[a]"), "variables")),
            "variables config should be a hash of key value pairs, value can be a hash"
        );
        assert!(parse_variables(&v("{A: [1]}"), "variables").is_err());
        // `X:` is an empty value, as GitLab takes it.
        assert_eq!(
            parse_variables(&v("{A: ~}"), "variables").ok(),
            Some(vec![("A".to_string(), String::new())])
        );
        assert_eq!(
            raw_keys(&v("{A: {value: x, expand: false}, B: {value: y}, C: z}")),
            ["A"]
        );
        assert!(parse_variables(&v("{A: {value: x, expand: maybe}}"), "variables").is_err());
    }

    #[test]
    fn needs_forms() {
        let needs = parse_needs(
            &v("[a, {job: b, artifacts: false}, {job: c, optional: true}]"),
            "n",
        )
        .unwrap();
        assert_eq!(
            needs,
            [
                NeedSpec {
                    job: "a".into(),
                    artifacts: true,
                    optional: false,
                    matrix: None
                },
                NeedSpec {
                    job: "b".into(),
                    artifacts: false,
                    optional: false,
                    matrix: None
                },
                NeedSpec {
                    job: "c".into(),
                    artifacts: true,
                    optional: true,
                    matrix: None
                },
            ]
        );
        assert!(parse_needs(&v("[]"), "n").unwrap().is_empty());
        assert!(parse_needs(&v("[{artifacts: true}]"), "n").is_err());
        assert!(parse_needs(&v("[{pipeline: $X, job: a}]"), "n").is_err());
    }

    #[test]
    fn retry_forms() {
        assert_eq!(parse_retry(&v("2"), "r").unwrap().max, 2);
        let full = parse_retry(&v("{max: 1, when: [script_failure]}"), "r").unwrap();
        assert_eq!(
            full,
            RetryPlan {
                max: 1,
                when: vec!["script_failure".into()]
            }
        );
        assert_eq!(
            parse_retry(&v("{max: 2, when: always}"), "r").unwrap().when,
            ["always"]
        );
        assert_eq!(
            err(parse_retry(&v("3"), "jobs:j:retry")),
            "jobs:j:retry config must be less than or equal to 2"
        );
        assert_eq!(
            err(parse_retry(&v("-1"), "jobs:j:retry")),
            "jobs:j:retry config must be greater than or equal to 0"
        );
        assert_eq!(
            err(parse_retry(&v("{max: 5}"), "jobs:j:retry")),
            "jobs:j:retry max must be less than or equal to 2"
        );
        assert_eq!(
            err(parse_retry(&v("{max: 1, when: [bogus]}"), "jobs:j:retry")),
            "jobs:j:retry when contains unknown values: bogus"
        );
        assert_eq!(
            err(parse_retry(&v("yes"), "jobs:j:retry")),
            "jobs:j:retry config has to be either an integer or a hash"
        );
    }

    #[test]
    fn artifacts_and_coverage() {
        let a = parse_artifacts(
            &v("{name: bin, paths: [target/], exclude: [target/*.d], when: always, expire_in: 1 week, reports: {junit: r.xml}}"),
            "a",
        )
        .unwrap()
        .unwrap();
        assert_eq!(a.expire_in_secs, Some(604_800));
        assert_eq!(a.when, ArtifactsWhen::Always);
        let never = parse_artifacts(&v("{paths: [x], expire_in: never}"), "a")
            .unwrap()
            .unwrap();
        assert_eq!(
            (never.expire_in.as_deref(), never.expire_in_secs),
            (Some("never"), None)
        );
        assert_eq!(
            parse_artifacts(&v("{reports: {junit: r.xml}}"), "a").unwrap(),
            None
        );
        assert_eq!(
            err(parse_artifacts(
                &v("{paths: [x], expire_in: soon}"),
                "jobs:j:artifacts"
            )),
            "jobs:j:artifacts expire in should be a duration"
        );
        assert_eq!(
            err(parse_artifacts(
                &v("{paths: [x], when: later}"),
                "jobs:j:artifacts"
            )),
            "jobs:j:artifacts when should be on_success, on_failure or always"
        );
        assert_eq!(
            err(parse_artifacts(&v("{pathz: [x]}"), "jobs:j:artifacts")),
            "jobs:j:artifacts config contains unknown keys: pathz"
        );
        let reported = parse_artifacts(&v("{reports: {dotenv: [a.env, b.env]}}"), "a")
            .unwrap()
            .expect("a dotenv report is something to upload");
        assert_eq!(reported.dotenv, ["a.env", "b.env"]);
        assert!(!reported.archives());
        let one = parse_artifacts(&v("{reports: {dotenv: a.env}}"), "a").unwrap();
        assert_eq!(one.map(|a| a.dotenv), Some(vec!["a.env".to_string()]));
        assert_eq!(
            err(parse_artifacts(
                &v("{reports: {dotenv: {x: 1}}}"),
                "jobs:j:artifacts"
            )),
            "jobs:j:artifacts:reports dotenv should be an array of strings or a string"
        );
        assert_eq!(
            parse_coverage(&v("'/Coverage: (\\d+)%/'"), "c").unwrap(),
            "Coverage: (\\d+)%"
        );
        assert_eq!(parse_coverage(&v("'/total/i'"), "c").unwrap(), "(?i)total");
        assert_eq!(
            err(parse_coverage(&v("'Coverage: (\\d+)%'"), "jobs:j:coverage")),
            "jobs:j:coverage config must be a regular expression with re2 syntax"
        );
    }

    #[test]
    fn image_services_environment_timeout() {
        assert_eq!(parse_image(&v("ruby:3.2"), "i").unwrap(), "ruby:3.2");
        assert_eq!(
            parse_image(&v("{name: ruby, entrypoint: ['']}"), "i").unwrap(),
            "ruby"
        );
        assert_eq!(
            err(parse_image(&v("5"), "jobs:j:image")),
            "jobs:j:image config should be a hash or a string"
        );
        assert_eq!(
            parse_services(&v("[postgres:15, {name: redis, alias: cache}]"), "s").unwrap(),
            ["postgres:15", "redis"]
        );
        assert_eq!(
            err(parse_services(&v("redis"), "jobs:j:services")),
            "jobs:j:services config should be a array"
        );
        assert_eq!(
            parse_environment(&v("{name: production, url: 'https://x'}"), "e").unwrap(),
            "production"
        );
        assert_eq!(parse_timeout(&v("1h 30m"), "t").unwrap(), 5400);
        assert_eq!(parse_timeout(&v("600"), "t").unwrap(), 600);
        assert_eq!(
            err(parse_timeout(&v("soon"), "jobs:j:timeout")),
            "jobs:j:timeout config should be a duration"
        );
    }
}
