//! Artifacts archives: which build has one, where it lives (`backend` and `file`, a key the
//! artifact store understands), its size and expiry; and, for the database backend, the
//! archive's bytes in numbered chunks.

use crate::builds::Builds;
use crate::changes::Change;
use crate::db::args;
use crate::row::KilnRow;
use crate::{now_ms, StoreError, StoreResult};

/// Where one archive is: the artifact store's backend name and its key there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveLocation {
    /// None: stored by an older Kiln as an absolute path.
    pub backend: Option<String>,
    pub file: String,
}

/// A build's dotenv variables as its pipeline's later jobs see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineDotenv {
    pub build_id: i64,
    pub name: String,
    pub stage_idx: i64,
    pub variables: Vec<(String, String)>,
}

/// An archive a later build of the pipeline may download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineArchive {
    pub build_id: i64,
    pub name: String,
    pub stage_idx: i64,
    /// The archive's size in bytes.
    pub size: Option<i64>,
}

impl Builds<'_> {
    /// Records the build's artifacts archive and its expiry.
    pub async fn set_artifacts(
        &self,
        project_id: i64,
        build_id: i64,
        location: &ArchiveLocation,
        size: i64,
        expire_at: Option<i64>,
    ) -> StoreResult<()> {
        let mut tx = self.db.begin(self.feed).await?;
        tx.execute(
            "UPDATE builds SET artifacts_backend = $1, artifacts_file = $2, artifacts_size = $3, \
             artifacts_expire_at = $4 WHERE id = $5",
            args![
                location.backend.as_deref(),
                &location.file,
                size,
                expire_at,
                build_id
            ],
        )
        .await?;
        tx.notify(Change::Builds(project_id)).await?;
        tx.commit().await
    }

    /// Forgets artifacts (and with `erased_by`, erases the build: its trace too, by that
    /// user). The caller removes the archive from the artifact store. Returns false when
    /// another request erased it first.
    pub async fn clear_artifacts(
        &self,
        project_id: i64,
        build_id: i64,
        erased_by: Option<i64>,
    ) -> StoreResult<bool> {
        let mut tx = self.db.begin(self.feed).await?;
        if let Some(user) = erased_by {
            let erased = tx
                .execute(
                    "UPDATE builds SET erased_at = $1, erased_by = $2, trace_size = 0 \
                     WHERE id = $3 AND erased_at IS NULL",
                    args![now_ms(), user, build_id],
                )
                .await?;
            if erased == 0 {
                return Ok(false);
            }
            tx.execute(
                "DELETE FROM trace_parts WHERE build_id = $1",
                args![build_id],
            )
            .await?;
        }
        tx.execute(
            "UPDATE builds SET artifacts_backend = NULL, artifacts_file = NULL, artifacts_size = NULL, \
             artifacts_expire_at = NULL WHERE id = $1",
            args![build_id],
        )
        .await?;
        tx.notify(Change::Builds(project_id)).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Keeps the artifacts forever (GitLab's `artifacts/keep`).
    pub async fn keep_artifacts(&self, project_id: i64, build_id: i64) -> StoreResult<()> {
        let mut tx = self.db.begin(self.feed).await?;
        tx.execute(
            "UPDATE builds SET artifacts_expire_at = NULL WHERE id = $1",
            args![build_id],
        )
        .await?;
        tx.notify(Change::Builds(project_id)).await?;
        tx.commit().await
    }

    /// Builds whose artifacts expired before `now`: (project id, build id, location).
    pub async fn expired_artifacts(
        &self,
        now: i64,
    ) -> StoreResult<Vec<(i64, i64, ArchiveLocation)>> {
        let rows = self
            .db
            .read_all(
                "SELECT project_id, id, artifacts_backend, artifacts_file FROM builds \
                 WHERE artifacts_expire_at < $1 AND artifacts_file IS NOT NULL",
                args![now],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let location = ArchiveLocation {
                    backend: r.opt_text("artifacts_backend")?,
                    file: r.text("artifacts_file")?,
                };
                Ok((r.int("project_id")?, r.int("id")?, location))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// The current (not retried, not erased) builds of a pipeline that have artifacts.
    pub async fn pipeline_artifacts(&self, pipeline_id: i64) -> StoreResult<Vec<PipelineArchive>> {
        let rows = self
            .db
            .read_all(
                "SELECT id, name, stage_idx, artifacts_size FROM builds WHERE pipeline_id = $1 AND NOT retried \
                 AND artifacts_file IS NOT NULL AND erased_at IS NULL ORDER BY id",
                args![pipeline_id],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(PipelineArchive {
                    build_id: r.int("id")?,
                    name: r.text("name")?,
                    stage_idx: r.int("stage_idx")?,
                    size: r.opt_int("artifacts_size")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Stores the variables of the build's dotenv report (replacing any earlier ones).
    pub async fn set_dotenv(
        &self,
        build_id: i64,
        variables: &[(String, String)],
    ) -> StoreResult<()> {
        let json = serde_json::to_string(variables).unwrap_or_else(|_| "[]".into());
        let mut tx = self.db.begin(self.feed).await?;
        tx.execute(
            "UPDATE builds SET dotenv = $1 WHERE id = $2",
            args![json.as_str(), build_id],
        )
        .await?;
        tx.commit().await
    }

    /// The dotenv variables of the pipeline's current builds that have some, by build.
    pub async fn pipeline_dotenv(&self, pipeline_id: i64) -> StoreResult<Vec<PipelineDotenv>> {
        let rows = self
            .db
            .read_all(
                "SELECT id, name, stage_idx, dotenv FROM builds WHERE pipeline_id = $1 \
                 AND NOT retried AND dotenv IS NOT NULL ORDER BY id",
                args![pipeline_id],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let text = r.text("dotenv")?;
                Ok(PipelineDotenv {
                    build_id: r.int("id")?,
                    name: r.text("name")?,
                    stage_idx: r.int("stage_idx")?,
                    variables: serde_json::from_str(&text).unwrap_or_default(),
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// The build named `name` of the newest successful pipeline on `ref_name` (GitLab's
    /// artifacts download by ref).
    pub async fn latest_successful(
        &self,
        project_id: i64,
        ref_name: &str,
        name: &str,
    ) -> StoreResult<i64> {
        // GitLab's `latest_successful_builds_for(ref)`: the newest successful pipeline of the
        // ref, its current build of that name with artifacts.
        let row = self
            .db
            .read_optional(
                "SELECT id FROM builds WHERE pipeline_id = (SELECT id FROM pipelines \
                 WHERE project_id = $1 AND ref = $2 AND status = 'success' \
                 AND upstream_build_id IS NULL ORDER BY id DESC LIMIT 1) \
                 AND name = $3 AND NOT retried AND artifacts_file IS NOT NULL ORDER BY id DESC LIMIT 1",
                args![project_id, ref_name, name],
            )
            .await?;
        Ok(row.ok_or(StoreError::NotFound)?.first_int()?)
    }

    /// Stores chunk `seq` of a build's archive kept in the database.
    pub async fn put_archive_chunk(&self, build_id: i64, seq: i64, data: &[u8]) -> StoreResult<()> {
        let mut tx = self.db.begin(self.feed).await?;
        tx.execute(
            "INSERT INTO artifact_chunks (build_id, seq, data) VALUES ($1, $2, $3)",
            args![build_id, seq, data],
        )
        .await?;
        tx.commit().await
    }

    /// Removes a build's archive kept in the database.
    pub async fn delete_archive_chunks(&self, build_id: i64) -> StoreResult<()> {
        let mut tx = self.db.begin(self.feed).await?;
        tx.execute(
            "DELETE FROM artifact_chunks WHERE build_id = $1",
            args![build_id],
        )
        .await?;
        tx.commit().await
    }

    /// Chunk `seq` of a build's archive kept in the database, if there is one.
    pub async fn archive_chunk(&self, build_id: i64, seq: i64) -> StoreResult<Option<Vec<u8>>> {
        let row = self
            .db
            .read_optional(
                "SELECT data FROM artifact_chunks WHERE build_id = $1 AND seq = $2",
                args![build_id, seq],
            )
            .await?;
        Ok(row.map(|r| r.bytes("data")).transpose()?)
    }
}
