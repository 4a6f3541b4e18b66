//! Fresh databases for tests and benchmarks: a temporary SQLite file by default, or, when
//! `KILN_TEST_DATABASE_URL` names a PostgreSQL server, a new database on it that is dropped
//! when the `TestDatabase` goes away.

use kiln_store::{Store, StoreResult};
use sqlx::Connection;

pub struct TestDatabase {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
}

impl TestDatabase {
    pub async fn new() -> TestDatabase {
        match std::env::var("KILN_TEST_DATABASE_URL") {
            Ok(admin) if admin.starts_with("postgres") => Self::with_postgres(&admin)
                .await
                .expect("create a database on KILN_TEST_DATABASE_URL"),
            _ => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = dir.path().join("kiln.db").to_string_lossy().into_owned();
                TestDatabase {
                    url,
                    _dir: Some(dir),
                    postgres: None,
                }
            }
        }
    }

    /// A fresh database on the PostgreSQL server of `admin`, dropped with the value.
    pub async fn with_postgres(admin: &str) -> StoreResult<TestDatabase> {
        let name = format!("kiln_test_{}", kiln_store::new_secret().to_lowercase());
        let mut conn = sqlx::PgConnection::connect(admin).await?;
        sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await?;
        let _ = conn.close().await;
        let (base, query) = admin.split_once('?').unwrap_or((admin, ""));
        let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
        let url = if query.is_empty() {
            format!("{server}/{name}")
        } else {
            format!("{server}/{name}?{query}")
        };
        Ok(TestDatabase {
            url,
            _dir: None,
            postgres: Some((admin.to_owned(), name)),
        })
    }

    pub async fn open(&self) -> StoreResult<Store> {
        Store::open(&self.url).await
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((admin, name)) = self.postgres.take() else {
            return;
        };
        // Drop may run inside or outside a runtime; a short-lived thread with its own runtime
        // can always block on the cleanup.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&admin).await.ok()?;
                sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .ok()?;
                conn.close().await.ok()
            })
        })
        .join();
    }
}
