//! The CI variables of a build: GitLab's predefined ones under both their v3 (`CI_BUILD_*`)
//! and modern (`CI_JOB_*`, `CI_COMMIT_*`) names, then the file's variables, the instance's
//! and the project's, the pipeline's (trigger or API), and those given when a manual job was
//! played, later ones winning.

use kiln_store::{BuildRecord, PipelineRecord, ProjectRecord};

/// What a running job may use to reach Kiln: its job token, and its runner's tags.
#[derive(Debug, Clone, Copy)]
pub struct JobAccess<'a> {
    pub token: &'a str,
    pub runner_tags: &'a [String],
}

/// The job's variables in GitLab's order of precedence, later ones winning: predefined, the
/// file's (`yaml`), the instance's and project's CI/CD variables (`settings`), the
/// pipeline's (trigger or API), and those given when a manual job was played.
pub fn for_build(
    external_url: &str,
    (project, pipeline, build): (&ProjectRecord, &PipelineRecord, &BuildRecord),
    yaml: &[(String, String)],
    settings: &[(String, String)],
    access: Option<JobAccess<'_>>,
) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: String| vars.push((k.to_owned(), v));
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
    vars.extend(yaml.iter().cloned());
    vars.extend(settings.iter().cloned());
    let pipeline_vars: Vec<(String, String)> =
        serde_json::from_str(&pipeline.variables).unwrap_or_default();
    vars.extend(pipeline_vars);
    let job_vars: Vec<(String, String)> =
        serde_json::from_str(&build.job_variables).unwrap_or_default();
    vars.extend(job_vars);
    vars
}

/// The project's repository over HTTP with the job token as the password of the user
/// `gitlab-ci-token`, as GitLab gives it to jobs and runners.
pub fn repository_url(external_url: &str, full_path: &str, job_token: &str) -> String {
    let (scheme, rest) = external_url
        .split_once("://")
        .unwrap_or(("http", external_url));
    format!("{scheme}://gitlab-ci-token:{job_token}@{rest}/{full_path}.git")
}

/// GitLab's `CI_COMMIT_REF_SLUG`: lower case, anything but `0-9a-z` → `-`, at most 63 bytes,
/// no `-` at either end.
pub fn ref_slug(name: &str) -> String {
    let slug: String = name
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
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
}
