//! The two connection pools, and one way to run SQL on either: `Arg` values bound in order,
//! `Row`s read with `KilnRow`, and `Tx`, a transaction on whichever backend is in use that
//! also carries the transaction's changes to the feed. SQL is written once with `$N`
//! placeholders, which both backends accept. Backend differences live in `dialect`.

use crate::changes::{Change, ChangeFeed, CHANNEL};
use crate::row::KilnRow;
use crate::{StoreError, StoreResult};
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow, Postgres};
use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::Row as _;
use std::str::FromStr;
use std::time::Duration;

#[derive(Clone, Debug)]
pub enum Db {
    /// SQLite allows one writer at a time; giving writes their own single connection turns
    /// lock contention (SQLITE_BUSY) into an orderly queue, while reads use the others.
    Sqlite {
        read: SqlitePool,
        write: SqlitePool,
    },
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the pool for reads.
macro_rules! on_read {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite { read: $pool, .. } => $body,
            $crate::db::Db::Postgres($pool) => $body,
        }
    };
}

/// Runs `$body` with `$pool` bound to the pool for writes.
macro_rules! on_write {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite { write: $pool, .. } => $body,
            $crate::db::Db::Postgres($pool) => $body,
        }
    };
}

pub(crate) use {on_read, on_write};

/// One bound parameter.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arg<'a> {
    Int(Option<i64>),
    Float(Option<f64>),
    Bool(bool),
    Text(Option<&'a str>),
    Bytes(&'a [u8]),
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}
impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}
impl From<Option<f64>> for Arg<'_> {
    fn from(v: Option<f64>) -> Self {
        Arg::Float(v)
    }
}
impl From<bool> for Arg<'_> {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}
impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(Some(v))
    }
}
impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Text(Some(v))
    }
}
impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Arg::Text(v)
    }
}
impl<'a> From<&'a Option<String>> for Arg<'a> {
    fn from(v: &'a Option<String>) -> Self {
        Arg::Text(v.as_deref())
    }
}
impl<'a> From<&'a [u8]> for Arg<'a> {
    fn from(v: &'a [u8]) -> Self {
        Arg::Bytes(v)
    }
}

/// `[a.into(), b.into(), …]` for a parameter list.
macro_rules! args {
    ($($arg:expr),* $(,)?) => {
        &[$($crate::db::Arg::from($arg)),*][..]
    };
}
pub(crate) use args;

type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>;
type PgQuery<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

fn sqlite_query<'q>(sql: &'q str, args: &[Arg<'q>]) -> SqliteQuery<'q> {
    let mut query = sqlx::query(sql);
    for arg in args {
        query = match *arg {
            Arg::Int(v) => query.bind(v),
            Arg::Float(v) => query.bind(v),
            Arg::Bool(v) => query.bind(v),
            Arg::Text(v) => query.bind(v),
            Arg::Bytes(v) => query.bind(v),
        };
    }
    query
}

fn pg_query<'q>(sql: &'q str, args: &[Arg<'q>]) -> PgQuery<'q> {
    let mut query = sqlx::query(sql);
    for arg in args {
        query = match *arg {
            Arg::Int(v) => query.bind(v),
            Arg::Float(v) => query.bind(v),
            Arg::Bool(v) => query.bind(v),
            Arg::Text(v) => query.bind(v),
            Arg::Bytes(v) => query.bind(v),
        };
    }
    query
}

/// A row of either backend.
pub(crate) enum Row {
    Sqlite(SqliteRow),
    Postgres(PgRow),
}

impl Row {
    /// The first column as an integer (`RETURNING id`, `COUNT(*)`).
    pub(crate) fn first_int(&self) -> Result<i64, sqlx::Error> {
        match self {
            Row::Sqlite(row) => row.try_get(0),
            Row::Postgres(row) => row.try_get(0),
        }
    }

    pub(crate) fn bytes(&self, col: &str) -> Result<Vec<u8>, sqlx::Error> {
        match self {
            Row::Sqlite(row) => row.try_get(col),
            Row::Postgres(row) => row.try_get(col),
        }
    }
}

impl KilnRow for Row {
    fn int(&self, col: &str) -> Result<i64, sqlx::Error> {
        match self {
            Row::Sqlite(row) => row.int(col),
            Row::Postgres(row) => row.int(col),
        }
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error> {
        match self {
            Row::Sqlite(row) => row.opt_int(col),
            Row::Postgres(row) => row.opt_int(col),
        }
    }
    fn text(&self, col: &str) -> Result<String, sqlx::Error> {
        match self {
            Row::Sqlite(row) => row.text(col),
            Row::Postgres(row) => row.text(col),
        }
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error> {
        match self {
            Row::Sqlite(row) => row.opt_text(col),
            Row::Postgres(row) => row.opt_text(col),
        }
    }
    fn flag(&self, col: &str) -> Result<bool, sqlx::Error> {
        match self {
            Row::Sqlite(row) => row.flag(col),
            Row::Postgres(row) => row.flag(col),
        }
    }
    fn opt_float(&self, col: &str) -> Result<Option<f64>, sqlx::Error> {
        match self {
            Row::Sqlite(row) => row.opt_float(col),
            Row::Postgres(row) => row.opt_float(col),
        }
    }
}

enum Conn {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

/// A write transaction. Its changes reach the feed when it commits, and only then.
pub(crate) struct Tx<'f> {
    conn: Conn,
    feed: &'f ChangeFeed,
    changes: Vec<Change>,
}

impl Tx<'_> {
    pub(crate) async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> StoreResult<u64> {
        Ok(match &mut self.conn {
            Conn::Sqlite(tx) => sqlite_query(sql, args)
                .execute(&mut **tx)
                .await?
                .rows_affected(),
            Conn::Postgres(tx) => pg_query(sql, args)
                .execute(&mut **tx)
                .await?
                .rows_affected(),
        })
    }

    pub(crate) async fn fetch_all(&mut self, sql: &str, args: &[Arg<'_>]) -> StoreResult<Vec<Row>> {
        Ok(match &mut self.conn {
            Conn::Sqlite(tx) => sqlite_query(sql, args)
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .map(Row::Sqlite)
                .collect(),
            Conn::Postgres(tx) => pg_query(sql, args)
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .map(Row::Postgres)
                .collect(),
        })
    }

    pub(crate) async fn fetch_optional(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> StoreResult<Option<Row>> {
        Ok(match &mut self.conn {
            Conn::Sqlite(tx) => sqlite_query(sql, args)
                .fetch_optional(&mut **tx)
                .await?
                .map(Row::Sqlite),
            Conn::Postgres(tx) => pg_query(sql, args)
                .fetch_optional(&mut **tx)
                .await?
                .map(Row::Postgres),
        })
    }

    pub(crate) async fn fetch_one(&mut self, sql: &str, args: &[Arg<'_>]) -> StoreResult<Row> {
        self.fetch_optional(sql, args)
            .await?
            .ok_or(StoreError::NotFound)
    }

    /// The first column of the one row `sql` returns, as an integer.
    pub(crate) async fn int(&mut self, sql: &str, args: &[Arg<'_>]) -> StoreResult<i64> {
        Ok(self.fetch_one(sql, args).await?.first_int()?)
    }

    /// Announces `change` when (and only if) this transaction commits.
    pub(crate) async fn notify(&mut self, change: Change) -> StoreResult<()> {
        if self.changes.contains(&change) {
            return Ok(());
        }
        if let Conn::Postgres(tx) = &mut self.conn {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(change.encode())
                .execute(&mut **tx)
                .await?;
        }
        self.changes.push(change);
        Ok(())
    }

    pub(crate) fn is_postgres(&self) -> bool {
        matches!(self.conn, Conn::Postgres(_))
    }

    pub(crate) async fn commit(self) -> StoreResult<()> {
        match self.conn {
            Conn::Sqlite(tx) => tx.commit().await?,
            Conn::Postgres(tx) => tx.commit().await?,
        }
        self.feed.publish(&self.changes);
        Ok(())
    }
}

impl Db {
    pub async fn connect(url: &str) -> StoreResult<Db> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await?;
            return Ok(Db::Postgres(pool));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        if path.is_empty() {
            return Err(StoreError::BadUrl(url.to_owned()));
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
            .map_err(|_| StoreError::BadUrl(url.to_owned()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            .pragma("cache_size", "-4000");
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        let readers = std::thread::available_parallelism().map_or(2, |n| n.get()) as u32 * 2;
        let read = SqlitePoolOptions::new()
            .max_connections(readers.max(4))
            .connect_with(options.read_only(true))
            .await?;
        Ok(Db::Sqlite { read, write })
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Db::Sqlite { .. } => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    pub(crate) fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres(_))
    }

    /// A write transaction whose changes go to `feed` at commit.
    pub(crate) async fn begin<'f>(&self, feed: &'f ChangeFeed) -> StoreResult<Tx<'f>> {
        let conn = match self {
            Db::Sqlite { write, .. } => Conn::Sqlite(write.begin().await?),
            Db::Postgres(pool) => Conn::Postgres(pool.begin().await?),
        };
        Ok(Tx {
            conn,
            feed,
            changes: Vec::new(),
        })
    }

    pub(crate) async fn read_all(&self, sql: &str, args: &[Arg<'_>]) -> StoreResult<Vec<Row>> {
        Ok(match self {
            Db::Sqlite { read, .. } => sqlite_query(sql, args)
                .fetch_all(read)
                .await?
                .into_iter()
                .map(Row::Sqlite)
                .collect(),
            Db::Postgres(pool) => pg_query(sql, args)
                .fetch_all(pool)
                .await?
                .into_iter()
                .map(Row::Postgres)
                .collect(),
        })
    }

    pub(crate) async fn read_optional(
        &self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> StoreResult<Option<Row>> {
        Ok(match self {
            Db::Sqlite { read, .. } => sqlite_query(sql, args)
                .fetch_optional(read)
                .await?
                .map(Row::Sqlite),
            Db::Postgres(pool) => pg_query(sql, args)
                .fetch_optional(pool)
                .await?
                .map(Row::Postgres),
        })
    }

    /// The first column of the one row `sql` returns, as an integer.
    pub(crate) async fn read_int(&self, sql: &str, args: &[Arg<'_>]) -> StoreResult<i64> {
        self.read_optional(sql, args)
            .await?
            .ok_or(StoreError::NotFound)?
            .first_int()
            .map_err(StoreError::from)
    }

    pub async fn close(&self) {
        match self {
            Db::Sqlite { read, write } => {
                read.close().await;
                write.close().await;
            }
            Db::Postgres(pool) => pool.close().await,
        }
    }
}
