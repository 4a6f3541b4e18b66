//! Token spellings, 401s, and what each role may do.

use crate::helpers::{Actor, Response, TestApp};
use kiln_core::{AccessLevel, BuildStatus, Visibility};
use reqwest::Method;

#[tokio::test]
async fn every_token_spelling_is_accepted() {
    let app = TestApp::spawn().await;
    let root = app.user("root", true).await;
    let project = app.project("group/app", Visibility::Private).await;
    let url = format!("{}/api/v3/projects/{project}/builds", app.base);
    for header in ["PRIVATE-TOKEN", "PRIVATE_TOKEN", "private-token"] {
        let response = app
            .client
            .get(&url)
            .header(header, &root.token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{header}");
    }
    let response = app
        .client
        .get(format!("{url}?private_token={}", root.token))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // GitLab reads the parameter first: a good one wins over a bad header, and the reverse.
    for (param, header, status) in [
        (root.token.as_str(), "bad", 200),
        ("bad", root.token.as_str(), 401),
    ] {
        let response = app
            .client
            .get(format!("{url}?private_token={param}"))
            .header("PRIVATE-TOKEN", header)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "param {param}, header {header}");
    }
}

#[tokio::test]
async fn missing_or_unknown_tokens_are_401_on_every_route() {
    let app = TestApp::spawn().await;
    let root = app.user("root", true).await;
    let project = app.project("group/app", Visibility::Public).await;
    let build = app.pipeline(project, "abc", &[BuildStatus::Failed]).await[0];
    let routes = [
        (Method::GET, format!("/api/v3/projects/{project}/builds")),
        (
            Method::GET,
            format!("/api/v3/projects/{project}/repository/commits/abc/builds"),
        ),
        (
            Method::GET,
            format!("/api/v3/projects/{project}/builds/{build}"),
        ),
        (
            Method::POST,
            format!("/api/v3/projects/{project}/builds/{build}/cancel"),
        ),
        (
            Method::POST,
            format!("/api/v3/projects/{project}/builds/{build}/retry"),
        ),
    ];
    for (method, path) in routes {
        for token in [None, Some("not-a-token"), Some("")] {
            app.request(method.clone(), &path, token)
                .await
                .assert_error(401, "401 Unauthorized");
        }
        let ok = app.request(method.clone(), &path, Some(&root.token)).await;
        assert!(ok.status.is_success(), "{method} {path}: {}", ok.status);
    }
}

#[tokio::test]
async fn each_role_on_a_private_project() {
    let app = TestApp::spawn().await;
    let project = app.project("group/secret", Visibility::Private).await;
    // (role, may read builds, may cancel and retry); None = not a member.
    let roles = [
        (None, false, false),
        (Some(AccessLevel::Guest), false, false),
        (Some(AccessLevel::Reporter), true, false),
        (Some(AccessLevel::Developer), true, true),
        (Some(AccessLevel::Master), true, true),
        (Some(AccessLevel::Owner), true, true),
    ];
    for (i, (role, read, update)) in roles.into_iter().enumerate() {
        let actor = app.user(&format!("user{i}"), false).await;
        if let Some(level) = role {
            app.member(project, &actor, level).await;
        }
        let ids = app
            .pipeline(
                project,
                &format!("sha{i}"),
                &[BuildStatus::Pending, BuildStatus::Failed],
            )
            .await;
        let list = app
            .get(&format!("/api/v3/projects/{project}/builds"), &actor)
            .await;
        let commit_list = app
            .get(
                &format!("/api/v3/projects/{project}/repository/commits/sha{i}/builds"),
                &actor,
            )
            .await;
        let show = app
            .get(
                &format!("/api/v3/projects/{project}/builds/{}", ids[0]),
                &actor,
            )
            .await;
        let (cancel, retry) = cancel_and_retry(&app, project, ids[0], ids[1], &actor).await;
        match role {
            None => {
                for response in [&list, &commit_list, &show, &cancel, &retry] {
                    response.assert_error(404, "404 Project Not Found");
                }
            }
            Some(_) => {
                for response in [&list, &commit_list, &show] {
                    if read {
                        response.assert(200);
                    } else {
                        response.assert_error(403, "403 Forbidden");
                    }
                }
                if update {
                    assert_eq!(cancel.assert(201)["status"], "canceled", "{role:?}");
                    assert_eq!(retry.assert(201)["status"], "pending", "{role:?}");
                } else {
                    cancel.assert_error(403, "403 Forbidden");
                    retry.assert_error(403, "403 Forbidden");
                }
            }
        }
    }
}

#[tokio::test]
async fn admins_may_do_everything_without_membership() {
    let app = TestApp::spawn().await;
    let admin = app.user("admin", true).await;
    let project = app.project("group/secret", Visibility::Private).await;
    let ids = app
        .pipeline(
            project,
            "abc",
            &[BuildStatus::Running, BuildStatus::Success],
        )
        .await;
    app.get(&format!("/api/v3/projects/{project}/builds"), &admin)
        .await
        .assert(200);
    app.post(
        &format!("/api/v3/projects/{project}/builds/{}/cancel", ids[0]),
        &admin,
    )
    .await
    .assert(201);
    app.post(
        &format!("/api/v3/projects/{project}/builds/{}/retry", ids[1]),
        &admin,
    )
    .await
    .assert(201);
}

#[tokio::test]
async fn public_and_internal_builds_are_readable_but_not_changeable_by_strangers() {
    let app = TestApp::spawn().await;
    let stranger = app.user("stranger", false).await;
    for (path, visibility) in [
        ("group/pub", Visibility::Public),
        ("group/int", Visibility::Internal),
    ] {
        let project = app.project(path, visibility).await;
        let ids = app
            .pipeline(
                project,
                &format!("sha-{path}"),
                &[BuildStatus::Pending, BuildStatus::Failed],
            )
            .await;
        assert_eq!(
            app.get(&format!("/api/v3/projects/{project}/builds"), &stranger)
                .await
                .ids()
                .len(),
            2
        );
        app.get(
            &format!("/api/v3/projects/{project}/builds/{}", ids[0]),
            &stranger,
        )
        .await
        .assert(200);
        app.post(
            &format!("/api/v3/projects/{project}/builds/{}/cancel", ids[0]),
            &stranger,
        )
        .await
        .assert_error(403, "403 Forbidden");
        app.post(
            &format!("/api/v3/projects/{project}/builds/{}/retry", ids[1]),
            &stranger,
        )
        .await
        .assert_error(403, "403 Forbidden");
    }
}

#[tokio::test]
async fn members_of_a_public_project_change_builds_by_their_role() {
    let app = TestApp::spawn().await;
    let project = app.project("group/open", Visibility::Public).await;
    for (i, (level, allowed)) in [
        (AccessLevel::Guest, false),
        (AccessLevel::Reporter, false),
        (AccessLevel::Developer, true),
    ]
    .into_iter()
    .enumerate()
    {
        let actor = app.user(&format!("member{i}"), false).await;
        app.member(project, &actor, level).await;
        let ids = app
            .pipeline(
                project,
                &format!("open{i}"),
                &[BuildStatus::Running, BuildStatus::Success],
            )
            .await;
        app.get(
            &format!("/api/v3/projects/{project}/builds/{}", ids[0]),
            &actor,
        )
        .await
        .assert(200);
        let (cancel, retry) = cancel_and_retry(&app, project, ids[0], ids[1], &actor).await;
        if allowed {
            assert_eq!(cancel.assert(201)["status"], "canceled");
            assert_eq!(retry.assert(201)["status"], "pending");
        } else {
            cancel.assert_error(403, "403 Forbidden");
            retry.assert_error(403, "403 Forbidden");
        }
    }
}

/// `actor` cancels build `cancel` and retries build `retry` of `project`.
async fn cancel_and_retry(
    app: &TestApp,
    project: i64,
    cancel: i64,
    retry: i64,
    actor: &Actor,
) -> (Response, Response) {
    let path = |id: i64, action: &str| format!("/api/v3/projects/{project}/builds/{id}/{action}");
    (
        app.post(&path(cancel, "cancel"), actor).await,
        app.post(&path(retry, "retry"), actor).await,
    )
}

#[tokio::test]
async fn bearer_tokens_sign_in_and_links_drop_the_query_token() {
    let app = TestApp::spawn().await;
    let root = app.user("root", true).await;
    let project = app.project("group/app", Visibility::Private).await;
    app.pipeline(project, "abc", &[BuildStatus::Failed, BuildStatus::Success])
        .await;
    let url = format!("{}/api/v3/projects/{project}/builds", app.base);
    for (value, status) in [
        (format!("Bearer {}", root.token), 200),
        (format!("bearer {}", root.token), 200),
        ("Bearer nope".to_owned(), 401),
        (format!("Basic {}", root.token), 401),
    ] {
        let response = app
            .client
            .get(&url)
            .header("Authorization", &value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{value}");
    }
    let paged = app
        .client
        .get(format!("{url}?per_page=1&private_token={}", root.token))
        .send()
        .await
        .unwrap();
    let link = paged.headers()["link"].to_str().unwrap().to_owned();
    assert!(
        link.contains("per_page=1") && !link.contains(&root.token),
        "{link}"
    );
}

#[tokio::test]
async fn get_user_and_version_answer_each_versions_shape() {
    let app = TestApp::spawn().await;
    let root = app.user("root", true).await;
    let dev = app.user("dev", false).await;
    for prefix in ["/api/v3", "/api/v4"] {
        let me = app.get(&format!("{prefix}/user"), &dev).await;
        let me = me.assert(200);
        assert_eq!(me["id"], dev.id);
        assert_eq!(me["username"], "dev");
        assert_eq!(me["email"], "dev@example.com");
        assert!(me["created_at"].is_string() && me["web_url"].is_string());
        assert_eq!(me["two_factor_enabled"], false);
        let version = app.get(&format!("{prefix}/version"), &dev).await;
        assert!(version.assert(200)["version"].is_string());
        app.request(Method::GET, &format!("{prefix}/user"), None)
            .await
            .assert_error(401, "401 Unauthorized");
    }
    // v3 always says whether the user is an admin; v4 only to admins (UserWithAdmin).
    assert_eq!(app.get("/api/v3/user", &dev).await.body["is_admin"], false);
    assert!(app
        .get("/api/v4/user", &dev)
        .await
        .body
        .get("is_admin")
        .is_none());
    assert_eq!(app.get("/api/v4/user", &root).await.body["is_admin"], true);
    assert_eq!(
        app.get("/api/v4/version", &dev).await.body["version"],
        "17.0.0"
    );
}
