//! Pagination parameters and headers on first, middle, last, empty and out-of-range pages.

use crate::helpers::{Actor, TestApp};
use kiln_core::{BuildStatus, Visibility};

async fn seven_builds() -> (TestApp, Actor, i64, Vec<i64>) {
    let app = TestApp::spawn().await;
    let root = app.user("root", true).await;
    let project = app.project("group/app", Visibility::Private).await;
    let mut ids = app
        .pipeline(project, "aaa", &[BuildStatus::Success; 4])
        .await;
    ids.extend(
        app.pipeline(project, "bbb", &[BuildStatus::Failed; 3])
            .await,
    );
    ids.reverse();
    (app, root, project, ids)
}

#[tokio::test]
async fn first_middle_last_and_empty_pages() {
    let (app, root, project, ids) = seven_builds().await;
    let base = format!("{}/api/v3/projects/{project}/builds", app.base);
    let link = |page: u32, rel: &str| format!("<{base}?page={page}&per_page=3>; rel=\"{rel}\"");

    let first = app
        .get(
            &format!("/api/v3/projects/{project}/builds?per_page=3"),
            &root,
        )
        .await;
    assert_eq!(first.ids(), ids[0..3]);
    let expect = |r: &crate::helpers::Response, page: &str, next: &str, prev: &str| {
        assert_eq!(r.header("x-total"), "7");
        assert_eq!(r.header("x-total-pages"), "3");
        assert_eq!(r.header("x-per-page"), "3");
        assert_eq!(r.header("x-page"), page);
        assert_eq!(r.header("x-next-page"), next);
        assert_eq!(r.header("x-prev-page"), prev);
    };
    expect(&first, "1", "2", "");
    assert_eq!(
        first.header("link"),
        [link(2, "next"), link(1, "first"), link(3, "last")].join(", ")
    );

    let middle = app
        .get(
            &format!("/api/v3/projects/{project}/builds?per_page=3&page=2"),
            &root,
        )
        .await;
    assert_eq!(middle.ids(), ids[3..6]);
    expect(&middle, "2", "3", "1");
    assert_eq!(
        middle.header("link"),
        [
            link(1, "prev"),
            link(3, "next"),
            link(1, "first"),
            link(3, "last")
        ]
        .join(", ")
    );

    let last = app
        .get(
            &format!("/api/v3/projects/{project}/builds?per_page=3&page=3"),
            &root,
        )
        .await;
    assert_eq!(last.ids(), ids[6..7]);
    expect(&last, "3", "", "2");
    assert_eq!(
        last.header("link"),
        [link(2, "prev"), link(1, "first"), link(3, "last")].join(", ")
    );

    let beyond = app
        .get(
            &format!("/api/v3/projects/{project}/builds?per_page=3&page=9"),
            &root,
        )
        .await;
    assert_eq!(beyond.assert(200), &serde_json::json!([]));
    expect(&beyond, "9", "", "8");
    assert_eq!(
        beyond.header("link"),
        [link(8, "prev"), link(1, "first"), link(3, "last")].join(", ")
    );

    let empty_project = app.project("group/empty", Visibility::Private).await;
    let empty = app
        .get(&format!("/api/v3/projects/{empty_project}/builds"), &root)
        .await;
    assert_eq!(empty.assert(200), &serde_json::json!([]));
    assert_eq!(
        (
            empty.header("x-total"),
            empty.header("x-total-pages"),
            empty.header("x-next-page"),
            empty.header("x-prev-page")
        ),
        ("0".into(), "1".into(), "".into(), "".into())
    );
    assert!(!empty.header("link").contains("rel=\"next\""));
}

#[tokio::test]
async fn defaults_and_caps() {
    let app = TestApp::spawn().await;
    let root = app.user("root", true).await;
    let project = app.project("group/app", Visibility::Private).await;
    app.pipeline(project, "aaa", &[BuildStatus::Success; 105])
        .await;
    let default = app
        .get(&format!("/api/v3/projects/{project}/builds"), &root)
        .await;
    assert_eq!(
        (default.ids().len(), default.header("x-per-page")),
        (20, "20".to_owned())
    );
    let capped = app
        .get(
            &format!("/api/v3/projects/{project}/builds?per_page=1000"),
            &root,
        )
        .await;
    assert_eq!(
        (capped.ids().len(), capped.header("x-per-page")),
        (100, "100".to_owned())
    );
    assert_eq!(capped.header("x-total-pages"), "2");
}

#[tokio::test]
async fn links_repeat_the_other_parameters_and_scope_pages() {
    let (app, root, project, ids) = seven_builds().await;
    let response = app
        .get(
            &format!("/api/v3/projects/{project}/builds?scope[]=failed&per_page=2&page=2"),
            &root,
        )
        .await;
    assert_eq!(response.ids(), ids[2..3]);
    assert_eq!(response.header("x-total"), "3");
    assert!(response
        .header("link")
        .contains("page=1&per_page=2&scope%5B%5D=failed>; rel=\"prev\""));
}

#[tokio::test]
async fn non_integer_page_parameters_are_400() {
    let (app, root, project, _) = seven_builds().await;
    app.get(
        &format!("/api/v3/projects/{project}/builds?page=abc"),
        &root,
    )
    .await
    .assert_error(400, "400 (Bad request) \"page\" is invalid");
    app.get(
        &format!("/api/v3/projects/{project}/builds?per_page=1.5"),
        &root,
    )
    .await
    .assert_error(400, "400 (Bad request) \"per_page\" is invalid");
}

/// Keyset pages over a history of 1,000,000 builds: the first page, a page 50,000 deep (the
/// last), and the page after it (empty, no next link) hold exactly the ids an offset walk
/// gives, and every next link carries a cursor, never the token.
#[tokio::test]
async fn keyset_pages_over_a_million_builds() {
    let app = TestApp::spawn().await;
    let root = app.user("root", true).await;
    let project = app
        .project("bench/app", kiln_core::Visibility::Private)
        .await;
    let written = kiln_store::generate::generate(&app.store, project, 100_000, 7)
        .await
        .expect("history");
    assert_eq!(written, 1_000_000);
    let jobs = format!("/api/v4/projects/{project}/jobs");
    let first = app
        .get(&format!("{jobs}?pagination=keyset&per_page=20"), &root)
        .await;
    let offset_first = app.get(&format!("{jobs}?per_page=20"), &root).await;
    assert_eq!(first.ids(), offset_first.ids());
    assert_eq!(first.ids().len(), 20);
    let top = first.ids()[0];
    // The cursor of page 50,000: below the 999,980 newer builds.
    let cursor = kiln_server::api::v4::jobs::encode_cursor(top - 20 * 49_999 + 1);
    let deep = app
        .get(
            &format!("{jobs}?pagination=keyset&per_page=20&cursor={cursor}"),
            &root,
        )
        .await;
    let offset_deep = app
        .get(&format!("{jobs}?per_page=20&page=50000"), &root)
        .await;
    assert_eq!(deep.ids().len(), 20);
    assert_eq!(deep.ids(), offset_deep.ids());
    let link = deep.header("link");
    assert_eq!(link, "<missing>", "the last page has no next: {link}");
    let second_link = first.header("link");
    assert!(
        second_link.contains("cursor=") && !second_link.contains("private_token"),
        "{second_link}"
    );
}
