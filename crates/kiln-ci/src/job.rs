//! One job's configuration → a validated `JobSpec`: allowed keys, every keyword's type, the
//! `default:` (and legacy top-level) values it inherits, `inherit:`, and `parallel:`.
//! Nothing here looks at the pipeline's ref; filtering happens in pipeline.rs.

use crate::cache::{self, CacheSpec};
use crate::error::{CompileError, Result};
use crate::keywords::{self, NeedSpec};
use crate::plan::{ArtifactsPlan, RetryPlan, TriggerPlan, When};
use crate::refs::{self, Policy};
use crate::rules::{self, Rule, RulesKind};
use crate::trigger;
use crate::value::{Map, Value};

/// Keys a job may have (GitLab's `Entry::Job::ALLOWED_KEYS` plus `Processable`'s).
const JOB_KEYS: &[&str] = &[
    "script",
    "before_script",
    "after_script",
    "stage",
    "type",
    "image",
    "services",
    "variables",
    "only",
    "except",
    "rules",
    "when",
    "start_in",
    "allow_failure",
    "artifacts",
    "cache",
    "dependencies",
    "needs",
    "tags",
    "retry",
    "timeout",
    "coverage",
    "environment",
    "parallel",
    "extends",
    "interruptible",
    "inherit",
    "resource_group",
];
/// Keys `default:` may set (GitLab's `Entry::Default::ALLOWED_KEYS`).
pub(crate) const DEFAULT_KEYS: &[&str] = &[
    "before_script",
    "image",
    "services",
    "after_script",
    "cache",
    "interruptible",
    "timeout",
    "retry",
    "tags",
    "artifacts",
];
/// The older top-level spelling of some defaults.
const LEGACY_GLOBAL_KEYS: &[&str] = &[
    "before_script",
    "image",
    "services",
    "after_script",
    "cache",
];
/// GitLab's limits on `parallel:` copies and on tags per job.
const MAX_PARALLEL: i64 = 200;
const MAX_TAGS: usize = 50;

/// A non-null value (GitLab treats `key: null` as not specified, so defaults still apply).
fn get<'a>(map: &'a Map, key: &str) -> Option<&'a Value> {
    map.get(key).filter(|v| !v.is_null())
}

/// The values jobs inherit when they do not set the key themselves.
#[derive(Debug, Clone, Default)]
pub(crate) struct Defaults {
    before_script: Option<Vec<String>>,
    after_script: Option<Vec<String>>,
    image: Option<String>,
    services: Option<Vec<String>>,
    timeout: Option<u64>,
    retry: Option<RetryPlan>,
    tags: Option<Vec<String>>,
    artifacts: Option<Option<ArtifactsPlan>>,
    cache: Option<Vec<CacheSpec>>,
}

impl Defaults {
    /// Reads `default:` and the legacy top-level keys; setting one in both places is an error.
    pub(crate) fn parse(root: &Map) -> Result<Defaults> {
        let empty = Map::new();
        let default = match root.get("default") {
            None | Some(Value::Null) => &empty,
            Some(Value::Map(m)) => m,
            Some(_) => return Err(CompileError::entry("default", "config should be a hash")),
        };
        let unknown = default.unknown_keys(DEFAULT_KEYS);
        if !unknown.is_empty() {
            return Err(CompileError::entry(
                "default",
                &format!("config contains unknown keys: {}", unknown.join(", ")),
            ));
        }
        for key in LEGACY_GLOBAL_KEYS {
            if get(root, key).is_some() && get(default, key).is_some() {
                return Err(CompileError::new(
                    "default",
                    format!("{key} is defined in top-level and `default:` entry"),
                ));
            }
        }
        // Each value with the location its errors are reported at.
        let source = |key: &str| -> Option<(&Value, String)> {
            if let Some(v) = get(default, key) {
                return Some((v, format!("default:{key}")));
            }
            if LEGACY_GLOBAL_KEYS.contains(&key) {
                return get(root, key).map(|v| (v, key.to_string()));
            }
            None
        };
        let mut d = Defaults::default();
        if let Some((v, loc)) = source("before_script") {
            d.before_script = Some(keywords::parse_script(v, &loc)?);
        }
        if let Some((v, loc)) = source("after_script") {
            d.after_script = Some(keywords::parse_script(v, &loc)?);
        }
        if let Some((v, loc)) = source("image") {
            d.image = Some(keywords::parse_image(v, &loc)?);
        }
        if let Some((v, loc)) = source("services") {
            d.services = Some(keywords::parse_services(v, &loc)?);
        }
        if let Some((v, loc)) = source("timeout") {
            d.timeout = Some(keywords::parse_timeout(v, &loc)?);
        }
        if let Some((v, loc)) = source("retry") {
            d.retry = Some(keywords::parse_retry(v, &loc)?);
        }
        if let Some((v, loc)) = source("tags") {
            d.tags = Some(parse_tags(v, &loc)?);
        }
        if let Some((v, loc)) = source("artifacts") {
            d.artifacts = Some(keywords::parse_artifacts(v, &loc)?);
        }
        if let Some((v, loc)) = source("cache") {
            d.cache = Some(cache::parse_caches(v, &loc)?);
        }
        if let Some((v, loc)) = source("interruptible") {
            check_bool(v, &loc)?;
        }
        Ok(d)
    }
}

/// `inherit:default` / `inherit:variables`: everything, nothing, or the listed names.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Inherit {
    All,
    Nothing,
    Only(Vec<String>),
}

impl Inherit {
    pub(crate) fn allows(&self, name: &str) -> bool {
        match self {
            Inherit::All => true,
            Inherit::Nothing => false,
            Inherit::Only(names) => names.iter().any(|n| n == name),
        }
    }
}

/// `parallel:` before expansion.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Parallel {
    Count(u32),
    /// One variable assignment per copy, in GitLab's order.
    Matrix(Vec<Vec<(String, String)>>),
}

/// A validated job, independent of the pipeline's ref.
#[derive(Debug, Clone)]
pub(crate) struct JobSpec {
    pub(crate) name: String,
    pub(crate) stage: String,
    pub(crate) before_script: Vec<String>,
    pub(crate) script: Vec<String>,
    pub(crate) after_script: Vec<String>,
    /// The job's own `variables:` (globals are added when the plan is built).
    pub(crate) variables: Vec<(String, String)>,
    /// Which of them are `expand: false`.
    pub(crate) raw_variables: Vec<String>,
    pub(crate) inherit_variables: Inherit,
    pub(crate) only: Option<Policy>,
    pub(crate) except: Option<Policy>,
    pub(crate) rules: Option<Vec<Rule>>,
    pub(crate) when: When,
    pub(crate) allow_failure: Option<bool>,
    pub(crate) needs: Option<Vec<NeedSpec>>,
    pub(crate) dependencies: Option<Vec<String>>,
    pub(crate) artifacts: Option<ArtifactsPlan>,
    pub(crate) coverage: Option<String>,
    pub(crate) timeout_secs: Option<u64>,
    pub(crate) tags: Vec<String>,
    pub(crate) retry: RetryPlan,
    pub(crate) image: Option<String>,
    pub(crate) services: Vec<String>,
    pub(crate) environment: Option<String>,
    pub(crate) cache: Vec<CacheSpec>,
    pub(crate) parallel: Option<Parallel>,
    /// Some for a bridge job (`trigger:`).
    pub(crate) trigger: Option<TriggerPlan>,
    /// What of the job Kiln leaves out (see `keywords::parse_job_needs`).
    pub(crate) warnings: Vec<String>,
}

impl JobSpec {
    /// A bridge runs nothing: no default of a job that runs a script applies to it.
    fn without_what_bridges_lack(self) -> JobSpec {
        if self.trigger.is_none() {
            return self;
        }
        JobSpec {
            before_script: Vec::new(),
            after_script: Vec::new(),
            artifacts: None,
            cache: Vec::new(),
            image: None,
            services: Vec::new(),
            tags: Vec::new(),
            retry: RetryPlan::default(),
            timeout_secs: None,
            coverage: None,
            dependencies: None,
            ..self
        }
    }
}

fn check_bool(v: &Value, location: &str) -> Result<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        _ => Err(CompileError::entry(
            location,
            "config should be a boolean value",
        )),
    }
}

fn parse_tags(v: &Value, location: &str) -> Result<Vec<String>> {
    let tags = keywords::parse_strings(v, location, "config")?;
    if tags.len() > MAX_TAGS {
        return Err(CompileError::entry(
            location,
            &format!("config must be less than the limit of {MAX_TAGS} tags"),
        ));
    }
    Ok(tags)
}

fn parse_inherit(v: &Value, location: &str) -> Result<(Inherit, Inherit)> {
    let Value::Map(map) = v else {
        return Err(CompileError::entry(location, "config should be a hash"));
    };
    let unknown = map.unknown_keys(&["default", "variables"]);
    if !unknown.is_empty() {
        return Err(CompileError::entry(
            location,
            &format!("config contains unknown keys: {}", unknown.join(", ")),
        ));
    }
    let one = |key: &str| -> Result<Inherit> {
        let loc = format!("{location}:{key}");
        match get(map, key) {
            None | Some(Value::Bool(true)) => Ok(Inherit::All),
            Some(Value::Bool(false)) => Ok(Inherit::Nothing),
            Some(v @ Value::Seq(_)) => {
                Ok(Inherit::Only(keywords::parse_strings(v, &loc, "config")?))
            }
            Some(_) => Err(CompileError::entry(
                &loc,
                "config should be a boolean value or an array of strings",
            )),
        }
    };
    Ok((one("default")?, one("variables")?))
}

fn parse_when(v: &Value, location: &str) -> Result<When> {
    match v.as_str() {
        Some("on_success") => Ok(When::OnSuccess),
        Some("on_failure") => Ok(When::OnFailure),
        Some("always") => Ok(When::Always),
        Some("manual") => Ok(When::Manual),
        Some("delayed") => Ok(When::Delayed),
        _ => Err(CompileError::entry(
            location,
            "when should be one of: on_success, on_failure, always, manual, delayed",
        )),
    }
}

fn parse_allow_failure(v: &Value, location: &str) -> Result<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Map(map) => {
            let unknown = map.unknown_keys(&["exit_codes"]);
            if !unknown.is_empty() {
                return Err(CompileError::entry(
                    location,
                    &format!("config contains unknown keys: {}", unknown.join(", ")),
                ));
            }
            match map.get("exit_codes") {
                Some(Value::Int(_)) => Ok(true),
                Some(Value::Seq(codes)) if codes.iter().all(|c| matches!(c, Value::Int(_))) => {
                    Ok(true)
                }
                _ => Err(CompileError::entry(
                    location,
                    "exit codes should be an array of integers or an integer",
                )),
            }
        }
        _ => Err(CompileError::entry(
            location,
            "config should be a hash or a boolean value",
        )),
    }
}

fn parse_parallel(v: &Value, location: &str) -> Result<Parallel> {
    match v {
        // GitLab 15.9 lowered the minimum from 2 to 1 (`name 1/1`).
        Value::Int(n) if *n < 1 => Err(CompileError::entry(
            location,
            "config must be greater than or equal to 1",
        )),
        Value::Int(n) if *n > MAX_PARALLEL => Err(CompileError::entry(
            location,
            &format!("config must be less than or equal to {MAX_PARALLEL}"),
        )),
        Value::Int(n) => Ok(Parallel::Count(u32::try_from(*n).unwrap_or(1))),
        Value::Map(map) => {
            let unknown = map.unknown_keys(&["matrix"]);
            if !unknown.is_empty() {
                return Err(CompileError::entry(
                    location,
                    &format!("config contains unknown keys: {}", unknown.join(", ")),
                ));
            }
            parse_matrix(
                map.get("matrix").unwrap_or(&Value::Null),
                &format!("{location}:matrix"),
            )
        }
        _ => Err(CompileError::entry(
            location,
            "config should be an integer or a hash",
        )),
    }
}

/// `parallel:matrix`: each entry's variables are combined as a cartesian product (the first
/// variable varying slowest, like Ruby's `Array#product`), entries one after another.
pub(crate) fn parse_matrix(v: &Value, location: &str) -> Result<Parallel> {
    let invalid = || CompileError::entry(location, "config should be an array of hashes");
    let Value::Seq(entries) = v else {
        return Err(invalid());
    };
    if entries.is_empty() {
        return Err(invalid());
    }
    let mut all: Vec<Vec<(String, String)>> = Vec::new();
    for entry in entries {
        let Value::Map(vars) = entry else {
            return Err(invalid());
        };
        let mut combos: Vec<Vec<(String, String)>> = vec![Vec::new()];
        for (name, values) in vars.iter() {
            let values: Vec<String> = match values {
                Value::Seq(items) => items
                    .iter()
                    .map(Value::scalar_to_string)
                    .collect::<Option<_>>()
                    .ok_or_else(invalid)?,
                other => vec![other.scalar_to_string().ok_or_else(invalid)?],
            };
            if values.is_empty() {
                return Err(invalid());
            }
            let mut next = Vec::new();
            for combo in &combos {
                for value in &values {
                    let mut c = combo.clone();
                    c.push((name.clone(), value.clone()));
                    next.push(c);
                }
                if next.len() as i64 > MAX_PARALLEL {
                    break;
                }
            }
            combos = next;
        }
        all.extend(combos.into_iter().filter(|c| !c.is_empty()));
        if all.len() as i64 > MAX_PARALLEL {
            return Err(CompileError::entry(
                location,
                &format!("config generates too many jobs (maximum is {MAX_PARALLEL})"),
            ));
        }
    }
    if all.is_empty() {
        return Err(invalid());
    }
    Ok(Parallel::Matrix(all))
}

/// Validates one visible job and applies inheritance.
pub(crate) fn parse_job(name: &str, map: &Map, defaults: &Defaults) -> Result<JobSpec> {
    let loc = format!("jobs:{name}");
    let sub = |key: &str| format!("{loc}:{key}");

    let trigger = get(map, "trigger")
        .map(|v| trigger::parse_trigger(v, &sub("trigger")))
        .transpose()?;
    let allowed = if trigger.is_some() {
        trigger::BRIDGE_KEYS
    } else {
        JOB_KEYS
    };
    let unknown = map.unknown_keys(allowed);
    if !unknown.is_empty() {
        return Err(CompileError::entry(
            &loc,
            &format!("config contains unknown keys: {}", unknown.join(", ")),
        ));
    }
    let has_rules = get(map, "rules").is_some();
    if has_rules {
        let clashing: Vec<&str> = ["only", "except", "start_in"]
            .into_iter()
            .filter(|k| get(map, k).is_some())
            .collect();
        if !clashing.is_empty() {
            return Err(CompileError::entry(
                &loc,
                &format!(
                    "config key may not be used with `rules`: {}",
                    clashing.join(", ")
                ),
            ));
        }
    }

    let script = match get(map, "script") {
        Some(v) => keywords::parse_script(v, &sub("script"))?,
        None => Vec::new(),
    };
    if script.is_empty() && trigger.is_none() {
        return Err(CompileError::entry(&loc, "script can't be blank"));
    }
    let stage = match get(map, "stage").or_else(|| get(map, "type")) {
        None => "test".to_string(),
        Some(Value::Str(s)) => s.clone(),
        Some(_) => {
            return Err(CompileError::entry(
                &sub("stage"),
                "config should be a string",
            ))
        }
    };
    if let Some(v) = get(map, "extends") {
        let ok = match v {
            Value::Str(_) => true,
            Value::Seq(items) => items.iter().all(|i| matches!(i, Value::Str(_))),
            _ => false,
        };
        if !ok {
            return Err(CompileError::new(
                sub("extends"),
                format!("{loc} extends should be an array of strings or a string").to_lowercase(),
            ));
        }
    }
    let (inherit_default, inherit_variables) = match get(map, "inherit") {
        Some(v) => parse_inherit(v, &sub("inherit"))?,
        None => (Inherit::All, Inherit::All),
    };
    // A job's own value wins; otherwise the default, unless `inherit:default` excludes it.
    let inherited = |key: &str| inherit_default.allows(key);

    let before_script = match get(map, "before_script") {
        Some(v) => keywords::parse_script(v, &sub("before_script"))?,
        None => defaults
            .before_script
            .clone()
            .filter(|_| inherited("before_script"))
            .unwrap_or_default(),
    };
    let after_script = match get(map, "after_script") {
        Some(v) => keywords::parse_script(v, &sub("after_script"))?,
        None => defaults
            .after_script
            .clone()
            .filter(|_| inherited("after_script"))
            .unwrap_or_default(),
    };
    let (variables, raw_variables) = match get(map, "variables") {
        Some(v) => (
            keywords::parse_variables(v, &sub("variables"))?,
            keywords::raw_keys(v),
        ),
        None => (Vec::new(), Vec::new()),
    };
    let only = get(map, "only")
        .map(|v| refs::parse_policy(v, &sub("only")))
        .transpose()?;
    let except = get(map, "except")
        .map(|v| refs::parse_policy(v, &sub("except")))
        .transpose()?;
    let rules = get(map, "rules")
        .map(|v| rules::parse_rules(v, &loc, RulesKind::Job))
        .transpose()?;
    let when = match get(map, "when") {
        Some(v) => parse_when(v, &loc)?,
        None => When::OnSuccess,
    };
    if trigger.is_some() && when == When::Delayed {
        return Err(CompileError::entry(
            &loc,
            "when should be one of: on_success, on_failure, always, manual",
        ));
    }
    if !has_rules {
        match (when, get(map, "start_in")) {
            (When::Delayed, Some(v)) => {
                keywords::check_start_in_value(v, &loc)?;
            }
            (When::Delayed, None) => {
                return Err(CompileError::entry(&loc, "start in should be a duration"))
            }
            (_, Some(_)) => return Err(CompileError::entry(&loc, "start in must be blank")),
            (_, None) => {}
        }
    }
    let allow_failure = get(map, "allow_failure")
        .map(|v| parse_allow_failure(v, &sub("allow_failure")))
        .transpose()?;
    let (needs, warnings) = match get(map, "needs") {
        Some(v) => {
            let (needs, warnings) = keywords::parse_job_needs(v, &sub("needs"))?;
            (Some(needs), warnings)
        }
        None => (None, Vec::new()),
    };
    let dependencies = get(map, "dependencies")
        .map(|v| keywords::parse_strings(v, &loc, "dependencies"))
        .transpose()?;
    if let (Some(deps), Some(needs)) = (&dependencies, &needs) {
        let missing: Vec<&str> = deps
            .iter()
            .filter(|d| !needs.iter().any(|n| &n.job == *d))
            .map(String::as_str)
            .collect();
        if !deps.is_empty() && !needs.is_empty() && !missing.is_empty() {
            return Err(CompileError::entry(
                &loc,
                &format!(
                    "dependencies the {} should be part of needs",
                    missing.join(", ")
                ),
            ));
        }
    }
    let artifacts = match get(map, "artifacts") {
        Some(v) => keywords::parse_artifacts(v, &sub("artifacts"))?,
        None => defaults
            .artifacts
            .clone()
            .filter(|_| inherited("artifacts"))
            .flatten(),
    };
    let coverage = get(map, "coverage")
        .map(|v| keywords::parse_coverage(v, &sub("coverage")))
        .transpose()?;
    let timeout_secs = match get(map, "timeout") {
        Some(v) => Some(keywords::parse_timeout(v, &sub("timeout"))?),
        None => defaults.timeout.filter(|_| inherited("timeout")),
    };
    let tags = match get(map, "tags") {
        Some(v) => parse_tags(v, &sub("tags"))?,
        None => defaults
            .tags
            .clone()
            .filter(|_| inherited("tags"))
            .unwrap_or_default(),
    };
    let retry = match get(map, "retry") {
        Some(v) => keywords::parse_retry(v, &sub("retry"))?,
        None => defaults
            .retry
            .clone()
            .filter(|_| inherited("retry"))
            .unwrap_or_default(),
    };
    let image = match get(map, "image") {
        Some(v) => Some(keywords::parse_image(v, &sub("image"))?),
        None => defaults.image.clone().filter(|_| inherited("image")),
    };
    let services = match get(map, "services") {
        Some(v) => keywords::parse_services(v, &sub("services"))?,
        None => defaults
            .services
            .clone()
            .filter(|_| inherited("services"))
            .unwrap_or_default(),
    };
    let environment = get(map, "environment")
        .map(|v| keywords::parse_environment(v, &sub("environment")))
        .transpose()?;
    if let Some(v) = get(map, "interruptible") {
        check_bool(v, &sub("interruptible"))?;
    }
    if let Some(v) = get(map, "resource_group") {
        if v.as_str().is_none() {
            return Err(CompileError::entry(
                &loc,
                "resource group should be a string",
            ));
        }
    }
    let cache = match get(map, "cache") {
        Some(v) => cache::parse_caches(v, &sub("cache"))?,
        None => defaults
            .cache
            .clone()
            .filter(|_| inherited("cache"))
            .unwrap_or_default(),
    };
    let parallel = get(map, "parallel")
        .map(|v| parse_parallel(v, &sub("parallel")))
        .transpose()?;

    Ok(JobSpec {
        name: name.to_string(),
        stage,
        before_script,
        script,
        after_script,
        variables,
        raw_variables,
        inherit_variables,
        only,
        except,
        rules,
        when,
        allow_failure,
        needs,
        dependencies,
        artifacts,
        coverage,
        timeout_secs,
        tags,
        retry,
        image,
        services,
        environment,
        cache,
        parallel,
        trigger,
        warnings,
    }
    .without_what_bridges_lack())
}
