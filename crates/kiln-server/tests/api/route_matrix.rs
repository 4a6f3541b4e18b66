//! Every project route of both versions, driven by one table: each role gets exactly what
//! GitLab gives it (404 for a stranger to a private project, 403 below the route's role,
//! never a 401 or 5xx at or above it); another project's id never reaches this project's
//! pipelines, jobs, triggers or variables; and a NUL byte in any route's path, query or body
//! is a JSON 400/404, never a 500 (the PostgreSQL run is where that bites).

use crate::helpers::*;
use kiln_core::AccessLevel;
use reqwest::Method;
use serde_json::{json, Value};

/// The least role a route takes, in GitLab's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    Stranger,
    Guest,
    Reporter,
    Developer,
    Maintainer,
    Owner,
}

const ROLES: [Role; 6] = [
    Role::Stranger,
    Role::Guest,
    Role::Reporter,
    Role::Developer,
    Role::Maintainer,
    Role::Owner,
];

struct Route {
    method: Method,
    /// `{p}` project, `{job}`, `{pipeline}`, `{sha}`, `{member}`, `{trigger}`, `{token}`.
    path: &'static str,
    least: Role,
    body: Value,
}

fn route(method: Method, path: &'static str, least: Role) -> Route {
    Route {
        method,
        path,
        least,
        body: json!({}),
    }
}

/// Reads first, then changes, then removals, so what one role removes no later route needs.
fn routes() -> Vec<Route> {
    use Method as M;
    use Role::*;
    let mut all = Vec::new();
    for v in ["v3", "v4"] {
        let at = |p: &str| -> &'static str { Box::leak(format!("/api/{v}{p}").into_boxed_str()) };
        all.extend([
            route(M::GET, at("/projects/{p}"), Guest),
            route(M::GET, at("/projects/{p}/members"), Guest),
            route(M::GET, at("/projects/{p}/repository/branches"), Reporter),
            route(
                M::GET,
                at("/projects/{p}/repository/branches/master"),
                Reporter,
            ),
            route(M::GET, at("/projects/{p}/repository/commits"), Reporter),
            route(
                M::GET,
                at("/projects/{p}/repository/commits/{sha}"),
                Reporter,
            ),
            route(
                M::GET,
                at("/projects/{p}/repository/commits/{sha}/statuses"),
                Reporter,
            ),
            route(M::GET, at("/projects/{p}/protected_branches"), Reporter),
            route(
                M::GET,
                at("/projects/{p}/protected_branches/master"),
                Reporter,
            ),
            route(M::GET, at("/projects/{p}/variables"), Maintainer),
            route(M::GET, at("/projects/{p}/variables/K"), Maintainer),
        ]);
    }
    all.extend([
        route(M::GET, "/api/v3/projects/{p}/builds", Reporter),
        route(M::GET, "/api/v3/projects/{p}/builds/{job}", Reporter),
        route(M::GET, "/api/v3/projects/{p}/builds/{job}/trace", Reporter),
        route(
            M::GET,
            "/api/v3/projects/{p}/builds/{job}/artifacts",
            Reporter,
        ),
        route(
            M::GET,
            "/api/v3/projects/{p}/repository/commits/{sha}/builds",
            Reporter,
        ),
        route(M::GET, "/api/v3/projects/{p}/triggers", Maintainer),
        route(M::GET, "/api/v4/projects/{p}/ci/lint", Developer),
        route(M::GET, "/api/v4/projects/{p}/jobs", Reporter),
        route(M::GET, "/api/v4/projects/{p}/jobs/{job}", Reporter),
        route(M::GET, "/api/v4/projects/{p}/jobs/{job}/trace", Reporter),
        route(
            M::GET,
            "/api/v4/projects/{p}/jobs/{job}/artifacts",
            Reporter,
        ),
        route(
            M::GET,
            "/api/v4/projects/{p}/jobs/{job}/artifacts/out.txt",
            Reporter,
        ),
        route(
            M::GET,
            "/api/v4/projects/{p}/jobs/artifacts/master/download?job=build",
            Reporter,
        ),
        route(
            M::GET,
            "/api/v4/projects/{p}/jobs/artifacts/master/raw/out.txt?job=build",
            Reporter,
        ),
        route(M::GET, "/api/v4/projects/{p}/pipelines", Reporter),
        route(M::GET, "/api/v4/projects/{p}/pipelines/latest", Reporter),
        route(
            M::GET,
            "/api/v4/projects/{p}/pipelines/{pipeline}",
            Reporter,
        ),
        route(
            M::GET,
            "/api/v4/projects/{p}/pipelines/{pipeline}/jobs",
            Reporter,
        ),
        route(
            M::GET,
            "/api/v4/projects/{p}/pipelines/{pipeline}/bridges",
            Reporter,
        ),
        route(
            M::GET,
            "/api/v4/projects/{p}/pipelines/{pipeline}/variables",
            Developer,
        ),
        route(M::GET, "/api/v4/projects/{p}/triggers", Maintainer),
        route(
            M::GET,
            "/api/v4/projects/{p}/triggers/{trigger}",
            Maintainer,
        ),
        // Changes.
        route(
            M::POST,
            "/api/v3/projects/{p}/builds/{job}/cancel",
            Developer,
        ),
        route(M::POST, "/api/v4/projects/{p}/jobs/{job}/cancel", Developer),
        route(
            M::POST,
            "/api/v3/projects/{p}/builds/{job}/artifacts/keep",
            Developer,
        ),
        route(
            M::POST,
            "/api/v4/projects/{p}/jobs/{job}/artifacts/keep",
            Developer,
        ),
        route(
            M::POST,
            "/api/v4/projects/{p}/pipelines/{pipeline}/cancel",
            Developer,
        ),
        Route {
            body: json!({ "ref": "master" }),
            ..route(M::POST, "/api/v4/projects/{p}/pipeline", Developer)
        },
        Route {
            body: json!({ "state": "success", "name": "matrix" }),
            ..route(M::POST, "/api/v4/projects/{p}/statuses/{sha}", Developer)
        },
        Route {
            body: json!({ "content": "job:\n  script: [\"true\"]\n" }),
            ..route(M::POST, "/api/v4/projects/{p}/ci/lint", Developer)
        },
        Route {
            body: json!({ "name": "release/*" }),
            ..route(
                M::POST,
                "/api/v4/projects/{p}/protected_branches",
                Maintainer,
            )
        },
        Route {
            body: json!({ "key": "NEW", "value": "v" }),
            ..route(M::POST, "/api/v4/projects/{p}/variables", Maintainer)
        },
        Route {
            body: json!({ "value": "changed" }),
            ..route(M::PUT, "/api/v4/projects/{p}/variables/K", Maintainer)
        },
        Route {
            body: json!({ "description": "made by the matrix" }),
            ..route(M::POST, "/api/v4/projects/{p}/triggers", Maintainer)
        },
        Route {
            body: json!({ "description": "renamed" }),
            ..route(
                M::PUT,
                "/api/v4/projects/{p}/triggers/{trigger}",
                Maintainer,
            )
        },
        Route {
            body: json!({ "user_id": "{newcomer}", "access_level": 10 }),
            ..route(M::POST, "/api/v4/projects/{p}/members", Maintainer)
        },
        Route {
            body: json!({ "access_level": 20 }),
            ..route(M::PUT, "/api/v4/projects/{p}/members/{member}", Maintainer)
        },
        route(M::POST, "/api/v4/projects/{p}/jobs/{job}/retry", Developer),
        route(
            M::POST,
            "/api/v3/projects/{p}/builds/{job}/retry",
            Developer,
        ),
        route(
            M::POST,
            "/api/v4/projects/{p}/pipelines/{pipeline}/retry",
            Developer,
        ),
        route(
            M::POST,
            "/api/v4/projects/{p}/jobs/{manual}/play",
            Developer,
        ),
        // Removals.
        route(
            M::POST,
            "/api/v4/projects/{p}/jobs/{erasable}/erase",
            Developer,
        ),
        route(
            M::DELETE,
            "/api/v4/projects/{p}/jobs/{job}/artifacts",
            Maintainer,
        ),
        route(M::DELETE, "/api/v4/projects/{p}/variables/K", Maintainer),
        route(
            M::DELETE,
            "/api/v4/projects/{p}/protected_branches/master",
            Maintainer,
        ),
        route(
            M::DELETE,
            "/api/v4/projects/{p}/triggers/{trigger}",
            Maintainer,
        ),
        route(
            M::DELETE,
            "/api/v4/projects/{p}/members/{member}",
            Maintainer,
        ),
        route(M::DELETE, "/api/v4/projects/{p}/pipelines/{doomed}", Owner),
    ]);
    all
}

const CI: &str = r#"
build:
  script: ["echo out > out.txt"]
  artifacts:
    paths: [out.txt]
deploy:
  script: ["true"]
  when: manual
"#;

/// A private project with a finished pipeline, a manual job, a trigger, a variable and a
/// member of every role; the values the table's placeholders stand for.
struct World {
    app: TestApp,
    project: i64,
    other_project: i64,
    roles: Vec<(Role, Actor)>,
    other_owner: Actor,
    values: Vec<(&'static str, String)>,
    /// Kept: the projects mirror it.
    _repo: GitRepo,
}

async fn world() -> World {
    let (app, maintainer, repo, project) = TestApp::with_repo(1, CI).await;
    let sha = repo.git(&["rev-parse", "HEAD"]);
    let owner = app.user("proj-owner", false).await;
    app.member(project, &owner, AccessLevel::Owner).await;
    let mut roles = vec![(Role::Stranger, app.user("stranger", false).await)];
    for (role, level, name) in [
        (Role::Guest, AccessLevel::Guest, "guest"),
        (Role::Reporter, AccessLevel::Reporter, "reporter"),
        (Role::Developer, AccessLevel::Developer, "developer"),
    ] {
        let actor = app.user(name, false).await;
        app.member(project, &actor, level).await;
        roles.push((role, actor));
    }
    roles.push((Role::Maintainer, maintainer.clone()));
    roles.push((Role::Owner, owner.clone()));

    let (pipeline, builds) = app.run_pipeline(project, "master", &maintainer).await;
    let job = builds["build"]["id"].as_i64().unwrap();
    let manual = builds["deploy"]["id"].as_i64().unwrap();
    let (doomed, more) = app.run_pipeline(project, "master", &maintainer).await;
    let erasable = more["build"]["id"].as_i64().unwrap();
    let send = |path: String, body: Value| {
        let (app, maintainer) = (&app, &maintainer);
        async move {
            app.send_json(Method::POST, &path, Some(&maintainer.token), body)
                .await
                .assert(201)
                .clone()
        }
    };
    let trigger = send(
        format!("/api/v4/projects/{project}/triggers"),
        json!({ "description": "matrix" }),
    )
    .await;
    send(
        format!("/api/v4/projects/{project}/variables"),
        json!({ "key": "K", "value": "v" }),
    )
    .await;
    let member = app.user("member", false).await;
    app.member(project, &member, AccessLevel::Guest).await;
    let newcomer = app.user("newcomer", false).await;
    let other_owner = app.user("other-owner", false).await;
    let other_project = app.project_on("other/app", &repo, &other_owner).await;
    let values = vec![
        ("{job}", job.to_string()),
        ("{manual}", manual.to_string()),
        ("{erasable}", erasable.to_string()),
        ("{pipeline}", pipeline.to_string()),
        ("{doomed}", doomed.to_string()),
        ("{sha}", sha),
        ("{trigger}", trigger["id"].to_string()),
        ("{member}", member.id.to_string()),
        ("{newcomer}", newcomer.id.to_string()),
    ];
    World {
        app,
        project,
        other_project,
        roles,
        other_owner,
        values,
        _repo: repo,
    }
}

impl World {
    fn fill(&self, template: &str, project: i64) -> String {
        let mut text = template.replace("{p}", &project.to_string());
        for (key, value) in &self.values {
            text = text.replace(key, value);
        }
        text
    }

    fn body(&self, route: &Route) -> Value {
        serde_json::from_str(&self.fill(&route.body.to_string(), self.project)).expect("body")
    }

    /// Sends a route's request; the answer's body as JSON, or as a JSON string when it is a
    /// trace or an archive (the routes' success bodies that are not JSON).
    async fn send(&self, route: &Route, path: &str, body: Value, actor: &Actor) -> Response {
        let mut request = self
            .app
            .client
            .request(route.method.clone(), format!("{}{path}", self.app.base))
            .header("PRIVATE-TOKEN", &actor.token);
        if route.method != Method::GET {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let (status, headers) = (response.status(), response.headers().clone());
        let bytes = response.bytes().await.expect("body");
        let body = match serde_json::from_slice::<Value>(&bytes) {
            Ok(json) => json,
            Err(_) if bytes.is_empty() => Value::Null,
            Err(_) => {
                assert!(
                    status.is_success(),
                    "{path}: {status} answered a non-JSON error"
                );
                Value::String(String::from_utf8_lossy(&bytes).into_owned())
            }
        };
        Response {
            status,
            headers,
            body,
        }
    }
}

#[tokio::test]
async fn every_route_answers_each_role_as_gitlab_and_never_crosses_projects() {
    let world = world().await;
    for route in routes() {
        let path = world.fill(route.path, world.project);
        // Another project's id with this project's ids: nothing of this project is reached.
        let cross = world.fill(route.path, world.other_project);
        let names_a_resource = ["{job}", "{manual}", "{erasable}", "{pipeline}", "{doomed}"]
            .iter()
            .chain(&["{trigger}", "{member}", "/variables/K"])
            .any(|placeholder| route.path.contains(placeholder));
        if names_a_resource {
            let crossed = world
                .send(&route, &cross, world.body(&route), &world.other_owner)
                .await;
            // 404 (not in that project), or 403 where the other project's role is short.
            assert!(
                [403, 404].contains(&crossed.status.as_u16()),
                "{} {cross} crossed projects: {}",
                route.method,
                crossed.body
            );
        }
        for role in ROLES {
            let actor = &world.roles.iter().find(|(r, _)| *r == role).unwrap().1;
            let answer = world.send(&route, &path, world.body(&route), actor).await;
            let status = answer.status.as_u16();
            let context = format!(
                "{} {path} as {role:?}: {status} {}",
                route.method, answer.body
            );
            assert!(status < 500, "{context}");
            if role == Role::Stranger && role < route.least {
                assert_eq!(
                    answer.body,
                    json!({ "message": "404 Project Not Found" }),
                    "{context}"
                );
            } else if role < route.least {
                assert_eq!(status, 403, "{context}");
                assert_eq!(
                    answer.body,
                    json!({ "message": "403 Forbidden" }),
                    "{context}"
                );
            } else {
                // A state the route refuses ("Job is not retryable") may still be a 403,
                // never the bare refusal of a role.
                assert_ne!(status, 401, "{context}");
                assert_ne!(
                    answer.body,
                    json!({ "message": "403 Forbidden" }),
                    "{context}"
                );
                assert_ne!(answer.body["message"], "404 Project Not Found", "{context}");
            }
        }
    }
}

#[tokio::test]
async fn a_nul_byte_on_any_route_is_a_json_client_error() {
    let world = world().await;
    let owner = &world.roles.last().unwrap().1;
    for route in routes() {
        let path = world.fill(route.path, world.project);
        let (bare, query) = path.split_once('?').unwrap_or((&path, ""));
        let joiner = if query.is_empty() { "?" } else { "&" };
        let mut tries = vec![
            (format!("{path}{joiner}ref=ma%00ster"), world.body(&route)),
            (
                format!(
                    "{bare}%00{}",
                    if query.is_empty() {
                        String::new()
                    } else {
                        format!("?{query}")
                    }
                ),
                world.body(&route),
            ),
        ];
        if route.method != Method::GET {
            let mut body = world.body(&route);
            for (_, value) in body.as_object_mut().into_iter().flatten() {
                if value.is_string() {
                    *value = json!("a\u{0}b");
                }
            }
            body["ref"] = json!("ma\u{0}ster");
            tries.push((path.clone(), body));
        }
        for (target, body) in tries {
            let answer = world.send(&route, &target, body, owner).await;
            let status = answer.status.as_u16();
            let context = format!("{} {target}: {status} {}", route.method, answer.body);
            // A NUL in the path or query is refused before routing; one in a body is refused
            // by every route that reads the body (others ignore it, as GitLab does).
            if target.contains("%00") {
                assert_eq!(status, 400, "{context}");
            } else {
                assert!(status < 500, "{context}");
            }
            if !answer.status.is_success() {
                assert!(
                    answer.body["message"].is_string() || answer.body["error"].is_string(),
                    "{context}"
                );
            }
        }
    }
}
