//! The v4 Jobs API over real HTTP: GitLab's `Entities::Ci::Job`, filters, offset and keyset
//! pages, actions with their v4 wording, and who may do what.

use crate::helpers::*;
use kiln_core::{AccessLevel, BuildStatus, Visibility};
use kiln_store::NewBuild;
use serde_json::{json, Value};

async fn app_with_project() -> (TestApp, Actor, i64) {
    let app = TestApp::spawn().await;
    let owner = app.user("owner", false).await;
    let project = app.project("team/app", Visibility::Private).await;
    app.member(project, &owner, AccessLevel::Master).await;
    (app, owner, project)
}

fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

#[tokio::test]
async fn a_job_has_the_fields_and_types_of_gitlabs_entity() {
    let (app, owner, project) = app_with_project().await;
    let ids = app
        .pipeline_by(
            project,
            "a1b2c3d4e5f6",
            &[BuildStatus::Failed],
            Some(&owner),
        )
        .await;
    let job = app
        .get(
            &format!("/api/v4/projects/{project}/jobs/{}", ids[0]),
            &owner,
        )
        .await;
    let job = job.assert(200);
    assert_eq!(
        keys(job),
        [
            "allow_failure",
            "archived",
            "artifacts",
            "artifacts_expire_at",
            "commit",
            "coverage",
            "created_at",
            "duration",
            "erased_at",
            "failure_reason",
            "finished_at",
            "id",
            "name",
            "pipeline",
            "project",
            "queued_duration",
            "ref",
            "runner",
            "runner_manager",
            "stage",
            "started_at",
            "status",
            "tag",
            "tag_list",
            "user",
            "web_url"
        ]
    );
    assert_eq!(job["status"], "failed");
    assert_eq!(job["failure_reason"], "unknown_failure");
    assert_eq!(job["tag_list"], json!([]));
    assert_eq!(job["artifacts"], json!([]));
    assert_eq!(job["archived"], false);
    assert_eq!(
        job["project"],
        json!({ "ci_job_token_scope_enabled": false })
    );
    assert_eq!(
        job["web_url"],
        format!("{}/team/app/-/jobs/{}", app.base, ids[0])
    );
    let pipeline = &job["pipeline"];
    assert_eq!(
        keys(pipeline),
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
    assert_eq!(pipeline["project_id"], project);
    assert_eq!(pipeline["sha"], "a1b2c3d4e5f6");
    let commit = &job["commit"];
    for key in [
        "id",
        "short_id",
        "created_at",
        "parent_ids",
        "title",
        "message",
        "author_name",
        "author_email",
        "authored_date",
        "committer_name",
        "committer_email",
        "committed_date",
        "web_url",
    ] {
        assert!(commit.get(key).is_some(), "commit lacks {key}: {commit}");
    }
    assert_eq!(commit["short_id"], "a1b2c3d4");
    let user = &job["user"];
    assert_eq!(user["username"], "owner");
    for key in [
        "id",
        "name",
        "state",
        "avatar_url",
        "web_url",
        "created_at",
        "bio",
    ] {
        assert!(user.get(key).is_some(), "user lacks {key}");
    }
    assert!(user.get("is_admin").is_none(), "{user}");
    assert!(job.get("artifacts_file").is_none());
}

#[tokio::test]
async fn only_a_failed_job_shows_a_failure_reason_and_durations_are_seconds() {
    let (app, owner, project) = app_with_project().await;
    let now = kiln_store::now_ms();
    let build = NewBuild {
        queued_at: Some(now - 3_500),
        started_at: Some(now - 3_000),
        finished_at: Some(now - 500),
        commands: "true".into(),
        ..NewBuild::new("timed", "test", 1, BuildStatus::Success)
    };
    let ids = app
        .pipeline_of_builds(project, "abc", vec![build], None)
        .await;
    let job = app
        .get(
            &format!("/api/v4/projects/{project}/jobs/{}", ids[0]),
            &owner,
        )
        .await;
    let job = job.assert(200);
    assert!(job.get("failure_reason").is_none(), "{job}");
    assert_eq!(job["duration"].as_f64(), Some(2.5));
    assert_eq!(job["queued_duration"].as_f64(), Some(0.5));
    assert_eq!(job["user"], Value::Null);
}

#[tokio::test]
async fn jobs_filter_by_scope_name_and_ref() {
    let (app, owner, project) = app_with_project().await;
    let first = app
        .pipeline(project, "aaa", &[BuildStatus::Success, BuildStatus::Failed])
        .await;
    let on_branch = NewBuild::new("job0", "test", 1, BuildStatus::Failed);
    let pipeline = kiln_store::NewPipeline {
        ref_name: "feature".into(),
        ..kiln_test_support::pipeline(project, "bbb", vec![on_branch])
    };
    let (_, branch_ids) = app.store.pipelines().create(&pipeline).await.unwrap();
    let base = format!("/api/v4/projects/{project}/jobs");

    let all = app.get(&base, &owner).await;
    assert_eq!(all.ids(), [branch_ids[0], first[1], first[0]]);
    assert_eq!(all.header("x-total"), "3");

    let failed = app.get(&format!("{base}?scope[]=failed"), &owner).await;
    assert_eq!(failed.ids(), [branch_ids[0], first[1]]);
    let string_scope = app.get(&format!("{base}?scope=success"), &owner).await;
    assert_eq!(string_scope.ids(), [first[0]]);

    let named = app.get(&format!("{base}?name=job0"), &owner).await;
    assert_eq!(named.ids(), [branch_ids[0], first[0]]);
    // A filtered page is not counted, as GitLab's `without_count`.
    assert_eq!(named.header("x-total"), "<missing>");
    assert_eq!(named.header("x-next-page"), "");
    let on_ref = app.get(&format!("{base}?ref=feature"), &owner).await;
    assert_eq!(on_ref.ids(), [branch_ids[0]]);
    let both = app
        .get(
            &format!("{base}?ref=master&name=job0&scope[]=success"),
            &owner,
        )
        .await;
    assert_eq!(both.ids(), [first[0]]);

    app.get(&format!("{base}?scope[]=bogus"), &owner)
        .await
        .assert(400);
    let bogus = app.get(&format!("{base}?scope[]=bogus"), &owner).await;
    assert_eq!(
        bogus.body,
        json!({ "error": "scope does not have a valid value" })
    );
}

#[tokio::test]
async fn keyset_pages_walk_every_job_once_in_either_order() {
    let (app, owner, project) = app_with_project().await;
    let mut ids = Vec::new();
    for sha in ["p1", "p2", "p3"] {
        ids.extend(app.pipeline(project, sha, &[BuildStatus::Success; 3]).await);
    }
    for (sort, expected) in [
        ("desc", ids.iter().rev().copied().collect::<Vec<_>>()),
        ("asc", ids.clone()),
    ] {
        let mut seen = Vec::new();
        let mut url = format!(
            "{}/api/v4/projects/{project}/jobs?pagination=keyset&per_page=4&order_by=id&sort={sort}",
            app.base
        );
        for _ in 0..10 {
            let response = app
                .client
                .get(&url)
                .header("PRIVATE-TOKEN", &owner.token)
                .send()
                .await
                .unwrap();
            let page = TestApp::read(response).await;
            seen.extend(page.ids());
            let link = page.header("link");
            if link == "<missing>" {
                break;
            }
            assert!(link.ends_with("rel=\"next\""), "{link}");
            assert!(!link.contains("private_token"), "{link}");
            url = link
                .trim_start_matches('<')
                .split('>')
                .next()
                .unwrap()
                .to_owned();
        }
        assert_eq!(seen, expected, "sort={sort}");
    }
    let bad_order = app
        .get(
            &format!("/api/v4/projects/{project}/jobs?pagination=keyset&order_by=name"),
            &owner,
        )
        .await;
    bad_order.assert_error(
        405,
        "Keyset pagination is not yet available for this type of request",
    );
    let bad_cursor = app
        .get(
            &format!("/api/v4/projects/{project}/jobs?pagination=keyset&cursor=%%%"),
            &owner,
        )
        .await;
    assert_eq!(
        bad_cursor.assert(400),
        &json!({ "error": "cursor is invalid" })
    );
}

#[tokio::test]
async fn a_pipelines_jobs_are_oldest_first_and_hide_retried_ones_unless_asked() {
    let (app, owner, project) = app_with_project().await;
    let ids = app
        .pipeline(project, "abc", &[BuildStatus::Failed, BuildStatus::Success])
        .await;
    let retried = app
        .post(
            &format!("/api/v4/projects/{project}/jobs/{}/retry", ids[0]),
            &owner,
        )
        .await;
    let new_id = retried.assert(201)["id"].as_i64().unwrap();
    let pipeline = retried.body["pipeline"]["id"].as_i64().unwrap();
    let base = format!("/api/v4/projects/{project}/pipelines/{pipeline}/jobs");
    let current = app.get(&base, &owner).await;
    assert_eq!(current.ids(), [ids[1], new_id]);
    assert_eq!(current.header("x-total"), "2");
    let with_retried = app
        .get(&format!("{base}?include_retried=true"), &owner)
        .await;
    assert_eq!(with_retried.ids(), [ids[0], ids[1], new_id]);
    let other = app.project("team/other", Visibility::Private).await;
    app.member(other, &owner, AccessLevel::Master).await;
    app.get(
        &format!("/api/v4/projects/{other}/pipelines/{pipeline}/jobs"),
        &owner,
    )
    .await
    .assert_error(404, "404 Not found");
}

#[tokio::test]
async fn actions_answer_in_v4_words() {
    let (app, owner, project) = app_with_project().await;
    let ids = app
        .pipeline(
            project,
            "abc",
            &[
                BuildStatus::Running,
                BuildStatus::Success,
                BuildStatus::Manual,
            ],
        )
        .await;
    let job = |id: i64, action: &str| format!("/api/v4/projects/{project}/jobs/{id}/{action}");
    app.post(&job(ids[0], "retry"), &owner)
        .await
        .assert_error(403, "403 Forbidden - Job is not retryable");
    app.post(&job(ids[1], "play"), &owner)
        .await
        .assert_error(400, "400 Bad request - Unplayable Job");
    app.post(&job(ids[1], "erase"), &owner)
        .await
        .assert_error(403, "403 Forbidden - Job is not erasable!");
    let canceled = app.post(&job(ids[0], "cancel"), &owner).await;
    assert_eq!(canceled.assert(201)["status"], "canceled");
    let played = app.post(&job(ids[2], "play"), &owner).await;
    assert_eq!(played.assert(200)["status"], "pending");
    let invalid = app
        .get(&format!("/api/v4/projects/{project}/jobs/x"), &owner)
        .await;
    assert_eq!(
        invalid.assert(400),
        &json!({ "error": "job_id is invalid" })
    );
}

#[tokio::test]
async fn play_keeps_the_variables_given_for_the_job() {
    let (app, owner, project) = app_with_project().await;
    let build = NewBuild {
        commands: "echo $FOO".into(),
        when: "manual".into(),
        ..NewBuild::new("deploy", "deploy", 1, BuildStatus::Manual)
    };
    let ids = app
        .pipeline_of_builds(project, "abc", vec![build], None)
        .await;
    let response = app
        .client
        .post(format!(
            "{}/api/v4/projects/{project}/jobs/{}/play",
            app.base, ids[0]
        ))
        .header("PRIVATE-TOKEN", &owner.token)
        .json(&json!({ "job_variables_attributes": [{ "key": "FOO", "value": "bar" }] }))
        .send()
        .await
        .unwrap();
    let played = TestApp::read(response).await;
    assert_eq!(played.assert(200)["user"]["username"], "owner");
    let stored = app.store.builds().get(project, ids[0]).await.unwrap();
    assert_eq!(stored.job_variables, r#"[["FOO","bar"]]"#);
}

#[tokio::test]
async fn who_may_read_and_act_on_jobs() {
    let (app, owner, project) = app_with_project().await;
    let reporter = app.user("reporter", false).await;
    let guest = app.user("guest", false).await;
    let stranger = app.user("stranger", false).await;
    app.member(project, &reporter, AccessLevel::Reporter).await;
    app.member(project, &guest, AccessLevel::Guest).await;
    let ids = app.pipeline(project, "abc", &[BuildStatus::Running]).await;
    let show = format!("/api/v4/projects/{project}/jobs/{}", ids[0]);
    app.get(&show, &reporter).await.assert(200);
    app.get(&show, &guest)
        .await
        .assert_error(403, "403 Forbidden");
    app.get(&show, &stranger)
        .await
        .assert_error(404, "404 Project Not Found");
    app.post(&format!("{show}/cancel"), &reporter)
        .await
        .assert_error(403, "403 Forbidden");
    app.request(reqwest::Method::GET, &show, None)
        .await
        .assert_error(401, "401 Unauthorized");
    // A job of another project is not found through this one.
    let other = app.project("team/other", Visibility::Private).await;
    app.member(other, &owner, AccessLevel::Master).await;
    app.get(&format!("/api/v4/projects/{other}/jobs/{}", ids[0]), &owner)
        .await
        .assert_error(404, "404 Not Found");
}

#[tokio::test]
async fn concurrent_erases_erase_once() {
    let (app, owner, project) = app_with_project().await;
    let ids = app.pipeline(project, "abc", &[BuildStatus::Success]).await;
    app.store
        .builds()
        .append_trace_note(ids[0], b"some log\n")
        .await
        .unwrap();
    let url = format!("/api/v4/projects/{project}/jobs/{}/erase", ids[0]);
    let requests = (0..8).map(|_| app.post(&url, &owner));
    let statuses: Vec<u16> = futures_util::future::join_all(requests)
        .await
        .iter()
        .map(|r| r.status.as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 403).count(),
        7,
        "{statuses:?}"
    );
}
