//! The SQL that differs between the backends, in one place. Everything else is written once.

use crate::db::Db;

/// The claim: PostgreSQL lets concurrent claimers skip each other's locked rows; SQLite has
/// one writer, so the guarded UPDATE alone makes the claim exclusive. `$1` runner, `$2` now,
/// `$3` lease end, `$4` the job token's hash; `matching` is the condition on `b` that the
/// runner may take the build.
pub(crate) fn claim(db: &Db, matching: &str) -> String {
    let lock = if db.is_postgres() {
        " FOR UPDATE OF b SKIP LOCKED"
    } else {
        ""
    };
    format!(
        "UPDATE builds SET status = 'running', runner_id = $1, started_at = $2, lease_expires_at = $3, \
         token_hash = $4 \
         WHERE id = (SELECT b.id FROM builds b WHERE b.status = 'pending' AND {matching} \
         ORDER BY b.id LIMIT 1{lock}) \
         AND status = 'pending' \
         RETURNING id, project_id, pipeline_id, \
         (SELECT status FROM pipelines WHERE id = builds.pipeline_id) AS pipeline_status"
    )
}

/// Every transaction that changes a pipeline's builds first locks the pipeline's row, so one
/// sees the other's committed changes when it processes the pipeline (under READ COMMITTED
/// each statement reads the latest commits). SQLite has a single writer connection: its
/// transactions never overlap, and a plain read is enough.
pub(crate) fn lock_pipeline(db: &Db) -> &'static str {
    lock_pipeline_in(db.is_postgres())
}

/// `lock_pipeline` for a transaction that knows its backend only.
pub(crate) fn lock_pipeline_in(postgres: bool) -> &'static str {
    if postgres {
        "SELECT id FROM pipelines WHERE id = $1 FOR NO KEY UPDATE"
    } else {
        "SELECT id FROM pipelines WHERE id = $1"
    }
}

/// A build's row read under lock (after its pipeline's), so a claim or an append in flight
/// is waited for, not overwritten.
pub(crate) fn lock_build(db: &Db) -> &'static str {
    if db.is_postgres() {
        "SELECT status, runner_id, trace_size, lease_expires_at FROM builds WHERE id = $1 FOR UPDATE"
    } else {
        "SELECT status, runner_id, trace_size, lease_expires_at FROM builds WHERE id = $1"
    }
}

/// A project's row, locked for the rest of the transaction where that means anything
/// (PostgreSQL): work that must find-or-create once per project queues on it.
pub(crate) fn lock_project(db: &Db) -> &'static str {
    if db.is_postgres() {
        "SELECT id FROM projects WHERE id = $1 FOR NO KEY UPDATE"
    } else {
        "SELECT id FROM projects WHERE id = $1"
    }
}
