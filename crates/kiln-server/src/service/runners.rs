//! Runners joining, proving who they are, and leaving; and who may see or change them.
//! The runner protocol and the runners API present these.

use crate::AppInner;
use kiln_store::{NewRunner, RunnerInfo, RunnerRecord, RunnerUpdate, StoreError, UserRecord};

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// An unknown registration or runner token, or a removed runner.
    #[error("403 Forbidden")]
    Forbidden,
    /// A parameter GitLab would refuse, with its message.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a runner asks for when it registers (GitLab's `POST /runners` parameters).
#[derive(Debug, Clone, Default)]
pub struct Registration {
    pub token: String,
    pub description: Option<String>,
    pub maintenance_note: Option<String>,
    pub tags: Vec<String>,
    pub run_untagged: Option<bool>,
    pub locked: Option<bool>,
    /// `paused`, or the negation of the older `active`.
    pub paused: Option<bool>,
    pub access_level: Option<String>,
    pub maximum_timeout: Option<i64>,
    pub info: RunnerInfo,
}

pub const ACCESS_LEVELS: [&str; 2] = ["not_protected", "ref_protected"];

/// GitLab's smallest `maximum_timeout` (10 minutes).
pub const MIN_MAXIMUM_TIMEOUT: i64 = 600;

/// Registers a runner with an instance or project registration token.
pub async fn register(
    app: &AppInner,
    request: Registration,
) -> Result<(RunnerRecord, String), RunnerError> {
    let scope = app
        .store
        .runners()
        .registration_scope(&request.token)
        .await?
        .ok_or(RunnerError::Forbidden)?;
    check_settings(request.access_level.as_deref(), request.maximum_timeout)?;
    let new = NewRunner {
        description: request.description.unwrap_or_default(),
        project_id: scope,
        active: !request.paused.unwrap_or(false),
        // GitLab locks project runners to their project unless told otherwise.
        locked: request.locked.unwrap_or(scope.is_some()),
        run_untagged: request.run_untagged.unwrap_or(true),
        access_level: request
            .access_level
            .unwrap_or_else(|| ACCESS_LEVELS[0].to_owned()),
        maximum_timeout: request.maximum_timeout,
        maintenance_note: request.maintenance_note.unwrap_or_default(),
        tags: kiln_store::runners::normalize_tags(&request.tags),
        info: request.info,
    };
    if new.tags.is_empty() && !new.run_untagged {
        return Err(RunnerError::Invalid(
            "tags_list can not be empty when runner is not allowed to pick untagged jobs".into(),
        ));
    }
    Ok(app.store.runners().register(&new).await?)
}

/// GitLab's checks of `access_level` and `maximum_timeout`.
pub fn check_settings(
    access_level: Option<&str>,
    maximum_timeout: Option<i64>,
) -> Result<(), RunnerError> {
    if let Some(level) = access_level {
        if !ACCESS_LEVELS.contains(&level) {
            return Err(RunnerError::Invalid(
                "access_level does not have a valid value".into(),
            ));
        }
    }
    if maximum_timeout.is_some_and(|t| t < MIN_MAXIMUM_TIMEOUT) {
        return Err(RunnerError::Invalid(
            "maximum_timeout needs to be at least 10 minutes".into(),
        ));
    }
    Ok(())
}

/// The runner a runner token belongs to, its contact recorded with what it says of itself.
pub async fn authenticate(
    app: &AppInner,
    token: &str,
    info: &RunnerInfo,
) -> Result<RunnerRecord, RunnerError> {
    if token.is_empty() {
        return Err(RunnerError::Forbidden);
    }
    let key = kiln_store::hash_secret(token);
    let version = app.store.versions().runners();
    let runner = match app.cache.runners.get(&key, version) {
        Some(runner) => runner,
        None => app
            .store
            .runners()
            .by_token(token)
            .await?
            .ok_or(RunnerError::Forbidden)?,
    };
    let runner = match app.store.runners().contacted(&runner, info).await? {
        Some(now) => now,
        None => runner,
    };
    app.cache.runners.insert(key, runner.clone(), version);
    Ok(runner)
}

/// Removes the runner of `token` (`DELETE /runners`). Its running builds are left to their
/// leases: the runner may still be finishing them.
pub async fn unregister(app: &AppInner, token: &str) -> Result<(), RunnerError> {
    let runner = authenticate(app, token, &RunnerInfo::default()).await?;
    Ok(app.store.runners().remove(runner.id).await?)
}

/// Whether `user` may see and change `runner`: an admin any, a project's owner or
/// maintainer the runners of that project. Embedded runners belong to the instance.
pub async fn may_manage(
    app: &AppInner,
    user: &UserRecord,
    runner: &RunnerRecord,
) -> Result<bool, StoreError> {
    if user.is_admin {
        return Ok(true);
    }
    let Some(project_id) = runner.project_id else {
        return Ok(false);
    };
    let access = app
        .store
        .projects()
        .with_access(&kiln_store::ProjectRef::Id(project_id), Some(user.id))
        .await?;
    Ok(access
        .access
        .is_some_and(|level| level >= kiln_core::AccessLevel::Master))
}

/// Changes a runner's settings after GitLab's checks.
pub async fn update(
    app: &AppInner,
    runner_id: i64,
    update: &RunnerUpdate,
) -> Result<RunnerRecord, RunnerError> {
    check_settings(
        update.access_level.as_deref(),
        update.maximum_timeout.flatten(),
    )?;
    Ok(app.store.runners().update(runner_id, update).await?)
}

/// Whether GitLab would show the runner as online: it called within the last two hours
/// (`Ci::Runner::ONLINE_CONTACT_TIMEOUT`); a server's embedded runner while its server runs.
pub fn is_online(runner: &RunnerRecord, now_ms: i64) -> bool {
    contacted_recently(runner.contacted_at, now_ms)
}

/// Contacted within GitLab's online window (2 hours).
pub fn contacted_recently(contacted_at: Option<i64>, now_ms: i64) -> bool {
    const ONLINE_MS: i64 = 2 * 3600 * 1000;
    contacted_at.is_some_and(|at| now_ms - at < ONLINE_MS)
}

/// GitLab's `status` of a runner: `online`, `offline`, `never_contacted`, or `paused` (v4
/// still reports it for paused runners).
pub fn status(runner: &RunnerRecord, now_ms: i64) -> &'static str {
    status_of(runner.active, runner.contacted_at, now_ms)
}

pub fn status_of(active: bool, contacted_at: Option<i64>, now_ms: i64) -> &'static str {
    if !active {
        "paused"
    } else if contacted_at.is_none() {
        "never_contacted"
    } else if contacted_recently(contacted_at, now_ms) {
        "online"
    } else {
        "offline"
    }
}
