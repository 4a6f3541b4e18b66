//! Pipeline schedules: their settings checked as GitLab checks them, their variables sealed,
//! and the runs — each due slot makes one pipeline (`source: schedule`) whichever servers see
//! it, and a schedule that missed runs while Kiln was down makes one, then waits for the next
//! slot after now.

use crate::service::pipelines::{self, PipelineRequest};
use crate::{ApiError, AppInner};
use kiln_core::schedule::{CronSchedule, ScheduleError};
use kiln_store::{ProjectRecord, ProjectRef, ScheduleRecord, ScheduleSettings, ScheduleVariable};
use serde_json::json;

/// What a create or update asks for (None: as it is, or GitLab's default).
#[derive(Debug, Clone, Default)]
pub struct ScheduleInput {
    pub description: Option<String>,
    pub ref_name: Option<String>,
    pub cron: Option<String>,
    pub cron_timezone: Option<String>,
    pub active: Option<bool>,
}

/// A schedule variable in clear.
#[derive(Debug, Clone, PartialEq)]
pub struct Variable {
    pub key: String,
    pub value: String,
    pub variable_type: String,
}

fn invalid(field: &str, problem: &str) -> ApiError {
    ApiError::Validation(json!({ field: [problem] }))
}

fn schedule_error(err: ScheduleError) -> ApiError {
    match err {
        ScheduleError::Cron => invalid("cron", "syntax is invalid"),
        ScheduleError::TimeZone => invalid("cron_timezone", "syntax is invalid"),
    }
}

fn not_found(err: kiln_store::StoreError) -> ApiError {
    match err {
        kiln_store::StoreError::NotFound => ApiError::NotFound("Pipeline Schedule"),
        other => other.into(),
    }
}

/// The next run after `now` of `cron` in `zone`, checked.
fn next_run(cron: &str, zone: &str, now: i64) -> Result<i64, ApiError> {
    let schedule = CronSchedule::parse(cron, zone).map_err(schedule_error)?;
    schedule
        .next_after(now)
        .ok_or_else(|| invalid("cron", "syntax is invalid"))
}

pub async fn find(app: &AppInner, project_id: i64, id: i64) -> Result<ScheduleRecord, ApiError> {
    app.store
        .schedules()
        .find(project_id, id)
        .await
        .map_err(not_found)
}

pub async fn create(
    app: &AppInner,
    project_id: i64,
    owner_id: i64,
    input: ScheduleInput,
) -> Result<ScheduleRecord, ApiError> {
    let zone = input.cron_timezone.unwrap_or_else(|| "UTC".to_owned());
    let cron = input.cron.unwrap_or_default();
    let next = next_run(&cron, &zone, kiln_store::now_ms())?;
    if input.description.as_deref().is_none_or(str::is_empty) {
        return Err(invalid("description", "can't be blank"));
    }
    let settings = ScheduleSettings {
        description: input.description,
        ref_name: input.ref_name,
        cron: Some(cron),
        cron_timezone: Some(zone),
        active: input.active,
        next_run_at: Some(next),
        owner_id: Some(owner_id),
    };
    Ok(app.store.schedules().create(project_id, &settings).await?)
}

/// Changes the schedule; a new pattern, zone or activation moves its next run to the first
/// slot after now.
pub async fn update(
    app: &AppInner,
    current: &ScheduleRecord,
    input: ScheduleInput,
    owner_id: Option<i64>,
) -> Result<ScheduleRecord, ApiError> {
    let reschedule =
        input.cron.is_some() || input.cron_timezone.is_some() || input.active == Some(true);
    let next_run_at = if reschedule {
        let cron = input.cron.as_deref().unwrap_or(&current.cron);
        let zone = input
            .cron_timezone
            .as_deref()
            .unwrap_or(&current.cron_timezone);
        Some(next_run(cron, zone, kiln_store::now_ms())?)
    } else {
        None
    };
    if input.description.as_deref() == Some("") {
        return Err(invalid("description", "can't be blank"));
    }
    let settings = ScheduleSettings {
        description: input.description,
        ref_name: input.ref_name,
        cron: input.cron,
        cron_timezone: input.cron_timezone,
        active: input.active,
        next_run_at,
        owner_id,
    };
    app.store
        .schedules()
        .update(current.project_id, current.id, &settings)
        .await
        .map_err(not_found)
}

pub async fn variables(app: &AppInner, schedule_id: i64) -> Result<Vec<Variable>, ApiError> {
    let sealed = app.store.schedules().variables(schedule_id).await?;
    sealed
        .into_iter()
        .map(|v| {
            let value = app
                .cipher
                .decrypt(&v.value_sealed)
                .map_err(|e| ApiError::Internal(e.into()))?;
            Ok(Variable {
                key: v.key,
                value,
                variable_type: v.variable_type,
            })
        })
        .collect()
}

/// A variable to keep, sealed; `key` as CI/CD variables' keys, `variable_type` env_var or file.
pub fn seal(app: &AppInner, variable: &Variable) -> Result<ScheduleVariable, ApiError> {
    let valid_key = !variable.key.is_empty()
        && variable.key.len() <= 255
        && variable
            .key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid_key {
        return Err(invalid("key", "can contain only letters, digits and '_'."));
    }
    if !matches!(variable.variable_type.as_str(), "env_var" | "file") {
        return Err(ApiError::Params(
            "variable_type does not have a valid value".into(),
        ));
    }
    Ok(ScheduleVariable {
        key: variable.key.clone(),
        value_sealed: app.cipher.encrypt(&variable.value),
        variable_type: variable.variable_type.clone(),
    })
}

/// Makes the schedule's pipeline now, under `key` when it is a slot's run.
async fn make_pipeline(
    app: &AppInner,
    project: &ProjectRecord,
    schedule: &ScheduleRecord,
    key: Option<String>,
) -> Result<i64, ApiError> {
    let variables = variables(app, schedule.id)
        .await?
        .into_iter()
        .map(|v| (v.key, v.value))
        .collect();
    let ref_name = schedule
        .ref_name
        .strip_prefix("refs/heads/")
        .or_else(|| schedule.ref_name.strip_prefix("refs/tags/"))
        .unwrap_or(&schedule.ref_name);
    let request = PipelineRequest {
        project,
        ref_name,
        source: "schedule",
        user_id: schedule.owner.as_ref().map(|o| o.id),
        variables,
        trigger_request_id: None,
        push_key: key,
    };
    let pipeline = pipelines::create(app, request).await?;
    app.store.schedules().ran(schedule.id, pipeline).await?;
    Ok(pipeline)
}

/// `play`: a run now, outside the schedule's slots (its next run stays).
pub async fn play(
    app: &AppInner,
    project: &ProjectRecord,
    schedule: &ScheduleRecord,
) -> Result<i64, ApiError> {
    make_pipeline(app, project, schedule, None).await
}

/// Runs every due schedule once: its slot's pipeline (unless a server made it already),
/// then its next run moved to the first slot after now. Returns the pipelines made here.
pub async fn run_due(app: &AppInner) -> anyhow::Result<usize> {
    let now = kiln_store::now_ms();
    let mut made = 0;
    for schedule in app.store.schedules().due(now, 50).await? {
        let key = format!("schedule:{}:{}", schedule.id, schedule.next_run_at);
        let project = app
            .store
            .projects()
            .get(&ProjectRef::Id(schedule.project_id))
            .await?;
        match make_pipeline(app, &project, &schedule, Some(key)).await {
            Ok(_) => made += 1,
            // Another server made this slot's pipeline.
            Err(ApiError::Conflict(_)) => {}
            Err(err) => {
                tracing::warn!(schedule = schedule.id, error = %err, "a scheduled pipeline was not made")
            }
        }
        let next = CronSchedule::parse(&schedule.cron, &schedule.cron_timezone)
            .ok()
            .and_then(|cron| cron.next_after(now));
        match next {
            Some(next) => {
                app.store
                    .schedules()
                    .advance(schedule.id, schedule.next_run_at, next)
                    .await?;
            }
            None => {
                let off = ScheduleSettings {
                    active: Some(false),
                    ..ScheduleSettings::default()
                };
                app.store
                    .schedules()
                    .update(schedule.project_id, schedule.id, &off)
                    .await?;
            }
        }
    }
    Ok(made)
}
