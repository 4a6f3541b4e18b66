//! The CI variables of a build: GitLab's predefined ones under both their v3 (`CI_BUILD_*`)
//! and modern (`CI_JOB_*`, `CI_COMMIT_*`) names, then the file's variables, the instance's
//! and the project's, the pipeline's (trigger or API), and those given when a manual job was
//! played, later ones winning; then expanded where they refer to each other, as GitLab's
//! server expands them before a runner gets the job (kiln-ci's `variables::expand_all`).

use kiln_ci::variables::{expand_all, JobVariable};
use kiln_store::{BuildRecord, PipelineRecord, ProjectRecord};
use sha2::{Digest, Sha256};

/// What a running job may use to reach Kiln: its job token, and its runner's tags.
#[derive(Debug, Clone, Copy)]
pub struct JobAccess<'a> {
    pub token: &'a str,
    pub runner_tags: &'a [String],
}

/// What of a job its variables come from besides its records: the file's `variables:`
/// (`yaml`, raw where `expand: false`), its `environment:` name, and the instance's and
/// project's CI/CD variables (`settings`).
#[derive(Debug, Clone, Copy, Default)]
pub struct JobSources<'a> {
    pub yaml: &'a [JobVariable],
    /// The dotenv reports of the jobs it takes artifacts from.
    pub dotenv: &'a [JobVariable],
    pub environment: Option<&'a str>,
    pub settings: &'a [JobVariable],
}

/// The job's variables in GitLab's order of precedence, later ones winning: predefined, the
/// file's, the dotenv reports', the instance's and project's CI/CD variables, the pipeline's
/// (trigger or API), and
/// those given when a manual job was played; expanded, and one per name (the winner).
pub fn for_build(
    external_url: &str,
    (project, pipeline, build): (&ProjectRecord, &PipelineRecord, &BuildRecord),
    sources: JobSources<'_>,
    access: Option<JobAccess<'_>>,
) -> Vec<JobVariable> {
    let mut vars: Vec<JobVariable> = Vec::new();
    let mut set = |k: &str, v: String| vars.push(JobVariable::new(k, v));
    let project_url = format!("{external_url}/{}", project.full_path());
    if let Some(access) = access {
        let repository = repository_url(external_url, &project.full_path(), access.token);
        for (modern, v3, value) in [
            ("CI_JOB_TOKEN", "CI_BUILD_TOKEN", access.token.to_owned()),
            ("CI_REPOSITORY_URL", "CI_BUILD_REPO", repository),
        ] {
            set(modern, value.clone());
            set(v3, value);
        }
        set(
            "CI_RUNNER_TAGS",
            serde_json::to_string(access.runner_tags).unwrap_or_default(),
        );
    }
    if let Some((protocol, rest)) = external_url.split_once("://") {
        let authority = rest.split('/').next().unwrap_or(rest);
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if port.parse::<u16>().is_ok() => (host, port.to_owned()),
            _ => (
                authority,
                if protocol == "https" { "443" } else { "80" }.to_owned(),
            ),
        };
        set("CI_SERVER_PROTOCOL", protocol.to_owned());
        set("CI_SERVER_HOST", host.to_owned());
        set("CI_SERVER_PORT", port);
    }
    let slug = ref_slug(&build.ref_name);
    let title = build.commit.message.lines().next().unwrap_or("").to_owned();
    let description = build
        .commit
        .message
        .split_once('\n')
        .map(|(_, rest)| rest.trim_start_matches('\n').to_owned())
        .unwrap_or_default();
    let triggered = (pipeline.source == "trigger").to_string();
    set("CI", "true".into());
    set("GITLAB_CI", "true".into());
    set("CI_SERVER", "yes".into());
    set("CI_SERVER_NAME", "Kiln".into());
    set("CI_SERVER_VERSION", env!("CARGO_PKG_VERSION").into());
    set("CI_SERVER_URL", external_url.into());
    set("CI_API_V4_URL", format!("{external_url}/api/v4"));
    set("CI_CONFIG_PATH", ".gitlab-ci.yml".into());
    for (modern, v3, value) in [
        ("CI_JOB_ID", "CI_BUILD_ID", build.id.to_string()),
        ("CI_JOB_NAME", "CI_BUILD_NAME", build.name.clone()),
        ("CI_JOB_STAGE", "CI_BUILD_STAGE", build.stage.clone()),
        ("CI_COMMIT_SHA", "CI_BUILD_REF", build.commit.sha.clone()),
        (
            "CI_COMMIT_REF_NAME",
            "CI_BUILD_REF_NAME",
            build.ref_name.clone(),
        ),
        ("CI_COMMIT_REF_SLUG", "CI_BUILD_REF_SLUG", slug),
        (
            "CI_COMMIT_BEFORE_SHA",
            "CI_BUILD_BEFORE_SHA",
            "0".repeat(40),
        ),
        ("CI_PIPELINE_TRIGGERED", "CI_BUILD_TRIGGERED", triggered),
    ] {
        set(modern, value.clone());
        set(v3, value);
    }
    set("CI_COMMIT_REF_PROTECTED", build.protected.to_string());
    if build.tag {
        set("CI_COMMIT_TAG", build.ref_name.clone());
        set("CI_BUILD_TAG", build.ref_name.clone());
    } else {
        set("CI_COMMIT_BRANCH", build.ref_name.clone());
    }
    if build.when == "manual" {
        set("CI_JOB_MANUAL", "true".into());
        set("CI_BUILD_MANUAL", "true".into());
    }
    set("CI_JOB_URL", format!("{project_url}/builds/{}", build.id));
    set(
        "CI_COMMIT_SHORT_SHA",
        build
            .commit
            .sha
            .get(..8)
            .unwrap_or(&build.commit.sha)
            .to_owned(),
    );
    set("CI_COMMIT_MESSAGE", build.commit.message.clone());
    set("CI_COMMIT_TITLE", title);
    set("CI_COMMIT_DESCRIPTION", description);
    set("CI_PIPELINE_ID", pipeline.id.to_string());
    set("CI_PIPELINE_IID", pipeline.id.to_string());
    set("CI_PIPELINE_SOURCE", pipeline.source.clone());
    set(
        "CI_PIPELINE_URL",
        format!("{project_url}/pipelines/{}", pipeline.id),
    );
    set("CI_PROJECT_ID", project.id.to_string());
    set("CI_PROJECT_NAME", project.path.clone());
    set("CI_PROJECT_TITLE", project.name.clone());
    set("CI_PROJECT_PATH", project.full_path());
    set("CI_PROJECT_PATH_SLUG", ref_slug(&project.full_path()));
    set("CI_PROJECT_NAMESPACE", project.namespace.clone());
    set("CI_PROJECT_URL", project_url);
    set("CI_PROJECT_VISIBILITY", project.visibility.as_str().into());
    set("CI_DEFAULT_BRANCH", project.default_branch.clone());
    set("CI_NODE_TOTAL", "1".into());
    if let Some(user) = &build.user {
        set("GITLAB_USER_ID", user.id.to_string());
        set("GITLAB_USER_EMAIL", user.email.clone());
        set("GITLAB_USER_LOGIN", user.username.clone());
        set("GITLAB_USER_NAME", user.name.clone());
    }
    if let Some(runner) = &build.runner {
        set("CI_RUNNER_ID", runner.id.to_string());
        set("CI_RUNNER_DESCRIPTION", runner.description.clone());
    }
    // A commit's text is passed as written: a `$` in a message is not a reference.
    for v in vars.iter_mut() {
        v.raw = matches!(
            v.key.as_str(),
            "CI_COMMIT_MESSAGE" | "CI_COMMIT_TITLE" | "CI_COMMIT_DESCRIPTION"
        );
    }
    vars.extend(sources.yaml.iter().cloned());
    vars.extend(sources.dotenv.iter().cloned());
    vars.extend(sources.settings.iter().cloned());
    let given = |json: &str| -> Vec<JobVariable> {
        serde_json::from_str::<Vec<(String, String)>>(json)
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| JobVariable::new(k, v))
            .collect()
    };
    vars.extend(given(&pipeline.variables));
    vars.extend(given(&build.job_variables));
    let mut vars = expand_all(vars);
    if let Some(name) = sources.environment {
        // GitLab expands the name with the job's variables when it makes the environment.
        let name = kiln_ci::variables::expand_text(name, &vars);
        let environment = environment_variables(&name);
        vars.extend(environment);
    }
    winners(vars)
}

/// `CI_ENVIRONMENT_*` of a job with `environment: name` (it starts the environment).
fn environment_variables(name: &str) -> Vec<JobVariable> {
    vec![
        JobVariable::new("CI_ENVIRONMENT_NAME", name),
        JobVariable::new("CI_ENVIRONMENT_SLUG", environment_slug(name)),
        JobVariable::new("CI_ENVIRONMENT_ACTION", "start"),
        JobVariable::new("CI_ENVIRONMENT_TIER", environment_tier(name)),
    ]
}

/// One variable per name, the last given (which is the one a job sees), in order.
fn winners(vars: Vec<JobVariable>) -> Vec<JobVariable> {
    let mut last: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, v) in vars.iter().enumerate() {
        last.insert(v.key.as_str(), i);
    }
    let keep: Vec<bool> = (0..vars.len())
        .map(|i| {
            vars.get(i)
                .is_some_and(|v| last.get(v.key.as_str()) == Some(&i))
        })
        .collect();
    vars.into_iter()
        .zip(keep)
        .filter_map(|(v, keep)| keep.then_some(v))
        .collect()
}

/// GitLab's `Gitlab::Slug::Environment`: lower-case letters, digits and single dashes,
/// starting with a letter, at most 24 characters; a name that had to change gets a suffix
/// from its SHA-256 so that different names keep different slugs.
pub fn environment_slug(name: &str) -> String {
    let mut slug = dashed(name);
    if !slug.starts_with(|c: char| c.is_ascii_lowercase()) {
        slug = format!("env-{slug}");
    }
    let mut squeezed = String::with_capacity(slug.len());
    for c in slug.chars() {
        if !(c == '-' && squeezed.ends_with('-')) {
            squeezed.push(c);
        }
    }
    if squeezed.len() > 24 || squeezed != name {
        let mut short: String = squeezed.chars().take(17).collect();
        if !short.ends_with('-') {
            short.push('-');
        }
        short.push_str(&base36_suffix(name));
        short
    } else {
        squeezed.trim_end_matches('-').to_owned()
    }
}

/// The last 6 digits of the name's SHA-256 written in base 36 (Ruby's `to_i(16).to_s(36)`).
fn base36_suffix(name: &str) -> String {
    let mut number: Vec<u8> = Sha256::digest(name.as_bytes()).to_vec();
    let mut digits = Vec::new();
    while number.iter().any(|b| *b != 0) && digits.len() < 6 {
        let mut remainder = 0u32;
        for byte in number.iter_mut() {
            let value = (remainder << 8) | u32::from(*byte);
            *byte = (value / 36) as u8;
            remainder = value % 36;
        }
        digits.push(char::from_digit(remainder, 36).unwrap_or('0'));
    }
    digits.iter().rev().collect()
}

/// GitLab's `Environment#guess_tier`.
pub fn environment_tier(name: &str) -> &'static str {
    let lower = name.to_lowercase();
    let any = |words: &[&str]| words.iter().any(|w| lower.contains(w));
    if any(&["dev", "review", "trunk"]) {
        "development"
    } else if any(&[
        "test", "tst", "int", "acpt", "accept", "qa", "qc", "control", "quality",
    ]) {
        "testing"
    } else if any(&["stg", "stag", "modl", "model", "pre", "demo", "non"]) {
        "staging"
    } else if any(&["prd", "prod", "live"]) {
        "production"
    } else {
        "other"
    }
}

/// The file's variables of a job the executor is to run (`spec_from_plan` put them there).
pub fn yaml_of(spec: &kiln_executor::JobSpec) -> Vec<JobVariable> {
    spec.variables
        .iter()
        .map(|(k, v)| JobVariable {
            raw: spec.raw_variables.contains(k),
            ..JobVariable::new(k.clone(), v.clone())
        })
        .collect()
}

/// Gives the executor the job's variables: the values in order, the raw names, the `file`
/// names.
pub fn give(spec: &mut kiln_executor::JobSpec, vars: Vec<JobVariable>) {
    spec.raw_variables = vars
        .iter()
        .filter(|v| v.raw)
        .map(|v| v.key.clone())
        .collect();
    spec.file_variables = vars
        .iter()
        .filter(|v| v.file)
        .map(|v| v.key.clone())
        .collect();
    spec.variables = vars.into_iter().map(|v| (v.key, v.value)).collect();
}

/// The project's repository over HTTP with the job token as the password of the user
/// `gitlab-ci-token`, as GitLab gives it to jobs and runners.
pub fn repository_url(external_url: &str, full_path: &str, job_token: &str) -> String {
    let (scheme, rest) = external_url
        .split_once("://")
        .unwrap_or(("http", external_url));
    format!("{scheme}://gitlab-ci-token:{job_token}@{rest}/{full_path}.git")
}

/// `name` in lower case with anything but `a-z0-9` made a `-`, the start of both slugs.
fn dashed(name: &str) -> String {
    name.to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// GitLab's `CI_COMMIT_REF_SLUG`: lower case, anything but `0-9a-z` → `-`, at most 63 bytes,
/// no `-` at either end.
pub fn ref_slug(name: &str) -> String {
    let slug: String = dashed(name).chars().take(63).collect();
    slug.trim_matches('-').to_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn slugs_like_gitlab() {
        assert_eq!(super::ref_slug("Feature/Add_Thing"), "feature-add-thing");
        assert_eq!(super::ref_slug("-v1.0-"), "v1-0");
        assert_eq!(super::ref_slug(&"a".repeat(80)).len(), 63);
    }

    #[test]
    fn environment_slugs_and_tiers_like_gitlab() {
        use super::{environment_slug, environment_tier};
        assert_eq!(environment_slug("production"), "production");
        assert_eq!(environment_slug("review/master"), "review-master-8dyme2");
        assert!(environment_slug("1st").starts_with("env-1st-"));
        assert_eq!(environment_slug(&"a".repeat(30)).len(), 24);
        assert_eq!(environment_tier("Production"), "production");
        assert_eq!(environment_tier("review/x"), "development");
        assert_eq!(environment_tier("staging"), "staging");
        assert_eq!(environment_tier("qa"), "testing");
        assert_eq!(environment_tier("eu-west"), "other");
    }
}
