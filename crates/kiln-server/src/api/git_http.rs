//! Each project's mirror over git's smart HTTP, read only, at `/NAMESPACE/NAME.git`, so the
//! `repo_url` a runner gets works from another machine. Served by `git http-backend`.
//!
//! Who may fetch: a running job of the project with `gitlab-ci-token:<job token>` (only
//! while the job runs), a user with a personal access token as the password who may read
//! the project's builds, and anyone for a public project.

use crate::{ApiError, AppState};
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use futures_util::StreamExt;
use kiln_core::{Caller, Permission, Visibility};
use kiln_store::{ProjectRecord, ProjectRef};
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

/// The user name with which a job token is given as the password.
pub const JOB_TOKEN_USER: &str = "gitlab-ci-token";
/// A negotiation request larger than this is refused.
const MAX_REQUEST: usize = 64 * 1024 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/{namespace}/{repo}/info/refs", get(info_refs))
        .route("/{namespace}/{repo}/git-upload-pack", post(upload_pack))
        .route("/{namespace}/{repo}/git-receive-pack", post(receive_pack))
}

/// What was asked of the credentials.
enum Credentials {
    Anonymous,
    Basic { user: String, password: String },
}

fn credentials(headers: &HeaderMap) -> Credentials {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|v| {
            base64::engine::general_purpose::STANDARD
                .decode(v.trim())
                .ok()
        })
        .and_then(|v| String::from_utf8(v).ok());
    match basic.as_deref().and_then(|b| b.split_once(':')) {
        Some((user, password)) => Credentials::Basic {
            user: user.to_owned(),
            password: password.to_owned(),
        },
        None => Credentials::Anonymous,
    }
}

/// Asks git for credentials: 401 with a Basic challenge.
fn challenge() -> Response {
    let mut response = ApiError::Unauthorized.into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"Kiln\""),
    );
    response
}

/// The project at `/namespace/repo` and the commit a job token needs in the mirror, if the
/// caller may fetch it; otherwise the answer to give.
async fn authorize(
    app: &AppState,
    namespace: &str,
    repo: &str,
    headers: &HeaderMap,
) -> Result<(ProjectRecord, Option<String>), Response> {
    let Some(name) = repo.strip_suffix(".git") else {
        return Err(ApiError::NotFound("").into_response());
    };
    let path = ProjectRef::Path {
        namespace: namespace.to_owned(),
        path: name.to_owned(),
    };
    let project = match app.store.projects().get(&path).await {
        Ok(project) => project,
        Err(kiln_store::StoreError::NotFound) => return Err(challenge_or_404(headers)),
        Err(err) => return Err(ApiError::from(err).into_response()),
    };
    match credentials(headers) {
        Credentials::Anonymous if project.visibility == Visibility::Public => Ok((project, None)),
        Credentials::Anonymous => Err(challenge()),
        Credentials::Basic { user, password } if user == JOB_TOKEN_USER => {
            let owner = app.store.builds().by_job_token(&password).await;
            match owner {
                Ok(Some(owner)) if owner.is_live() && owner.project_id == project.id => {
                    let build = app.store.builds().get(project.id, owner.build_id).await;
                    let sha = build.ok().map(|b| b.commit.sha);
                    Ok((project, sha))
                }
                Ok(_) => Err(challenge()),
                Err(err) => Err(ApiError::from(err).into_response()),
            }
        }
        Credentials::Basic { password, .. } => {
            let user = match app.store.users().by_token(&password).await {
                Ok(Some(user)) => user,
                Ok(None) => return Err(challenge()),
                Err(err) => return Err(ApiError::from(err).into_response()),
            };
            let access = app
                .store
                .projects()
                .with_access(&ProjectRef::Id(project.id), Some(user.id))
                .await
                .map_err(|e| ApiError::from(e).into_response())?;
            let caller = Caller {
                is_admin: user.is_admin,
                access: access.access,
            };
            if caller.can(Permission::ReadBuild, project.visibility) {
                Ok((project, None))
            } else {
                Err(ApiError::NotFound("").into_response())
            }
        }
    }
}

/// An unknown project: a caller without credentials is asked for them (as for a private
/// project, so that names do not leak); one with credentials learns it is not there.
fn challenge_or_404(headers: &HeaderMap) -> Response {
    match credentials(headers) {
        Credentials::Anonymous => challenge(),
        Credentials::Basic { .. } => ApiError::NotFound("").into_response(),
    }
}

/// `GET …/info/refs?service=git-upload-pack`: the refs advertisement.
async fn info_refs(
    State(app): State<AppState>,
    Path((namespace, repo)): Path<(String, String)>,
    request: Request,
) -> Response {
    let query = request.uri().query().unwrap_or("").to_owned();
    if !query.split('&').any(|p| p == "service=git-upload-pack") {
        return (StatusCode::FORBIDDEN, "only fetching is served\n").into_response();
    }
    serve(app, &namespace, &repo, "info/refs", request).await
}

/// `POST …/git-upload-pack`: a fetch's negotiation and pack.
async fn upload_pack(
    State(app): State<AppState>,
    Path((namespace, repo)): Path<(String, String)>,
    request: Request,
) -> Response {
    serve(app, &namespace, &repo, "git-upload-pack", request).await
}

/// Pushing goes to the project's own repository, not to Kiln's mirror.
async fn receive_pack() -> Response {
    (StatusCode::FORBIDDEN, "this repository is read only\n").into_response()
}

async fn serve(
    app: AppState,
    namespace: &str,
    repo: &str,
    what: &str,
    request: Request,
) -> Response {
    let (project, sha) = match authorize(&app, namespace, repo, request.headers()).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let Some(url) = project.repo_url.clone() else {
        return ApiError::NotFound("").into_response();
    };
    // This server's mirror may not have the job's commit yet (another server made it).
    let mirror = match sha {
        Some(sha) => app.mirrors.with_commit(project.id, &url, &sha).await,
        None if app.mirrors.path(project.id).join("HEAD").exists() => {
            Ok(app.mirrors.path(project.id))
        }
        None => app.mirrors.sync(project.id, &url).await,
    };
    let mirror = match mirror {
        Ok(mirror) => mirror,
        Err(err) => {
            tracing::warn!(project = project.id, error = %err, "mirror unavailable for git http");
            return (StatusCode::SERVICE_UNAVAILABLE, "repository unavailable\n").into_response();
        }
    };
    match http_backend(&mirror, what, request).await {
        Ok(response) => response,
        Err(err) => {
            tracing::error!(error = %err, "git http-backend failed");
            ApiError::Internal(err.into()).into_response()
        }
    }
}

/// Runs `git http-backend` as a CGI for one request on `mirror`, fetching only.
async fn http_backend(
    mirror: &std::path::Path,
    what: &str,
    request: Request,
) -> std::io::Result<Response> {
    let (root, name) = match (mirror.parent(), mirror.file_name()) {
        (Some(root), Some(name)) => (root, name.to_string_lossy().into_owned()),
        _ => return Err(std::io::Error::other("mirror path")),
    };
    let headers = request.headers().clone();
    let header_env = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let mut command = tokio::process::Command::new("git");
    command
        .arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", format!("/{name}/{what}"))
        .env("REQUEST_METHOD", request.method().as_str())
        .env("QUERY_STRING", request.uri().query().unwrap_or(""))
        .env("CONTENT_TYPE", header_env("content-type"))
        .env("HTTP_CONTENT_ENCODING", header_env("content-encoding"))
        .env("HTTP_GIT_PROTOCOL", header_env("git-protocol"))
        .env("REMOTE_ADDR", "127.0.0.1")
        // A runner fetches the job's commit by sha, branch head or not.
        .env("GIT_CONFIG_COUNT", "2")
        .env("GIT_CONFIG_KEY_0", "uploadpack.allowReachableSHA1InWant")
        .env("GIT_CONFIG_VALUE_0", "true")
        .env("GIT_CONFIG_KEY_1", "http.receivepack")
        .env("GIT_CONFIG_VALUE_1", "false")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut child = command.spawn()?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("stdin"))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| std::io::Error::other("stdout"))?;
    let mut body = request.into_body().into_data_stream();
    tokio::spawn(async move {
        let mut written = 0usize;
        while let Some(Ok(chunk)) = body.next().await {
            written += chunk.len();
            if written > MAX_REQUEST || stdin.write_all(&chunk).await.is_err() {
                break;
            }
        }
        drop(stdin);
    });
    let mut reader = tokio::io::BufReader::new(stdout);
    let mut builder = Response::builder().status(StatusCode::OK);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            break;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split(' ').next().and_then(|c| c.parse::<u16>().ok());
            if let Some(code) = code.and_then(|c| StatusCode::from_u16(c).ok()) {
                builder = builder.status(code);
            }
        } else {
            builder = builder.header(name, value);
        }
    }
    let stream = futures_util::stream::unfold((reader, child), |(mut reader, child)| async move {
        let mut buffer = vec![0u8; 64 * 1024];
        match reader.read(&mut buffer).await {
            Ok(0) | Err(_) => None,
            Ok(n) => {
                buffer.truncate(n);
                Some((
                    Ok::<_, std::io::Error>(axum::body::Bytes::from(buffer)),
                    (reader, child),
                ))
            }
        }
    });
    builder
        .body(Body::from_stream(stream))
        .map_err(std::io::Error::other)
}
