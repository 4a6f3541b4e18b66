//! Runners: the machines that execute builds, the registration tokens that let them join,
//! and what they may take. Every token is stored as its hash only.

use crate::changes::{Change, ChangeFeed};
use crate::db::{args, Db, Tx};
use crate::row::KilnRow;
use crate::{hash_secret, new_secret, now_ms, StoreError, StoreResult};

/// A runner's `contacted_at` is written at most this often (ms): an idle long poll is a
/// read, and GitLab's own "online" window is far longer.
pub const CONTACT_WRITE_INTERVAL_MS: i64 = 60_000;

pub struct Runners<'a> {
    pub(crate) db: &'a Db,
    pub(crate) feed: &'a ChangeFeed,
}

/// What a runner says of itself on every call (the protocol's `info`), and where from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunnerInfo {
    pub name: Option<String>,
    pub version: Option<String>,
    pub revision: Option<String>,
    pub platform: Option<String>,
    pub architecture: Option<String>,
    pub executor: Option<String>,
    pub ip_address: Option<String>,
}

/// A registered runner.
#[derive(Debug, Clone, PartialEq)]
pub struct RunnerRecord {
    pub id: i64,
    pub description: String,
    /// `instance_type` or `project_type`.
    pub runner_type: String,
    /// The project of a project runner.
    pub project_id: Option<i64>,
    pub active: bool,
    pub locked: bool,
    pub run_untagged: bool,
    /// `not_protected` or `ref_protected`.
    pub access_level: String,
    pub maximum_timeout: Option<i64>,
    pub maintenance_note: String,
    pub tags: Vec<String>,
    pub info: RunnerInfo,
    pub contacted_at: Option<i64>,
    pub created_at: i64,
    /// A server's own runner: not registered, not removable.
    pub embedded: bool,
}

impl RunnerRecord {
    pub fn is_shared(&self) -> bool {
        self.runner_type == "instance_type"
    }
}

/// A runner joining with a registration token.
#[derive(Debug, Clone)]
pub struct NewRunner {
    pub description: String,
    /// The project whose registration token was used; None for the instance's.
    pub project_id: Option<i64>,
    pub active: bool,
    pub locked: bool,
    pub run_untagged: bool,
    pub access_level: String,
    pub maximum_timeout: Option<i64>,
    pub maintenance_note: String,
    pub tags: Vec<String>,
    pub info: RunnerInfo,
}

/// A change of a runner's settings; None leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct RunnerUpdate {
    pub description: Option<String>,
    pub active: Option<bool>,
    pub locked: Option<bool>,
    pub run_untagged: Option<bool>,
    pub access_level: Option<String>,
    /// `Some(None)` removes the limit.
    pub maximum_timeout: Option<Option<i64>>,
    pub tags: Option<Vec<String>>,
}

/// Which runners a listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunnerScope {
    /// Every runner.
    All,
    /// The instance's runners and this project's own: those that may run its builds.
    Project(i64),
    /// The runners of these projects (a user's own runners in v3's `GET /runners`).
    OwnedBy(i64),
}

const RUNNER_COLUMNS: &str = "id, description, runner_type, project_id, active, locked, run_untagged, \
    access_level, maximum_timeout, maintenance_note, name, version, revision, platform, architecture, \
    executor, ip_address, contacted_at, created_at, embedded";

fn runner_from_row(row: &impl KilnRow, tags: Vec<String>) -> Result<RunnerRecord, sqlx::Error> {
    Ok(RunnerRecord {
        id: row.int("id")?,
        description: row.text("description")?,
        runner_type: row.text("runner_type")?,
        project_id: row.opt_int("project_id")?,
        active: row.flag("active")?,
        locked: row.flag("locked")?,
        run_untagged: row.flag("run_untagged")?,
        access_level: row.text("access_level")?,
        maximum_timeout: row.opt_int("maximum_timeout")?,
        maintenance_note: row.text("maintenance_note")?,
        tags,
        info: RunnerInfo {
            name: row.opt_text("name")?,
            version: row.opt_text("version")?,
            revision: row.opt_text("revision")?,
            platform: row.opt_text("platform")?,
            architecture: row.opt_text("architecture")?,
            executor: row.opt_text("executor")?,
            ip_address: row.opt_text("ip_address")?,
        },
        contacted_at: row.opt_int("contacted_at")?,
        created_at: row.int("created_at")?,
        embedded: row.flag("embedded")?,
    })
}

/// Tags as GitLab keeps them: trimmed, without empties or repeats, in the order given.
pub fn normalize_tags<I: IntoIterator<Item = S>, S: AsRef<str>>(tags: I) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for tag in tags {
        let tag = tag.as_ref().trim();
        if !tag.is_empty() && !out.iter().any(|t| t == tag) {
            out.push(tag.to_owned());
        }
    }
    out
}

async fn write_tags(tx: &mut Tx<'_>, runner_id: i64, tags: &[String]) -> StoreResult<()> {
    tx.execute(
        "DELETE FROM runner_tags WHERE runner_id = $1",
        args![runner_id],
    )
    .await?;
    for tag in tags {
        tx.execute(
            "INSERT INTO runner_tags (runner_id, tag) VALUES ($1, $2)",
            args![runner_id, tag],
        )
        .await?;
    }
    Ok(())
}

impl Runners<'_> {
    /// The runner with this description, registered on first use (a server's embedded
    /// runner, and fixtures).
    pub async fn find_or_create(&self, description: &str) -> StoreResult<i64> {
        let found = self
            .db
            .read_optional(
                "SELECT id FROM runners WHERE description = $1 AND embedded ORDER BY id LIMIT 1",
                args![description],
            )
            .await?;
        if let Some(row) = found {
            return Ok(row.int("id")?);
        }
        let mut tx = self.db.begin(self.feed).await?;
        let id = tx
            .int(
                "INSERT INTO runners (token_hash, description, name, is_shared, created_at, embedded) \
                 VALUES ($1, $2, $3, TRUE, $4, TRUE) RETURNING id",
                args![hash_secret(&new_secret()).as_str(), description, "kiln", now_ms()],
            )
            .await?;
        tx.notify(Change::AllBuilds).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Issues a registration token for the instance (`project_id` None) or a project and
    /// returns it; it is shown this once. `reset` revokes the scope's earlier tokens.
    pub async fn issue_registration_token(
        &self,
        project_id: Option<i64>,
        reset: bool,
    ) -> StoreResult<String> {
        let token = format!("GR1348941{}", new_secret());
        let mut tx = self.db.begin(self.feed).await?;
        if reset {
            tx.execute(
                "DELETE FROM registration_tokens WHERE project_id IS NOT DISTINCT FROM $1",
                args![project_id],
            )
            .await?;
        }
        tx.execute(
            "INSERT INTO registration_tokens (project_id, token_hash, created_at) VALUES ($1, $2, $3)",
            args![project_id, hash_secret(&token).as_str(), now_ms()],
        )
        .await?;
        tx.commit().await?;
        Ok(token)
    }

    /// What a registration token registers for: `Some(None)` the instance, `Some(Some(p))`
    /// project `p`; None for a token Kiln does not know.
    pub async fn registration_scope(&self, token: &str) -> StoreResult<Option<Option<i64>>> {
        let row = self
            .db
            .read_optional(
                "SELECT project_id FROM registration_tokens WHERE token_hash = $1",
                args![hash_secret(token).as_str()],
            )
            .await?;
        Ok(match row {
            Some(row) => Some(row.opt_int("project_id")?),
            None => None,
        })
    }

    /// Registers a runner; returns it and its authentication token (shown once).
    pub async fn register(&self, new: &NewRunner) -> StoreResult<(RunnerRecord, String)> {
        let token = format!("glrt-{}", new_secret());
        let runner_type = match new.project_id {
            Some(_) => "project_type",
            None => "instance_type",
        };
        let now = now_ms();
        let info = &new.info;
        let mut tx = self.db.begin(self.feed).await?;
        let id = tx
            .int(
                "INSERT INTO runners (token_hash, description, name, active, is_shared, run_untagged, \
                 created_at, runner_type, project_id, locked, access_level, maximum_timeout, \
                 maintenance_note, version, revision, platform, architecture, executor, ip_address, \
                 contacted_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20) \
                 RETURNING id",
                args![
                    hash_secret(&token).as_str(),
                    &new.description,
                    &info.name,
                    new.active,
                    new.project_id.is_none(),
                    new.run_untagged,
                    now,
                    runner_type,
                    new.project_id,
                    new.locked,
                    &new.access_level,
                    new.maximum_timeout,
                    &new.maintenance_note,
                    &info.version,
                    &info.revision,
                    &info.platform,
                    &info.architecture,
                    &info.executor,
                    &info.ip_address,
                    now,
                ],
            )
            .await?;
        write_tags(&mut tx, id, &new.tags).await?;
        tx.notify(Change::Pending).await?;
        tx.commit().await?;
        Ok((self.get(id).await?, token))
    }

    /// The runner a runner authentication token belongs to, if it was not removed.
    pub async fn by_token(&self, token: &str) -> StoreResult<Option<RunnerRecord>> {
        self.find(
            "token_hash = $1 AND removed_at IS NULL",
            hash_secret(token).as_str(),
        )
        .await
    }

    /// A runner by id; removed runners are `NotFound`.
    pub async fn get(&self, id: i64) -> StoreResult<RunnerRecord> {
        self.find("id = $1 AND removed_at IS NULL", id)
            .await?
            .ok_or(StoreError::NotFound)
    }

    async fn find<'a>(
        &self,
        condition: &str,
        key: impl Into<crate::db::Arg<'a>>,
    ) -> StoreResult<Option<RunnerRecord>> {
        let sql = format!("SELECT {RUNNER_COLUMNS} FROM runners WHERE {condition}");
        let Some(row) = self.db.read_optional(&sql, &[key.into()]).await? else {
            return Ok(None);
        };
        let id = row.int("id")?;
        Ok(Some(runner_from_row(&row, self.tags_of(id).await?)?))
    }

    async fn tags_of(&self, runner_id: i64) -> StoreResult<Vec<String>> {
        let rows = self
            .db
            .read_all(
                "SELECT tag FROM runner_tags WHERE runner_id = $1 ORDER BY tag",
                args![runner_id],
            )
            .await?;
        rows.iter()
            .map(|r| r.text("tag").map_err(StoreError::from))
            .collect()
    }

    /// The runners of `scope`, oldest first, embedded ones included.
    pub async fn list(&self, scope: RunnerScope) -> StoreResult<Vec<RunnerRecord>> {
        let (condition, key) = match scope {
            RunnerScope::All => ("$1 = 0", 0),
            RunnerScope::Project(project) => {
                ("(runner_type = 'instance_type' OR project_id = $1)", project)
            }
            RunnerScope::OwnedBy(user) => (
                "project_id IN (SELECT project_id FROM members WHERE user_id = $1 AND access_level >= 40)",
                user,
            ),
        };
        let sql = format!(
            "SELECT {RUNNER_COLUMNS} FROM runners WHERE removed_at IS NULL AND {condition} ORDER BY id"
        );
        let rows = self.db.read_all(&sql, args![key]).await?;
        // Every live runner's tags in one read, not one read per runner.
        let tag_rows = self
            .db
            .read_all(
                "SELECT rt.runner_id, rt.tag FROM runner_tags rt \
                 JOIN runners r ON r.id = rt.runner_id WHERE r.removed_at IS NULL ORDER BY rt.tag",
                args![],
            )
            .await?;
        let mut tags: std::collections::HashMap<i64, Vec<String>> = Default::default();
        for row in &tag_rows {
            tags.entry(row.int("runner_id")?)
                .or_default()
                .push(row.text("tag")?);
        }
        let mut runners = Vec::with_capacity(rows.len());
        for row in &rows {
            let id = row.int("id")?;
            runners.push(runner_from_row(row, tags.remove(&id).unwrap_or_default())?);
        }
        Ok(runners)
    }

    /// Records that `runner` called now, saying `info` of itself. Writes only when the last
    /// record is older than `CONTACT_WRITE_INTERVAL_MS` or the info changed; then returns the
    /// runner as it is now.
    pub async fn contacted(
        &self,
        runner: &RunnerRecord,
        info: &RunnerInfo,
    ) -> StoreResult<Option<RunnerRecord>> {
        let now = now_ms();
        let merged = RunnerInfo {
            name: info.name.clone().or(runner.info.name.clone()),
            version: info.version.clone().or(runner.info.version.clone()),
            revision: info.revision.clone().or(runner.info.revision.clone()),
            platform: info.platform.clone().or(runner.info.platform.clone()),
            architecture: info
                .architecture
                .clone()
                .or(runner.info.architecture.clone()),
            executor: info.executor.clone().or(runner.info.executor.clone()),
            ip_address: info.ip_address.clone().or(runner.info.ip_address.clone()),
        };
        let fresh = runner
            .contacted_at
            .is_some_and(|at| now - at < CONTACT_WRITE_INTERVAL_MS);
        if fresh && merged == runner.info {
            return Ok(None);
        }
        let mut tx = self.db.begin(self.feed).await?;
        tx.execute(
            "UPDATE runners SET contacted_at = $2, name = $3, version = $4, revision = $5, \
             platform = $6, architecture = $7, executor = $8, ip_address = $9 WHERE id = $1",
            args![
                runner.id,
                now,
                &merged.name,
                &merged.version,
                &merged.revision,
                &merged.platform,
                &merged.architecture,
                &merged.executor,
                &merged.ip_address,
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(Some(RunnerRecord {
            contacted_at: Some(now),
            info: merged,
            ..runner.clone()
        }))
    }

    /// Records that runner `id` called now (a job call, which says nothing of the runner),
    /// if its last record is older than `CONTACT_WRITE_INTERVAL_MS`: one statement that
    /// usually changes nothing.
    pub async fn touch(&self, id: i64) -> StoreResult<()> {
        let now = now_ms();
        let mut tx = self.db.begin(self.feed).await?;
        tx.execute(
            "UPDATE runners SET contacted_at = $2 WHERE id = $1 \
             AND (contacted_at IS NULL OR contacted_at < $3)",
            args![id, now, now - CONTACT_WRITE_INTERVAL_MS],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Changes a runner's settings. A runner resumed or given new tags may have work: the
    /// waiting runners are woken.
    pub async fn update(&self, id: i64, update: &RunnerUpdate) -> StoreResult<RunnerRecord> {
        let current = self.get(id).await?;
        let mut tx = self.db.begin(self.feed).await?;
        tx.execute(
            "UPDATE runners SET description = $2, active = $3, locked = $4, run_untagged = $5, \
             access_level = $6, maximum_timeout = $7 WHERE id = $1",
            args![
                id,
                update.description.as_ref().unwrap_or(&current.description),
                update.active.unwrap_or(current.active),
                update.locked.unwrap_or(current.locked),
                update.run_untagged.unwrap_or(current.run_untagged),
                update
                    .access_level
                    .as_ref()
                    .unwrap_or(&current.access_level),
                update.maximum_timeout.unwrap_or(current.maximum_timeout),
            ],
        )
        .await?;
        if let Some(tags) = &update.tags {
            write_tags(&mut tx, id, tags).await?;
        }
        tx.notify(Change::AllBuilds).await?;
        tx.notify(Change::Pending).await?;
        tx.commit().await?;
        self.get(id).await
    }

    /// Removes a runner: its token stops working at once, and the builds it ran keep naming it.
    pub async fn remove(&self, id: i64) -> StoreResult<()> {
        let mut tx = self.db.begin(self.feed).await?;
        let n = tx
            .execute(
                "UPDATE runners SET removed_at = $2 WHERE id = $1 AND removed_at IS NULL",
                args![id, now_ms()],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        tx.notify(Change::AllBuilds).await?;
        tx.commit().await?;
        Ok(())
    }
}
