//! Signing in to the web UI: passwords (their Argon2id hashes, made and checked by the
//! server), sessions (a random id in an HttpOnly cookie; only its hash is kept here, with the
//! CSRF token of the session's forms), and failed sign-ins, counted per subject (an account
//! or an address) so every server slows the same attacker.

use crate::changes::{Change, ChangeFeed};
use crate::db::{args, Db};
use crate::row::KilnRow;
use crate::users::{user_from_row, USER_COLUMNS};
use crate::{hash_secret, new_secret, now_ms, StoreError, StoreResult, UserRecord};

pub struct Sessions<'a> {
    pub(crate) db: &'a Db,
    pub(crate) feed: &'a ChangeFeed,
}

/// A live session: whose it is and the token its forms carry.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    pub user: UserRecord,
    pub csrf_token: String,
}

/// Failed sign-ins of one subject: how many in a row, and the last one's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Failures {
    pub count: i64,
    pub last_at: i64,
}

impl Sessions<'_> {
    /// One statement in a transaction of its own.
    async fn write(&self, sql: &str, args: &[crate::db::Arg<'_>]) -> StoreResult<u64> {
        let mut tx = self.db.begin(self.feed).await?;
        let changed = tx.execute(sql, args).await?;
        tx.commit().await?;
        Ok(changed)
    }

    /// Sets (or with None removes) the user's password hash; their sessions end.
    pub async fn set_password_hash(&self, user_id: i64, hash: Option<&str>) -> StoreResult<()> {
        let mut tx = self.db.begin(self.feed).await?;
        let changed = tx
            .execute(
                "UPDATE users SET password_hash = $1 WHERE id = $2",
                args![hash, user_id],
            )
            .await?;
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        tx.execute(
            "DELETE FROM web_sessions WHERE user_id = $1",
            args![user_id],
        )
        .await?;
        tx.notify(Change::Access).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The active user of `username` and their password hash (None: no password set).
    pub async fn password_of(
        &self,
        username: &str,
    ) -> StoreResult<Option<(UserRecord, Option<String>)>> {
        let sql = format!(
            "SELECT {USER_COLUMNS}, u.password_hash FROM users u \
             WHERE u.username = $1 AND u.state = 'active'"
        );
        let Some(row) = self.db.read_optional(&sql, args![username]).await? else {
            return Ok(None);
        };
        let user = user_from_row(&row)?.ok_or(StoreError::NotFound)?;
        Ok(Some((user, row.opt_text("password_hash")?)))
    }

    /// Starts a session of the user for `ttl_ms`; returns the cookie's value.
    pub async fn start(&self, user_id: i64, ttl_ms: i64) -> StoreResult<String> {
        let id = format!("{}{}", new_secret(), new_secret());
        let now = now_ms();
        self.write(
            "INSERT INTO web_sessions (id_hash, user_id, csrf_token, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            args![
                hash_secret(&id).as_str(),
                user_id,
                format!("{}{}", new_secret(), new_secret()).as_str(),
                now,
                now + ttl_ms
            ],
        )
        .await?;
        Ok(id)
    }

    /// The live session whose cookie holds `id`, of an active user.
    pub async fn get(&self, id: &str) -> StoreResult<Option<SessionRecord>> {
        let sql = format!(
            "SELECT {USER_COLUMNS}, s.csrf_token FROM web_sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.id_hash = $1 AND s.expires_at > $2 AND u.state = 'active'"
        );
        let Some(row) = self
            .db
            .read_optional(&sql, args![hash_secret(id).as_str(), now_ms()])
            .await?
        else {
            return Ok(None);
        };
        let Some(user) = user_from_row(&row)? else {
            return Ok(None);
        };
        Ok(Some(SessionRecord {
            user,
            csrf_token: row.text("csrf_token")?,
        }))
    }

    /// Ends the session (signing out), and sweeps expired ones.
    pub async fn end(&self, id: &str) -> StoreResult<()> {
        self.write(
            "DELETE FROM web_sessions WHERE id_hash = $1 OR expires_at <= $2",
            args![hash_secret(id).as_str(), now_ms()],
        )
        .await?;
        Ok(())
    }

    /// The failed sign-ins of `subject` ("user:NAME", "address:IP").
    pub async fn failures(&self, subject: &str) -> StoreResult<Failures> {
        let row = self
            .db
            .read_optional(
                "SELECT failures, last_at FROM sign_in_failures WHERE subject = $1",
                args![subject],
            )
            .await?;
        Ok(match row {
            Some(row) => Failures {
                count: row.int("failures")?,
                last_at: row.int("last_at")?,
            },
            None => Failures::default(),
        })
    }

    /// Counts one more failed sign-in of each subject.
    pub async fn record_failure(&self, subjects: &[&str]) -> StoreResult<()> {
        let now = now_ms();
        for subject in subjects {
            self.write(
                "INSERT INTO sign_in_failures (subject, failures, last_at) VALUES ($1, 1, $2) \
                     ON CONFLICT (subject) DO UPDATE SET failures = sign_in_failures.failures + 1, \
                     last_at = excluded.last_at",
                args![*subject, now],
            )
            .await?;
        }
        Ok(())
    }

    /// Forgets the subjects' failures (after a good sign-in).
    pub async fn clear_failures(&self, subjects: &[&str]) -> StoreResult<()> {
        for subject in subjects {
            self.write(
                "DELETE FROM sign_in_failures WHERE subject = $1",
                args![*subject],
            )
            .await?;
        }
        Ok(())
    }
}
