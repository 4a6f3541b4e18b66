//! Kiln's store: one interface, namespaced by aggregate (`store.builds()`, `store.projects()` …),
//! over two backends. The SQL is written once with `$N` placeholders, which both SQLite and
//! PostgreSQL accept; `on_read!`/`on_write!` run the same code on whichever pool is in use.
//! Errors are `StoreError`; timestamps are milliseconds since the Unix epoch, UTC.

mod db;
pub mod generate;
mod migrate;
mod row;
pub mod testing;
pub mod versions;

pub mod builds;
pub mod lifecycle;
pub mod pipelines;
pub mod projects;
pub mod runners;
pub mod triggers;
pub mod users;

pub use builds::{BuildRecord, BuildsPage, CommitRecord, NewBuild, RunnerSummary};
pub use db::Db;
pub use lifecycle::{Claimed, Finish, PipelineRecord};
pub use pipelines::NewPipeline;
pub use projects::{ProjectAccess, ProjectRecord, ProjectRef};
pub use users::UserRecord;

use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness or state conflict, with a message fit for the caller.
    #[error("{0}")]
    Conflict(String),
    #[error("invalid database url: {0}")]
    BadUrl(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl StoreError {
    /// Maps a unique-constraint violation to `Conflict(message)`, keeping other errors.
    pub(crate) fn on_unique(err: sqlx::Error, message: impl Into<String>) -> StoreError {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(message.into())
            }
            _ => StoreError::Db(err),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The handle every part of Kiln holds; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
    versions: std::sync::Arc<versions::Versions>,
}

impl Store {
    /// Connects to `url` (`postgres://…`, or a SQLite file path / `sqlite://path`) and migrates.
    pub async fn open(url: &str) -> StoreResult<Store> {
        let db = Db::connect(url).await?;
        migrate::run(&db).await?;
        Ok(Store {
            db,
            versions: Default::default(),
        })
    }

    pub fn backend_name(&self) -> &'static str {
        self.db.backend_name()
    }

    pub fn users(&self) -> users::Users<'_> {
        users::Users {
            db: &self.db,
            versions: &self.versions,
        }
    }
    pub fn projects(&self) -> projects::Projects<'_> {
        projects::Projects {
            db: &self.db,
            versions: &self.versions,
        }
    }
    pub fn pipelines(&self) -> pipelines::Pipelines<'_> {
        pipelines::Pipelines {
            db: &self.db,
            versions: &self.versions,
        }
    }
    pub fn builds(&self) -> builds::Builds<'_> {
        builds::Builds {
            db: &self.db,
            versions: &self.versions,
        }
    }
    pub fn runners(&self) -> runners::Runners<'_> {
        runners::Runners {
            db: &self.db,
            versions: &self.versions,
        }
    }

    pub fn triggers(&self) -> triggers::Triggers<'_> {
        triggers::Triggers { db: &self.db }
    }

    /// Change counters for caches of this process.
    pub fn versions(&self) -> &versions::Versions {
        &self.versions
    }

    pub async fn close(&self) {
        self.db.close().await
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A new random secret of GitLab's personal-token shape (20 alphanumerics).
pub fn new_secret() -> String {
    use rand::distributions::{Alphanumeric, DistString};
    Alphanumeric.sample_string(&mut rand::thread_rng(), 20)
}

/// Secrets are stored only as their SHA-256. They are random and long, so a fast hash is enough.
pub fn hash_secret(secret: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(secret.as_bytes()))
}
