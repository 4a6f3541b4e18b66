//! The v3 Builds API: shapes, scopes, commits, cancel, retry, errors.

use crate::helpers::{shape, Actor, TestApp};
use kiln_core::{AccessLevel, BuildStatus, Visibility};
use reqwest::Method;
use serde_json::{json, Value};

async fn app_with_project(visibility: Visibility) -> (TestApp, Actor, i64) {
    let app = TestApp::spawn().await;
    let root = app.user("root", true).await;
    let project = app.project("group/app", visibility).await;
    (app, root, project)
}

fn doc_example() -> Value {
    serde_json::from_str(include_str!("../fixtures/v3_build.json")).expect("fixture")
}

#[tokio::test]
async fn a_build_has_the_keys_and_types_of_the_reference_doc() {
    let (app, root, project) = app_with_project(Visibility::Private).await;
    // A build that ran, as the example's did.
    let ran = kiln_store::NewBuild {
        commands: "rspec".into(),
        user_id: Some(root.id),
        started_at: Some(1_450_972_280_000),
        finished_at: Some(1_450_972_290_000),
        ..kiln_store::NewBuild::new("rspec", "test", 1, BuildStatus::Failed)
    };
    let id = app
        .pipeline_of_builds(
            project,
            "0ff3ae198f8601a285adcf5c0fff204ee6fba5fd",
            vec![ran],
            Some(&root),
        )
        .await[0];
    let build = app
        .get(&format!("/api/v3/projects/{project}/builds/{id}"), &root)
        .await;
    let body = build.assert(200);
    let expected = shape(&doc_example());
    let got = shape(body);
    // The example's build has no runner and no coverage; the types when present are fixed.
    assert_eq!(got["runner"], json!("null"));
    assert_eq!(got["coverage"], json!("null"));
    assert_eq!(got, expected);
    let commit = &body["commit"];
    assert_eq!(commit["id"], "0ff3ae198f8601a285adcf5c0fff204ee6fba5fd");
    assert_eq!(commit["short_id"], "0ff3ae19");
    assert_eq!(commit["title"], "Test the CI integration.");
    assert_eq!(commit["created_at"], "2015-12-24T16:51:14.000+01:00");
    assert_eq!(body["user"]["username"], "root");
    assert_eq!(body["user"]["web_url"], format!("{}/u/root", app.base));
    let created = body["created_at"].as_str().unwrap();
    assert!(created.len() == 24 && created.ends_with('Z'), "{created}");
}

#[tokio::test]
async fn a_build_without_user_or_runner_shows_null() {
    let (app, root, project) = app_with_project(Visibility::Private).await;
    let id = app.pipeline(project, "abc", &[BuildStatus::Pending]).await[0];
    let body = app
        .get(&format!("/api/v3/projects/{project}/builds/{id}"), &root)
        .await;
    let body = body.assert(200);
    assert_eq!(
        (body["user"].clone(), body["runner"].clone()),
        (Value::Null, Value::Null)
    );
    assert_eq!(
        (body["download_url"].clone(), body["tag"].clone()),
        (Value::Null, json!(false))
    );
    assert_eq!(body["started_at"], Value::Null);
}

#[tokio::test]
async fn every_scope_form_filters() {
    let (app, root, project) = app_with_project(Visibility::Private).await;
    use BuildStatus as S;
    let ids = app.pipeline(project, "abc", &S::ALL).await;
    let of = |statuses: &[S]| -> Vec<i64> {
        let mut want: Vec<i64> = S::ALL
            .iter()
            .zip(&ids)
            .filter(|(s, _)| statuses.contains(s))
            .map(|(_, id)| *id)
            .collect();
        want.reverse();
        want
    };
    for status in S::ALL {
        let r = app
            .get(
                &format!("/api/v3/projects/{project}/builds?scope={status}"),
                &root,
            )
            .await;
        assert_eq!(r.ids(), of(&[status]), "{status}");
        assert_eq!(r.header("x-total"), "1");
    }
    let array = app
        .get(
            &format!("/api/v3/projects/{project}/builds?scope[]=failed&scope[]=success"),
            &root,
        )
        .await;
    assert_eq!(array.ids(), of(&[S::Failed, S::Success]));
    let encoded = app
        .get(
            &format!("/api/v3/projects/{project}/builds?scope%5B%5D=manual&scope%5B%5D=skipped"),
            &root,
        )
        .await;
    assert_eq!(encoded.ids(), of(&[S::Manual, S::Skipped]));
    let hash = app
        .get(
            &format!("/api/v3/projects/{project}/builds?scope[0]=canceled&scope[1]=created"),
            &root,
        )
        .await;
    assert_eq!(hash.ids(), of(&[S::Canceled, S::Created]));
    let all = app
        .get(&format!("/api/v3/projects/{project}/builds"), &root)
        .await;
    assert_eq!(all.ids(), of(&S::ALL));
    let commit = app
        .get(
            &format!("/api/v3/projects/{project}/repository/commits/abc/builds?scope=running"),
            &root,
        )
        .await;
    assert_eq!(commit.ids(), of(&[S::Running]));
}

#[tokio::test]
async fn an_invalid_scope_is_400() {
    let (app, root, project) = app_with_project(Visibility::Private).await;
    for query in [
        "scope=bogus",
        "scope[]=failed&scope[]=nope",
        "scope[0]=SUCCESS",
        "scope=cancelled",
    ] {
        app.get(&format!("/api/v3/projects/{project}/builds?{query}"), &root)
            .await
            .assert_error(400, "Scope contains invalid value(s)");
        app.get(
            &format!("/api/v3/projects/{project}/repository/commits/abc/builds?{query}"),
            &root,
        )
        .await
        .assert_error(400, "Scope contains invalid value(s)");
    }
}

#[tokio::test]
async fn the_project_may_be_named_by_its_encoded_path() {
    let (app, root, project) = app_with_project(Visibility::Private).await;
    let id = app.pipeline(project, "abc", &[BuildStatus::Success]).await[0];
    let r = app.get("/api/v3/projects/group%2Fapp/builds", &root).await;
    assert_eq!(r.ids(), vec![id]);
    app.get(&format!("/api/v3/projects/group%2Fapp/builds/{id}"), &root)
        .await
        .assert(200);
    app.get("/api/v3/projects/group%2Fnope/builds", &root)
        .await
        .assert_error(404, "404 Project Not Found");
    app.get("/api/v3/projects/999/builds", &root)
        .await
        .assert_error(404, "404 Project Not Found");
    app.get("/api/v3/projects/nonsense/builds", &root)
        .await
        .assert_error(404, "404 Project Not Found");
}

#[tokio::test]
async fn commit_builds_list_only_that_commit() {
    let (app, root, project) = app_with_project(Visibility::Private).await;
    let first = app
        .pipeline(project, "aaa", &[BuildStatus::Success, BuildStatus::Failed])
        .await;
    app.pipeline(project, "bbb", &[BuildStatus::Success]).await;
    let again = app.pipeline(project, "aaa", &[BuildStatus::Pending]).await;
    let r = app
        .get(
            &format!("/api/v3/projects/{project}/repository/commits/aaa/builds"),
            &root,
        )
        .await;
    assert_eq!(r.ids(), vec![again[0], first[1], first[0]]);
    assert_eq!(r.header("x-total"), "3");
    for scope in [
        "scope[]=pending&scope[]=success",
        "scope[0]=pending&scope[1]=success",
    ] {
        let r = app
            .get(
                &format!("/api/v3/projects/{project}/repository/commits/aaa/builds?{scope}"),
                &root,
            )
            .await;
        assert_eq!(r.ids(), vec![again[0], first[0]], "{scope}");
    }
    let long = app
        .pipeline(project, "abcdef0123456789", &[BuildStatus::Failed])
        .await;
    let short = app
        .get(
            &format!("/api/v3/projects/{project}/repository/commits/abcdef01/builds"),
            &root,
        )
        .await;
    assert_eq!(short.ids(), long);
    app.get(
        &format!("/api/v3/projects/{project}/repository/commits/ccc/builds"),
        &root,
    )
    .await
    .assert_error(404, "404 Not Found");
}

#[tokio::test]
async fn builds_of_another_project_are_404() {
    let (app, root, project) = app_with_project(Visibility::Private).await;
    let other = app.project("group/other", Visibility::Private).await;
    let foreign = app.pipeline(other, "abc", &[BuildStatus::Failed]).await[0];
    app.pipeline(project, "def", &[BuildStatus::Failed]).await;
    for (method, suffix) in [
        (Method::GET, ""),
        (Method::POST, "/cancel"),
        (Method::POST, "/retry"),
    ] {
        let path = format!("/api/v3/projects/{project}/builds/{foreign}{suffix}");
        app.request(method.clone(), &path, Some(&root.token))
            .await
            .assert_error(404, "404 Not Found");
        let path = format!("/api/v3/projects/{project}/builds/987654{suffix}");
        app.request(method, &path, Some(&root.token))
            .await
            .assert_error(404, "404 Not Found");
    }
    app.get(&format!("/api/v3/projects/{other}/builds/{foreign}"), &root)
        .await
        .assert(200);
}

#[tokio::test]
async fn non_integer_build_ids_are_400() {
    let (app, root, project) = app_with_project(Visibility::Private).await;
    for suffix in ["", "/cancel", "/retry"] {
        let method = if suffix.is_empty() {
            Method::GET
        } else {
            Method::POST
        };
        let r = app
            .request(
                method,
                &format!("/api/v3/projects/{project}/builds/12abc{suffix}"),
                Some(&root.token),
            )
            .await;
        r.assert_error(400, "400 (Bad request) \"build_id\" is invalid");
    }
}

#[tokio::test]
async fn cancel_of_each_status() {
    let (app, root, project) = app_with_project(Visibility::Private).await;
    let ids = app.pipeline(project, "abc", &BuildStatus::ALL).await;
    for (status, id) in BuildStatus::ALL.into_iter().zip(ids) {
        let before = app
            .get(&format!("/api/v3/projects/{project}/builds/{id}"), &root)
            .await
            .body;
        let r = app
            .post(
                &format!("/api/v3/projects/{project}/builds/{id}/cancel"),
                &root,
            )
            .await;
        let body = r.assert(201);
        if status.is_cancelable() {
            assert_eq!(body["status"], "canceled", "{status}");
            assert!(body["finished_at"].is_string(), "{status}");
        } else {
            assert_eq!(body, &before, "a {status} build is returned unchanged");
        }
    }
    let counts = app
        .get(
            &format!("/api/v3/projects/{project}/builds?scope=canceled"),
            &root,
        )
        .await;
    assert_eq!(counts.header("x-total"), "5");
}

#[tokio::test]
async fn retry_creates_a_new_pending_build_for_the_caller() {
    let (app, root, project) = app_with_project(Visibility::Private).await;
    let dev = app.user("dev", false).await;
    app.member(project, &dev, AccessLevel::Developer).await;
    let ids = app.pipeline(project, "abc", &BuildStatus::ALL).await;
    for (status, id) in BuildStatus::ALL.into_iter().zip(ids) {
        let before = app
            .get(&format!("/api/v3/projects/{project}/builds/{id}"), &root)
            .await
            .body;
        let r = app
            .post(
                &format!("/api/v3/projects/{project}/builds/{id}/retry"),
                &dev,
            )
            .await;
        if status.is_complete() {
            let new = r.assert(201);
            assert_ne!(new["id"], before["id"]);
            assert_eq!(new["status"], "pending");
            assert_eq!(new["user"]["username"], "dev");
            for key in ["name", "stage", "ref", "tag", "commit"] {
                assert_eq!(new[key], before[key], "{key}");
            }
            assert_eq!(
                (new["started_at"].clone(), new["finished_at"].clone()),
                (Value::Null, Value::Null)
            );
            let after = app
                .get(&format!("/api/v3/projects/{project}/builds/{id}"), &root)
                .await
                .body;
            assert_eq!(after, before, "the retried build is untouched");
        } else {
            r.assert_error(403, "403 Forbidden  - Build is not retryable");
        }
    }
    let list = app
        .get(&format!("/api/v3/projects/{project}/builds"), &root)
        .await;
    assert_eq!(list.header("x-total"), "11");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let (app, root, project) = app_with_project(Visibility::Private).await;
    let r = app.get("/api/v3/nothing/here", &root).await;
    assert_eq!(
        (r.status.as_u16(), r.body.clone()),
        (404, json!({"error": "404 Not Found"}))
    );
    let r = app
        .request(
            Method::DELETE,
            &format!("/api/v3/projects/{project}/builds"),
            Some(&root.token),
        )
        .await;
    assert_eq!(r.status.as_u16(), 405);
    assert!(r.body.is_object());
}

#[tokio::test]
async fn cached_reads_see_this_servers_writes_at_once() {
    let (app, root, project) = app_with_project(Visibility::Private).await;
    let ids = app.pipeline(project, "abc", &[BuildStatus::Running]).await;
    let path = format!("/api/v3/projects/{project}/builds");
    let show = format!("{path}/{}", ids[0]);
    assert_eq!(app.get(&path, &root).await.body[0]["status"], "running");
    assert_eq!(app.get(&show, &root).await.body["status"], "running");
    app.post(&format!("{show}/cancel"), &root).await.assert(201);
    assert_eq!(app.get(&path, &root).await.body[0]["status"], "canceled");
    assert_eq!(app.get(&show, &root).await.body["status"], "canceled");
    assert_eq!(
        app.get(&format!("{path}?scope=canceled"), &root)
            .await
            .header("x-total"),
        "1"
    );
    // A new member's access shows at once, too.
    let reporter = app.user("reporter", false).await;
    app.get(&path, &reporter)
        .await
        .assert_error(404, "404 Project Not Found");
    app.member(project, &reporter, AccessLevel::Reporter).await;
    app.get(&path, &reporter).await.assert(200);
}

#[tokio::test]
async fn malformed_paths_and_bodies_get_json_errors() {
    let (app, root, project) = app_with_project(Visibility::Private).await;
    let r = app.get("/api/v3/projects/%FF%FE/builds", &root).await;
    assert_eq!(r.status.as_u16(), 400);
    assert_eq!(r.body["message"], "400 Bad Request");
    let big = "x".repeat(2 * 1024 * 1024);
    let response = app
        .client
        .post(format!(
            "{}/api/v3/projects/{project}/trigger/builds",
            app.base
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(big)
        .send()
        .await
        .unwrap();
    let r = TestApp::read(response).await;
    assert_eq!(r.status.as_u16(), 413);
    assert_eq!(r.body["message"], "413 Request Entity Too Large");
}

#[tokio::test]
async fn a_long_trace_is_served_whole_and_in_order() {
    let (app, root, project) = app_with_project(Visibility::Private).await;
    let id = app.pipeline(project, "aaa", &[BuildStatus::Success]).await[0];
    // More chunks than the endpoint reads at a time.
    let mut expected = String::new();
    for i in 0..50 {
        let line = format!("line {i}\n");
        app.store
            .builds()
            .append_trace_note(id, line.as_bytes())
            .await
            .unwrap();
        expected.push_str(&line);
    }
    assert_eq!(app.trace(project, id, &root).await, expected);
}

#[tokio::test]
async fn artifacts_by_ref_come_from_the_newest_successful_pipeline_and_expire_on_time() {
    let (app, root, project) = app_with_project(Visibility::Private).await;
    let files = tempfile::tempdir().unwrap();
    let attach = |id: i64, content: &str, expire_at: Option<i64>| {
        let file = files.path().join(format!("{id}.zip"));
        std::fs::write(&file, content).unwrap();
        let store = app.store.clone();
        async move {
            store
                .builds()
                .set_artifacts(project, id, &legacy_location(&file), 1, expire_at)
                .await
                .unwrap();
        }
    };
    let good = app.pipeline(project, "aaa", &[BuildStatus::Success]).await;
    let bad = app
        .pipeline(project, "bbb", &[BuildStatus::Success, BuildStatus::Failed])
        .await;
    for ids in [&good, &bad] {
        let pipeline = app
            .store
            .builds()
            .get(project, ids[0])
            .await
            .unwrap()
            .pipeline_id;
        app.store.pipelines().process(pipeline).await.unwrap();
    }
    attach(good[0], "from the successful pipeline", None).await;
    attach(bad[0], "from the failed pipeline", None).await;
    let download = format!("/api/v3/projects/{project}/builds/artifacts/master/download?job=job0");
    let url = format!("{}{download}", app.base);
    let body = |url: String| {
        let client = app.client.clone();
        let token = root.token.clone();
        async move {
            let response = client
                .get(url)
                .header("PRIVATE-TOKEN", token)
                .send()
                .await
                .unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    assert_eq!(
        body(url.clone()).await,
        (200, "from the successful pipeline".into())
    );

    // Past its expiry the archive is gone at once, before any sweep.
    attach(good[0], "expired", Some(kiln_store::now_ms() - 1)).await;
    let direct = format!(
        "{}/api/v3/projects/{project}/builds/{}/artifacts",
        app.base, good[0]
    );
    assert_eq!(body(direct).await.0, 404);
    assert_eq!(body(url).await.0, 404);
}

/// An archive recorded by an older Kiln: an absolute path, no backend.
fn legacy_location(file: &std::path::Path) -> kiln_store::ArchiveLocation {
    kiln_store::ArchiveLocation {
        backend: None,
        file: file.to_string_lossy().into_owned(),
    }
}
