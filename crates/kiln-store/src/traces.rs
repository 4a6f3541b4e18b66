//! Build traces: byte ranges appended by the build's runner, stored by their start offset, so
//! a retried append of a range already stored changes nothing and a gap is refused.

use crate::builds::Builds;
use crate::db::args;
use crate::queue::append_note;
use crate::row::KilnRow;
use crate::{dialect, StoreError, StoreResult};
use kiln_core::BuildStatus;

/// A window of a build's log: its bytes from `start`, and how many lines end before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceWindow {
    pub start: i64,
    pub lines_before: i64,
    pub data: Vec<u8>,
}

/// Stores one part of a build's log at `start`, with the number of lines it ends.
pub(crate) async fn insert_part(
    tx: &mut crate::db::Tx<'_>,
    build_id: i64,
    start: i64,
    data: &[u8],
) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO trace_parts (build_id, start, data, lines) VALUES ($1, $2, $3, $4)",
        args![build_id, start, data, count_lines(data)],
    )
    .await?;
    tx.notify(crate::changes::Change::Trace(build_id)).await
}

fn count_lines(data: &[u8]) -> i64 {
    data.iter().filter(|b| **b == b'\n').count() as i64
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// The bytes are stored (now, or by an earlier try of the same append); the trace is
    /// this long.
    Stored { size: i64 },
    /// The range does not start at the stored length (GitLab's 416); the trace is this long.
    Mismatch { size: i64 },
}

impl Builds<'_> {
    /// Stores `data` at byte `offset` of the trace of `build_id`, which `runner_id` must hold
    /// running (else `NotHeld` with the build's status); moves its lease to `lease_until`.
    pub async fn append_trace_at(
        &self,
        build_id: i64,
        runner_id: i64,
        offset: i64,
        data: &[u8],
        lease_until: i64,
    ) -> StoreResult<Appended> {
        let mut tx = self.db.begin(self.feed).await?;
        let row = tx
            .fetch_optional(dialect::lock_build(self.db), args![build_id])
            .await?
            .ok_or(StoreError::NotFound)?;
        let status = crate::builds::parse_status(row.text("status")?)?;
        if status != BuildStatus::Running || row.opt_int("runner_id")? != Some(runner_id) {
            return Err(StoreError::NotHeld(status));
        }
        let size = row.int("trace_size")?;
        let end = offset + data.len() as i64;
        let appended = if offset == size && !data.is_empty() {
            insert_part(&mut tx, build_id, size, data).await?;
            Appended::Stored { size: end }
        } else if offset <= size && end <= size {
            // Sent again after its answer was lost (or empty): it is stored already.
            Appended::Stored { size }
        } else {
            Appended::Mismatch { size }
        };
        let stored = match appended {
            Appended::Stored { size } | Appended::Mismatch { size } => size,
        };
        tx.execute(
            "UPDATE builds SET trace_size = $1, lease_expires_at = $2 WHERE id = $3",
            args![stored, lease_until, build_id],
        )
        .await?;
        tx.commit().await?;
        Ok(appended)
    }

    /// Appends a line of the server's own at the end of the trace, whoever holds the build.
    pub async fn append_trace_note(&self, build_id: i64, data: &[u8]) -> StoreResult<()> {
        let mut tx = self.db.begin(self.feed).await?;
        let row = tx
            .fetch_optional(dialect::lock_build(self.db), args![build_id])
            .await?
            .ok_or(StoreError::NotFound)?;
        append_note(&mut tx, build_id, row.int("trace_size")?, data).await?;
        tx.commit().await
    }

    /// The stored length of the trace.
    pub async fn trace_size(&self, build_id: i64) -> StoreResult<i64> {
        self.db
            .read_int(
                "SELECT trace_size FROM builds WHERE id = $1",
                args![build_id],
            )
            .await
    }

    /// The whole trace, in order. Empty for a build that has not written any.
    pub async fn trace(&self, build_id: i64) -> StoreResult<Vec<u8>> {
        let mut out = Vec::new();
        let mut from = 0;
        loop {
            let parts = self.trace_parts(build_id, from, 64).await?;
            let Some((start, last)) = parts.last() else {
                return Ok(out);
            };
            from = start + last.len() as i64;
            let more = parts.len() == 64;
            for (_, data) in parts {
                out.extend_from_slice(&data);
            }
            if !more {
                return Ok(out);
            }
        }
    }

    /// Up to `limit` stored parts of the trace that start at byte `from` or later, in order,
    /// as (start, data): a reader pages through a long trace instead of holding it whole.
    pub async fn trace_parts(
        &self,
        build_id: i64,
        from: i64,
        limit: i64,
    ) -> StoreResult<Vec<(i64, Vec<u8>)>> {
        let rows = self
            .db
            .read_all(
                "SELECT start, data FROM trace_parts WHERE build_id = $1 AND start >= $2 \
                 ORDER BY start LIMIT $3",
                args![build_id, from, limit],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((r.int("start")?, r.bytes("data")?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// The bytes `[from, to)` of the trace (clipped to what is stored), with the number of
    /// lines that end before `from`: what a page needs to show a window of a long log with
    /// its line numbers, read from the parts that hold it and the line counts of the others.
    pub async fn trace_window(
        &self,
        build_id: i64,
        from: i64,
        to: i64,
    ) -> StoreResult<TraceWindow> {
        let from = from.max(0);
        let first = self
            .db
            .read_int(
                "SELECT COALESCE(MAX(start), 0) AS n FROM trace_parts \
                 WHERE build_id = $1 AND start <= $2",
                args![build_id, from],
            )
            .await?;
        let mut lines_before = self.lines_before(build_id, first).await?;
        let rows = self
            .db
            .read_all(
                "SELECT start, data FROM trace_parts WHERE build_id = $1 AND start >= $2 \
                 AND start < $3 ORDER BY start",
                args![build_id, first, to.max(first + 1)],
            )
            .await?;
        let mut held = Vec::new();
        for row in &rows {
            held.extend_from_slice(&row.bytes("data")?);
        }
        let skip = ((from - first).max(0) as usize).min(held.len());
        lines_before += count_lines(&held[..skip]);
        let end = ((to - first).max(0) as usize).clamp(skip, held.len());
        Ok(TraceWindow {
            start: first + skip as i64,
            lines_before,
            data: held[skip..end].to_vec(),
        })
    }

    /// How many lines end in the parts that start before `start` (a part's start).
    async fn lines_before(&self, build_id: i64, start: i64) -> StoreResult<i64> {
        let row = self
            .db
            .read_optional(
                "SELECT CAST(COALESCE(SUM(lines), 0) AS BIGINT) AS n, \
                 COUNT(*) - COUNT(lines) AS uncounted \
                 FROM trace_parts WHERE build_id = $1 AND start < $2",
                args![build_id, start],
            )
            .await?
            .ok_or(StoreError::NotFound)?;
        let mut lines = row.int("n")?;
        if row.int("uncounted")? > 0 {
            // Parts stored before their lines were counted (migration 12): counted now.
            let rows = self
                .db
                .read_all(
                    "SELECT data FROM trace_parts WHERE build_id = $1 AND start < $2 \
                     AND lines IS NULL",
                    args![build_id, start],
                )
                .await?;
            for row in &rows {
                lines += count_lines(&row.bytes("data")?);
            }
        }
        Ok(lines)
    }

    /// Whether the build has written any trace.
    pub async fn has_trace(&self, build_id: i64) -> StoreResult<bool> {
        Ok(self.trace_size(build_id).await? > 0)
    }
}
