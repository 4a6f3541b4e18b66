//! gitlab-runner's protocol (GitLab's `lib/api/ci/runner.rb`): registration, the job
//! request with long polling, job updates, trace appends and artifacts. Runner calls carry
//! the runner token (`token`, or the `RUNNER-TOKEN` header); job calls the job token
//! (`JOB-TOKEN`, or `token`). Each handler parses, authenticates, calls the jobs or runners
//! service, and answers with the codes and headers gitlab-runner acts on.

use crate::http::OpenConnections;
use crate::params::{self, Params};
use crate::present::job_payload;
use crate::query::QueryPairs;
use crate::service::jobs::{self, Caller, Expiry, JobError, JobOutcome};
use crate::service::runners::{self, Registration};
use crate::{ApiError, AppState};
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{patch, post, put};
use axum::{Extension, Json, Router};
use kiln_core::BuildStatus;
use kiln_store::{Appended, JobTokenOwner, RunnerInfo, RunnerRecord};
use serde_json::{json, Value};
use std::time::Duration;

/// Seconds a runner waits between trace updates (`X-GitLab-Trace-Update-Interval`): Rails
/// sends 3 while someone watches the log, and a live log is what Kiln wants always.
const TRACE_UPDATE_INTERVAL: &str = "3";
/// A trace PATCH larger than this is refused (gitlab-runner sends at most 1 MiB).
const MAX_TRACE_PATCH: usize = 8 * 1024 * 1024;
/// An upload's parameters beside its file (`expire_in` …) are at most this long.
const MAX_UPLOAD_PARAM: usize = 4096;
/// While a long poll waits, it looks again this often in case a wake was missed.
const RECHECK: Duration = Duration::from_secs(5);

/// The protocol's routes but `POST|DELETE /runners`, which share their path with the
/// runners API's `GET /runners` (see the v4 router).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/runners/verify", post(verify))
        .route("/jobs/request", post(request_job))
        .route("/jobs/{id}", put(update_job))
        .route(
            "/jobs/{id}/trace",
            patch(append_trace).layer(DefaultBodyLimit::max(MAX_TRACE_PATCH)),
        )
        .route(
            "/jobs/{id}/artifacts",
            post(upload_artifacts)
                .get(download_artifacts)
                .layer(DefaultBodyLimit::disable()),
        )
}

fn json_body(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

/// The runner token of a runner call: the `token` parameter, or the `RUNNER-TOKEN` header.
fn runner_token(params: &QueryPairs, headers: &HeaderMap) -> String {
    params
        .get("token")
        .map(str::to_owned)
        .or_else(|| header(headers, "runner-token"))
        .unwrap_or_default()
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
}

/// The `info` a runner sends of itself.
fn runner_info(params: &QueryPairs) -> RunnerInfo {
    let field = |name: &str| {
        params
            .get(&format!("info[{name}]"))
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    RunnerInfo {
        name: field("name"),
        version: field("version"),
        revision: field("revision"),
        platform: field("platform"),
        architecture: field("architecture"),
        executor: field("executor"),
        ip_address: None,
    }
}

/// `POST /runners`: 201 `{id, token, token_expires_at}`; 403 for an unknown registration token.
pub async fn register(
    State(app): State<AppState>,
    Params(params): Params,
) -> Result<Response, ApiError> {
    let missing = params::missing(&params, &["token"]);
    if !missing.is_empty() {
        return Ok(params::grape_error(&missing));
    }
    let mut problems = Vec::new();
    let (run_untagged, locked, paused, active) = (
        params::boolean(&params, "run_untagged", &mut problems),
        params::boolean(&params, "locked", &mut problems),
        params::boolean(&params, "paused", &mut problems),
        params::boolean(&params, "active", &mut problems),
    );
    if paused.is_some() && active.is_some() {
        problems.push("paused, active are mutually exclusive".to_owned());
    }
    let maximum_timeout = match params.get("maximum_timeout").filter(|v| !v.is_empty()) {
        None => None,
        Some(text) => match text.parse::<i64>() {
            Ok(value) => Some(value),
            Err(_) => {
                problems.push("maximum_timeout is invalid".to_owned());
                None
            }
        },
    };
    if !problems.is_empty() {
        return Ok(params::grape_error(&problems));
    }
    let request = Registration {
        token: params.get("token").unwrap_or_default().to_owned(),
        description: params.get("description").map(str::to_owned),
        maintenance_note: params
            .get("maintenance_note")
            .or(params.get("maintainer_note"))
            .map(str::to_owned),
        tags: params::tag_list(&params).unwrap_or_default(),
        run_untagged,
        locked,
        paused: paused.or(active.map(|a| !a)),
        access_level: params
            .get("access_level")
            .filter(|v| !v.is_empty())
            .map(str::to_owned),
        maximum_timeout,
        info: runner_info(&params),
    };
    let (runner, token) = runners::register(&app, request).await?;
    Ok(json_body(
        StatusCode::CREATED,
        json!({ "id": runner.id, "token": token, "token_expires_at": null }),
    ))
}

/// `POST /runners/verify`: 200 `{id, token, token_expires_at}` for a runner that exists.
async fn verify(
    State(app): State<AppState>,
    headers: HeaderMap,
    Params(params): Params,
) -> Result<Response, ApiError> {
    let token = runner_token(&params, &headers);
    let runner = runners::authenticate(&app, &token, &runner_info(&params)).await?;
    Ok(json_body(
        StatusCode::OK,
        json!({ "id": runner.id, "token": token, "token_expires_at": null }),
    ))
}

/// `DELETE /runners`: 204; 403 for an unknown token.
pub async fn unregister(
    State(app): State<AppState>,
    headers: HeaderMap,
    Params(params): Params,
) -> Result<Response, ApiError> {
    runners::unregister(&app, &runner_token(&params, &headers)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /jobs/request`: 201 with a job, or 204 with `X-GitLab-Last-Update` once nothing
/// came within the long-poll timeout. The wait is woken by the change feed, and does not
/// count against the connection cap.
async fn request_job(
    State(app): State<AppState>,
    connections: Option<Extension<OpenConnections>>,
    headers: HeaderMap,
    Params(params): Params,
) -> Result<Response, ApiError> {
    let token = runner_token(&params, &headers);
    let runner = runners::authenticate(&app, &token, &runner_info(&params)).await?;
    if runner.active {
        let _stepped_out = connections.map(|Extension(c)| c.step_out());
        if let Some(job) = wait_for_job(&app, &runner).await? {
            let body = job_payload::payload(&job, &app.config.external_url, kiln_store::now_ms());
            return Ok(json_body(StatusCode::CREATED, body));
        }
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    set(&mut response, "x-gitlab-last-update", &last_update());
    Ok(response)
}

/// Claims a build `runner` may take, waiting up to the long-poll timeout for one. A claim
/// lost to another runner is simply tried again, never answered with a 409.
async fn wait_for_job(
    app: &AppState,
    runner: &RunnerRecord,
) -> Result<Option<jobs::AssignedJob>, ApiError> {
    let deadline = tokio::time::Instant::now() + app.config.long_poll_timeout;
    let _waiting = app.metrics.long_poll();
    loop {
        let woken = app.dispatcher.woken();
        tokio::pin!(woken);
        woken.as_mut().enable();
        if let Some(job) = jobs::claim(app, runner, app.config.build_lease)
            .await
            .map_err(job_error)?
        {
            return Ok(Some(job));
        }
        let recheck = tokio::time::Instant::now() + RECHECK;
        tokio::select! {
            _ = woken => {}
            _ = tokio::time::sleep_until(recheck.min(deadline)) => {}
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
    }
}

/// An opaque queue version for `X-GitLab-Last-Update`: Kiln always looks at the queue, so
/// the runner only has to send something back.
fn last_update() -> String {
    kiln_store::now_ms().to_string()
}

fn set(response: &mut Response, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(name), value);
    }
}

fn job_error(err: JobError) -> ApiError {
    match err {
        JobError::Gone(_) => ApiError::Forbidden(None),
        JobError::NotFound => ApiError::NotFound(""),
        JobError::Store(err) => err.into(),
        JobError::Io(err) => ApiError::Internal(err.into()),
        JobError::Refused(message) => ApiError::BadRequest(message),
    }
}

/// A job call refused: 403, with `Job-Status` when the job exists but no longer runs (a
/// canceled job's runner learns it here and kills the job).
fn job_forbidden(status: Option<BuildStatus>) -> Response {
    let mut response = ApiError::Forbidden(None).into_response();
    if let Some(status) = status {
        set(&mut response, "job-status", status.as_str());
    }
    set(
        &mut response,
        "x-gitlab-trace-update-interval",
        TRACE_UPDATE_INTERVAL,
    );
    response
}

/// The job token of a job call: the `JOB-TOKEN` header, or the `token` parameter.
fn job_token(params: &QueryPairs, headers: &HeaderMap) -> String {
    header(headers, "job-token")
        .or_else(|| params.get("token").map(str::to_owned))
        .unwrap_or_default()
}

/// The running job `token` belongs to, if it is job `id`; otherwise the refusal to send.
async fn authenticate_job(
    app: &AppState,
    id: &str,
    token: &str,
) -> Result<Result<(JobTokenOwner, Caller), Response>, ApiError> {
    let Ok(id) = id.parse::<i64>() else {
        return Ok(Err(ApiError::NotFound("").into_response()));
    };
    let owner = match app.store.builds().by_job_token(token).await? {
        Some(owner) if !token.is_empty() && owner.build_id == id => owner,
        _ => return Ok(Err(job_forbidden(None))),
    };
    let Some(runner_id) = owner.runner_id.filter(|_| owner.is_live()) else {
        return Ok(Err(job_forbidden(Some(owner.status))));
    };
    // The runner's last contact moves on with its job calls too.
    app.store.runners().touch(runner_id).await?;
    let caller = Caller {
        runner_id,
        lease: app.config.build_lease,
    };
    Ok(Ok((owner, caller)))
}

/// `PUT /jobs/:id`: `state` running (a keep-alive), success or failed. 200; 403 with
/// `Job-Status` once the job is no longer running (a canceled job stays canceled).
async fn update_job(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Params(params): Params,
) -> Result<Response, ApiError> {
    let (owner, caller) = match authenticate_job(&app, &id, &job_token(&params, &headers)).await? {
        Ok(found) => found,
        Err(refused) => return Ok(refused),
    };
    let build_id = owner.build_id;
    let state = params.get("state").unwrap_or("");
    let result = match state {
        "running" | "pending" | "" => jobs::renew(&app, caller, build_id)
            .await
            .map(|()| BuildStatus::Running),
        "success" | "failed" => {
            let outcome = outcome_of(&params, state == "success");
            let coverage = match outcome.success {
                true => jobs::coverage_from_trace(&app, build_id)
                    .await
                    .ok()
                    .flatten(),
                false => None,
            };
            let outcome = JobOutcome {
                coverage,
                ..outcome
            };
            jobs::finish(&app, caller.runner_id, build_id, &outcome).await
        }
        _ => {
            return Ok(params::grape_error(&[
                "state does not have a valid value".to_owned()
            ]))
        }
    };
    let status = match result {
        Ok(status) => status,
        Err(JobError::Gone(status)) => return Ok(job_forbidden(Some(status))),
        Err(err) => return Err(job_error(err)),
    };
    // Recorded as something else than asked: canceled meanwhile.
    if matches!(state, "success" | "failed") && status.as_str() != state {
        return Ok(job_forbidden(Some(status)));
    }
    let mut response = json_body(StatusCode::OK, json!("200"));
    set(&mut response, "job-status", status.as_str());
    set(
        &mut response,
        "x-gitlab-trace-update-interval",
        TRACE_UPDATE_INTERVAL,
    );
    Ok(response)
}

/// How the runner says the job ended. A missing `exit_code` is 0 (gitlab-runner leaves
/// out a zero); an unknown failure reason is `unknown_failure`, as GitLab records it.
fn outcome_of(params: &QueryPairs, success: bool) -> JobOutcome {
    let exit_code = params
        .get("exit_code")
        .and_then(|v| v.parse::<i64>().ok())
        .or(Some(0).filter(|_| success));
    let failure_reason = (!success).then(|| {
        let given = params.get("failure_reason").unwrap_or("");
        match job_payload::FAILURE_REASONS.contains(&given) {
            true => given.to_owned(),
            false => "unknown_failure".to_owned(),
        }
    });
    JobOutcome {
        success,
        failure_reason,
        exit_code,
        coverage: None,
    }
}

/// The start of `Content-Range: <start>-<end>` (with or without a `bytes ` prefix). Only
/// the start is checked against the stored length, as GitLab does: clients differ on
/// whether the end is inclusive.
fn range_start(headers: &HeaderMap) -> Option<i64> {
    let value = header(headers, "content-range")?;
    let value = value.strip_prefix("bytes ").unwrap_or(&value);
    let (start, _) = value.split_once('-')?;
    start.trim().parse::<i64>().ok().filter(|s| *s >= 0)
}

/// `PATCH /jobs/:id/trace`: 202 with `Range: 0-<length>`; 416 with the stored length when
/// the range does not start there; 403 with `Job-Status` once the job no longer runs.
async fn append_trace(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: QueryPairs,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (owner, caller) = match authenticate_job(&app, &id, &job_token(&query, &headers)).await? {
        Ok(found) => found,
        Err(refused) => return Ok(refused),
    };
    let Some(start) = range_start(&headers) else {
        return Err(ApiError::BadRequest(
            "400 Missing header Content-Range".into(),
        ));
    };
    let build_id = owner.build_id;
    if (start as u64).saturating_add(body.len() as u64) > app.config.max_trace_bytes {
        let reason = format!(
            "the job log exceeded the limit of {} bytes",
            app.config.max_trace_bytes
        );
        let holder = kiln_store::Holder::Runner(caller.runner_id);
        let status = jobs::fail(&app, holder, build_id, &reason)
            .await
            .unwrap_or(BuildStatus::Failed);
        return Ok(job_forbidden(Some(status)));
    }
    let appended = match jobs::append_trace(&app, caller, build_id, start, &body).await {
        Ok(appended) => appended,
        Err(JobError::Gone(status)) => return Ok(job_forbidden(Some(status))),
        Err(err) => return Err(job_error(err)),
    };
    let (status, size) = match appended {
        Appended::Stored { size } => (StatusCode::ACCEPTED, size),
        Appended::Mismatch { size } => (StatusCode::RANGE_NOT_SATISFIABLE, size),
    };
    let mut response = json_body(status, json!(status.as_u16().to_string()));
    set(&mut response, "range", &format!("0-{size}"));
    set(&mut response, "job-status", BuildStatus::Running.as_str());
    set(
        &mut response,
        "x-gitlab-trace-update-interval",
        TRACE_UPDATE_INTERVAL,
    );
    Ok(response)
}

/// Parameters of an artifacts upload that may come in the query or the form.
#[derive(Default)]
struct UploadParams {
    token: Option<String>,
    expire_in: Option<String>,
    artifact_type: Option<String>,
    artifact_format: Option<String>,
}

impl UploadParams {
    fn take(&mut self, name: &str, value: String) {
        let slot = match name {
            "token" => &mut self.token,
            "expire_in" => &mut self.expire_in,
            "artifact_type" => &mut self.artifact_type,
            "artifact_format" => &mut self.artifact_format,
            _ => return,
        };
        *slot = Some(value);
    }
}

/// `POST /jobs/:id/artifacts`: the multipart `file` (the zip archive), stored as the job's
/// artifacts. 201; 413 past the artifacts limit; 403 once the job no longer runs.
async fn upload_artifacts(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: QueryPairs,
    mut multipart: Multipart,
) -> Result<Response, ApiError> {
    let mut upload = UploadParams::default();
    for (k, v) in query.iter() {
        upload.take(k, v.to_owned());
    }
    let token = header(&headers, "job-token").or(upload.token.clone());
    let (owner, caller) = match authenticate_job(&app, &id, &token.unwrap_or_default()).await? {
        Ok(found) => found,
        Err(refused) => return Ok(refused),
    };
    let dir = app.config.data_dir.join("uploads");
    crate::files::create_private_dir(&dir)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let file = tempfile::NamedTempFile::new_in(&dir).map_err(|e| ApiError::Internal(e.into()))?;
    let mut name = None;
    let bad = |e: axum::extract::multipart::MultipartError| {
        ApiError::BadRequest(format!("400 (Bad request) {e}"))
    };
    while let Some(mut field) = multipart.next_field().await.map_err(bad)? {
        let field_name = field.name().unwrap_or("").to_owned();
        if field_name != "file" {
            // The other fields are short parameters: read them only so far.
            let mut text = Vec::new();
            while let Some(chunk) = field.chunk().await.map_err(bad)? {
                text.extend_from_slice(&chunk);
                if text.len() > MAX_UPLOAD_PARAM {
                    return Err(ApiError::BadRequest(format!(
                        "400 (Bad request) {field_name} is too long"
                    )));
                }
            }
            upload.take(&field_name, String::from_utf8_lossy(&text).into_owned());
            continue;
        }
        name = Some(field.file_name().unwrap_or("artifacts.zip").to_owned());
        let mut out = tokio::fs::File::create(file.path())
            .await
            .map_err(|e| ApiError::Internal(e.into()))?;
        let mut written: u64 = 0;
        while let Some(chunk) = field.chunk().await.map_err(bad)? {
            written += chunk.len() as u64;
            if written > app.config.max_artifacts_bytes {
                return Err(ApiError::PayloadTooLarge);
            }
            tokio::io::AsyncWriteExt::write_all(&mut out, &chunk)
                .await
                .map_err(|e| ApiError::Internal(e.into()))?;
        }
        tokio::io::AsyncWriteExt::flush(&mut out)
            .await
            .map_err(|e| ApiError::Internal(e.into()))?;
    }
    let Some(file_name) = name else {
        return Ok(params::grape_error(&["file is missing".to_owned()]));
    };
    match upload.artifact_type.as_deref().unwrap_or("archive") {
        "archive" => {}
        "dotenv" => return dotenv_upload(&app, caller, owner.build_id, file.path(), &upload).await,
        _ => {
            return Err(ApiError::BadRequest(
                "400 (Bad request) only artifact_type archive and dotenv are stored".into(),
            ))
        }
    }
    if upload.artifact_format.as_deref().unwrap_or("zip") != "zip" {
        return Err(ApiError::BadRequest(
            "400 (Bad request) archive artifacts must be zip".into(),
        ));
    }
    let expiry = match upload.expire_in.as_deref().filter(|v| !v.is_empty()) {
        None => Expiry::AsTheJobSays,
        Some("never") => Expiry::Never,
        Some(text) => match kiln_ci::parse_duration(text) {
            Some(secs) => Expiry::After(Duration::from_secs(secs)),
            None => return Ok(params::grape_error(&["expire_in is invalid".to_owned()])),
        },
    };
    let stem = file_name
        .strip_suffix(".zip")
        .unwrap_or(&file_name)
        .to_owned();
    let stem = match stem.is_empty() || stem.contains(['/', '\\']) {
        true => "artifacts".to_owned(),
        false => stem,
    };
    match jobs::upload_artifacts(&app, caller, owner.build_id, file.path(), &stem, expiry).await {
        Ok(()) => Ok(json_body(StatusCode::CREATED, json!("201"))),
        Err(JobError::Gone(status)) => Ok(job_forbidden(Some(status))),
        Err(err) => Err(job_error(err)),
    }
}

/// An `artifact_type=dotenv` upload (gzip, as gitlab-runner sends reports): its variables
/// are kept for the jobs that take this job's artifacts. 201; 400 with GitLab's message.
async fn dotenv_upload(
    app: &AppState,
    caller: jobs::Caller,
    build_id: i64,
    file: &std::path::Path,
    upload: &UploadParams,
) -> Result<Response, ApiError> {
    if upload.artifact_format.as_deref().unwrap_or("gzip") != "gzip" {
        return Err(ApiError::BadRequest(
            "400 (Bad request) dotenv reports must be gzip".into(),
        ));
    }
    let size = tokio::fs::metadata(file)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .len();
    // Past the limit the report is refused whatever it holds: no need to read it.
    let gz = if size as usize >= kiln_ci::dotenv::MAX_REPORT_BYTES {
        vec![0; kiln_ci::dotenv::MAX_REPORT_BYTES]
    } else {
        tokio::fs::read(file)
            .await
            .map_err(|e| ApiError::Internal(e.into()))?
    };
    match jobs::upload_dotenv(app, caller, build_id, &gz).await {
        Ok(()) => Ok(json_body(StatusCode::CREATED, json!("201"))),
        Err(JobError::Gone(status)) => Ok(job_forbidden(Some(status))),
        Err(err) => Err(job_error(err)),
    }
}

/// `GET /jobs/:id/artifacts` with the `JOB-TOKEN` of a running job of the same project
/// (a dependency's download): the zip; 404 when it has none; 403 for any other token.
async fn download_artifacts(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    let Ok(dependency) = id.parse::<i64>() else {
        return Err(ApiError::NotFound(""));
    };
    let token = job_token(&query, &headers);
    let owner = match app.store.builds().by_job_token(&token).await? {
        Some(owner) if !token.is_empty() && owner.is_live() => owner,
        _ => return Err(ApiError::Forbidden(None)),
    };
    let project_id = match app.store.builds().project_of(dependency).await {
        Ok(project_id) if project_id == owner.project_id => project_id,
        Ok(_) => return Err(ApiError::Forbidden(None)),
        Err(kiln_store::StoreError::NotFound) => return Err(ApiError::NotFound("")),
        Err(err) => return Err(err.into()),
    };
    let build = app.store.builds().get(project_id, dependency).await?;
    let location = crate::service::builds::live_archive(&build).ok_or(ApiError::NotFound(""))?;
    let archive = app
        .artifacts
        .open(&app.store, build.id, &location)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .ok_or(ApiError::NotFound(""))?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "application/zip"),
            (
                axum::http::header::CONTENT_DISPOSITION,
                "attachment; filename=\"artifacts.zip\"",
            ),
        ],
        Body::from_stream(archive.into_stream()),
    )
        .into_response())
}
