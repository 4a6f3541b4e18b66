//! `cache:` — GitLab's `Entry::Caches` and `Entry::Cache` validation, and the key each cache
//! gets when the pipeline is created (`Seed::Build::Cache`): a string key is passed on for the
//! runner to expand; `key: files:` becomes `<prefix>-<sha1 of the files' blob ids>`, the
//! prefix defaulting to the cache's index, as GitLab computes it from the commit.

use crate::error::{CompileError, Result};
use crate::keywords::parse_strings;
use crate::plan::{ArtifactsWhen, CachePlan};
use crate::repository::{is_glob, Checkout};
use crate::value::{Map, Value};

/// GitLab's `Caches::MULTIPLE_CACHE_LIMIT`.
const MAX_CACHES: usize = 4;
/// GitLab's limit of `fallback_keys`.
const MAX_FALLBACK_KEYS: usize = 5;
/// `key: files:` names one or two files (`Entry::Files::DEFAULT_MAX_SIZE`).
const MAX_KEY_FILES: usize = 2;
const KEYS: &[&str] = &[
    "key",
    "untracked",
    "paths",
    "when",
    "policy",
    "unprotect",
    "fallback_keys",
];

/// A cache as written, before its key is computed for a commit.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CacheSpec {
    key: CacheKey,
    plan: CachePlan,
}

#[derive(Debug, Clone, PartialEq)]
enum CacheKey {
    Text(String),
    Files {
        files: Vec<String>,
        prefix: Option<String>,
    },
}

/// `cache:` of a job or of `default:` — one hash or up to four.
pub(crate) fn parse_caches(value: &Value, location: &str) -> Result<Vec<CacheSpec>> {
    let items: Vec<&Value> = match value {
        Value::Map(_) => vec![value],
        Value::Seq(items) => items.iter().collect(),
        _ => {
            return Err(CompileError::entry(
                location,
                "config can only be a hash or an array",
            ))
        }
    };
    if items.len() > MAX_CACHES {
        return Err(CompileError::entry(
            location,
            &format!("config no more than {MAX_CACHES} caches can be created"),
        ));
    }
    items
        .into_iter()
        .map(|item| parse_cache(item, location))
        .collect()
}

fn parse_cache(value: &Value, location: &str) -> Result<CacheSpec> {
    let Value::Map(map) = value else {
        return Err(CompileError::entry(location, "config should be a hash"));
    };
    let unknown = map.unknown_keys(KEYS);
    if !unknown.is_empty() {
        return Err(CompileError::entry(
            location,
            &format!("config contains unknown keys: {}", unknown.join(", ")),
        ));
    }
    let get = |key: &str| map.get(key).filter(|v| !v.is_null());
    let sub = |key: &str| format!("{location}:{key}");
    let key = match get("key") {
        None => CacheKey::Text("default".to_owned()),
        Some(v) => parse_key(v, &sub("key"))?,
    };
    let paths = get("paths")
        .map(|v| parse_strings(v, &sub("paths"), "config"))
        .transpose()?
        .unwrap_or_default();
    let policy = match get("policy") {
        None => "pull-push".to_owned(),
        Some(v) => parse_policy(v, location)?,
    };
    let when = match get("when") {
        None => ArtifactsWhen::OnSuccess,
        Some(v) => match v.as_str() {
            Some("on_success") => ArtifactsWhen::OnSuccess,
            Some("on_failure") => ArtifactsWhen::OnFailure,
            Some("always") => ArtifactsWhen::Always,
            _ => {
                return Err(CompileError::entry(
                    location,
                    "when should be one of: on_success, on_failure, always",
                ))
            }
        },
    };
    let fallback_keys = get("fallback_keys")
        .map(|v| parse_strings(v, &sub("fallback_keys"), "config"))
        .transpose()?
        .unwrap_or_default();
    if fallback_keys.len() > MAX_FALLBACK_KEYS {
        return Err(CompileError::entry(
            location,
            &format!("fallback keys has to many entries (maximum {MAX_FALLBACK_KEYS})"),
        ));
    }
    Ok(CacheSpec {
        key,
        plan: CachePlan {
            key: String::new(),
            paths,
            untracked: boolean(get("untracked"), &sub("untracked"))?,
            when,
            policy,
            unprotect: boolean(get("unprotect"), &sub("unprotect"))?,
            fallback_keys,
        },
    })
}

fn boolean(value: Option<&Value>, location: &str) -> Result<bool> {
    match value {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(CompileError::entry(
            location,
            "config should be a boolean value",
        )),
    }
}

/// `pull-push`, `push`, `pull`, or a variable the runner expands (GitLab's `ALLOWED_POLICY`).
fn parse_policy(value: &Value, location: &str) -> Result<String> {
    let text = value.as_str().unwrap_or_default();
    let variable = text.strip_prefix('$').is_some_and(|name| {
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    });
    if matches!(text, "pull-push" | "push" | "pull") || variable {
        Ok(text.to_owned())
    } else {
        Err(CompileError::entry(
            location,
            "policy should be a variable or one of: pull-push, push, pull",
        ))
    }
}

/// A string (`Key::SimpleKey`) or `{files:, prefix:}` (`Key::ComplexKey`).
fn parse_key(value: &Value, location: &str) -> Result<CacheKey> {
    match value {
        Value::Map(map) => parse_files_key(map, location),
        Value::Str(_) | Value::Int(_) | Value::Float(_) | Value::Bool(_) => {
            let text = value.scalar_to_string().unwrap_or_default();
            check_key_text(&text, location)?;
            Ok(CacheKey::Text(text))
        }
        _ => Err(CompileError::entry(
            location,
            "should be a hash, a string or a symbol",
        )),
    }
}

/// GitLab's `KeyValidator`: the key names a folder of the runner's cache, so no `/` (also
/// written `%2F`) and not `.` or `..`.
fn check_key_text(text: &str, location: &str) -> Result<()> {
    let decoded = text.replace("%2F", "/").replace("%2f", "/");
    if decoded.contains('/') {
        return Err(CompileError::entry(
            location,
            "config cannot contain the \"/\" character",
        ));
    }
    if decoded == "." || decoded == ".." {
        return Err(CompileError::entry(
            location,
            "config cannot be \".\" or \"..\"",
        ));
    }
    Ok(())
}

fn parse_files_key(map: &Map, location: &str) -> Result<CacheKey> {
    let unknown = map.unknown_keys(&["files", "prefix"]);
    if !unknown.is_empty() {
        return Err(CompileError::entry(
            location,
            &format!("config contains unknown keys: {}", unknown.join(", ")),
        ));
    }
    let Some(files) = map.get("files").filter(|v| !v.is_null()) else {
        return Err(CompileError::entry(
            location,
            "config missing required keys: files",
        ));
    };
    let files_location = format!("{location}:files");
    let files = parse_strings(files, &files_location, "config")?;
    if files.is_empty() {
        return Err(CompileError::entry(
            &files_location,
            "config requires at least 1 item",
        ));
    }
    if files.len() > MAX_KEY_FILES {
        return Err(CompileError::entry(
            &files_location,
            &format!("config has too many items (maximum is {MAX_KEY_FILES})"),
        ));
    }
    let prefix = match map.get("prefix").filter(|v| !v.is_null()) {
        None => None,
        Some(v) => {
            let text = v.scalar_to_string().ok_or_else(|| {
                CompileError::entry(
                    &format!("{location}:prefix"),
                    "config should be a string or symbol",
                )
            })?;
            check_key_text(&text, &format!("{location}:prefix"))?;
            Some(text)
        }
    };
    let files = files
        .into_iter()
        .map(|f| f.trim_start_matches('/').to_owned())
        .collect();
    Ok(CacheKey::Files { files, prefix })
}

/// The caches of a job for the pipeline's commit: `key: files:` resolved (see the module).
pub(crate) fn resolve(caches: Vec<CacheSpec>, checkout: &Checkout) -> Vec<CachePlan> {
    caches
        .into_iter()
        .enumerate()
        .map(|(index, cache)| {
            let key = match cache.key {
                CacheKey::Text(text) => text,
                CacheKey::Files { files, prefix } => {
                    let prefix = prefix.unwrap_or_else(|| index.to_string());
                    let digest = files_digest(&files, checkout);
                    [prefix, digest]
                        .into_iter()
                        .filter(|part| !part.is_empty())
                        .collect::<Vec<_>>()
                        .join("-")
                }
            };
            CachePlan { key, ..cache.plan }
        })
        .collect()
}

/// SHA-1 of the sorted, distinct blob ids of the files (globs expanded), joined by `-`;
/// `default` when none exists.
fn files_digest(patterns: &[String], checkout: &Checkout) -> String {
    let mut paths: Vec<String> = Vec::new();
    for pattern in patterns {
        if is_glob(pattern) && pattern.contains('*') {
            paths.extend(checkout.matching(pattern).into_iter().map(str::to_owned));
        } else {
            paths.push(pattern.clone());
        }
    }
    let mut ids: Vec<String> = paths
        .iter()
        .filter_map(|path| checkout.blob_id(path))
        .collect();
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return "default".to_owned();
    }
    crate::repository::sha1_hex(ids.join("-").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    fn yaml(text: &str) -> Value {
        crate::load::parse_yaml(text).expect("yaml")
    }

    fn error(text: &str) -> String {
        parse_caches(&yaml(text), "jobs:build:cache")
            .expect_err("refused")
            .message
    }

    #[test]
    fn gitlab_messages() {
        assert_eq!(
            error("key: a/b"),
            "jobs:build:cache:key config cannot contain the \"/\" character"
        );
        assert_eq!(
            error("key: a%2Fb"),
            "jobs:build:cache:key config cannot contain the \"/\" character"
        );
        assert_eq!(
            error("key: '..'"),
            "jobs:build:cache:key config cannot be \".\" or \"..\""
        );
        assert_eq!(
            error("policy: pushy"),
            "jobs:build:cache policy should be a variable or one of: pull-push, push, pull"
        );
        assert_eq!(
            error("when: never"),
            "jobs:build:cache when should be one of: on_success, on_failure, always"
        );
        assert_eq!(
            error("{key: {files: [a, b, c]}}"),
            "jobs:build:cache:key:files config has too many items (maximum is 2)"
        );
        assert_eq!(
            error("{key: {files: []}}"),
            "jobs:build:cache:key:files config requires at least 1 item"
        );
        assert_eq!(
            error("{key: {prefix: x}}"),
            "jobs:build:cache:key config missing required keys: files"
        );
        assert_eq!(
            error("{key: {files: [a], other: 1}}"),
            "jobs:build:cache:key config contains unknown keys: other"
        );
        assert_eq!(
            error("{paths: [a], foo: 1}"),
            "jobs:build:cache config contains unknown keys: foo"
        );
        assert_eq!(
            error("[{}, {}, {}, {}, {}]"),
            "jobs:build:cache config no more than 4 caches can be created"
        );
        assert_eq!(
            error("fallback_keys: [a, b, c, d, e, f]"),
            "jobs:build:cache fallback keys has to many entries (maximum 5)"
        );
        assert_eq!(
            error("untracked: yes please"),
            "jobs:build:cache:untracked config should be a boolean value"
        );
        assert_eq!(
            error("key: [a]"),
            "jobs:build:cache:key should be a hash, a string or a symbol"
        );
        assert_eq!(
            error("cache"),
            "jobs:build:cache config can only be a hash or an array"
        );
    }

    #[test]
    fn policies_and_defaults() {
        let caches = parse_caches(&yaml("{paths: [vendor/]}"), "cache").expect("cache");
        let plans = resolve(caches, &Checkout::new(&crate::NoRepository));
        assert_eq!(plans[0].key, "default");
        assert_eq!(plans[0].policy, "pull-push");
        assert_eq!(plans[0].when, ArtifactsWhen::OnSuccess);
        let caches = parse_caches(&yaml("{policy: $CACHE_POLICY}"), "cache").expect("variable");
        assert_eq!(caches[0].plan.policy, "$CACHE_POLICY");
    }

    #[test]
    fn jobs_take_the_default_cache_unless_they_set_or_refuse_it() {
        let text = "default:\n  cache: {key: shared, paths: [a]}\nplain:\n  script: [x]\nown:\n  script: [x]\n  cache: [{key: mine, policy: pull}]\nnone:\n  script: [x]\n  cache: []\nrefuses:\n  script: [x]\n  inherit: {default: [image]}\n";
        let plan = crate::lint(text, &crate::NoRepository).expect("plan");
        let keys = |name: &str| -> Vec<String> {
            let job = plan.jobs.iter().find(|j| j.name == name).expect("job");
            job.cache.iter().map(|c| c.key.clone()).collect()
        };
        assert_eq!(keys("plain"), ["shared"]);
        assert_eq!(keys("own"), ["mine"]);
        assert!(keys("none").is_empty());
        assert!(keys("refuses").is_empty());
    }

    #[test]
    fn files_key_is_the_digest_of_blob_ids() {
        let repo = |path: &str| (path == "Cargo.lock").then(|| "lock\n".to_owned());
        let caches = parse_caches(
            &yaml("[{key: {files: [Cargo.lock, missing]}}, {key: {files: [Cargo.lock], prefix: deps}}, {key: {files: [nothing]}}]"),
            "cache",
        )
        .expect("caches");
        let plans = resolve(caches, &Checkout::new(&repo));
        // git hash-object of "lock\n"
        let blob = crate::repository::git_blob_id(b"lock\n");
        let digest = crate::repository::sha1_hex(blob.as_bytes());
        assert_eq!(plans[0].key, format!("0-{digest}"));
        assert_eq!(plans[1].key, format!("deps-{digest}"));
        assert_eq!(plans[2].key, "2-default");
    }
}
