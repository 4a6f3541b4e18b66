//! The web UI's sign-in over HTTP, as a browser without JavaScript uses it: the form and its
//! CSRF token, a password or a personal access token, the session cookie's flags, failures
//! slowed per account, sign-out ending the session on the server, and the page headers.

use super::helpers::*;
use kiln_core::Visibility;
use std::collections::BTreeMap;

/// Keeps cookies, follows no redirect.
pub(super) struct Browser {
    pub(super) base: String,
    pub(super) client: reqwest::Client,
    pub(super) cookies: BTreeMap<String, String>,
}

pub(super) struct Page {
    pub(super) status: u16,
    pub(super) headers: reqwest::header::HeaderMap,
    pub(super) body: String,
}

impl Page {
    /// The `authenticity_token` of the page's (first) form.
    pub(super) fn token(&self) -> String {
        const FIELD: &str = "name=\"authenticity_token\" value=\"";
        let at = self.body.find(FIELD).expect("a form with a token");
        let rest = &self.body[at + FIELD.len()..];
        rest[..rest.find('"').expect("end")].to_owned()
    }

    fn set_cookie(&self, name: &str) -> String {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .unwrap_or_default()
            .to_owned()
    }
}

impl Browser {
    pub(super) fn new(app: &TestApp) -> Browser {
        Browser {
            base: app.base.clone(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            cookies: BTreeMap::new(),
        }
    }

    pub(super) async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let jar: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let response = request
            .header("cookie", jar.join("; "))
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        for value in headers.get_all("set-cookie").iter() {
            let text = value.to_str().unwrap_or_default();
            let pair = text.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                if value.is_empty() || text.contains("Max-Age=0") {
                    self.cookies.remove(name);
                } else {
                    self.cookies.insert(name.to_owned(), value.to_owned());
                }
            }
        }
        let body = response.text().await.expect("body");
        Page {
            status,
            headers,
            body,
        }
    }

    pub(super) async fn get(&mut self, path: &str) -> Page {
        let request = self.client.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    pub(super) async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let request = self.client.post(format!("{}{path}", self.base)).form(form);
        self.send(request).await
    }

    pub(super) async fn sign_in(&mut self, login: &str, password: &str) -> Page {
        let token = self.get("/users/sign_in").await.token();
        self.post(
            "/users/sign_in",
            &[
                ("authenticity_token", &token),
                ("user[login]", login),
                ("user[password]", password),
            ],
        )
        .await
    }
}

async fn user_with_password(app: &TestApp, name: &str, password: &str) -> Actor {
    let actor = app.user(name, false).await;
    app.set_password(&actor, password).await;
    actor
}

#[tokio::test]
async fn signing_in_with_a_password_then_out_ends_the_session_on_the_server() {
    let app = TestApp::spawn().await;
    user_with_password(&app, "ada", "correct horse").await;
    app.project("team/open", Visibility::Public).await;
    app.project("team/hidden", Visibility::Private).await;
    let mut browser = Browser::new(&app);

    let form = browser.get("/users/sign_in").await;
    assert_eq!(form.status, 200);
    let csp = form.headers["content-security-policy"]
        .to_str()
        .unwrap_or("");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let csrf_cookie = form.set_cookie("_kiln_csrf");
    assert!(
        csrf_cookie.contains("HttpOnly") && csrf_cookie.contains("SameSite=Lax"),
        "{csrf_cookie}"
    );

    // Signed out, the dashboard shows public projects only, and links the sign-in page.
    let anonymous = browser.get("/").await;
    assert_eq!(anonymous.status, 200);
    assert!(anonymous.body.contains("team/open") && !anonymous.body.contains("team/hidden"));
    assert!(anonymous.body.contains("href=\"/users/sign_in\""));

    // A post without the form's token is refused, whatever it holds.
    let forged = browser
        .post(
            "/users/sign_in",
            &[("user[login]", "ada"), ("user[password]", "correct horse")],
        )
        .await;
    assert_eq!(forged.status, 422);
    assert!(forged.set_cookie("_kiln_session").is_empty());

    let stale = browser
        .post(
            "/users/sign_in",
            &[
                ("authenticity_token", &"x".repeat(40)),
                ("user[login]", "ada"),
                ("user[password]", "correct horse"),
            ],
        )
        .await;
    assert_eq!(stale.status, 422, "a token that is not this browser's");
    // What the visitor typed comes back escaped.
    let hostile = browser
        .sign_in("<script>alert(1)</script>", "whatever")
        .await;
    assert!(
        !hostile.body.contains("<script>alert") && hostile.body.contains("&lt;script&gt;"),
        "{}",
        hostile.body
    );
    let wrong = browser.sign_in("ada", "wrong horse").await;
    assert_eq!(wrong.status, 401);
    assert!(
        wrong.body.contains("Invalid login or password."),
        "{}",
        wrong.body
    );

    let signed_in = browser.sign_in("ada", "correct horse").await;
    assert_eq!(signed_in.status, 303);
    assert_eq!(signed_in.headers["location"], "/");
    let session = signed_in.set_cookie("_kiln_session");
    for flag in ["HttpOnly", "SameSite=Lax", "Max-Age=604800", "Path=/"] {
        assert!(session.contains(flag), "{flag} in {session}");
    }
    assert!(!session.contains("Secure"), "not behind https: {session}");
    let stolen = browser.cookies["_kiln_session"].clone();

    let dashboard = browser.get("/").await;
    assert!(
        dashboard.body.contains("class=\"who\">ada<"),
        "{}",
        dashboard.body
    );
    assert!(dashboard.body.contains("Sign out"));

    // Sign-out needs the session's token too.
    let forged = browser.post("/users/sign_out", &[]).await;
    assert_eq!(forged.status, 422);
    assert!(browser.get("/").await.body.contains("Sign out"));
    let token = browser.get("/").await.token();
    let out = browser
        .post("/users/sign_out", &[("authenticity_token", &token)])
        .await;
    assert_eq!(out.status, 303);
    assert_eq!(out.headers["location"], "/users/sign_in");
    // The old cookie, replayed, is nobody's any more.
    let mut thief = Browser::new(&app);
    thief.cookies.insert("_kiln_session".into(), stolen);
    let replayed = thief.get("/").await;
    assert!(!replayed.body.contains("Sign out") && replayed.body.contains("Sign in"));
}

#[tokio::test]
async fn failed_sign_ins_are_slowed_and_a_token_signs_in_too() {
    let app = TestApp::spawn().await;
    let ada = user_with_password(&app, "ada", "correct horse").await;
    let mut browser = Browser::new(&app);
    for _ in 0..5 {
        assert_eq!(browser.sign_in("ada", "guess").await.status, 401);
    }
    // Past five failures the next attempt waits, and is not even checked meanwhile.
    let slowed = browser.sign_in("ada", "correct horse").await;
    assert_eq!(slowed.status, 429, "{}", slowed.body);
    assert_eq!(slowed.headers["retry-after"], "1");
    assert!(slowed.body.contains("Too many failed sign-ins"));
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    // A personal access token is as good as the password.
    assert_eq!(browser.sign_in("ada", &ada.token).await.status, 303);
    // The good sign-in cleared the count: a new failure is not slowed.
    let mut other = Browser::new(&app);
    assert_eq!(other.sign_in("ada", "guess").await.status, 401);
    // Another user's token does not sign ada in.
    let bob = app.user("bob", false).await;
    assert_eq!(other.sign_in("ada", &bob.token).await.status, 401);
}

#[tokio::test]
async fn the_stylesheet_is_served_from_the_binary() {
    let app = TestApp::spawn().await;
    let mut browser = Browser::new(&app);
    let css = browser.get("/-/assets/kiln.css").await;
    assert_eq!(css.status, 200);
    assert!(css.headers["content-type"]
        .to_str()
        .unwrap_or("")
        .starts_with("text/css"));
    assert!(css.body.contains("prefers-color-scheme: dark"));
}

const GRAPH_CI: &str = "stages: [build, test]\nmake:\n  stage: build\n  script: [echo made]\ncheck:\n  stage: test\n  needs: [make]\n  script: [\"exit 1\"]\n";

#[tokio::test]
async fn pipeline_pages_show_the_graph_and_offer_only_what_a_role_may_do() {
    let (app, owner, repo, project) = TestApp::with_repo(1, GRAPH_CI).await;
    app.set_password(&owner, "owner password").await;
    let reporter = app.user("reporter", false).await;
    app.set_password(&reporter, "reporter password").await;
    app.member(project, &reporter, kiln_core::AccessLevel::Reporter)
        .await;
    repo.commit(&[("x.txt", "x")], "<script>alert(1)</script> \u{1b}[31mred");
    let (pipeline, builds) = app.run_pipeline(project, "master", &owner).await;
    assert_eq!(builds["check"]["status"], "failed");

    // A private project's pages are not found signed out.
    let mut anonymous = Browser::new(&app);
    assert_eq!(anonymous.get("/team/app/-/pipelines").await.status, 404);

    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in("owner", "owner password").await.status, 303);
    let home = browser.get("/team/app").await;
    assert_eq!(home.status, 303);
    assert_eq!(home.headers["location"], "/team/app/-/pipelines");
    let list = browser.get("/team/app/-/pipelines").await;
    assert_eq!(list.status, 200);
    assert!(
        list.body
            .contains(&format!("href=\"/team/app/-/pipelines/{pipeline}\"")),
        "{}",
        list.body
    );
    assert!(list.body.contains("status-failed") && list.body.contains(">failed<"));
    // The commit title is shown, and inert.
    assert!(!list.body.contains("<script>alert"), "{}", list.body);
    assert!(
        list.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        list.body
    );
    assert!(list.body.contains("Run pipeline"));
    let filtered = browser.get("/team/app/-/pipelines?status=success").await;
    assert!(!filtered
        .body
        .contains(&format!("/team/app/-/pipelines/{pipeline}\"")));

    let graph = browser
        .get(&format!("/team/app/-/pipelines/{pipeline}"))
        .await;
    assert_eq!(graph.status, 200);
    for text in [
        "aria-label=\"Stage build\"",
        "aria-label=\"Stage test\"",
        ">make<",
        ">check<",
        "needs make",
        ">Retry<",
    ] {
        assert!(graph.body.contains(text), "{text} in {}", graph.body);
    }
    // The needs drawn as a graph: make in the first column, check after it, one arrow.
    let (make, check) = (builds["make"]["id"].clone(), builds["check"]["id"].clone());
    for text in [
        "Job dependencies".to_owned(),
        format!("<a href=\"/team/app/-/jobs/{make}\"><g class=\"node status-success\"><title>make: success</title><rect x=\"8\" y=\"8\""),
        format!("<a href=\"/team/app/-/jobs/{check}\"><g class=\"node status-failed\"><title>check: failed</title><rect x=\"238\" y=\"8\""),
        "<path class=\"edge\" d=\"M188 28 C213 28 213 28 238 28\"".to_owned(),
        // Each finished job can be retried from the graph.
        format!("action=\"/team/app/-/jobs/{check}/retry\""),
        format!("action=\"/team/app/-/jobs/{make}/retry\""),
    ] {
        assert!(graph.body.contains(&text), "{text} in {}", graph.body);
    }

    // A reporter sees the graph without the buttons, and a post of theirs is refused.
    let mut reader = Browser::new(&app);
    assert_eq!(
        reader.sign_in("reporter", "reporter password").await.status,
        303
    );
    let seen = reader
        .get(&format!("/team/app/-/pipelines/{pipeline}"))
        .await;
    assert_eq!(seen.status, 200);
    assert!(!seen.body.contains(">Retry<") && !seen.body.contains("Run pipeline"));
    assert!(!seen.body.contains("/retry\"") && seen.body.contains("Job dependencies"));
    let token = seen.token();
    let refused = reader
        .post(
            &format!("/team/app/-/pipelines/{pipeline}/retry"),
            &[("authenticity_token", &token)],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);

    // The owner's retry needs the form's token, then runs the failed job again.
    let forged = browser
        .post(&format!("/team/app/-/pipelines/{pipeline}/retry"), &[])
        .await;
    assert_eq!(forged.status, 422);
    let token = browser
        .get(&format!("/team/app/-/pipelines/{pipeline}"))
        .await
        .token();
    let retried = browser
        .post(
            &format!("/team/app/-/pipelines/{pipeline}/retry"),
            &[("authenticity_token", &token)],
        )
        .await;
    assert_eq!(retried.status, 303);
    let checks = app
        .store
        .builds()
        .find(
            project,
            &kiln_store::BuildFilter {
                pipeline_id: Some(pipeline),
                name: Some("check".into()),
                ..kiln_store::BuildFilter::default()
            },
            kiln_store::Window::Keyset {
                after: None,
                per_page: 10,
                newest_first: false,
            },
        )
        .await
        .expect("builds");
    assert_eq!(checks.builds.len(), 2, "the retry made a new check build");

    // The project's jobs, filtered by status and by name.
    let jobs = browser.get("/team/app/-/jobs").await;
    assert_eq!(jobs.status, 200);
    assert!(
        jobs.body.contains(" make</a>") && jobs.body.contains(" check</a>"),
        "{}",
        jobs.body
    );
    let failed = browser.get("/team/app/-/jobs?status=failed").await;
    assert!(
        failed.body.contains(" check</a>") && !failed.body.contains(" make</a>"),
        "{}",
        failed.body
    );
    let named = browser.get("/team/app/-/jobs?name=make").await;
    assert!(named.body.contains(" make</a>") && !named.body.contains(" check</a>"));

    // "Run pipeline" makes a web pipeline of the ref, with its variables.
    let run = browser
        .post(
            "/team/app/-/pipelines",
            &[
                ("authenticity_token", &token),
                ("ref", "master"),
                ("variables", "TARGET=staging\n"),
            ],
        )
        .await;
    assert_eq!(run.status, 303, "{}", run.body);
    let location = run.headers["location"].to_str().unwrap_or("").to_owned();
    let made: i64 = location
        .rsplit('/')
        .next()
        .and_then(|id| id.parse().ok())
        .expect("id");
    let made = app.store.pipelines().get(made).await.expect("pipeline");
    assert_eq!(made.source, "web");
    assert!(made.variables.contains("TARGET"), "{}", made.variables);
}

const LOG_CI: &str = r#"shown:
  script:
    - printf '\033[0Ksection_start:1:setup[collapsed=true]\r\033[0KSetting up\n'
    - echo inside the section
    - printf '\033[0Ksection_end:66:setup\r\033[0K\n'
    - printf '\033[31m<script>alert(1)</script>\033[0m\n'
"#;

#[tokio::test]
async fn a_jobs_page_shows_its_log_safely_and_its_forms_by_role() {
    let (app, owner, _repo, project) = TestApp::with_repo(1, LOG_CI).await;
    app.set_password(&owner, "owner password").await;
    let reporter = user_with_password(&app, "reporter", "reporter password").await;
    app.member(project, &reporter, kiln_core::AccessLevel::Reporter)
        .await;
    let (_, builds) = app.run_pipeline(project, "master", &owner).await;
    assert_eq!(builds["shown"]["status"], "success", "{:?}", builds);
    let id = builds["shown"]["id"].as_i64().expect("id");

    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in("owner", "owner password").await.status, 303);
    let job = browser.get(&format!("/team/app/-/jobs/{id}")).await;
    assert_eq!(job.status, 200, "{}", job.body);
    for text in [
        "<details class=\"section\" data-section=\"setup\"><summary>",
        ">Setting up</span></div></summary>",
        "<p class=\"section-duration\">01:05</p></details>",
        "inside the section",
        "<span class=\"fg1\">&lt;script&gt;alert(1)&lt;/script&gt;</span>",
        "href=\"#L1\"",
        ">Retry<",
        "href=\"/team/app/-/jobs/{id}/raw\"",
    ] {
        let text = text.replace("{id}", &id.to_string());
        assert!(job.body.contains(&text), "{text} in {}", job.body);
    }
    assert!(!job.body.contains("<script>alert"), "the log is inert");
    let raw = browser.get(&format!("/team/app/-/jobs/{id}/raw")).await;
    assert!(raw.headers["content-type"]
        .to_str()
        .unwrap_or("")
        .starts_with("text/plain"));
    assert!(raw.body.contains("<script>alert(1)</script>"));

    let mut reader = Browser::new(&app);
    assert_eq!(
        reader.sign_in("reporter", "reporter password").await.status,
        303
    );
    let seen = reader.get(&format!("/team/app/-/jobs/{id}")).await;
    assert_eq!(seen.status, 200);
    assert!(!seen.body.contains(">Retry<"));
    let token = seen.token();
    let refused = reader
        .post(
            &format!("/team/app/-/jobs/{id}/retry"),
            &[("authenticity_token", &token)],
        )
        .await;
    assert_eq!(refused.status, 403);

    let token = job.token();
    let retried = browser
        .post(
            &format!("/team/app/-/jobs/{id}/retry"),
            &[("authenticity_token", &token)],
        )
        .await;
    assert_eq!(retried.status, 303, "{}", retried.body);
    let location = retried.headers["location"]
        .to_str()
        .unwrap_or("")
        .to_owned();
    assert!(
        location.starts_with("/team/app/-/jobs/") && !location.ends_with(&format!("/{id}")),
        "{location}"
    );
}

const ARTIFACTS_CI: &str = "make:\n  script:\n    - mkdir -p dist/sub\n    - echo built > dist/app.txt\n    - echo spaced > 'dist/sub/b c.txt'\n  artifacts:\n    paths: [dist/]\n    expire_in: 1 week\n";

#[tokio::test]
async fn a_jobs_artifacts_are_browsed_downloaded_and_kept_from_its_page() {
    let (app, owner, _repo, project) = TestApp::with_repo(1, ARTIFACTS_CI).await;
    let (_, builds) = app.run_pipeline(project, "master", &owner).await;
    assert_eq!(builds["make"]["status"], "success", "{builds:?}");
    let id = builds["make"]["id"].as_i64().expect("id");
    app.set_password(&owner, "owner password").await;
    let reporter = app.user("reporter", false).await;
    app.set_password(&reporter, "reporter password").await;
    app.member(project, &reporter, kiln_core::AccessLevel::Reporter)
        .await;
    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in("owner", "owner password").await.status, 303);
    let base = format!("/team/app/-/jobs/{id}/artifacts");

    let page = browser.get(&format!("/team/app/-/jobs/{id}")).await;
    for text in [
        format!("href=\"{base}/download\">Download<"),
        format!("href=\"{base}/browse\">Browse<"),
        format!("action=\"{base}/keep\""),
        "expire in 6 days".to_owned(),
    ] {
        assert!(page.body.contains(&text), "{text} in {}", page.body);
    }
    let top = browser.get(&format!("{base}/browse")).await;
    assert_eq!(top.status, 200);
    assert!(
        top.body
            .contains(&format!("href=\"{base}/browse/dist/\">dist/<")),
        "{}",
        top.body
    );
    let dist = browser.get(&format!("{base}/browse/dist")).await;
    assert_eq!(dist.status, 200);
    assert!(
        dist.body
            .contains(&format!("href=\"{base}/browse/dist/sub/\">sub/<")),
        "{}",
        dist.body
    );
    assert!(
        dist.body
            .contains(&format!("href=\"{base}/raw/dist/app%2Etxt\">app.txt<")),
        "{}",
        dist.body
    );
    assert!(
        dist.body.contains(&format!("href=\"{base}/browse\">..<")),
        "{}",
        dist.body
    );
    let sub = browser.get(&format!("{base}/browse/dist/sub/")).await;
    assert!(
        sub.body.contains(&format!(
            "href=\"{base}/raw/dist/sub/b%20c%2Etxt\">b c.txt<"
        )),
        "{}",
        sub.body
    );
    assert_eq!(
        browser.get(&format!("{base}/browse/nowhere")).await.status,
        404
    );
    let file = browser
        .get(&format!("{base}/raw/dist/sub/b%20c%2Etxt"))
        .await;
    assert_eq!((file.status, file.body.as_str()), (200, "spaced\n"));
    let archive = browser.get(&format!("{base}/download")).await;
    assert_eq!(archive.status, 200);
    assert!(archive.body.starts_with("PK"), "a zip");

    // Keep: refused without the form's token, done with it; then kept, with no button.
    let refused = browser.post(&format!("{base}/keep"), &[]).await;
    assert_eq!(refused.status, 422);
    let token = page.token();
    let kept = browser
        .post(&format!("{base}/keep"), &[("authenticity_token", &token)])
        .await;
    assert_eq!(kept.status, 303, "{}", kept.body);
    let record = app.store.builds().get(project, id).await.expect("build");
    assert_eq!(record.artifacts_expire_at, None);
    let after = browser.get(&format!("/team/app/-/jobs/{id}")).await;
    assert!(
        after.body.contains("· kept") && !after.body.contains("/keep\""),
        "{}",
        after.body
    );

    // A reporter browses and downloads but is offered no Keep, and refused one.
    let mut reader = Browser::new(&app);
    assert_eq!(
        reader.sign_in("reporter", "reporter password").await.status,
        303
    );
    let seen = reader.get(&format!("/team/app/-/jobs/{id}")).await;
    assert!(seen.body.contains(&format!("{base}/browse")) && !seen.body.contains("/keep\""));
    assert_eq!(
        reader.get(&format!("{base}/raw/dist/app%2Etxt")).await.body,
        "built\n"
    );
    let token = seen.token();
    let forbidden = reader
        .post(&format!("{base}/keep"), &[("authenticity_token", &token)])
        .await;
    assert_eq!(forbidden.status, 403);
    // Signed out, a private project's artifacts are not found.
    let mut anonymous = Browser::new(&app);
    assert_eq!(anonymous.get(&format!("{base}/download")).await.status, 404);
    assert_eq!(anonymous.get(&format!("{base}/browse")).await.status, 404);
}
