//! Project and instance CI/CD variables: the API (shapes, validation, roles), encryption at
//! rest, and what jobs receive (precedence, protected refs, masking, file variables).

use crate::helpers::*;
use kiln_core::{AccessLevel, Visibility};
use reqwest::Method;
use serde_json::{json, Value};

async fn send(app: &TestApp, method: Method, path: &str, actor: &Actor, body: Value) -> Response {
    app.send_json(method, path, Some(&actor.token), body).await
}

#[tokio::test]
async fn project_variables_api_shapes_validation_and_roles() {
    let app = TestApp::spawn().await;
    let owner = app.user("owner", false).await;
    let dev = app.user("dev", false).await;
    let project = app.project("team/app", Visibility::Private).await;
    app.member(project, &owner, AccessLevel::Master).await;
    app.member(project, &dev, AccessLevel::Developer).await;
    let base = format!("/api/v4/projects/{project}/variables");
    let created = send(
        &app,
        Method::POST,
        &base,
        &owner,
        json!({ "key": "DEPLOY_TOKEN", "value": "abcdefgh1234", "masked": true, "protected": true }),
    )
    .await;
    assert_eq!(
        created.assert(201),
        &json!({
            "variable_type": "env_var",
            "key": "DEPLOY_TOKEN",
            "value": "abcdefgh1234",
            "hidden": false,
            "protected": true,
            "masked": true,
            "raw": false,
            "environment_scope": "*",
            "description": null
        })
    );
    send(
        &app,
        Method::POST,
        &base,
        &owner,
        json!({ "key": "DEPLOY_TOKEN", "value": "x" }),
    )
    .await
    .assert(400);
    let taken = send(
        &app,
        Method::POST,
        &base,
        &owner,
        json!({ "key": "DEPLOY_TOKEN", "value": "x" }),
    )
    .await;
    assert_eq!(
        taken.body,
        json!({ "message": { "key": ["(DEPLOY_TOKEN) has already been taken"] } })
    );
    let short = send(
        &app,
        Method::POST,
        &base,
        &owner,
        json!({ "key": "S", "value": "short", "masked": true }),
    )
    .await;
    assert_eq!(
        short.assert(400),
        &json!({ "message": { "value": ["is invalid"] } })
    );
    let spaced = send(
        &app,
        Method::POST,
        &base,
        &owner,
        json!({ "key": "S", "value": "has spaces in it", "masked": true }),
    )
    .await;
    assert_eq!(
        spaced.assert(400),
        &json!({ "message": { "value": ["is invalid"] } })
    );
    let bad_key = send(
        &app,
        Method::POST,
        &base,
        &owner,
        json!({ "key": "A-B", "value": "v" }),
    )
    .await;
    assert_eq!(bad_key.status.as_u16(), 400);
    let bad_type = send(
        &app,
        Method::POST,
        &base,
        &owner,
        json!({ "key": "T", "value": "v", "variable_type": "nope" }),
    )
    .await;
    assert_eq!(
        bad_type.body,
        json!({ "error": "variable_type does not have a valid value" })
    );

    let updated = send(
        &app,
        Method::PUT,
        &format!("{base}/DEPLOY_TOKEN"),
        &owner,
        json!({ "value": "zyxwvuts9876", "variable_type": "file" }),
    )
    .await;
    let updated = updated.assert(200);
    assert_eq!(updated["value"], "zyxwvuts9876");
    assert_eq!(updated["variable_type"], "file");
    assert_eq!(updated["masked"], true, "unchanged flags are kept");
    let listed = app.get(&base, &owner).await;
    assert_eq!(listed.body.as_array().unwrap().len(), 1);
    let v3 = app
        .get(
            &format!("/api/v3/projects/{project}/variables/DEPLOY_TOKEN"),
            &owner,
        )
        .await;
    assert_eq!(
        v3.assert(200),
        &json!({ "key": "DEPLOY_TOKEN", "value": "zyxwvuts9876", "protected": true })
    );
    app.get(&base, &dev)
        .await
        .assert_error(403, "403 Forbidden");
    app.get(&format!("{base}/NOPE"), &owner)
        .await
        .assert_error(404, "404 Variable Not Found");

    // Stored encrypted: the database never holds the value.
    let stored = app.store.variables().list(Some(project)).await.unwrap();
    let sealed = &stored[0].value;
    assert!(!sealed.windows(8).any(|w| w == b"zyxwvuts"), "{sealed:?}");

    let removed = app
        .request(
            Method::DELETE,
            &format!("{base}/DEPLOY_TOKEN"),
            Some(&owner.token),
        )
        .await;
    assert_eq!(removed.status.as_u16(), 204);
    assert_eq!(app.get(&base, &owner).await.body, json!([]));
}

#[tokio::test]
async fn instance_variables_are_for_admins() {
    let app = TestApp::spawn().await;
    let admin = app.user("root", true).await;
    let user = app.user("alice", false).await;
    let created = send(
        &app,
        Method::POST,
        "/api/v4/admin/ci/variables",
        &admin,
        json!({ "key": "REGION", "value": "eu" }),
    )
    .await;
    assert_eq!(created.assert(201)["key"], "REGION");
    app.get("/api/v4/admin/ci/variables", &user)
        .await
        .assert_error(403, "403 Forbidden");
    let listed = app.get("/api/v4/admin/ci/variables", &admin).await;
    assert_eq!(listed.body[0]["value"], "eu");
}

const PRINT: &str = r#"
variables:
  P: yaml
  I: yaml
show:
  script:
    - echo "P=$P I=$I PROT=${PROT:-unset}"
    - echo "secret=$SECRET"
    - sh -c 'printf "split=abcd"; sleep 0.3; printf "efgh1234\n"'
    - echo "file at $CONF holds $(cat $CONF)"
"#;

#[tokio::test]
async fn jobs_receive_variables_in_gitlabs_precedence_masked_and_as_files() {
    let (app, owner, repo, project) = TestApp::with_repo(1, PRINT).await;
    repo.git(&["branch", "feature"]);
    let admin = app.user("root", true).await;
    let set = |path: String, actor: &Actor, body: Value| {
        let app = &app;
        let actor = actor.clone();
        async move {
            send(app, Method::POST, &path, &actor, body)
                .await
                .assert(201)
                .clone()
        }
    };
    let project_vars = format!("/api/v4/projects/{project}/variables");
    set(
        "/api/v4/admin/ci/variables".into(),
        &admin,
        json!({ "key": "I", "value": "instance" }),
    )
    .await;
    set(
        "/api/v4/admin/ci/variables".into(),
        &admin,
        json!({ "key": "P", "value": "instance" }),
    )
    .await;
    set(
        project_vars.clone(),
        &owner,
        json!({ "key": "P", "value": "project" }),
    )
    .await;
    set(
        project_vars.clone(),
        &owner,
        json!({ "key": "PROT", "value": "only-protected", "protected": true }),
    )
    .await;
    set(
        project_vars.clone(),
        &owner,
        json!({ "key": "SECRET", "value": "abcdefgh1234", "masked": true }),
    )
    .await;
    set(
        project_vars.clone(),
        &owner,
        json!({ "key": "CONF", "value": "setting=1", "variable_type": "file" }),
    )
    .await;

    let (_, builds) = app.run_pipeline(project, "master", &owner).await;
    let id = builds["show"]["id"].as_i64().unwrap();
    assert_eq!(builds["show"]["status"], "success");
    let trace = app.trace(project, id, &owner).await;
    assert!(
        trace.contains("P=project I=instance PROT=only-protected"),
        "{trace}"
    );
    assert!(trace.contains("secret=[MASKED]"), "{trace}");
    assert!(trace.contains("split=[MASKED]"), "{trace}");
    assert!(!trace.contains("abcdefgh1234"), "{trace}");
    // The output line, printed in two pieces by a child process, is masked whole (the
    // script's own line shows the pieces, as it would in GitLab).
    assert!(
        !trace.lines().any(|l| l.starts_with("split=abcd")),
        "{trace}"
    );
    assert!(trace.contains("holds setting=1"), "{trace}");
    assert!(!trace.contains("file at setting=1"), "{trace}");

    // A pipeline variable wins over the project's; a protected one stays off other branches.
    let response = app
        .client
        .post(format!("{}/api/v4/projects/{project}/pipeline", app.base))
        .header("PRIVATE-TOKEN", &owner.token)
        .json(&json!({ "ref": "feature", "variables": [{ "key": "P", "value": "pipeline" }] }))
        .send()
        .await
        .unwrap();
    let created = TestApp::read(response).await;
    let pipeline = created.assert(201)["id"].as_i64().unwrap();
    let builds = app.wait_for_pipeline(project, pipeline, &owner).await;
    let id = builds["show"]["id"].as_i64().unwrap();
    let trace = app.trace(project, id, &owner).await;
    assert!(
        trace.contains("P=pipeline I=instance PROT=unset"),
        "{trace}"
    );
}

/// Variables that refer to variables, through the server and the embedded runner, as GitLab
/// and gitlab-runner expand them together.
const EXPANDING: &str = r#"variables:
  A: foo
  B: "$A-bar"
  ESCAPED: "$$A"
  RAW: {value: "$A-raw", expand: false}
  EMPTY:
job:
  variables:
    C: "${B}-baz"
    IMAGE: "registry/$CI_PROJECT_PATH:$CI_COMMIT_SHORT_SHA"
    OUT: "$CI_PROJECT_DIR/out"
    FROM_PROJECT: "got-$P"
    TO_FILE: "$CONF"
  environment: review/$CI_COMMIT_REF_SLUG
  script:
    - echo "C=$C ESCAPED=$ESCAPED RAW=$RAW EMPTY=[$EMPTY] FROM_PROJECT=$FROM_PROJECT"
    - echo "IMAGE=$IMAGE"
    - test "$OUT" = "$CI_PROJECT_DIR/out" && echo OUT_OK
    - test "$TO_FILE" = "$CONF" && test -f "$TO_FILE" && echo FILE_REF_OK
    - echo "STATUS=$CI_JOB_STATUS ENV=$CI_ENVIRONMENT_NAME SLUG=$CI_ENVIRONMENT_SLUG TIER=$CI_ENVIRONMENT_TIER"
"#;

#[tokio::test]
async fn variables_referring_to_variables_reach_the_job_expanded() {
    let (app, owner, _repo, project) = TestApp::with_repo(1, EXPANDING).await;
    let vars = format!("/api/v4/projects/{project}/variables");
    for body in [
        json!({ "key": "P", "value": "$A-from-project" }),
        json!({ "key": "CONF", "value": "x=1", "variable_type": "file" }),
    ] {
        send(&app, Method::POST, &vars, &owner, body)
            .await
            .assert(201);
    }
    let (_, builds) = app.run_pipeline(project, "master", &owner).await;
    let id = builds["job"]["id"].as_i64().unwrap();
    let trace = app.trace(project, id, &owner).await;
    assert_eq!(builds["job"]["status"], "success", "{trace}");
    assert!(
        trace.contains(
            "C=foo-bar-baz ESCAPED=$A RAW=$A-raw EMPTY=[] FROM_PROJECT=got-foo-from-project"
        ),
        "{trace}"
    );
    let image = trace
        .lines()
        .find_map(|l| l.strip_prefix("IMAGE=registry/"))
        .unwrap_or_default();
    let (path, short) = image.rsplit_once(':').unwrap_or_default();
    assert!(path.contains('/') && !path.contains('$'), "{trace}");
    assert!(
        short.len() == 8 && short.bytes().all(|b| b.is_ascii_hexdigit()),
        "{trace}"
    );
    assert!(trace.contains("\nOUT_OK"), "{trace}");
    assert!(trace.contains("\nFILE_REF_OK"), "{trace}");
    assert!(
        trace.contains("STATUS=running ENV=review/master SLUG=review-master-"),
        "{trace}"
    );
    assert!(trace.contains("TIER=development"), "{trace}");
}

/// `artifacts:reports:dotenv` through the embedded runner: the next stage and a need with
/// artifacts get the values; a need without artifacts does not; a report GitLab would refuse
/// fails its job with GitLab's message.
const DOTENV: &str = r#"stages: [build, test]
build:
  stage: build
  script:
    - printf 'VERSION=1.2.3\n URL = http://x/?a=b \n' > build.env
  artifacts:
    reports:
      dotenv: build.env
broken:
  stage: build
  allow_failure: true
  script:
    - printf 'A=1\n\nB=2\n' > bad.env
  artifacts:
    reports:
      dotenv: bad.env
after:
  stage: test
  script:
    - echo "after sees VERSION=$VERSION URL=$URL"
needy:
  stage: test
  needs: [build]
  script:
    - echo "needy sees VERSION=$VERSION"
aloof:
  stage: test
  needs: [{job: build, artifacts: false}]
  script:
    - echo "aloof sees VERSION=[$VERSION]"
"#;

#[tokio::test]
async fn dotenv_reports_reach_the_jobs_that_take_the_artifacts() {
    let (app, owner, _repo, project) = TestApp::with_repo(2, DOTENV).await;
    let (_, builds) = app.run_pipeline(project, "master", &owner).await;
    let trace_of = |name: &str| {
        let id = builds[name]["id"].as_i64().unwrap_or_default();
        let app = &app;
        let owner = owner.clone();
        async move { app.trace(project, id, &owner).await }
    };
    assert_eq!(
        builds["build"]["status"],
        "success",
        "{}",
        trace_of("build").await
    );
    let broken = trace_of("broken").await;
    assert_eq!(builds["broken"]["status"], "failed", "{broken}");
    assert!(broken.contains("Invalid Format"), "{broken}");
    let after = trace_of("after").await;
    assert!(
        after.contains("\nafter sees VERSION=1.2.3 URL=http://x/?a=b"),
        "{after}"
    );
    let needy = trace_of("needy").await;
    assert!(needy.contains("\nneedy sees VERSION=1.2.3"), "{needy}");
    let aloof = trace_of("aloof").await;
    assert!(aloof.contains("\naloof sees VERSION=[]"), "{aloof}");
}
