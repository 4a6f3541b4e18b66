//! The v4 Pipelines API over real HTTP: lists and their filters, one pipeline, cancel, retry,
//! delete, variables; and the job artifacts routes with a real pipeline.

use crate::helpers::*;
use kiln_core::{AccessLevel, BuildStatus, Visibility};
use kiln_store::NewBuild;
use serde_json::{json, Value};
use std::io::Read;

async fn app_with_project() -> (TestApp, Actor, i64) {
    let app = TestApp::spawn().await;
    let owner = app.user("owner", false).await;
    let project = app.project("team/app", Visibility::Private).await;
    app.member(project, &owner, AccessLevel::Owner).await;
    (app, owner, project)
}

/// A pipeline of one build in `status` on `ref_name`; returns the pipeline id.
async fn pipeline_on(
    app: &TestApp,
    project: i64,
    ref_name: &str,
    status: BuildStatus,
    user: Option<&Actor>,
) -> i64 {
    let pipeline = kiln_store::NewPipeline {
        ref_name: ref_name.into(),
        status: status.as_str().into(),
        user_id: user.map(|u| u.id),
        ..kiln_test_support::pipeline(
            project,
            &format!("{ref_name}-sha"),
            vec![NewBuild {
                commands: "true".into(),
                ..NewBuild::new("job", "test", 1, status)
            }],
        )
    };
    app.store.pipelines().create(&pipeline).await.unwrap().0
}

#[tokio::test]
async fn pipelines_list_filters_orders_and_pages() {
    let (app, owner, project) = app_with_project().await;
    let a = pipeline_on(&app, project, "master", BuildStatus::Success, Some(&owner)).await;
    let b = pipeline_on(&app, project, "feature", BuildStatus::Failed, None).await;
    let c = pipeline_on(&app, project, "master", BuildStatus::Running, None).await;
    let base = format!("/api/v4/projects/{project}/pipelines");
    let all = app.get(&base, &owner).await;
    assert_eq!(all.ids(), [c, b, a]);
    assert_eq!(all.header("x-total"), "3");
    let first = &all.body[0];
    let mut keys: Vec<_> = first.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "created_at",
            "id",
            "iid",
            "project_id",
            "ref",
            "sha",
            "source",
            "status",
            "updated_at",
            "web_url"
        ]
    );
    let cases = [
        ("ref=master", vec![c, a]),
        ("status=failed", vec![b]),
        ("scope=finished", vec![b, a]),
        ("scope=running", vec![c]),
        ("scope=branches", vec![c, b]),
        ("sha=feature-sha", vec![b]),
        ("username=owner", vec![a]),
        ("sort=asc", vec![a, b, c]),
        ("order_by=ref&sort=asc", vec![b, a, c]),
        ("per_page=1&page=2", vec![b]),
    ];
    for (query, expected) in cases {
        let page = app.get(&format!("{base}?{query}"), &owner).await;
        assert_eq!(page.ids(), expected, "{query}");
    }
    let bad = app
        .get(&format!("{base}?scope=nope&order_by=x"), &owner)
        .await;
    assert_eq!(
        bad.assert(400),
        &json!({ "error": "scope does not have a valid value, order_by does not have a valid value" })
    );
}

#[tokio::test]
async fn one_pipeline_shows_its_user_and_latest_is_the_newest_of_the_ref() {
    let (app, owner, project) = app_with_project().await;
    let a = pipeline_on(&app, project, "master", BuildStatus::Success, Some(&owner)).await;
    let shown = app
        .get(&format!("/api/v4/projects/{project}/pipelines/{a}"), &owner)
        .await;
    let shown = shown.assert(200);
    assert_eq!(shown["user"]["username"], "owner");
    assert_eq!(shown["detailed_status"]["text"], "Passed");
    assert_eq!(
        shown["web_url"],
        format!("{}/team/app/-/pipelines/{a}", app.base)
    );
    let b = pipeline_on(&app, project, "master", BuildStatus::Failed, None).await;
    let latest = app
        .get(
            &format!("/api/v4/projects/{project}/pipelines/latest"),
            &owner,
        )
        .await;
    assert_eq!(latest.assert(200)["id"], b);
    let on_ref = app
        .get(
            &format!("/api/v4/projects/{project}/pipelines/latest?ref=nope"),
            &owner,
        )
        .await;
    on_ref.assert(404);
    app.get(
        &format!("/api/v4/projects/{project}/pipelines/999999"),
        &owner,
    )
    .await
    .assert_error(404, "404 Not found");
}

#[tokio::test]
async fn cancel_retry_and_delete_a_pipeline() {
    let (app, owner, project) = app_with_project().await;
    let builds = vec![
        NewBuild {
            commands: "true".into(),
            ..NewBuild::new("build", "build", 0, BuildStatus::Running)
        },
        NewBuild {
            commands: "true".into(),
            ..NewBuild::new("test", "test", 1, BuildStatus::Created)
        },
    ];
    let ids = app.pipeline_of_builds(project, "abc", builds, None).await;
    let pipeline = app.store.pipelines().of_build(ids[0]).await.unwrap().id;
    let url = |action: &str| format!("/api/v4/projects/{project}/pipelines/{pipeline}{action}");

    let canceled = app.post(&url("/cancel"), &owner).await;
    assert_eq!(canceled.assert(200)["status"], "canceled");
    for id in &ids {
        let build = app.store.builds().get(project, *id).await.unwrap();
        assert_eq!(build.status, BuildStatus::Canceled, "build {id}");
    }

    let retried = app.post(&url("/retry"), &owner).await;
    assert_eq!(retried.assert(201)["id"], pipeline);
    let jobs = app.get(&url("/jobs"), &owner).await;
    let statuses: Vec<&str> = jobs
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["status"].as_str().unwrap())
        .collect();
    // The first stage runs again; the next waits for it.
    assert_eq!(statuses, ["pending", "created"]);
    assert!(!jobs.ids().contains(&ids[0]));

    let master = app.user("master", false).await;
    app.member(project, &master, AccessLevel::Master).await;
    app.request(reqwest::Method::DELETE, &url(""), Some(&master.token))
        .await
        .assert_error(403, "403 Forbidden");
    let deleted = app
        .request(reqwest::Method::DELETE, &url(""), Some(&owner.token))
        .await;
    assert_eq!(deleted.status.as_u16(), 204);
    app.get(&url(""), &owner).await.assert(404);
    app.get(
        &format!("/api/v4/projects/{project}/jobs/{}", ids[0]),
        &owner,
    )
    .await
    .assert(404);
    // The v3 list counts and pages correctly with the deleted builds gone.
    let kept = app
        .pipeline(project, "def", &[BuildStatus::Success; 3])
        .await;
    let v3 = app
        .get(
            &format!("/api/v3/projects/{project}/builds?per_page=2&page=2"),
            &owner,
        )
        .await;
    assert_eq!(v3.header("x-total"), "3");
    assert_eq!(v3.ids(), [kept[0]]);
}

#[tokio::test]
async fn pipeline_variables_are_listed_for_developers() {
    let (app, owner, project) = app_with_project().await;
    let pipeline = kiln_store::NewPipeline {
        variables: r#"[["DEPLOY","yes"]]"#.into(),
        ..kiln_test_support::pipeline(project, "abc", vec![])
    };
    let id = app.store.pipelines().create(&pipeline).await.unwrap().0;
    let url = format!("/api/v4/projects/{project}/pipelines/{id}/variables");
    let listed = app.get(&url, &owner).await;
    assert_eq!(
        listed.assert(200),
        &json!([{ "key": "DEPLOY", "value": "yes", "variable_type": "env_var" }])
    );
    let reporter = app.user("reporter", false).await;
    app.member(project, &reporter, AccessLevel::Reporter).await;
    app.get(&url, &reporter)
        .await
        .assert_error(403, "403 Forbidden");
}

#[tokio::test]
async fn job_artifacts_one_file_by_ref_keep_and_delete() {
    let ci = "build:\n  script:\n    - mkdir -p out && echo the artifact > out/result.txt\n  artifacts:\n    paths: [out/]\n";
    let (app, owner, _repo, project) = TestApp::with_repo(1, ci).await;
    let (_, builds) = app.run_pipeline(project, "master", &owner).await;
    let id = builds["build"]["id"].as_i64().unwrap();
    assert_eq!(builds["build"]["status"], "success");
    let job = app
        .get(&format!("/api/v4/projects/{project}/jobs/{id}"), &owner)
        .await;
    let job = job.assert(200);
    assert_eq!(job["artifacts_file"]["filename"], "artifacts.zip");
    let types: Vec<&str> = job["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["file_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["archive", "trace"]);

    let get = |path: String, token: (&'static str, String)| {
        let client = app.client.clone();
        let url = format!("{}{path}", app.base);
        async move {
            let response = client
                .get(url)
                .header(token.0, token.1)
                .send()
                .await
                .unwrap();
            (
                response.status().as_u16(),
                response.bytes().await.unwrap().to_vec(),
            )
        }
    };
    let pat = || ("PRIVATE-TOKEN", owner.token.clone());
    let (status, file) = get(
        format!("/api/v4/projects/{project}/jobs/{id}/artifacts/out/result.txt"),
        pat(),
    )
    .await;
    assert_eq!((status, file.as_slice()), (200, &b"the artifact\n"[..]));
    let (status, _) = get(
        format!("/api/v4/projects/{project}/jobs/{id}/artifacts/out/none.txt"),
        pat(),
    )
    .await;
    assert_eq!(status, 404);
    let (status, raw) = get(
        format!("/api/v4/projects/{project}/jobs/artifacts/master/raw/out/result.txt?job=build"),
        pat(),
    )
    .await;
    assert_eq!((status, raw.as_slice()), (200, &b"the artifact\n"[..]));
    let (status, zip) = get(
        format!("/api/v4/projects/{project}/jobs/artifacts/master/download?job=build"),
        pat(),
    )
    .await;
    assert_eq!(status, 200);
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
    let mut content = String::new();
    archive
        .by_name("out/result.txt")
        .unwrap()
        .read_to_string(&mut content)
        .unwrap();
    assert_eq!(content, "the artifact\n");
    // A job token that is not running is refused.
    let (status, _) = get(
        format!("/api/v4/projects/{project}/jobs/{id}/artifacts"),
        ("JOB-TOKEN", "glcbt-nope".into()),
    )
    .await;
    assert_eq!(status, 401);

    let kept = app
        .post(
            &format!("/api/v4/projects/{project}/jobs/{id}/artifacts/keep"),
            &owner,
        )
        .await;
    assert_eq!(kept.assert(200)["artifacts_expire_at"], Value::Null);
    let deleted = app
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v4/projects/{project}/jobs/{id}/artifacts"),
            Some(&owner.token),
        )
        .await;
    assert_eq!(deleted.status.as_u16(), 204);
    let (status, _) = get(
        format!("/api/v4/projects/{project}/jobs/{id}/artifacts"),
        pat(),
    )
    .await;
    assert_eq!(status, 404);
    let job = app
        .get(&format!("/api/v4/projects/{project}/jobs/{id}"), &owner)
        .await;
    assert!(job.body.get("artifacts_file").is_none(), "{}", job.body);
}

#[tokio::test]
async fn a_running_job_reads_itself_and_its_projects_artifacts_with_its_token() {
    let (app, owner, project) = app_with_project().await;
    let ids = app
        .pipeline_by(project, "abc", &[BuildStatus::Pending], Some(&owner))
        .await;
    let runner = app
        .store
        .runners()
        .find_or_create("test runner")
        .await
        .unwrap();
    let until = kiln_store::now_ms() + 60_000;
    let claimed = app
        .store
        .builds()
        .claim(runner, until, "glcbt-the-token")
        .await
        .unwrap()
        .expect("claimed");
    assert_eq!(claimed.build_id, ids[0]);
    let response = app
        .client
        .get(format!("{}/api/v4/job", app.base))
        .header("JOB-TOKEN", "glcbt-the-token")
        .send()
        .await
        .unwrap();
    let me = TestApp::read(response).await;
    assert_eq!(me.assert(200)["id"], ids[0]);
    assert_eq!(me.body["user"]["username"], "owner");
    let other = app.project("team/other", Visibility::Private).await;
    app.member(other, &owner, AccessLevel::Master).await;
    let response = app
        .client
        .get(format!(
            "{}/api/v4/projects/{other}/jobs/1/artifacts",
            app.base
        ))
        .header("JOB-TOKEN", "glcbt-the-token")
        .send()
        .await
        .unwrap();
    TestApp::read(response)
        .await
        .assert_error(404, "404 Project Not Found");
    let response = app
        .client
        .get(format!("{}/api/v4/job", app.base))
        .header("PRIVATE-TOKEN", &owner.token)
        .send()
        .await
        .unwrap();
    TestApp::read(response)
        .await
        .assert_error(404, "404 Job Not Found");
}
