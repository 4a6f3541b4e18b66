//! Every page of the web UI, and a form of each kind, for every kind of visitor: the status
//! each gets on a private project. A page a role may not see is not found (as GitLab hides a
//! private project), one it may see but not use is forbidden, and a signed-out visitor is
//! sent to sign in where signing in could help.

use super::helpers::*;
use super::web::Browser;
use kiln_core::AccessLevel;

const CI: &str = "make:\n  script:\n    - mkdir -p dist && echo built > dist/app.txt\n  artifacts:\n    paths: [dist/]\n    expire_in: 1 week\n";

/// A form: where it posts, its fields besides the token, and each visitor's status.
type Form<'a> = (String, Vec<(&'a str, &'a str)>, [u16; 6]);

/// The visitors, in the order of every row's statuses.
const VISITORS: [&str; 6] = [
    "anonymous",
    "stranger",
    "reporter",
    "developer",
    "maintainer",
    "admin",
];

#[tokio::test]
async fn every_page_answers_each_visitor_as_its_role_allows() {
    let (app, owner, _repo, project) = TestApp::with_repo(1, CI).await;
    let (pipeline, builds) = app.run_pipeline(project, "master", &owner).await;
    assert_eq!(builds["make"]["status"], "success", "{builds:?}");
    let job = builds["make"]["id"].as_i64().expect("id");
    let mut browsers = Vec::new();
    for visitor in VISITORS {
        let mut browser = Browser::new(&app);
        let actor = match visitor {
            "anonymous" => None,
            "maintainer" => Some(owner.clone()),
            "admin" => Some(app.user(visitor, true).await),
            _ => Some(app.user(visitor, false).await),
        };
        if let Some(actor) = &actor {
            let level = match visitor {
                "reporter" => Some(AccessLevel::Reporter),
                "developer" => Some(AccessLevel::Developer),
                _ => None,
            };
            if let Some(level) = level {
                app.member(project, actor, level).await;
            }
            app.set_password(actor, "a long password").await;
            let login = if visitor == "maintainer" {
                "owner"
            } else {
                visitor
            };
            assert_eq!(browser.sign_in(login, "a long password").await.status, 303);
        }
        browsers.push(browser);
    }

    let readable = [404, 404, 200, 200, 200, 200];
    let pages: Vec<(String, [u16; 6])> = vec![
        ("/".into(), [200; 6]),
        // Signed in, the sign-in page sends you on, as GitLab's does.
        ("/users/sign_in".into(), [200, 303, 303, 303, 303, 303]),
        ("/team/app".into(), [303, 303, 303, 303, 303, 303]),
        ("/team/app/-/pipelines".into(), readable),
        (format!("/team/app/-/pipelines/{pipeline}"), readable),
        ("/team/app/-/jobs".into(), readable),
        (format!("/team/app/-/jobs/{job}"), readable),
        (format!("/team/app/-/jobs/{job}/raw"), readable),
        (format!("/team/app/-/jobs/{job}/log"), readable),
        (
            format!("/team/app/-/jobs/{job}/log/search?q=built"),
            readable,
        ),
        (format!("/team/app/-/jobs/{job}/artifacts/browse"), readable),
        (
            format!("/team/app/-/jobs/{job}/artifacts/raw/dist/app.txt"),
            readable,
        ),
        (
            format!("/team/app/-/jobs/{job}/artifacts/download"),
            readable,
        ),
        (
            "/team/app/-/settings/ci_cd".into(),
            [303, 404, 403, 403, 200, 200],
        ),
        ("/admin/runners".into(), [303, 404, 404, 404, 404, 200]),
        (
            "/team/app/-/pipelines/999999".into(),
            [404, 404, 404, 404, 404, 404],
        ),
        ("/nobody/nothing/-/pipelines".into(), [404; 6]),
    ];
    let mut wrong = Vec::new();
    for (path, expected) in &pages {
        for (i, browser) in browsers.iter_mut().enumerate() {
            let status = browser.get(path).await.status;
            if status != expected[i] {
                wrong.push(format!(
                    "GET {path} as {}: {status}, want {}",
                    VISITORS[i], expected[i]
                ));
            }
        }
    }

    // Forms, each posted with the visitor's own valid token.
    let forms: Vec<Form> = vec![
        (
            format!("/team/app/-/jobs/{job}/artifacts/keep"),
            vec![],
            [303, 404, 403, 303, 303, 303],
        ),
        (
            "/team/app/-/settings/ci_cd/triggers".into(),
            vec![("description", "hook")],
            [303, 404, 403, 403, 303, 303],
        ),
        (
            "/admin/runners/registration_token".into(),
            vec![],
            [303, 404, 404, 404, 404, 200],
        ),
    ];
    for (path, fields, expected) in &forms {
        for (i, browser) in browsers.iter_mut().enumerate() {
            // The sign-in form's token for a visitor signed out, the sign-out form's else.
            let page = if i == 0 { "/users/sign_in" } else { "/" };
            let token = browser.get(page).await.token();
            let mut form = vec![("authenticity_token", token.as_str())];
            form.extend(fields.iter().copied());
            let status = browser.post(path, &form).await.status;
            if status != expected[i] {
                wrong.push(format!(
                    "POST {path} as {}: {status}, want {}",
                    VISITORS[i], expected[i]
                ));
            }
            // Without the token, nobody's post is taken.
            let forged = browser.post(path, fields).await.status;
            if forged != 422 {
                wrong.push(format!(
                    "POST {path} without a token as {}: {forged}",
                    VISITORS[i]
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // The maintainer's and the admin's triggers were made; nobody else's.
    let triggers = app.store.triggers().list(project).await.expect("triggers");
    assert_eq!(triggers.len(), 2);
}
