//! What the metrics endpoint reads from the database at a scrape: builds by status (from
//! the per-project counters, not a scan), the pending queue, and the connection pools.

use crate::db::Db;
use crate::row::KilnRow as _;
use crate::{Store, StoreResult};

/// A scrape's reading.
#[derive(Debug, Clone, PartialEq)]
pub struct Gauges {
    /// Builds of every project by status.
    pub builds: Vec<(String, i64)>,
    pub pending: i64,
    /// When the longest-waiting pending build was queued (ms), if any waits.
    pub oldest_pending_queued_at: Option<i64>,
    /// Per pool (`read`, `write`; `main` on PostgreSQL): open and idle connections.
    pub pools: Vec<(&'static str, u32, u32)>,
    /// Webhook deliveries not yet sent (or given up).
    pub pending_deliveries: i64,
}

impl Store {
    pub async fn gauges(&self) -> StoreResult<Gauges> {
        let rows = self
            .db
            .read_all(
                "SELECT status, CAST(SUM(n) AS BIGINT) AS n FROM build_counts GROUP BY status ORDER BY status",
                &[],
            )
            .await?;
        let builds = rows
            .iter()
            .map(|row| Ok((row.text("status")?, row.int("n")?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let row = self
            .db
            .read_optional(
                "SELECT COUNT(*) AS n, MIN(queued_at) AS oldest FROM builds WHERE status = 'pending'",
                &[],
            )
            .await?;
        let (pending, oldest_pending_queued_at) = match row {
            Some(row) => (row.int("n")?, row.opt_int("oldest")?),
            None => (0, None),
        };
        let pools = match &self.db {
            Db::Sqlite { read, write } => vec![
                ("read", read.size(), read.num_idle() as u32),
                ("write", write.size(), write.num_idle() as u32),
            ],
            Db::Postgres(pool) => vec![("main", pool.size(), pool.num_idle() as u32)],
        };
        let pending_deliveries = self.hooks().pending_count().await?;
        Ok(Gauges {
            builds,
            pending,
            pending_deliveries,
            oldest_pending_queued_at,
            pools,
        })
    }
}
