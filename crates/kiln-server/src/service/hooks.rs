//! Project webhooks: saving one (its URL checked where it may point, its token sealed), its
//! log of deliveries, and a test delivery sent at once.

use crate::webhooks::{payload, sender, target};
use crate::{ApiError, AppInner};
use kiln_core::PageRequest;
use kiln_store::{
    BuildFilter, DeliveryRecord, HookEvent, HookRecord, HookSettings, PipelineFilter, StoreError,
    Window,
};

/// What a create or an update asks for, in clear (None: keep / GitLab's default).
#[derive(Debug, Clone, Default)]
pub struct HookInput {
    pub url: Option<String>,
    /// An empty token removes it.
    pub token: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub push_events: Option<bool>,
    pub job_events: Option<bool>,
    pub pipeline_events: Option<bool>,
    pub enable_ssl_verification: Option<bool>,
}

fn not_found(err: StoreError) -> ApiError {
    match err {
        StoreError::NotFound => ApiError::NotFound("Hook"),
        other => other.into(),
    }
}

async fn settings(app: &AppInner, input: HookInput) -> Result<HookSettings, ApiError> {
    if let Some(url) = &input.url {
        target::check(url, app.config.allow_local_webhooks)
            .await
            .map_err(|_| ApiError::Unprocessable("Invalid url given".into()))?;
    }
    let optional = |text: Option<String>| text.map(|t| Some(t).filter(|t| !t.is_empty()));
    Ok(HookSettings {
        url: input.url.map(|url| url.trim().to_owned()),
        token_sealed: input.token.map(|token| {
            Some(token)
                .filter(|t| !t.is_empty())
                .map(|t| app.cipher.encrypt(&t))
        }),
        name: optional(input.name),
        description: optional(input.description),
        push_events: input.push_events,
        job_events: input.job_events,
        pipeline_events: input.pipeline_events,
        enable_ssl_verification: input.enable_ssl_verification,
    })
}

pub async fn find(app: &AppInner, project_id: i64, hook_id: i64) -> Result<HookRecord, ApiError> {
    app.store
        .hooks()
        .find(project_id, hook_id)
        .await
        .map_err(not_found)
}

pub async fn create(
    app: &AppInner,
    project_id: i64,
    input: HookInput,
) -> Result<HookRecord, ApiError> {
    let settings = settings(app, input).await?;
    Ok(app.store.hooks().create(project_id, &settings).await?)
}

pub async fn update(
    app: &AppInner,
    project_id: i64,
    hook_id: i64,
    input: HookInput,
) -> Result<HookRecord, ApiError> {
    let settings = settings(app, input).await?;
    app.store
        .hooks()
        .update(project_id, hook_id, &settings)
        .await
        .map_err(not_found)
}

pub async fn delete(app: &AppInner, project_id: i64, hook_id: i64) -> Result<(), ApiError> {
    app.store
        .hooks()
        .delete(project_id, hook_id)
        .await
        .map_err(not_found)
}

/// The hook's attempted deliveries, newest first.
pub async fn log(
    app: &AppInner,
    hook: &HookRecord,
    page: PageRequest,
) -> Result<Vec<DeliveryRecord>, ApiError> {
    let offset = page.offset() as i64;
    let deliveries = app
        .store
        .hooks()
        .deliveries(hook.id, offset, i64::from(page.per_page))
        .await?;
    Ok(deliveries)
}

/// The events a hook's test may send, by the name of its trigger.
pub fn test_event(trigger: &str) -> Option<HookEvent> {
    match trigger {
        "job_events" => Some(HookEvent::Job),
        "pipeline_events" => Some(HookEvent::Pipeline),
        "push_events" => Some(HookEvent::Push),
        _ => None,
    }
}

/// Sends the hook a sample of `event` made from the project's latest build or pipeline, now,
/// and logs it. A receiver that does not take it (no 2xx) is GitLab's 422 with its answer.
pub async fn test(app: &AppInner, hook: &HookRecord, event: HookEvent) -> Result<(), ApiError> {
    let (subject, missing) = match event {
        HookEvent::Job => (
            latest_build(app, hook.project_id).await?,
            "Ensure the project has CI jobs.",
        ),
        HookEvent::Pipeline => (
            latest_pipeline(app, hook.project_id).await?,
            "Ensure the project has CI pipelines.",
        ),
        HookEvent::Push => (
            latest_pipeline(app, hook.project_id).await?,
            "Ensure the project has at least one commit.",
        ),
    };
    let unprocessable = |message: &str| {
        ApiError::Refused(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            message.to_owned(),
        )
    };
    let (subject_id, status) = subject.ok_or_else(|| unprocessable(missing))?;
    let body = payload::for_event(
        &app.store,
        &app.config.external_url,
        hook.project_id,
        event,
        (subject_id, &status),
    )
    .await?
    .ok_or_else(|| unprocessable(missing))?;
    let uuid = kiln_store::hooks::new_uuid();
    let attempt = sender::attempt(app, hook, event, &uuid, body.to_string()).await;
    app.store
        .hooks()
        .record_test(hook.id, event, (subject_id, &status), &attempt)
        .await?;
    if attempt.succeeded() {
        return Ok(());
    }
    let message = attempt.error.or(attempt.response_body).unwrap_or_default();
    Err(unprocessable(&message))
}

async fn latest_build(app: &AppInner, project_id: i64) -> Result<Option<(i64, String)>, ApiError> {
    let window = Window::Keyset {
        after: None,
        per_page: 1,
        newest_first: true,
    };
    let slice = app
        .store
        .builds()
        .find(project_id, &BuildFilter::default(), window)
        .await?;
    Ok(slice
        .builds
        .first()
        .map(|b| (b.id, b.status.as_str().to_owned())))
}

async fn latest_pipeline(
    app: &AppInner,
    project_id: i64,
) -> Result<Option<(i64, String)>, ApiError> {
    let page = PageRequest {
        page: 1,
        per_page: 1,
    };
    let (found, _) = app
        .store
        .pipelines()
        .find(project_id, &PipelineFilter::default(), page)
        .await?;
    Ok(found.first().map(|p| (p.id, p.status.clone())))
}
