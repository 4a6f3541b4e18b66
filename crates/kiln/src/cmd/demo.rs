//! `kiln serve --demo`: a small git repository made by Kiln (stages, a failing job allowed to
//! fail, a manual job, coverage, an artifact), a public project on it, and its pipeline running.

use kiln_core::{PageRequest, Scope, Visibility};
use kiln_server::service::pipelines::{self, PipelineRequest};
use kiln_server::AppState;
use kiln_store::{ProjectRef, StoreError};
use std::path::Path;
use std::process::Command;

pub const DEMO_CI: &str = r#"# Kiln's demo pipeline.
stages: [build, test, deploy]

variables:
  GREETING: "hello from kiln"

compile:
  stage: build
  script:
    - echo "$GREETING, building $CI_COMMIT_SHORT_SHA on $CI_COMMIT_REF_NAME"
    - mkdir -p dist && echo "app built from $CI_COMMIT_SHA" > dist/app.txt
  artifacts:
    paths: [dist/]
    expire_in: 1 week

unit tests:
  stage: test
  script:
    - echo "running 42 tests"
    - sleep 1
    - 'echo "Coverage: 87.5%"'
  coverage: '/Coverage: \d+\.\d+%/'

style:
  stage: test
  script:
    - echo "style check found 3 warnings"
    - exit 1
  allow_failure: true

deploy:
  stage: deploy
  script:
    - echo "deploying $CI_COMMIT_REF_NAME to production"
  when: manual
"#;

pub async fn create(app: &AppState, external_url: &str) -> anyhow::Result<()> {
    let store = &app.store;
    let user_id = match store.users().by_username("demo").await {
        Ok(user) => user.id,
        Err(StoreError::NotFound) => {
            store
                .users()
                .create("demo", "Demo Admin", "demo@example.com", true)
                .await?
        }
        Err(err) => return Err(err.into()),
    };
    let path = ProjectRef::parse("demo/app").ok_or_else(|| anyhow::anyhow!("demo path"))?;
    let project = match store.projects().get(&path).await {
        Ok(project) => project,
        Err(StoreError::NotFound) => {
            let repo = app.config.data_dir.join("demo-repo");
            make_repository(&repo)?;
            let url = repo.to_string_lossy().into_owned();
            let id = store
                .projects()
                .create("demo", "app", Visibility::Public, Some(&url))
                .await?;
            let project = store.projects().get(&ProjectRef::Id(id)).await?;
            let request = PipelineRequest {
                project: &project,
                ref_name: "master",
                source: "push",
                user_id: Some(user_id),
                variables: vec![],
                trigger_request_id: None,
                push_key: None,
            };
            pipelines::create(app, request)
                .await
                .map_err(|e| anyhow::anyhow!("demo pipeline: {}", e.message()))?;
            project
        }
        Err(err) => return Err(err.into()),
    };
    let token = store.users().create_token(user_id, "demo").await?;
    // A new password each start, printed once: nothing guessable signs in to a demo.
    let password = kiln_store::new_secret();
    let hash = kiln_server::service::sign_in::hash_password(&password)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    store
        .sessions()
        .set_password_hash(user_id, Some(&hash))
        .await?;
    let id = project.id;
    println!(
        "Kiln demo: project demo/app (id {id}) from the git repository {}",
        project.repo_url.as_deref().unwrap_or("-")
    );
    println!("  open {external_url}/ and sign in as demo with the password {password}");
    println!("  user demo, token {token}");
    println!("  curl -H \"PRIVATE-TOKEN: {token}\" \"{external_url}/api/v3/projects/{id}/builds\"");
    // The demo pipeline's first build (the data dir may hold other projects' builds).
    let page = PageRequest {
        page: 1,
        per_page: 100,
    };
    let builds = store.builds().list(id, &Scope::all(), page).await?;
    if let Some(first) = builds.builds.last() {
        let build = first.id;
        println!("  curl -H \"PRIVATE-TOKEN: {token}\" \"{external_url}/api/v3/projects/{id}/builds/{build}/trace\"");
    }
    let registration = store
        .runners()
        .issue_registration_token(None, false)
        .await?;
    println!("  a runner of your own (another terminal, or machine):");
    println!("    kiln runner register --url {external_url} --registration-token {registration} && kiln runner run");
    Ok(())
}

fn make_repository(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(".gitlab-ci.yml"), DEMO_CI)?;
    std::fs::write(
        dir.join("README.md"),
        "# Demo\n\nA project made by `kiln serve --demo`.\n",
    )?;
    let git = |args: &[&str]| -> anyhow::Result<()> {
        let status = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args([
                "-c",
                "user.name=Kiln Demo",
                "-c",
                "user.email=demo@example.com",
                "-c",
                "init.defaultBranch=master",
            ])
            .args(args)
            .status()?;
        anyhow::ensure!(status.success(), "git {args:?} failed");
        Ok(())
    };
    git(&["init", "-q"])?;
    git(&["checkout", "-q", "-B", "master"])?;
    git(&["add", "."])?;
    git(&["commit", "-q", "-m", "Add the demo pipeline\n\nStages, an allowed failure, a manual deploy, coverage and an artifact."])?;
    Ok(())
}
