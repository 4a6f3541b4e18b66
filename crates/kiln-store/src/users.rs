//! Users and their personal access tokens (stored hashed).

use crate::changes::{Change, ChangeFeed};
use crate::db::{args, on_read, Db};
use crate::row::KilnRow;
use crate::{hash_secret, new_secret, now_ms, StoreError, StoreResult};

#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    pub id: i64,
    pub username: String,
    pub name: String,
    pub email: String,
    pub is_admin: bool,
    pub state: String,
    pub bio: Option<String>,
    pub skype: String,
    pub linkedin: String,
    pub twitter: String,
    pub website_url: String,
    pub created_at: i64,
}

pub(crate) const USER_COLUMNS: &str = "u.id AS u_id, u.username AS u_username, u.name AS u_name, \
    u.email AS u_email, u.is_admin AS u_is_admin, u.state AS u_state, u.bio AS u_bio, \
    u.skype AS u_skype, u.linkedin AS u_linkedin, u.twitter AS u_twitter, \
    u.website_url AS u_website_url, u.created_at AS u_created_at";

/// Reads a user from `USER_COLUMNS`; `None` when a LEFT JOIN found no user.
pub(crate) fn user_from_row(row: &impl KilnRow) -> Result<Option<UserRecord>, sqlx::Error> {
    let Some(id) = row.opt_int("u_id")? else {
        return Ok(None);
    };
    Ok(Some(UserRecord {
        id,
        username: row.text("u_username")?,
        name: row.text("u_name")?,
        email: row.text("u_email")?,
        is_admin: row.flag("u_is_admin")?,
        state: row.text("u_state")?,
        bio: row.opt_text("u_bio")?,
        skype: row.text("u_skype")?,
        linkedin: row.text("u_linkedin")?,
        twitter: row.text("u_twitter")?,
        website_url: row.text("u_website_url")?,
        created_at: row.int("u_created_at")?,
    }))
}

pub struct Users<'a> {
    pub(crate) db: &'a Db,
    pub(crate) feed: &'a ChangeFeed,
}

impl Users<'_> {
    pub async fn create(
        &self,
        username: &str,
        name: &str,
        email: &str,
        is_admin: bool,
    ) -> StoreResult<i64> {
        let mut tx = self.db.begin(self.feed).await?;
        let id = tx
            .int(
                "INSERT INTO users (username, name, email, is_admin, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
                args![username, name, email, is_admin, now_ms()],
            )
            .await
            .map_err(|e| match e {
                StoreError::Db(e) => StoreError::on_unique(e, "username or email has already been taken"),
                other => other,
            })?;
        tx.notify(Change::Access).await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn by_username(&self, username: &str) -> StoreResult<UserRecord> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.username = $1");
        on_read!(self.db, pool => {
            let row = sqlx::query(&sql).bind(username).fetch_optional(pool).await?;
            row.as_ref().map(user_from_row).transpose()?.flatten().ok_or(StoreError::NotFound)
        })
    }

    /// The active user owning an unrevoked token, if any.
    pub async fn by_token(&self, token: &str) -> StoreResult<Option<UserRecord>> {
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM personal_access_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_hash = $1 AND NOT t.revoked AND u.state = 'active'"
        );
        let hash = hash_secret(token);
        on_read!(self.db, pool => {
            let row = sqlx::query(&sql).bind(&hash).fetch_optional(pool).await?;
            Ok(row.as_ref().map(user_from_row).transpose()?.flatten())
        })
    }

    /// Makes a personal access token for the user and returns it; only its hash is kept.
    pub async fn create_token(&self, user_id: i64, name: &str) -> StoreResult<String> {
        let token = new_secret();
        let mut tx = self.db.begin(self.feed).await?;
        tx.execute(
            "INSERT INTO personal_access_tokens (user_id, token_hash, name, created_at) VALUES ($1, $2, $3, $4)",
            args![user_id, hash_secret(&token).as_str(), name, now_ms()],
        )
        .await?;
        tx.notify(Change::Access).await?;
        tx.commit().await?;
        Ok(token)
    }

    /// Revokes a personal access token; every server refuses it from then on. Returns
    /// whether it was a live token.
    pub async fn revoke_token(&self, token: &str) -> StoreResult<bool> {
        let mut tx = self.db.begin(self.feed).await?;
        let revoked = tx
            .execute(
                "UPDATE personal_access_tokens SET revoked = TRUE WHERE token_hash = $1 AND NOT revoked",
                args![hash_secret(token).as_str()],
            )
            .await?;
        tx.notify(Change::Access).await?;
        tx.commit().await?;
        Ok(revoked == 1)
    }
}

impl Users<'_> {
    pub async fn get(&self, id: i64) -> StoreResult<UserRecord> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1");
        let row = self.db.read_optional(&sql, args![id]).await?;
        row.as_ref()
            .map(user_from_row)
            .transpose()?
            .flatten()
            .ok_or(StoreError::NotFound)
    }

    /// Users by id, or the one of `username` when given.
    pub async fn list(
        &self,
        username: Option<&str>,
        page: kiln_core::PageRequest,
    ) -> StoreResult<Vec<UserRecord>> {
        let rows = match username {
            Some(name) => {
                let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.username = $1");
                self.db.read_all(&sql, args![name]).await?
            }
            None => {
                let sql =
                    format!("SELECT {USER_COLUMNS} FROM users u ORDER BY u.id LIMIT $1 OFFSET $2");
                let (limit, offset) = (page.per_page as i64, page.offset() as i64);
                self.db.read_all(&sql, args![limit, offset]).await?
            }
        };
        let mut users = Vec::with_capacity(rows.len());
        for row in &rows {
            users.extend(user_from_row(row)?);
        }
        Ok(users)
    }
}
