//! Kiln's store: one interface, namespaced by aggregate (`store.builds()`, `store.projects()` …),
//! over two backends. The SQL is written once with `$N` placeholders, which both SQLite and
//! PostgreSQL accept (`db`); what differs is in `dialect`. Every write transaction announces
//! what it changed on the change feed (`changes`). Errors are `StoreError`; timestamps are
//! milliseconds since the Unix epoch, UTC.

pub mod changes;
mod db;
mod dialect;
pub mod generate;
mod migrate;
mod row;
pub mod versions;

pub mod artifacts;
pub mod bridges;
pub mod build_lists;
mod build_rows;
pub mod builds;
pub mod commit_statuses;
pub mod gauges;
pub mod hooks;
pub mod leases;
pub mod pipeline_actions;
pub mod pipeline_lists;
pub mod pipelines;
pub mod projects;
pub mod protected_branches;
pub mod queue;
pub mod runners;
pub mod schedules;
pub mod sessions;
pub mod traces;
pub mod triggers;
pub mod users;
pub mod variables;

pub use artifacts::{ArchiveLocation, PipelineArchive, PipelineDotenv};
pub use bridges::PendingBridge;
pub use build_lists::{BuildFilter, BuildSlice, Window};
pub use builds::{
    BuildRecord, BuildsPage, CommitRecord, NewBuild, PipelineSummary, RunnerSummary,
    TransitionFailure,
};
pub use changes::{Change, ChangeFeed};
pub use commit_statuses::{ReportFailure, StatusReport};
pub use db::Db;
pub use gauges::Gauges;
pub use hooks::{Attempt, DeliveryRecord, DueDelivery, HookEvent, HookRecord, HookSettings};
pub use pipeline_lists::{PipelineFilter, PipelineOrder, PipelineScope};
pub use pipelines::{NewPipeline, PipelineRecord, Upstream};
pub use projects::{MemberRecord, ProjectAccess, ProjectFilter, ProjectRecord, ProjectRef};
pub use protected_branches::{BranchAccess, ProtectedBranchRecord};
pub use queue::{Claimed, Finish, Finished, Holder, JobTokenOwner};
pub use runners::{NewRunner, RunnerInfo, RunnerRecord, RunnerScope, RunnerUpdate};
pub use schedules::{ScheduleRecord, ScheduleSettings, ScheduleVariable};
pub use sessions::{Failures, SessionRecord};
pub use traces::Appended;
pub use traces::TraceWindow;
pub use triggers::TriggerRecord;
pub use users::UserRecord;
pub use variables::VariableRecord;

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
    /// The caller does not hold this build running (another runner does, or it is no longer
    /// running: the status it has now).
    #[error("the build is not held by this runner (it is {0})")]
    NotHeld(kiln_core::BuildStatus),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl StoreError {
    /// Text the database refused to store: a NUL byte, or bytes PostgreSQL cannot encode
    /// (SQLSTATE 22021, 22P05). It came from input, so the caller answers 400.
    pub fn is_invalid_text(&self) -> bool {
        match self {
            StoreError::Db(sqlx::Error::Database(db)) => {
                matches!(db.code().as_deref(), Some("22021" | "22P05"))
            }
            _ => false,
        }
    }

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
    feed: std::sync::Arc<ChangeFeed>,
}

impl Store {
    /// Connects to `url` (`postgres://…`, or a SQLite file path / `sqlite://path`), migrates,
    /// and on PostgreSQL starts following the other servers' changes.
    pub async fn open(url: &str) -> StoreResult<Store> {
        let db = Db::connect(url).await?;
        migrate::run(&db).await?;
        let feed = std::sync::Arc::new(ChangeFeed::default());
        if let Db::Postgres(pool) = &db {
            changes::listen_postgres(pool.clone(), feed.clone());
        }
        Ok(Store { db, feed })
    }

    pub fn backend_name(&self) -> &'static str {
        self.db.backend_name()
    }

    pub fn users(&self) -> users::Users<'_> {
        users::Users {
            db: &self.db,
            feed: &self.feed,
        }
    }
    pub fn projects(&self) -> projects::Projects<'_> {
        projects::Projects {
            db: &self.db,
            feed: &self.feed,
        }
    }
    pub fn pipelines(&self) -> pipelines::Pipelines<'_> {
        pipelines::Pipelines {
            db: &self.db,
            feed: &self.feed,
        }
    }
    pub fn builds(&self) -> builds::Builds<'_> {
        builds::Builds {
            db: &self.db,
            feed: &self.feed,
        }
    }
    pub fn runners(&self) -> runners::Runners<'_> {
        runners::Runners {
            db: &self.db,
            feed: &self.feed,
        }
    }

    pub fn sessions(&self) -> sessions::Sessions<'_> {
        sessions::Sessions {
            db: &self.db,
            feed: &self.feed,
        }
    }

    pub fn triggers(&self) -> triggers::Triggers<'_> {
        triggers::Triggers {
            db: &self.db,
            feed: &self.feed,
        }
    }

    pub fn variables(&self) -> variables::Variables<'_> {
        variables::Variables {
            db: &self.db,
            feed: &self.feed,
        }
    }

    pub fn protected_branches(&self) -> protected_branches::ProtectedBranches<'_> {
        protected_branches::ProtectedBranches {
            db: &self.db,
            feed: &self.feed,
        }
    }

    pub fn schedules(&self) -> schedules::Schedules<'_> {
        schedules::Schedules {
            db: &self.db,
            feed: &self.feed,
        }
    }

    pub fn hooks(&self) -> hooks::Hooks<'_> {
        hooks::Hooks {
            db: &self.db,
            feed: &self.feed,
        }
    }

    pub fn leases(&self) -> leases::Leases<'_> {
        leases::Leases {
            db: &self.db,
            feed: &self.feed,
        }
    }

    /// Change counters for caches of this process, moved by every change of the cluster.
    pub fn versions(&self) -> &versions::Versions {
        self.feed.versions()
    }

    /// The change feed: every change committed by any server sharing the database.
    pub fn feed(&self) -> &ChangeFeed {
        &self.feed
    }

    pub async fn close(&self) {
        self.db.close().await
    }

    /// The migrations this Kiln has that the database has not (0 when ready); an error
    /// when the database cannot be reached.
    pub async fn pending_migrations(&self) -> StoreResult<usize> {
        migrate::pending(&self.db).await
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
