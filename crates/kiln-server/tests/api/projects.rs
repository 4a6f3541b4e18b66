//! Projects, members, users and the repository reads, over real HTTP, under v3 and v4.

use crate::helpers::*;
use kiln_core::{AccessLevel, Visibility};
use reqwest::Method;
use serde_json::{json, Value};

async fn send(app: &TestApp, method: Method, path: &str, actor: &Actor, body: Value) -> Response {
    app.send_json(method, path, Some(&actor.token), body).await
}

#[tokio::test]
async fn projects_a_user_sees_by_visibility_and_membership() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice", false).await;
    let admin = app.user("root", true).await;
    let private = app.project("team/private", Visibility::Private).await;
    let internal = app.project("team/internal", Visibility::Internal).await;
    let public = app.project("team/public", Visibility::Public).await;
    let mine = app.project("alice/mine", Visibility::Private).await;
    app.member(mine, &alice, AccessLevel::Owner).await;
    for version in ["v3", "v4"] {
        let seen = app.get(&format!("/api/{version}/projects"), &alice).await;
        let mut ids = seen.ids();
        ids.sort();
        assert_eq!(ids, [internal, public, mine], "{version}");
        let members = app
            .get(&format!("/api/{version}/projects?membership=true"), &alice)
            .await;
        assert_eq!(members.ids(), [mine], "{version}");
        let all = app
            .get(&format!("/api/{version}/projects?per_page=100"), &admin)
            .await;
        assert_eq!(all.ids().len(), 4, "{version}");
        assert_eq!(all.header("x-total"), "4");
    }
    let searched = app.get("/api/v4/projects?search=PUB", &alice).await;
    assert_eq!(searched.ids(), [public]);
    let public_only = app.get("/api/v4/projects?visibility=public", &alice).await;
    assert_eq!(public_only.ids(), [public]);
    let ordered = app
        .get(
            "/api/v4/projects?order_by=name&sort=asc&simple=true",
            &admin,
        )
        .await;
    let names: Vec<&str> = ordered
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["internal", "mine", "private", "public"]);
    assert!(ordered.body[0].get("permissions").is_none());
    app.get(&format!("/api/v4/projects/{private}"), &alice)
        .await
        .assert_error(404, "404 Project Not Found");
}

#[tokio::test]
async fn one_project_by_id_or_encoded_path_in_each_shape() {
    let app = TestApp::spawn().await;
    let owner = app.user("owner", false).await;
    let project = app.project("team/app", Visibility::Internal).await;
    app.member(project, &owner, AccessLevel::Master).await;
    let v4 = app.get("/api/v4/projects/team%2Fapp", &owner).await;
    let v4 = v4.assert(200);
    assert_eq!(v4["id"], project);
    assert_eq!(v4["path_with_namespace"], "team/app");
    assert_eq!(v4["visibility"], "internal");
    assert_eq!(v4["web_url"], format!("{}/team/app", app.base));
    assert_eq!(v4["permissions"]["project_access"]["access_level"], 40);
    assert_eq!(v4["namespace"]["full_path"], "team");
    let v3 = app
        .get(&format!("/api/v3/projects/{project}"), &owner)
        .await;
    let v3 = v3.assert(200);
    assert_eq!(v3["visibility_level"], 10);
    assert_eq!(v3["public"], false);
    assert_eq!(v3["builds_enabled"], true);
    for odd in ["%2B1", "01", "1.0"] {
        app.get(&format!("/api/v4/projects/{odd}"), &owner)
            .await
            .assert_error(404, "404 Project Not Found");
    }
}

#[tokio::test]
async fn creating_a_project_makes_its_creator_owner() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice", false).await;
    let created = send(
        &app,
        Method::POST,
        "/api/v4/projects",
        &alice,
        json!({ "name": "My App", "visibility": "public" }),
    )
    .await;
    let created = created.assert(201);
    assert_eq!(created["path_with_namespace"], "alice/my-app");
    assert_eq!(created["name"], "My App");
    assert_eq!(created["visibility"], "public");
    assert_eq!(created["permissions"]["project_access"]["access_level"], 50);
    let again = send(
        &app,
        Method::POST,
        "/api/v4/projects",
        &alice,
        json!({ "path": "my-app" }),
    )
    .await;
    assert_eq!(
        again.assert(400),
        &json!({ "message": { "path": ["has already been taken"] } })
    );
    let elsewhere = send(
        &app,
        Method::POST,
        "/api/v4/projects",
        &alice,
        json!({ "path": "x", "namespace_id": "team" }),
    )
    .await;
    elsewhere.assert_error(403, "403 Forbidden");
    let nothing = send(&app, Method::POST, "/api/v3/projects", &alice, json!({})).await;
    nothing.assert(400);
}

#[tokio::test]
async fn members_are_managed_by_maintainers() {
    let app = TestApp::spawn().await;
    let owner = app.user("owner", false).await;
    let dev = app.user("dev", false).await;
    let newcomer = app.user("newcomer", false).await;
    let project = app.project("team/app", Visibility::Private).await;
    app.member(project, &owner, AccessLevel::Owner).await;
    app.member(project, &dev, AccessLevel::Developer).await;
    let base = format!("/api/v4/projects/{project}/members");
    let add = json!({ "user_id": newcomer.id, "access_level": 20 });
    send(&app, Method::POST, &base, &dev, add.clone())
        .await
        .assert_error(403, "403 Forbidden");
    let added = send(&app, Method::POST, &base, &owner, add.clone()).await;
    assert_eq!(added.assert(201)["access_level"], 20);
    assert_eq!(added.body["username"], "newcomer");
    send(&app, Method::POST, &base, &owner, add)
        .await
        .assert_error(409, "Member already exists");
    let member = format!("{base}/{}", newcomer.id);
    let updated = send(
        &app,
        Method::PUT,
        &member,
        &owner,
        json!({ "access_level": 30 }),
    )
    .await;
    assert_eq!(updated.assert(200)["access_level"], 30);
    // The new level takes effect at once: a developer may cancel.
    let listed = app.get(&base, &newcomer).await;
    let levels: Vec<(String, i64)> = listed
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["username"].as_str().unwrap().to_owned(),
                m["access_level"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        levels,
        [
            ("owner".into(), 50),
            ("dev".into(), 30),
            ("newcomer".into(), 30)
        ]
    );
    let removed = app
        .request(Method::DELETE, &member, Some(&owner.token))
        .await;
    assert_eq!(removed.status.as_u16(), 204);
    app.get(&base, &newcomer)
        .await
        .assert_error(404, "404 Project Not Found");
    send(
        &app,
        Method::PUT,
        &member,
        &owner,
        json!({ "access_level": 30 }),
    )
    .await
    .assert_error(404, "404 Member Not Found");
    let bad = send(
        &app,
        Method::POST,
        &base,
        &owner,
        json!({ "user_id": newcomer.id, "access_level": 31 }),
    )
    .await;
    assert_eq!(
        bad.assert(400),
        &json!({ "error": "access_level does not have a valid value" })
    );
}

#[tokio::test]
async fn users_by_id_and_username() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice", false).await;
    let bob = app.user("bob", false).await;
    let one = app.get(&format!("/api/v4/users/{}", bob.id), &alice).await;
    assert_eq!(one.assert(200)["username"], "bob");
    assert!(one.body.get("email").is_none(), "{}", one.body);
    let by_name = app.get("/api/v4/users?username=bob", &alice).await;
    assert_eq!(by_name.ids(), [bob.id]);
    let nobody = app.get("/api/v4/users?username=carol", &alice).await;
    assert_eq!(nobody.assert(200), &json!([]));
    app.get("/api/v3/users/999999", &alice)
        .await
        .assert_error(404, "404 User Not Found");
    let v3 = app.get(&format!("/api/v3/users/{}", alice.id), &bob).await;
    assert_eq!(v3.assert(200)["web_url"], format!("{}/u/alice", app.base));
}

#[tokio::test]
async fn branches_commits_and_a_commits_statuses_come_from_the_repository() {
    let (app, owner, repo, project) = TestApp::with_repo(1, "job:\n  script: [\"true\"]\n").await;
    let first = repo.git(&["rev-parse", "HEAD"]);
    let second = repo.commit(&[("b.txt", "b")], "Second commit");
    repo.git(&["branch", "feature/x", &first]);
    for version in ["v3", "v4"] {
        let branches = app
            .get(
                &format!("/api/{version}/projects/{project}/repository/branches"),
                &owner,
            )
            .await;
        let names: Vec<&str> = branches
            .body
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["feature/x", "master"], "{version}");
        assert_eq!(branches.body[1]["protected"], true);
        assert_eq!(branches.body[1]["commit"]["id"], second.as_str());
        let one = app
            .get(
                &format!("/api/{version}/projects/{project}/repository/branches/feature/x"),
                &owner,
            )
            .await;
        assert_eq!(one.assert(200)["commit"]["id"], first.as_str());
        let commits = app
            .get(
                &format!("/api/{version}/projects/{project}/repository/commits?per_page=1"),
                &owner,
            )
            .await;
        assert_eq!(commits.body[0]["id"], second.as_str());
        assert_eq!(commits.header("x-next-page"), "2");
        let page2 = app
            .get(
                &format!("/api/{version}/projects/{project}/repository/commits?per_page=1&page=2"),
                &owner,
            )
            .await;
        assert_eq!(page2.body[0]["id"], first.as_str());
        assert_eq!(page2.body[0]["title"], "Add CI");
        assert_eq!(page2.header("x-next-page"), "");
    }
    let on_branch = app
        .get(
            &format!("/api/v4/projects/{project}/repository/commits?ref_name=feature/x"),
            &owner,
        )
        .await;
    assert_eq!(on_branch.body.as_array().unwrap().len(), 1);
    let (_, builds) = app.run_pipeline(project, "master", &owner).await;
    assert_eq!(builds["job"]["status"], "success");
    let shown = app
        .get(
            &format!("/api/v4/projects/{project}/repository/commits/{second}"),
            &owner,
        )
        .await;
    let shown = shown.assert(200);
    assert_eq!(shown["parent_ids"], json!([first]));
    assert_eq!(shown["message"], "Second commit");
    assert_eq!(shown["last_pipeline"]["sha"], second.as_str());
    let statuses = app
        .get(
            &format!("/api/v4/projects/{project}/repository/commits/{second}/statuses"),
            &owner,
        )
        .await;
    assert_eq!(statuses.body[0]["name"], "job");
    assert_eq!(statuses.body[0]["sha"], second.as_str());
    app.get(
        &format!("/api/v4/projects/{project}/repository/commits/ffffffffffff"),
        &owner,
    )
    .await
    .assert_error(404, "404 Commit Not Found");
}

#[tokio::test]
async fn public_projects_answer_v4_reads_without_a_token_and_nothing_else() {
    let app = TestApp::spawn_with(1).await;
    let owner = app.user("owner", false).await;
    let repo = GitRepo::with_ci("job:\n  script: [\"true\"]\n");
    let create = |name: &'static str, visibility: &'static str| {
        let (app, owner, url) = (&app, &owner, repo.path());
        async move {
            let body = json!({ "name": name, "visibility": visibility, "import_url": url });
            let made = send(app, Method::POST, "/api/v4/projects", owner, body).await;
            made.assert(201)["id"].as_i64().unwrap()
        }
    };
    let public = create("open", "public").await;
    let internal = create("inside", "internal").await;
    let (pipeline, builds) = app.run_pipeline(public, "master", &owner).await;
    assert_eq!(builds["job"]["status"], "success");
    let anonymous = |path: String| {
        let app = &app;
        async move { app.request(Method::GET, &path, None).await }
    };
    for path in [
        format!("/api/v4/projects/{public}"),
        format!("/api/v4/projects/{public}/pipelines"),
        format!("/api/v4/projects/{public}/pipelines/latest"),
        format!("/api/v4/projects/{public}/pipelines/{pipeline}"),
        format!("/api/v4/projects/{public}/pipelines/{pipeline}/jobs"),
        format!("/api/v4/projects/{public}/repository/branches"),
        format!("/api/v4/projects/{public}/repository/commits"),
    ] {
        let answer = anonymous(path.clone()).await;
        assert_eq!(answer.status.as_u16(), 200, "{path}: {}", answer.body);
    }
    let listed = anonymous("/api/v4/projects".into()).await;
    assert_eq!(listed.ids(), [public]);
    let shown = anonymous(format!("/api/v4/projects/{public}")).await;
    assert_eq!(shown.body["permissions"]["project_access"], Value::Null);
    let jobs = anonymous(format!(
        "/api/v4/projects/{public}/pipelines/{pipeline}/jobs"
    ))
    .await;
    assert_eq!(jobs.body[0]["name"], "job");
    // Internal projects need a signed-in user; v3, the Jobs API, /user and writes need a token.
    anonymous(format!("/api/v4/projects/{internal}"))
        .await
        .assert_error(404, "404 Project Not Found");
    for path in [
        format!("/api/v3/projects/{public}"),
        format!("/api/v4/projects/{public}/jobs"),
        "/api/v4/user".to_owned(),
    ] {
        anonymous(path).await.assert_error(401, "401 Unauthorized");
    }
    app.request(
        Method::POST,
        &format!("/api/v4/projects/{public}/pipelines/{pipeline}/retry"),
        None,
    )
    .await
    .assert_error(401, "401 Unauthorized");
    // A token that is given must be good.
    app.request(
        Method::GET,
        &format!("/api/v4/projects/{public}"),
        Some("not-a-token"),
    )
    .await
    .assert_error(401, "401 Unauthorized");
}
