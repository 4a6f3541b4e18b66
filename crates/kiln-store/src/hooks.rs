//! Project webhooks and their outbox of deliveries.
//!
//! A build's or pipeline's status change writes one delivery per hook that wants it inside
//! the change's own transaction (`enqueue`), so a crash between the change and its delivery
//! loses nothing. Servers take due deliveries under a lease (`claim_due`); a delivery keeps
//! its event uuid through every attempt, and a server that dies mid-attempt lets the lease run
//! out for another to try again. A hook that fails waits before its next attempt, one attempt
//! at a time, and is disabled when it keeps failing (`record_attempt`).

use crate::changes::{Change, ChangeFeed};
use crate::db::{args, Db, Row, Tx};
use crate::row::KilnRow;
use crate::{now_ms, StoreError, StoreResult};

/// Consecutive failures after which GitLab calls a hook temporarily disabled.
pub const TEMPORARILY_DISABLED_AFTER: i64 = 4;
/// A hook that has failed without a success for this long is disabled for good.
pub const DISABLED_AFTER_FAILING_MS: i64 = 24 * 3600 * 1000;
/// Consecutive failures it takes, also, to disable a hook for good (GitLab's 40).
pub const DISABLED_AFTER_FAILURES: i64 = 40;
/// The longest wait between attempts: a receiver that comes back hears of what it missed
/// within a minute.
pub const MAX_BACKOFF_MS: i64 = 30_000;

/// The kind of change a delivery tells of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookEvent {
    Job,
    Pipeline,
    Push,
}

impl HookEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            HookEvent::Job => "job",
            HookEvent::Pipeline => "pipeline",
            HookEvent::Push => "push",
        }
    }

    pub fn parse(text: &str) -> Option<HookEvent> {
        match text {
            "job" => Some(HookEvent::Job),
            "pipeline" => Some(HookEvent::Pipeline),
            "push" => Some(HookEvent::Push),
            _ => None,
        }
    }

    /// The hook's column that says whether it wants this event.
    fn wanted_by(self) -> &'static str {
        match self {
            HookEvent::Job => "h.job_events",
            HookEvent::Pipeline => "h.pipeline_events",
            HookEvent::Push => "h.push_events",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HookRecord {
    pub id: i64,
    pub project_id: i64,
    pub url: String,
    pub token_sealed: Option<Vec<u8>>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub push_events: bool,
    pub job_events: bool,
    pub pipeline_events: bool,
    pub enable_ssl_verification: bool,
    pub recent_failures: i64,
    pub disabled_until: Option<i64>,
    pub disabled: bool,
    pub created_at: i64,
}

impl HookRecord {
    /// GitLab's `alert_status`: `executable`, `temporarily_disabled` or `disabled`.
    pub fn alert_status(&self, now: i64) -> &'static str {
        if self.disabled {
            "disabled"
        } else if self.recent_failures >= TEMPORARILY_DISABLED_AFTER
            && self.disabled_until.is_some_and(|until| until > now)
        {
            "temporarily_disabled"
        } else {
            "executable"
        }
    }
}

/// What a create or an update sets; None leaves a setting as it is (a create takes GitLab's
/// defaults).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HookSettings {
    pub url: Option<String>,
    /// Some(None) removes the token.
    pub token_sealed: Option<Option<Vec<u8>>>,
    pub name: Option<Option<String>>,
    pub description: Option<Option<String>>,
    pub push_events: Option<bool>,
    pub job_events: Option<bool>,
    pub pipeline_events: Option<bool>,
    pub enable_ssl_verification: Option<bool>,
}

const HOOK_COLUMNS: &str = "h.id, h.project_id, h.url, h.token_sealed, h.name, h.description, \
    h.push_events, h.job_events, h.pipeline_events, h.enable_ssl_verification, h.recent_failures, \
    h.disabled_until, h.disabled, h.created_at";

fn hook_from_row(row: &Row) -> Result<HookRecord, sqlx::Error> {
    let sealed = row.bytes("token_sealed").ok().filter(|b| !b.is_empty());
    Ok(HookRecord {
        id: row.int("id")?,
        project_id: row.int("project_id")?,
        url: row.text("url")?,
        token_sealed: sealed,
        name: row.opt_text("name")?,
        description: row.opt_text("description")?,
        push_events: row.flag("push_events")?,
        job_events: row.flag("job_events")?,
        pipeline_events: row.flag("pipeline_events")?,
        enable_ssl_verification: row.flag("enable_ssl_verification")?,
        recent_failures: row.int("recent_failures")?,
        disabled_until: row.opt_int("disabled_until")?,
        disabled: row.flag("disabled")?,
        created_at: row.int("created_at")?,
    })
}

/// One delivery as a hook's list shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRecord {
    pub id: i64,
    pub hook_id: i64,
    pub event_uuid: String,
    pub event: HookEvent,
    pub subject_id: i64,
    pub subject_status: String,
    pub test: bool,
    pub created_at: i64,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub response_status: Option<i64>,
    pub duration_ms: Option<i64>,
    pub error: Option<String>,
    pub request_body: Option<String>,
    pub response_body: Option<String>,
    pub finished_at: Option<i64>,
}

const DELIVERY_COLUMNS: &str = "d.id, d.hook_id, d.event_uuid, d.event, d.subject_id, \
    d.subject_status, d.test, d.created_at, d.state, d.attempts, d.next_attempt_at, \
    d.response_status, d.duration_ms, d.error, d.request_body, d.response_body, d.finished_at";

fn delivery_from_row(row: &Row) -> Result<DeliveryRecord, sqlx::Error> {
    let event = row.text("event")?;
    Ok(DeliveryRecord {
        id: row.int("id")?,
        hook_id: row.int("hook_id")?,
        event_uuid: row.text("event_uuid")?,
        event: HookEvent::parse(&event)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown hook event {event}").into()))?,
        subject_id: row.int("subject_id")?,
        subject_status: row.text("subject_status")?,
        test: row.flag("test")?,
        created_at: row.int("created_at")?,
        state: row.text("state")?,
        attempts: row.int("attempts")?,
        next_attempt_at: row.int("next_attempt_at")?,
        response_status: row.opt_int("response_status")?,
        duration_ms: row.opt_int("duration_ms")?,
        error: row.opt_text("error")?,
        request_body: row.opt_text("request_body")?,
        response_body: row.opt_text("response_body")?,
        finished_at: row.opt_int("finished_at")?,
    })
}

/// A delivery a server has taken to send now, with what it needs of its hook.
#[derive(Debug, Clone, PartialEq)]
pub struct DueDelivery {
    pub delivery: DeliveryRecord,
    pub hook: HookRecord,
}

/// How one attempt went.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub response_status: Option<i64>,
    pub duration_ms: i64,
    /// Why there was no usable answer (refused, timed out, a blocked address…).
    pub error: Option<String>,
    pub request_body: String,
    pub response_body: Option<String>,
}

impl Attempt {
    /// GitLab counts a 2xx answer as delivered.
    pub fn succeeded(&self) -> bool {
        self.error.is_none()
            && self
                .response_status
                .is_some_and(|s| (200..300).contains(&s))
    }
}

/// The wait before attempt `failures + 1` of something that failed `failures` times:
/// 1 s, 2 s, 4 s … up to `MAX_BACKOFF_MS`.
pub fn backoff_ms(failures: i64) -> i64 {
    let exponent = failures.clamp(1, 16) - 1;
    (1_000_i64 << exponent).min(MAX_BACKOFF_MS)
}

/// A random version-4 UUID, as GitLab's `SecureRandom.uuid`.
pub fn new_uuid() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Writes, in `tx`, a delivery of `event` about `subject_id` (now `status`) to every hook of
/// its project that wants it: a build for a job event (of builds a runner runs only, GitLab's
/// build hooks, not bridges or external statuses), a pipeline for a pipeline event, and for a
/// push event the pipeline the push made. Costs one indexed statement when the project has
/// no hook.
pub(crate) async fn enqueue(
    tx: &mut Tx<'_>,
    event: HookEvent,
    subject_id: i64,
    status: &str,
    now: i64,
) -> StoreResult<()> {
    let project = match event {
        HookEvent::Job => "(SELECT project_id FROM builds WHERE id = $2 AND kind = 'build')",
        HookEvent::Pipeline | HookEvent::Push => "(SELECT project_id FROM pipelines WHERE id = $2)",
    };
    let sql = format!(
        "INSERT INTO hook_deliveries (hook_id, event_uuid, event, subject_id, subject_status, \
         created_at, next_attempt_at) \
         SELECT h.id, $1, $3, $2, $4, $5, $5 FROM project_hooks h \
         WHERE h.project_id = {project} AND {} AND NOT h.disabled",
        event.wanted_by()
    );
    let added = tx
        .execute(
            &sql,
            args![new_uuid().as_str(), subject_id, event.as_str(), status, now],
        )
        .await?;
    if added > 0 {
        tx.notify(Change::Deliveries).await?;
    }
    Ok(())
}

/// Whether the project has a hook at all (so a change of many builds may skip asking per build).
pub(crate) async fn has_hooks(tx: &mut Tx<'_>, project_id: i64) -> StoreResult<bool> {
    Ok(tx
        .fetch_optional(
            "SELECT id FROM project_hooks WHERE project_id = $1 AND NOT disabled LIMIT 1",
            args![project_id],
        )
        .await?
        .is_some())
}

pub struct Hooks<'a> {
    pub(crate) db: &'a Db,
    pub(crate) feed: &'a ChangeFeed,
}

impl Hooks<'_> {
    pub async fn list(&self, project_id: i64) -> StoreResult<Vec<HookRecord>> {
        let sql = format!(
            "SELECT {HOOK_COLUMNS} FROM project_hooks h WHERE h.project_id = $1 ORDER BY h.id"
        );
        let rows = self.db.read_all(&sql, args![project_id]).await?;
        Ok(rows.iter().map(hook_from_row).collect::<Result<_, _>>()?)
    }

    pub async fn find(&self, project_id: i64, hook_id: i64) -> StoreResult<HookRecord> {
        let sql = format!(
            "SELECT {HOOK_COLUMNS} FROM project_hooks h WHERE h.project_id = $1 AND h.id = $2"
        );
        let row = self
            .db
            .read_optional(&sql, args![project_id, hook_id])
            .await?;
        Ok(hook_from_row(&row.ok_or(StoreError::NotFound)?)?)
    }

    /// A new hook with `settings` over GitLab's defaults (push events on, the rest off, TLS
    /// verified). `settings.url` is required.
    pub async fn create(
        &self,
        project_id: i64,
        settings: &HookSettings,
    ) -> StoreResult<HookRecord> {
        let url = settings
            .url
            .as_deref()
            .ok_or_else(|| StoreError::Conflict("url is missing".into()))?;
        let mut tx = self.db.begin(self.feed).await?;
        let id = tx
            .int(
                "INSERT INTO project_hooks (project_id, url, created_at) VALUES ($1, $2, $3) RETURNING id",
                args![project_id, url, now_ms()],
            )
            .await?;
        apply_settings(&mut tx, id, settings).await?;
        tx.commit().await?;
        self.find(project_id, id).await
    }

    pub async fn update(
        &self,
        project_id: i64,
        hook_id: i64,
        settings: &HookSettings,
    ) -> StoreResult<HookRecord> {
        let mut tx = self.db.begin(self.feed).await?;
        let found = tx
            .fetch_optional(
                "SELECT id FROM project_hooks WHERE project_id = $1 AND id = $2",
                args![project_id, hook_id],
            )
            .await?;
        if found.is_none() {
            return Err(StoreError::NotFound);
        }
        if let Some(url) = &settings.url {
            tx.execute(
                "UPDATE project_hooks SET url = $1 WHERE id = $2",
                args![url, hook_id],
            )
            .await?;
        }
        apply_settings(&mut tx, hook_id, settings).await?;
        tx.commit().await?;
        self.find(project_id, hook_id).await
    }

    /// Removes the hook and its deliveries, sent or not.
    pub async fn delete(&self, project_id: i64, hook_id: i64) -> StoreResult<()> {
        let mut tx = self.db.begin(self.feed).await?;
        tx.execute(
            "DELETE FROM hook_deliveries WHERE hook_id IN \
             (SELECT id FROM project_hooks WHERE project_id = $1 AND id = $2)",
            args![project_id, hook_id],
        )
        .await?;
        let removed = tx
            .execute(
                "DELETE FROM project_hooks WHERE project_id = $1 AND id = $2",
                args![project_id, hook_id],
            )
            .await?;
        if removed == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await
    }

    /// The hook's deliveries, newest first, skipping `offset`.
    pub async fn deliveries(
        &self,
        hook_id: i64,
        offset: i64,
        limit: i64,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM hook_deliveries d WHERE d.hook_id = $1 \
             ORDER BY d.id DESC LIMIT $2 OFFSET $3"
        );
        let rows = self
            .db
            .read_all(&sql, args![hook_id, limit, offset])
            .await?;
        Ok(rows
            .iter()
            .map(delivery_from_row)
            .collect::<Result<_, _>>()?)
    }

    /// Deliveries not yet sent, of every hook (the benchmark waits for none).
    pub async fn pending_count(&self) -> StoreResult<i64> {
        self.db
            .read_int(
                "SELECT COUNT(*) FROM hook_deliveries WHERE state = 'pending'",
                args![],
            )
            .await
    }

    /// Records a test delivery (sent at once by the caller, never again).
    pub async fn record_test(
        &self,
        hook_id: i64,
        event: HookEvent,
        subject: (i64, &str),
        attempt: &Attempt,
    ) -> StoreResult<()> {
        let now = now_ms();
        let mut tx = self.db.begin(self.feed).await?;
        let state = if attempt.succeeded() {
            "delivered"
        } else {
            "failed"
        };
        tx.execute(
            "INSERT INTO hook_deliveries (hook_id, event_uuid, event, subject_id, subject_status, \
             test, created_at, state, attempts, next_attempt_at, response_status, duration_ms, \
             error, request_body, response_body, finished_at) \
             VALUES ($1, $2, $3, $4, $5, TRUE, $6, $7, 1, $6, $8, $9, $10, $11, $12, $6)",
            args![
                hook_id,
                new_uuid().as_str(),
                event.as_str(),
                subject.0,
                subject.1,
                now,
                state,
                attempt.response_status,
                attempt.duration_ms,
                attempt.error.as_deref(),
                attempt.request_body.as_str(),
                attempt.response_body.as_deref()
            ],
        )
        .await?;
        tx.commit().await
    }

    /// Takes up to `limit` due deliveries for `holder` until `now + lease_ms`. A hook that is
    /// failing gets one attempt at a time (its oldest delivery), after its back-off; a healthy
    /// hook's deliveries are taken oldest first.
    pub async fn claim_due(
        &self,
        holder: &str,
        lease_ms: i64,
        limit: i64,
    ) -> StoreResult<Vec<DueDelivery>> {
        let now = now_ms();
        let lock = if self.db.is_postgres() {
            " FOR UPDATE OF d SKIP LOCKED"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS}, h.recent_failures AS hook_failures FROM hook_deliveries d \
             JOIN project_hooks h ON h.id = d.hook_id \
             WHERE d.state = 'pending' AND d.next_attempt_at <= $1 \
             AND (d.locked_until IS NULL OR d.locked_until < $1) \
             AND NOT h.disabled AND (h.disabled_until IS NULL OR h.disabled_until <= $1) \
             ORDER BY d.next_attempt_at, d.id LIMIT $2{lock}"
        );
        let mut tx = self.db.begin(self.feed).await?;
        let rows = tx.fetch_all(&sql, args![now, limit]).await?;
        let mut due: Vec<DueDelivery> = Vec::new();
        let hook_sql = format!("SELECT {HOOK_COLUMNS} FROM project_hooks h WHERE h.id = $1");
        for row in &rows {
            let delivery = delivery_from_row(row)?;
            let seen = due.iter().find(|d| d.hook.id == delivery.hook_id);
            let failing = row.int("hook_failures")? > 0;
            let hook = match seen {
                Some(_) if failing => continue,
                Some(taken) => taken.hook.clone(),
                None => hook_from_row(&tx.fetch_one(&hook_sql, args![delivery.hook_id]).await?)?,
            };
            due.push(DueDelivery { delivery, hook });
        }
        for taken in &due {
            tx.execute(
                "UPDATE hook_deliveries SET locked_until = $1, locked_by = $2 WHERE id = $3",
                args![now + lease_ms, holder, taken.delivery.id],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(due)
    }

    /// Records how `holder`'s attempt at delivery `id` went: delivered, or tried again after
    /// the back-off. The hook's failure streak moves with it; a hook failing for a day (and
    /// at least 40 times) is disabled, and what it still had pending is given up.
    pub async fn record_attempt(
        &self,
        id: i64,
        holder: &str,
        attempt: &Attempt,
    ) -> StoreResult<()> {
        self.record_attempts(holder, &[(id, attempt)]).await
    }

    /// Records several attempts of `holder` in one transaction (one commit for a server's
    /// attempts that ended together, where a commit each would bound the rate).
    pub async fn record_attempts(
        &self,
        holder: &str,
        attempts: &[(i64, &Attempt)],
    ) -> StoreResult<()> {
        let now = now_ms();
        let mut tx = self.db.begin(self.feed).await?;
        for (id, attempt) in attempts {
            self.record_in(&mut tx, *id, holder, attempt, now).await?;
        }
        tx.commit().await
    }

    async fn record_in(
        &self,
        tx: &mut Tx<'_>,
        id: i64,
        holder: &str,
        attempt: &Attempt,
        now: i64,
    ) -> StoreResult<()> {
        let Some(row) = tx
            .fetch_optional(
                "SELECT hook_id, attempts FROM hook_deliveries WHERE id = $1 AND locked_by = $2 \
                 AND state = 'pending'",
                args![id, holder],
            )
            .await?
        else {
            // Another server took it over (our lease ran out), or the hook is gone.
            return Ok(());
        };
        let hook_id = row.int("hook_id")?;
        let attempts = row.int("attempts")? + 1;
        let succeeded = attempt.succeeded();
        let next = now + backoff_ms(attempts);
        tx.execute(
            "UPDATE hook_deliveries SET attempts = $2, response_status = $3, duration_ms = $4, \
             error = $5, request_body = $6, response_body = $7, locked_until = NULL, locked_by = NULL, \
             finished_at = CASE WHEN $8 THEN $9 ELSE NULL END, \
             state = CASE WHEN $8 THEN 'delivered' ELSE state END, \
             next_attempt_at = CASE WHEN $8 THEN next_attempt_at ELSE $10 END WHERE id = $1",
            args![
                id,
                attempts,
                attempt.response_status,
                attempt.duration_ms,
                attempt.error.as_deref(),
                attempt.request_body.as_str(),
                attempt.response_body.as_deref(),
                succeeded,
                now,
                next
            ],
        )
        .await?;
        if succeeded {
            // A healthy hook's row is not written again (no lock taken on it).
            tx.execute(
                "UPDATE project_hooks SET recent_failures = 0, failing_since = NULL, \
                 disabled_until = NULL WHERE id = $1 \
                 AND (recent_failures <> 0 OR disabled_until IS NOT NULL)",
                args![hook_id],
            )
            .await?;
        } else {
            self.note_failure(tx, hook_id, now).await?;
        }
        Ok(())
    }

    async fn note_failure(&self, tx: &mut Tx<'_>, hook_id: i64, now: i64) -> StoreResult<()> {
        let row = tx
            .fetch_one(
                "SELECT recent_failures, failing_since FROM project_hooks WHERE id = $1",
                args![hook_id],
            )
            .await?;
        let failures = row.int("recent_failures")? + 1;
        let since = row.opt_int("failing_since")?.unwrap_or(now);
        let disable =
            failures >= DISABLED_AFTER_FAILURES && now - since >= DISABLED_AFTER_FAILING_MS;
        tx.execute(
            "UPDATE project_hooks SET recent_failures = $2, failing_since = $3, \
             disabled_until = $4, disabled = $5 WHERE id = $1",
            args![
                hook_id,
                failures,
                since,
                now + backoff_ms(failures),
                disable
            ],
        )
        .await?;
        if disable {
            tx.execute(
                "UPDATE hook_deliveries SET state = 'failed', finished_at = $2, locked_until = NULL, \
                 locked_by = NULL WHERE hook_id = $1 AND state = 'pending'",
                args![hook_id, now],
            )
            .await?;
        }
        Ok(())
    }

    /// Gives a delivery up: what it told of is gone, so there is nothing to send.
    pub async fn give_up(&self, id: i64, holder: &str, why: &str) -> StoreResult<()> {
        let mut tx = self.db.begin(self.feed).await?;
        tx.execute(
            "UPDATE hook_deliveries SET state = 'failed', error = $3, finished_at = $4, \
             locked_until = NULL, locked_by = NULL WHERE id = $1 AND locked_by = $2",
            args![id, holder, why, now_ms()],
        )
        .await?;
        tx.commit().await
    }

    /// Forgets finished deliveries made before `before` (GitLab keeps a hook's logs a week).
    pub async fn prune(&self, before: i64) -> StoreResult<u64> {
        let mut tx = self.db.begin(self.feed).await?;
        let removed = tx
            .execute(
                "DELETE FROM hook_deliveries WHERE state <> 'pending' AND created_at < $1",
                args![before],
            )
            .await?;
        tx.commit().await?;
        Ok(removed)
    }
}

async fn apply_settings(tx: &mut Tx<'_>, id: i64, s: &HookSettings) -> StoreResult<()> {
    let flags = [
        ("push_events", s.push_events),
        ("job_events", s.job_events),
        ("pipeline_events", s.pipeline_events),
        ("enable_ssl_verification", s.enable_ssl_verification),
    ];
    for (column, value) in flags {
        if let Some(value) = value {
            let sql = format!("UPDATE project_hooks SET {column} = $1 WHERE id = $2");
            tx.execute(&sql, args![value, id]).await?;
        }
    }
    for (column, value) in [("name", &s.name), ("description", &s.description)] {
        if let Some(value) = value {
            let sql = format!("UPDATE project_hooks SET {column} = $1 WHERE id = $2");
            tx.execute(&sql, args![value.as_deref(), id]).await?;
        }
    }
    match &s.token_sealed {
        Some(Some(sealed)) => {
            tx.execute(
                "UPDATE project_hooks SET token_sealed = $1 WHERE id = $2",
                &[crate::db::Arg::Bytes(sealed), id.into()],
            )
            .await?;
        }
        Some(None) => {
            tx.execute(
                "UPDATE project_hooks SET token_sealed = NULL WHERE id = $1",
                args![id],
            )
            .await?;
        }
        None => {}
    }
    Ok(())
}
