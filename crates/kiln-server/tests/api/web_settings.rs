//! A project's CI/CD settings page and the admin runners page over HTTP, as a browser without
//! JavaScript uses them: variables (a masked value never in a page), triggers, registration
//! tokens shown once, runners paused and resumed, and who may do each.

use super::helpers::*;
use super::web::{Browser, Page};
use kiln_core::{AccessLevel, Visibility};

const SETTINGS: &str = "/team/app/-/settings/ci_cd";

async fn signed_in(app: &TestApp, actor: &Actor, login: &str) -> Browser {
    app.set_password(actor, "a long password").await;
    let mut browser = Browser::new(app);
    assert_eq!(browser.sign_in(login, "a long password").await.status, 303);
    browser
}

/// Posts `form` with the token of `page`'s first form.
async fn post_with(browser: &mut Browser, page: &Page, path: &str, form: &[(&str, &str)]) -> Page {
    let token = page.token();
    let mut fields = vec![("authenticity_token", token.as_str())];
    fields.extend_from_slice(form);
    browser.post(path, &fields).await
}

/// The registration token a page shows once.
fn issued_token(page: &Page) -> String {
    const AT: &str = "id=\"registration-token\">";
    let at = page.body.find(AT).expect("the token") + AT.len();
    page.body[at..at + page.body[at..].find('<').expect("end")].to_owned()
}

async fn runner_active(app: &TestApp, id: i64) -> bool {
    app.store.runners().get(id).await.expect("runner").active
}

#[tokio::test]
async fn maintainers_keep_variables_triggers_and_runners_on_the_settings_page() {
    let app = TestApp::spawn().await;
    let owner = app.user("owner", false).await;
    let project = app.project("team/app", Visibility::Private).await;
    app.member(project, &owner, AccessLevel::Master).await;
    let mut browser = signed_in(&app, &owner, "owner").await;
    let page = browser.get(SETTINGS).await;
    assert_eq!(page.status, 200, "{}", page.body);
    for text in [
        "id=\"variables\"",
        "id=\"triggers\"",
        "id=\"runners\"",
        "No variable yet.",
    ] {
        assert!(page.body.contains(text), "{text}");
    }

    // Variables: a plain one is shown, a masked one never is; saving a key again changes it.
    let vars = format!("{SETTINGS}/variables");
    let saved = post_with(
        &mut browser,
        &page,
        &vars,
        &[
            ("key", "PLAIN"),
            ("value", "visible <b>"),
            ("expanded", "1"),
        ],
    )
    .await;
    assert_eq!(
        (saved.status, saved.headers["location"].to_str().ok()),
        (303, Some("/team/app/-/settings/ci_cd#variables"))
    );
    let secret = "s3cr3t-Value-1234";
    let saved = post_with(
        &mut browser,
        &page,
        &vars,
        &[
            ("key", "SECRET"),
            ("value", secret),
            ("masked", "1"),
            ("protected", "1"),
        ],
    )
    .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let page = browser.get(SETTINGS).await;
    assert!(
        page.body
            .contains("<code class=\"value\">visible &lt;b&gt;</code>"),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains(secret) && page.body.contains("protected masked"),
        "{}",
        page.body
    );
    let stored = app
        .store
        .variables()
        .list(Some(project))
        .await
        .expect("variables");
    let flags: Vec<(&str, bool, bool, bool)> = stored
        .iter()
        .map(|v| (v.key.as_str(), v.masked, v.protected, v.raw))
        .collect();
    assert_eq!(
        flags,
        [("PLAIN", false, false, false), ("SECRET", true, true, true)]
    );
    post_with(
        &mut browser,
        &page,
        &vars,
        &[("key", "PLAIN"), ("value", "changed")],
    )
    .await;
    let page = browser.get(SETTINGS).await;
    assert!(page.body.contains(">changed</code>") && !page.body.contains("visible &lt;b&gt;"));
    let stored = app
        .store
        .variables()
        .list(Some(project))
        .await
        .expect("variables");
    assert_eq!(stored.len(), 2, "changed in place");
    // Refused without the form's token; the value stays.
    let forged = browser
        .post(&vars, &[("key", "PLAIN"), ("value", "forged")])
        .await;
    assert_eq!(forged.status, 422);
    let deleted = post_with(
        &mut browser,
        &page,
        &format!("{vars}/delete"),
        &[("key", "PLAIN"), ("environment_scope", "*")],
    )
    .await;
    assert_eq!(deleted.status, 303);
    let keys: Vec<String> = app
        .store
        .variables()
        .list(Some(project))
        .await
        .expect("variables")
        .into_iter()
        .map(|v| v.key)
        .collect();
    assert_eq!(keys, ["SECRET"]);
    // A masked value GitLab cannot mask is refused with its reason.
    let short = post_with(
        &mut browser,
        &page,
        &vars,
        &[("key", "SHORT"), ("value", "abc"), ("masked", "1")],
    )
    .await;
    assert_eq!(short.status, 400, "{}", short.body);

    // Triggers: added with a description, their token shown whole to their owner.
    let added = post_with(
        &mut browser,
        &page,
        &format!("{SETTINGS}/triggers"),
        &[("description", "deploy hook")],
    )
    .await;
    assert_eq!(added.status, 303);
    let triggers = app.store.triggers().list(project).await.expect("triggers");
    assert_eq!(triggers.len(), 1);
    let token = kiln_server::service::triggers::token(&app.state, &triggers[0]).expect("token");
    let page = browser.get(SETTINGS).await;
    assert!(
        page.body.contains("deploy hook") && page.body.contains(&format!("<code>{token}</code>"))
    );
    let removed = post_with(
        &mut browser,
        &page,
        &format!("{SETTINGS}/triggers/delete"),
        &[("id", &triggers[0].id.to_string())],
    )
    .await;
    assert_eq!(removed.status, 303);
    assert!(app
        .store
        .triggers()
        .list(project)
        .await
        .expect("triggers")
        .is_empty());

    // A registration token, shown once, registers the project's runners.
    let issued = post_with(
        &mut browser,
        &page,
        &format!("{SETTINGS}/registration_token"),
        &[],
    )
    .await;
    assert_eq!(issued.status, 200);
    let token = &issued_token(&issued);
    assert!(token.starts_with("GR1348941"), "{token}");
    let scope = app
        .store
        .runners()
        .registration_scope(token)
        .await
        .expect("scope");
    assert_eq!(scope, Some(Some(project)));
    assert!(
        !browser.get(SETTINGS).await.body.contains(token),
        "shown once"
    );

    // The project's runner is listed and paused, then resumed, by its maintainer.
    let (runner, _) = app.register_runner(Some(project), "linux,docker").await;
    let page = browser.get(SETTINGS).await;
    assert!(
        page.body.contains(&format!("id=\"runner-{runner}\""))
            && page.body.contains("docker, linux")
    );
    let pause = format!("{SETTINGS}/runners/{runner}/pause");
    assert!(
        page.body.contains(&format!("action=\"{pause}\"")),
        "{}",
        page.body
    );
    assert_eq!(
        post_with(&mut browser, &page, &pause, &[]).await.status,
        303
    );
    assert!(!runner_active(&app, runner).await);
    let page = browser.get(SETTINGS).await;
    assert!(page.body.contains("runner-paused") && page.body.contains(">Resume<"));
    post_with(
        &mut browser,
        &page,
        &format!("{SETTINGS}/runners/{runner}/resume"),
        &[],
    )
    .await;
    assert!(runner_active(&app, runner).await);

    // A developer may run pipelines but not open the settings, nor post to them.
    let developer = app.user("dev", false).await;
    app.member(project, &developer, AccessLevel::Developer)
        .await;
    let mut dev = signed_in(&app, &developer, "dev").await;
    assert_eq!(dev.get(SETTINGS).await.status, 403);
    let home = dev.get("/team/app/-/pipelines").await;
    assert!(!home.body.contains("settings/ci_cd"));
    let refused = post_with(&mut dev, &home, &vars, &[("key", "X"), ("value", "y")]).await;
    assert_eq!(refused.status, 403);
    assert_eq!(
        app.store
            .variables()
            .list(Some(project))
            .await
            .expect("variables")
            .len(),
        1
    );
    assert!(browser
        .get("/team/app/-/pipelines")
        .await
        .body
        .contains("settings/ci_cd\">CI/CD settings<"));
    // Signed out: to the sign-in page.
    let mut anonymous = Browser::new(&app);
    assert_eq!(anonymous.get(SETTINGS).await.status, 303);
}

#[tokio::test]
async fn admins_see_every_runner_and_issue_instance_tokens() {
    let app = TestApp::spawn().await;
    let root = app.user("root", true).await;
    let someone = app.user("someone", false).await;
    let project = app.project("team/app", Visibility::Private).await;
    let (instance, _) = app.register_runner(None, "shared").await;
    let (own, _) = app.register_runner(Some(project), "").await;

    let mut stranger = signed_in(&app, &someone, "someone").await;
    assert_eq!(stranger.get("/admin/runners").await.status, 404);
    assert!(!stranger.get("/").await.body.contains("/admin/runners"));

    let mut admin = signed_in(&app, &root, "root").await;
    let page = admin.get("/admin/runners").await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains(&format!("id=\"runner-{instance}\""))
            && page.body.contains(&format!("id=\"runner-{own}\""))
    );
    assert!(page.body.contains("href=\"/admin/runners\">Admin<"));
    let issued = post_with(
        &mut admin,
        &page,
        "/admin/runners/registration_token",
        &[("reset", "1")],
    )
    .await;
    assert_eq!(issued.status, 200);
    let token = &issued_token(&issued);
    assert_eq!(
        app.store
            .runners()
            .registration_scope(token)
            .await
            .expect("scope"),
        Some(None)
    );
    let paused = post_with(
        &mut admin,
        &page,
        &format!("/admin/runners/{instance}/pause"),
        &[],
    )
    .await;
    assert_eq!(paused.status, 303);
    assert!(!runner_active(&app, instance).await);
    // Another user's post with their own valid token is still not an admin's.
    let home = stranger.get("/").await;
    let refused = post_with(
        &mut stranger,
        &home,
        &format!("/admin/runners/{instance}/resume"),
        &[],
    )
    .await;
    assert_eq!(refused.status, 404);
    assert!(!runner_active(&app, instance).await);
}
