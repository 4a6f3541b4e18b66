//! The HTTP server's limits: silent and slow clients are dropped, and past the connection cap
//! a client is told so (503 JSON) at once.

use crate::helpers::TestApp;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn address(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection; returns what it sent and when it closed.
async fn until_closed(stream: &mut TcpStream) -> (Vec<u8>, Instant) {
    let mut got = Vec::new();
    let mut buf = [0_u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (got, Instant::now()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!("the server kept the connection open for 10 s"),
        }
    }
}

#[tokio::test]
async fn silent_and_half_sent_requests_are_dropped_after_the_idle_timeout() {
    let app = TestApp::spawn_configured(0, |c| c.http.idle_timeout = Duration::from_secs(1)).await;
    let opened = Instant::now();
    let mut silent = TcpStream::connect(address(&app)).await.unwrap();
    let mut half = TcpStream::connect(address(&app)).await.unwrap();
    half.write_all(b"GET /api/v3/projects HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let ((_, silent_closed), (_, half_closed)) =
        tokio::join!(until_closed(&mut silent), until_closed(&mut half));
    for closed in [silent_closed, half_closed] {
        let after = closed.duration_since(opened);
        assert!(
            after >= Duration::from_millis(900),
            "closed early: {after:?}"
        );
        assert!(after < Duration::from_secs(5), "closed late: {after:?}");
    }
    // A client that talks is served as before.
    let user = app.user("dev", false).await;
    app.get("/api/v3/projects/1/builds", &user)
        .await
        .assert(404);
}

#[tokio::test]
async fn a_stalled_request_body_is_cut_off() {
    let app = TestApp::spawn_configured(0, |c| c.http.idle_timeout = Duration::from_secs(1)).await;
    let mut stream = TcpStream::connect(address(&app)).await.unwrap();
    stream
        .write_all(b"POST /api/v3/ci/lint HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"content\":")
        .await
        .unwrap();
    let opened = Instant::now();
    let (_, closed) = until_closed(&mut stream).await;
    assert!(closed.duration_since(opened) < Duration::from_secs(5));
}

#[tokio::test]
async fn past_the_connection_cap_a_client_gets_a_503_at_once() {
    let app = TestApp::spawn_configured(0, |c| c.http.max_connections = 3).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(address(&app)).await.unwrap());
    }
    // Let the server take all three before the fourth arrives.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut extra = TcpStream::connect(address(&app)).await.unwrap();
    let asked = Instant::now();
    let (answer, _) = until_closed(&mut extra).await;
    assert!(asked.elapsed() < Duration::from_secs(2));
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 503 "), "{text}");
    let body = text.split("\r\n\r\n").nth(1).unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(body).unwrap(),
        serde_json::json!({"message": "503 Service Unavailable"})
    );
    // Once one closes, the server takes new connections again.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let user = app.user("dev", false).await;
    app.get("/api/v3/projects/1/builds", &user)
        .await
        .assert(404);
}

#[tokio::test]
async fn waiting_long_polls_do_not_fill_the_connection_cap() {
    let app = TestApp::spawn_configured(0, |c| {
        c.http.max_connections = 3;
        c.long_poll_timeout = Duration::from_secs(20);
    })
    .await;
    let registration = app
        .store
        .runners()
        .issue_registration_token(None, false)
        .await
        .unwrap();
    let register = app
        .client
        .post(format!("{}/api/v4/runners", app.base))
        .json(&serde_json::json!({ "token": registration }))
        .send()
        .await
        .unwrap();
    let token = TestApp::read(register).await.assert(201)["token"]
        .as_str()
        .unwrap()
        .to_owned();
    // Five runners wait, each on a connection of its own (more than the cap).
    let mut polls = Vec::new();
    for _ in 0..5 {
        let client = reqwest::Client::new();
        let (base, token) = (app.base.clone(), token.clone());
        polls.push(tokio::spawn(async move {
            client
                .post(format!("{base}/api/v4/jobs/request"))
                .json(&serde_json::json!({ "token": token }))
                .send()
                .await
                .map(|r| r.status().as_u16())
        }));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        polls.iter().all(|p| !p.is_finished()),
        "a poll was refused or answered"
    );
    // The API still answers a new connection.
    let user = app.user("dev", false).await;
    let fresh = reqwest::Client::new()
        .get(format!("{}/api/v3/projects/1/builds", app.base))
        .header("PRIVATE-TOKEN", &user.token)
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.status(), 404);
    for poll in polls {
        poll.abort();
    }
}
