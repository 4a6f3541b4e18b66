//! Protected branches over real HTTP: GitLab's entity and errors, who may change them, and
//! what protection means for the pipelines made afterwards (protected variables reach their
//! jobs, `ref_protected` runners take them).

use crate::helpers::*;
use kiln_core::AccessLevel;
use reqwest::Method;
use serde_json::{json, Value};

const PRINT: &str =
    "show:\n  script:\n    - echo \"PROT=${PROT:-unset} REF_PROTECTED=$CI_COMMIT_REF_PROTECTED\"\n";

async fn send(app: &TestApp, method: Method, path: &str, actor: &Actor, body: Value) -> Response {
    app.send_json(method, path, Some(&actor.token), body).await
}

#[tokio::test]
async fn protected_branches_are_listed_created_changed_and_removed_as_in_gitlab() {
    let (app, owner, _repo, project) = TestApp::with_repo(0, PRINT).await;
    let developer = app.user("dev", false).await;
    app.member(project, &developer, AccessLevel::Developer)
        .await;
    let base = format!("/api/v4/projects/{project}/protected_branches");
    let listed = app.get(&base, &owner).await;
    let listed = listed.assert(200).clone();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let level = json!({
        "id": "number", "access_level": "number", "access_level_description": "string",
        "deploy_key_id": "null", "user_id": "null", "group_id": "null",
    });
    assert_eq!(listed[0]["name"], "master");
    assert_eq!(
        shape(&listed[0]),
        json!({
            "id": "number", "name": "string", "push_access_levels": [level],
            "merge_access_levels": [level], "unprotect_access_levels": [level],
            "allow_force_push": "bool", "code_owner_approval_required": "bool",
            "inherited": "bool", "created_at": "string",
        })
    );
    assert_eq!(listed[0]["push_access_levels"][0]["access_level"], 40);
    assert_eq!(
        listed[0]["push_access_levels"][0]["access_level_description"],
        "Maintainers"
    );

    let created = send(
        &app,
        Method::POST,
        &base,
        &owner,
        json!({ "name": "release/*", "push_access_level": 30 }),
    )
    .await;
    let created = created.assert(201).clone();
    assert_eq!(created["name"], "release/*");
    assert_eq!(created["push_access_levels"][0]["access_level"], 30);
    assert_eq!(created["merge_access_levels"][0]["access_level"], 40);
    send(
        &app,
        Method::POST,
        &base,
        &owner,
        json!({ "name": "release/*" }),
    )
    .await
    .assert_error(409, "Protected branch 'release/*' already exists");
    send(&app, Method::POST, &base, &owner, json!({}))
        .await
        .assert_error_key(400, "error", "name is missing");
    send(
        &app,
        Method::POST,
        &base,
        &owner,
        json!({ "name": "x", "merge_access_level": 35 }),
    )
    .await
    .assert_error_key(
        400,
        "error",
        "merge_access_level does not have a valid value",
    );
    send(
        &app,
        Method::POST,
        &base,
        &developer,
        json!({ "name": "dev/*" }),
    )
    .await
    .assert_error(403, "403 Forbidden");
    // Developers read them; the name may hold slashes and a pattern.
    let one = app
        .get(&format!("{base}/{}", "release%2F%2A"), &developer)
        .await;
    assert_eq!(one.assert(200)["id"], created["id"]);
    let patched = send(
        &app,
        Method::PATCH,
        &format!("{base}/release%2F%2A"),
        &owner,
        json!({ "allow_force_push": true }),
    )
    .await;
    let patched = patched.assert(200);
    assert_eq!(patched["allow_force_push"], true);
    assert_eq!(patched["push_access_levels"][0]["access_level"], 30);
    let removed = send(
        &app,
        Method::DELETE,
        &format!("{base}/release%2F%2A"),
        &owner,
        json!({}),
    )
    .await;
    assert_eq!(removed.status.as_u16(), 204);
    app.get(&format!("{base}/release%2F%2A"), &owner)
        .await
        .assert_error(404, "404 Protected Branch Not Found");
}

#[tokio::test]
async fn a_protected_pattern_gives_its_pipelines_protected_variables_and_runners() {
    let (app, owner, repo, project) = TestApp::with_repo(1, PRINT).await;
    repo.git(&["branch", "release/1.0"]);
    repo.git(&["branch", "feature"]);
    send(
        &app,
        Method::POST,
        &format!("/api/v4/projects/{project}/variables"),
        &owner,
        json!({ "key": "PROT", "value": "secret-ish", "protected": true }),
    )
    .await
    .assert(201);
    let trace_on = |ref_name: &'static str| {
        let (app, owner) = (&app, &owner);
        async move {
            let (_, builds) = app.run_pipeline(project, ref_name, owner).await;
            assert_eq!(builds["show"]["status"], "success", "{ref_name}");
            let id = builds["show"]["id"].as_i64().unwrap();
            app.trace(project, id, owner).await
        }
    };
    let before = trace_on("release/1.0").await;
    assert!(
        before.contains("PROT=unset REF_PROTECTED=false"),
        "{before}"
    );

    send(
        &app,
        Method::POST,
        &format!("/api/v4/projects/{project}/protected_branches"),
        &owner,
        json!({ "name": "release/*" }),
    )
    .await
    .assert(201);
    let after = trace_on("release/1.0").await;
    assert!(
        after.contains("PROT=secret-ish REF_PROTECTED=true"),
        "{after}"
    );
    let other = trace_on("feature").await;
    assert!(other.contains("PROT=unset REF_PROTECTED=false"), "{other}");

    let branches = app
        .get(
            &format!("/api/v4/projects/{project}/repository/branches/release/1.0"),
            &owner,
        )
        .await;
    assert_eq!(branches.assert(200)["protected"], true);
    assert_eq!(branches.body["developers_can_push"], false);
    let feature = app
        .get(
            &format!("/api/v4/projects/{project}/repository/branches/feature"),
            &owner,
        )
        .await;
    assert_eq!(feature.assert(200)["protected"], false);
}
