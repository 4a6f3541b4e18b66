//! Numbered migrations, one folder per backend with the same numbers, applied in order at start.

use crate::db::{on_write, Db};
use crate::StoreResult;

struct Migration {
    version: i64,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sqlite: include_str!("../migrations/sqlite/0001_init.sql"),
        postgres: include_str!("../migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        sqlite: include_str!("../migrations/sqlite/0002_running_builds.sql"),
        postgres: include_str!("../migrations/postgres/0002_running_builds.sql"),
    },
    Migration {
        version: 3,
        sqlite: include_str!("../migrations/sqlite/0003_cluster.sql"),
        postgres: include_str!("../migrations/postgres/0003_cluster.sql"),
    },
    Migration {
        version: 4,
        sqlite: include_str!("../migrations/sqlite/0004_runners.sql"),
        postgres: include_str!("../migrations/postgres/0004_runners.sql"),
    },
    Migration {
        version: 5,
        sqlite: include_str!("../migrations/sqlite/0005_api_v4.sql"),
        postgres: include_str!("../migrations/postgres/0005_api_v4.sql"),
    },
    Migration {
        version: 6,
        sqlite: include_str!("../migrations/sqlite/0006_variables.sql"),
        postgres: include_str!("../migrations/postgres/0006_variables.sql"),
    },
    Migration {
        version: 7,
        sqlite: include_str!("../migrations/sqlite/0007_triggers.sql"),
        postgres: include_str!("../migrations/postgres/0007_triggers.sql"),
    },
    Migration {
        version: 8,
        sqlite: include_str!("../migrations/sqlite/0008_protected_external.sql"),
        postgres: include_str!("../migrations/postgres/0008_protected_external.sql"),
    },
    Migration {
        version: 9,
        sqlite: include_str!("../migrations/sqlite/0009_dotenv.sql"),
        postgres: include_str!("../migrations/postgres/0009_dotenv.sql"),
    },
    Migration {
        version: 10,
        sqlite: include_str!("../migrations/sqlite/0010_bridges.sql"),
        postgres: include_str!("../migrations/postgres/0010_bridges.sql"),
    },
    Migration {
        version: 11,
        sqlite: include_str!("../migrations/sqlite/0011_web_sign_in.sql"),
        postgres: include_str!("../migrations/postgres/0011_web_sign_in.sql"),
    },
    Migration {
        version: 12,
        sqlite: include_str!("../migrations/sqlite/0012_trace_lines.sql"),
        postgres: include_str!("../migrations/postgres/0012_trace_lines.sql"),
    },
    Migration {
        version: 13,
        sqlite: include_str!("../migrations/sqlite/0013_webhooks.sql"),
        postgres: include_str!("../migrations/postgres/0013_webhooks.sql"),
    },
    Migration {
        version: 14,
        sqlite: include_str!("../migrations/sqlite/0014_push_and_schedules.sql"),
        postgres: include_str!("../migrations/postgres/0014_push_and_schedules.sql"),
    },
];

/// How many of this Kiln's migrations the database has not had (a query, so it also says
/// whether the database answers).
pub async fn pending(db: &Db) -> StoreResult<usize> {
    let newest = MIGRATIONS.last().map_or(0, |m| m.version);
    let applied = db
        .read_int(
            "SELECT COUNT(*) FROM kiln_migrations WHERE version <= $1",
            &[crate::db::Arg::from(newest)],
        )
        .await?;
    Ok(MIGRATIONS.len().saturating_sub(applied.max(0) as usize))
}

/// The advisory lock servers starting together queue on, so each migration is applied once.
const MIGRATION_LOCK: i64 = 0x006b_696c_6e6d_6967; // "kilnmig"

/// Applies the migrations not yet applied. On PostgreSQL one connection holds an advisory
/// lock meanwhile, so servers starting together queue and each migration is applied once;
/// SQLite's single writer connection serialises the migrations of one process.
pub async fn run(db: &Db) -> StoreResult<()> {
    let Db::Postgres(pool) = db else {
        return apply(db).await;
    };
    let mut lock = pool.acquire().await?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *lock)
        .await?;
    let applied = apply(db).await;
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *lock)
        .await?;
    applied
}

async fn apply(db: &Db) -> StoreResult<()> {
    on_write!(db, pool => {
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS kiln_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .execute(pool)
        .await?;
        for migration in MIGRATIONS {
            let mut tx = pool.begin().await?;
            let done: Option<i64> = sqlx::query_scalar("SELECT version FROM kiln_migrations WHERE version = $1")
                .bind(migration.version)
                .fetch_optional(&mut *tx)
                .await?;
            if done.is_some() {
                continue;
            }
            let sql = match db {
                Db::Sqlite { .. } => migration.sqlite,
                Db::Postgres(_) => migration.postgres,
            };
            sqlx::raw_sql(sql).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO kiln_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(migration.version)
                .bind(crate::now_ms())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            tracing::info!(version = migration.version, "applied migration");
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn both_backends_have_the_same_migration_files() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
        let stems = |backend: &str| {
            let mut names: Vec<String> = std::fs::read_dir(format!("{dir}/{backend}"))
                .expect("migrations folder")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        assert_eq!(stems("sqlite"), stems("postgres"));
        assert_eq!(stems("sqlite").len(), super::MIGRATIONS.len());
    }
}
