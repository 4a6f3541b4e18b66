//! The HTTP edge on both backends: bytes no record can hold are a JSON 400 on every kind of
//! route, hyper's own refusals have JSON bodies, a trailing slash is tolerated, and a
//! `.gitlab-ci.yml` with a NUL byte makes a failed pipeline.

use crate::helpers::*;
use kiln_core::{AccessLevel, BuildStatus, Visibility};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `request` as raw bytes and reads the whole answer: (status, body).
async fn raw(app: &TestApp, request: &[u8]) -> (u16, String) {
    let address = app.base.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn nul_and_broken_utf8_anywhere_are_a_json_400() {
    let app = TestApp::spawn().await;
    let owner = app.user("owner", false).await;
    let project = app.project("team/app", Visibility::Private).await;
    app.member(project, &owner, AccessLevel::Owner).await;
    let ids = app.pipeline(project, "abc", &[BuildStatus::Success]).await;
    let paths = [
        "/api/v4/projects/team%2Fa%00pp".to_owned(),
        format!("/api/v4/projects/{project}/jobs?name=a%00b"),
        format!("/api/v4/projects/{project}/jobs?ref=%FF"),
        format!("/api/v4/projects/{project}/pipelines?sha=a%00"),
        format!("/api/v3/projects/{project}/repository/commits/ab%00cd/builds"),
        format!("/api/v4/projects/{project}/jobs/artifacts/ma%00ster/download?job=x"),
        format!("/api/v3/projects/{project}/builds/artifacts/master/download?job=a%00"),
        format!("/api/v4/projects/{project}/jobs/{}/artifacts/a%00b", ids[0]),
        "/api/v4/users?username=%00".to_owned(),
        "/api/v4/projects?search=%C3%28".to_owned(),
    ];
    for path in &paths {
        let response = app.get(path, &owner).await;
        assert_eq!(response.status.as_u16(), 400, "{path}: {}", response.body);
        assert!(
            response.body["message"].is_string(),
            "{path}: {}",
            response.body
        );
    }
    // In a body, too.
    let response = app
        .client
        .post(format!("{}/api/v4/projects/{project}/pipeline", app.base))
        .header("PRIVATE-TOKEN", &owner.token)
        .json(&serde_json::json!({ "ref": "mas\u{0}ter" }))
        .send()
        .await
        .unwrap();
    let response = TestApp::read(response).await;
    assert_eq!(response.status.as_u16(), 400, "{}", response.body);
}

#[tokio::test]
async fn hypers_own_refusals_answer_json() {
    let app = TestApp::spawn().await;
    let long_url = format!(
        "GET /api/v4/{} HTTP/1.1\r\nhost: x\r\n\r\n",
        "a".repeat(70_000)
    );
    let huge_headers = format!(
        "GET /api/v4/version HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "b".repeat(500_000)
    );
    let cases: [(&str, Vec<u8>); 3] = [
        ("bad request line", b"NOT A REQUEST\r\n\r\n".to_vec()),
        ("long url", long_url.into_bytes()),
        ("huge headers", huge_headers.into_bytes()),
    ];
    for (what, request) in cases {
        let (status, body) = raw(&app, &request).await;
        assert!((400..500).contains(&status), "{what}: {status}");
        let json: Value =
            serde_json::from_str(&body).unwrap_or_else(|_| panic!("{what}: {body:?}"));
        assert_eq!(
            json["message"].as_str().map(|m| &m[..3]),
            Some(&status.to_string()[..]),
            "{what}"
        );
    }
    let owner = app.user("owner", false).await;
    let broken_chunk = format!(
        "POST /api/v4/projects/1/pipeline HTTP/1.1\r\nhost: x\r\nprivate-token: {}\r\n\
         content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n{{}}\r\n0\r\n\r\n",
        owner.token
    );
    let (status, body) = raw(&app, broken_chunk.as_bytes()).await;
    assert_eq!(status, 400, "{body}");
    assert!(serde_json::from_str::<Value>(&body).is_ok(), "{body:?}");
}

#[tokio::test]
async fn a_trailing_slash_is_tolerated() {
    let app = TestApp::spawn().await;
    let owner = app.user("owner", false).await;
    let project = app.project("team/app", Visibility::Private).await;
    app.member(project, &owner, AccessLevel::Owner).await;
    let ids = app.pipeline(project, "abc", &[BuildStatus::Success]).await;
    let listed = app
        .get(
            &format!("/api/v4/projects/{project}/jobs/?per_page=5"),
            &owner,
        )
        .await;
    assert_eq!(listed.ids(), ids);
    app.get("/api/v3/user/", &owner).await.assert(200);
}

#[tokio::test]
async fn a_gitlab_ci_yml_with_a_nul_byte_makes_a_failed_pipeline() {
    let (app, owner, _repo, project) =
        TestApp::with_repo(0, "job:\n  script: [\"echo a\u{0}b\"]\n").await;
    let created = app.create_pipeline(project, "master", &owner).await;
    let created = created.assert(201);
    assert_eq!(created["status"], "failed");
    assert!(
        created["yaml_errors"]
            .as_str()
            .unwrap_or("")
            .contains("NUL"),
        "{created}"
    );
}
