//! Badges over HTTP: a public project's without a token, a private one's only for its
//! readers, a ref with slashes, coverage of the pipeline and of one job, never cached.

use super::helpers::*;
use super::web::Browser;
use kiln_core::Visibility;

const CI: &str = "unit:\n  script: ['echo \"Coverage: 87.5%\"']\n  coverage: '/Coverage: \\d+\\.\\d+%/'\nlint:\n  script: ['echo \"Coverage: 50.0%\"']\n  coverage: '/Coverage: \\d+\\.\\d+%/'\n";

async fn badge(browser: &mut Browser, path: &str) -> (u16, String, String) {
    let page = browser.get(path).await;
    let cache = page
        .headers
        .get("cache-control")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (page.status, page.body, cache)
}

/// The badge's value: the text of its last `<text>`.
fn value(svg: &str) -> &str {
    let last = svg.rfind("<text").expect("text");
    let at = last + svg[last..].find('>').expect(">") + 1;
    &svg[at..at + svg[at..].find('<').expect("<")]
}

#[tokio::test]
async fn badges_show_the_refs_pipeline_and_coverage_to_its_readers() {
    let (app, owner, repo, project) = TestApp::with_repo(1, CI).await;
    repo.git(&["checkout", "-q", "-b", "feature/x"]);
    let (_, builds) = app.run_pipeline(project, "feature/x", &owner).await;
    assert_eq!(builds["unit"]["status"], "success", "{builds:?}");

    // A private project's badges are its readers' only.
    let mut anonymous = Browser::new(&app);
    let (status, _, _) = badge(&mut anonymous, "/team/app/badges/feature/x/pipeline.svg").await;
    assert_eq!(status, 404);
    app.set_password(&owner, "a long password").await;
    let mut reader = Browser::new(&app);
    assert_eq!(reader.sign_in("owner", "a long password").await.status, 303);
    let (status, svg, cache) = badge(&mut reader, "/team/app/badges/feature/x/pipeline.svg").await;
    assert_eq!(status, 200, "{svg}");
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"116\""));
    assert_eq!(value(&svg), "passed");
    assert!(cache.contains("no-store"), "{cache}");
    let (_, svg, _) = badge(&mut reader, "/team/app/badges/feature/x/coverage.svg").await;
    assert_eq!(
        value(&svg),
        "68.75%",
        "the pipeline's: the average of its jobs'"
    );
    let (_, svg, _) = badge(
        &mut reader,
        "/team/app/badges/feature/x/coverage.svg?job=unit&key_text=unit",
    )
    .await;
    assert_eq!(value(&svg), "87.50%");
    assert!(svg.contains(">unit</text>"));
    let (_, svg, _) = badge(
        &mut reader,
        "/team/app/badges/feature/x/coverage.svg?job=nothing",
    )
    .await;
    assert_eq!(value(&svg), "unknown");
    let (_, svg, _) = badge(&mut reader, "/team/app/badges/master/pipeline.svg").await;
    assert_eq!(value(&svg), "unknown");
    let (status, _, _) = badge(&mut reader, "/team/app/badges/feature/x/other.svg").await;
    assert_eq!(status, 404);

    // A public project's, without signing in; skipped pipelines left out when asked.
    let open_repo = GitRepo::with_ci("broken:\n  script: [\"exit 1\"]\n");
    let open = app
        .store
        .projects()
        .create("open", "app", Visibility::Public, Some(&open_repo.path()))
        .await
        .expect("project");
    app.member(open, &owner, kiln_core::AccessLevel::Master)
        .await;
    let (_, failed) = app.run_pipeline(open, "master", &owner).await;
    assert_eq!(failed["broken"]["status"], "failed");
    // A pipeline whose only job waits for a failure is skipped.
    open_repo.commit(
        &[(
            ".gitlab-ci.yml",
            "later:\n  script: [\"true\"]\n  when: on_failure\n",
        )],
        "Skip",
    );
    let (skipped, _) = app.run_pipeline(open, "master", &owner).await;
    let record = app.store.pipelines().get(skipped).await.expect("pipeline");
    assert_eq!(record.status, "skipped");
    let (status, svg, _) = badge(&mut anonymous, "/open/app/badges/master/pipeline.svg").await;
    assert_eq!((status, value(&svg)), (200, "skipped"));
    let (_, svg, _) = badge(
        &mut anonymous,
        "/open/app/badges/master/pipeline.svg?ignore_skipped=true",
    )
    .await;
    assert_eq!(value(&svg), "failed");
    assert!(svg.contains("fill=\"#e05d44\""));
}
