//! Webhooks in: push events of GitLab, GitHub and Gitea/Forgejo at
//! `POST /api/v4/projects/:id/push_hook`, each proving the project's secret its forge's way.

use crate::helpers::*;
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;

const CI: &str = "build:\n  script: [\"true\"]\n";
const SECRET: &str = "it is a secret to everybody";
const DELETED: &str = "0000000000000000000000000000000000000000";

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// A push event's body as every forge sends it (the fields Kiln reads).
fn push(full_ref: &str, after: &str) -> Vec<u8> {
    json!({ "ref": full_ref, "before": DELETED, "after": after, "commits": [] })
        .to_string()
        .into_bytes()
}

async fn deliver(
    app: &TestApp,
    project: i64,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> Response {
    let mut request = app
        .client
        .post(format!("{}/api/v4/projects/{project}/push_hook", app.base))
        .header("Content-Type", "application/json")
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    TestApp::read(request.send().await.expect("push hook")).await
}

async fn pipelines(app: &TestApp, project: i64, owner: &Actor) -> Vec<Value> {
    let listed = app
        .get(&format!("/api/v4/projects/{project}/pipelines"), owner)
        .await;
    listed.assert(200).as_array().cloned().unwrap_or_default()
}

async fn with_secret() -> (TestApp, Actor, GitRepo, i64) {
    let (app, owner, repo, project) = TestApp::with_repo(0, CI).await;
    let set = app
        .send_json(
            Method::PUT,
            &format!("/api/v4/projects/{project}"),
            Some(&owner.token),
            json!({ "push_hook_secret": SECRET }),
        )
        .await;
    assert_eq!(set.assert(200)["id"], project);
    (app, owner, repo, project)
}

#[tokio::test]
async fn a_gitlab_push_makes_one_pipeline_and_a_wrong_token_nothing() {
    let (app, owner, repo, project) = with_secret().await;
    let head = repo.git(&["rev-parse", "HEAD"]);
    let event = ("X-Gitlab-Event", "Push Hook".to_owned());
    let wrong = deliver(
        &app,
        project,
        &[event.clone(), ("X-Gitlab-Token", "guess".into())],
        push("refs/heads/master", &head),
    )
    .await;
    wrong.assert_error(401, "401 Unauthorized");
    deliver(
        &app,
        project,
        std::slice::from_ref(&event),
        push("refs/heads/master", &head),
    )
    .await
    .assert_error(401, "401 Unauthorized");
    assert!(pipelines(&app, project, &owner).await.is_empty());

    let good = [event.clone(), ("X-Gitlab-Token", SECRET.to_owned())];
    let made = deliver(&app, project, &good, push("refs/heads/master", &head)).await;
    let pipeline = made.assert(201)["pipeline_id"]
        .as_i64()
        .expect("pipeline id");
    let listed = pipelines(&app, project, &owner).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (&listed[0]["id"], &listed[0]["sha"]),
        (&json!(pipeline), &json!(head))
    );
    assert_eq!(
        (&listed[0]["ref"], &listed[0]["source"]),
        (&json!("master"), &json!("push"))
    );
    // The same push again (a forge's redelivery) makes no second pipeline.
    let again = deliver(&app, project, &good, push("refs/heads/master", &head)).await;
    again.assert(200);
    assert_eq!(pipelines(&app, project, &owner).await.len(), 1);
    // Something else than a push is accepted and ignored.
    let note = [
        ("X-Gitlab-Event", "Note Hook".to_owned()),
        ("X-Gitlab-Token", SECRET.to_owned()),
    ];
    let ignored = deliver(&app, project, &note, b"{}".to_vec()).await;
    assert_eq!(
        ignored.assert(200)["message"],
        "Ignored: Note Hook is not a push event"
    );
    // A project without a secret takes no push.
    let bare = app.project_on("team/bare", &repo, &owner).await;
    deliver(&app, bare, &good, push("refs/heads/master", &head))
        .await
        .assert_error(401, "401 Unauthorized");
    deliver(&app, project + 100, &good, push("refs/heads/master", &head))
        .await
        .assert_error(404, "404 Project Not Found");
}

#[tokio::test]
async fn a_github_push_is_checked_by_its_hmac_and_a_new_commit_is_fetched() {
    let (app, owner, repo, project) = with_secret().await;
    let sha = repo.commit(&[("README", "pushed\n")], "A pushed commit");
    let body = push("refs/heads/master", &sha);
    let event = ("X-GitHub-Event", "push".to_owned());
    let forged = format!("sha256={}", hmac_hex("not the secret", &body));
    deliver(
        &app,
        project,
        &[event.clone(), ("X-Hub-Signature-256", forged)],
        body.clone(),
    )
    .await
    .assert_error(401, "401 Unauthorized");
    let unprefixed = hmac_hex(SECRET, &body);
    deliver(
        &app,
        project,
        &[event.clone(), ("X-Hub-Signature-256", unprefixed)],
        body.clone(),
    )
    .await
    .assert(401);
    // Signed for another body: the signature covers every byte.
    let other = push("refs/heads/master", DELETED);
    let signed_other = format!("sha256={}", hmac_hex(SECRET, &other));
    deliver(
        &app,
        project,
        &[event.clone(), ("X-Hub-Signature-256", signed_other)],
        body.clone(),
    )
    .await
    .assert(401);
    assert!(pipelines(&app, project, &owner).await.is_empty());

    let signature = format!("sha256={}", hmac_hex(SECRET, &body));
    let made = deliver(
        &app,
        project,
        &[event, ("X-Hub-Signature-256", signature.clone())],
        body.clone(),
    )
    .await;
    made.assert(201);
    let listed = pipelines(&app, project, &owner).await;
    assert_eq!((listed.len(), &listed[0]["sha"]), (1, &json!(sha)));
    let ping = [
        ("X-GitHub-Event", "ping".to_owned()),
        ("X-Hub-Signature-256", signature),
    ];
    deliver(&app, project, &ping, body).await.assert(200);
    let garbage = b"not json".to_vec();
    let signed = format!("sha256={}", hmac_hex(SECRET, &garbage));
    let push_event = ("X-GitHub-Event", "push".to_owned());
    deliver(
        &app,
        project,
        &[push_event, ("X-Hub-Signature-256", signed)],
        garbage,
    )
    .await
    .assert(400);
}

#[tokio::test]
async fn gitea_and_forgejo_pushes_make_tag_pipelines_and_a_deletion_none() {
    let (app, owner, repo, project) = with_secret().await;
    repo.git(&["tag", "v1.0"]);
    let head = repo.git(&["rev-parse", "HEAD"]);
    let body = push("refs/tags/v1.0", &head);
    // Gitea sends GitHub's header too; its own is checked first.
    let headers = [
        ("X-Gitea-Event", "push".to_owned()),
        ("X-Gitea-Signature", hmac_hex(SECRET, &body)),
        ("X-Hub-Signature-256", "sha256=00".to_owned()),
    ];
    deliver(&app, project, &headers, body.clone())
        .await
        .assert(201);
    let listed = pipelines(&app, project, &owner).await;
    assert_eq!(listed.len(), 1);
    let pipeline = listed[0]["id"].as_i64().unwrap();
    let shown = app
        .get(
            &format!("/api/v4/projects/{project}/pipelines/{pipeline}"),
            &owner,
        )
        .await;
    let shown = shown.assert(200);
    assert_eq!(
        (&shown["ref"], &shown["tag"]),
        (&json!("v1.0"), &json!(true))
    );
    let wrong = [
        ("X-Gitea-Event", "push".to_owned()),
        ("X-Gitea-Signature", hmac_hex("nope", &body)),
        (
            "X-Hub-Signature-256",
            format!("sha256={}", hmac_hex(SECRET, &body)),
        ),
    ];
    deliver(&app, project, &wrong, body).await.assert(401);

    let deletion = push("refs/heads/feature", DELETED);
    let forgejo = [
        ("X-Forgejo-Event", "push".to_owned()),
        ("X-Forgejo-Signature", hmac_hex(SECRET, &deletion)),
    ];
    let deleted = deliver(&app, project, &forgejo, deletion).await;
    assert_eq!(
        deleted.assert(200)["message"],
        "The ref was deleted: no pipeline"
    );
    assert_eq!(pipelines(&app, project, &owner).await.len(), 1);
}

#[tokio::test]
async fn only_maintainers_set_the_secret() {
    let (app, owner, _repo, project) = with_secret().await;
    let developer = app.user("dev", false).await;
    app.member(project, &developer, kiln_core::AccessLevel::Developer)
        .await;
    let path = format!("/api/v4/projects/{project}");
    app.send_json(
        Method::PUT,
        &path,
        Some(&developer.token),
        json!({ "push_hook_secret": "mine" }),
    )
    .await
    .assert(403);
    let renamed = app
        .send_json(
            Method::PUT,
            &path,
            Some(&owner.token),
            json!({ "name": "Renamed" }),
        )
        .await;
    let renamed = renamed.assert(200);
    assert_eq!(renamed["name"], "Renamed");
    assert!(renamed.get("push_hook_secret").is_none(), "{renamed}");
}
