//! Cluster leases: work that one server of several sharing the database should do at a time
//! (the branch poller, the artifact sweep, the reaper). A lease is held by one holder until
//! it expires; its holder renews it by taking it again.

use crate::changes::ChangeFeed;
use crate::db::{args, Db};
use crate::{now_ms, StoreResult};

pub struct Leases<'a> {
    pub(crate) db: &'a Db,
    pub(crate) feed: &'a ChangeFeed,
}

impl Leases<'_> {
    /// Takes (or renews) the lease `name` for `holder` for `ttl_ms`, if nobody else holds it
    /// unexpired. Returns whether `holder` holds it now.
    pub async fn acquire(&self, name: &str, holder: &str, ttl_ms: i64) -> StoreResult<bool> {
        let now = now_ms();
        let mut tx = self.db.begin(self.feed).await?;
        let row = tx
            .fetch_optional(
                "INSERT INTO cluster_leases (name, holder, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
                 WHERE cluster_leases.holder = excluded.holder OR cluster_leases.expires_at < $4 \
                 RETURNING holder",
                args![name, holder, now + ttl_ms, now],
            )
            .await?;
        tx.commit().await?;
        Ok(row.is_some())
    }

    /// Gives the lease up, if `holder` has it (a server stopping).
    pub async fn release(&self, name: &str, holder: &str) -> StoreResult<()> {
        let mut tx = self.db.begin(self.feed).await?;
        tx.execute(
            "DELETE FROM cluster_leases WHERE name = $1 AND holder = $2",
            args![name, holder],
        )
        .await?;
        tx.commit().await
    }
}
