//! Protected branches: names or `*` patterns whose pipelines are protected (GitLab's
//! `ProtectedBranch`). Whether a ref is protected is decided when its pipeline is made and kept
//! on the pipeline and its builds, as GitLab keeps `ci_builds.protected`.

use crate::changes::{Change, ChangeFeed};
use crate::db::{args, Db, Row, Tx};
use crate::row::KilnRow;
use crate::{now_ms, StoreError, StoreResult};

#[derive(Debug, Clone, PartialEq)]
pub struct ProtectedBranchRecord {
    pub id: i64,
    pub project_id: i64,
    /// A branch name, or a pattern where `*` stands for any characters (`release/*`).
    pub name: String,
    pub access: BranchAccess,
    pub created_at: i64,
}

/// Who may do what on a protected branch, as GitLab's access levels (0 no one, 30 developers,
/// 40 maintainers, 60 admins).
#[derive(Debug, Clone, PartialEq)]
pub struct BranchAccess {
    pub push_access_level: i64,
    pub merge_access_level: i64,
    pub unprotect_access_level: i64,
    pub allow_force_push: bool,
    pub code_owner_approval_required: bool,
}

impl Default for BranchAccess {
    fn default() -> BranchAccess {
        BranchAccess {
            push_access_level: 40,
            merge_access_level: 40,
            unprotect_access_level: 40,
            allow_force_push: false,
            code_owner_approval_required: false,
        }
    }
}

const COLUMNS: &str = "id, project_id, name, push_access_level, merge_access_level, \
    unprotect_access_level, allow_force_push, code_owner_approval_required, created_at";

fn from_row(row: &Row) -> Result<ProtectedBranchRecord, sqlx::Error> {
    Ok(ProtectedBranchRecord {
        id: row.int("id")?,
        project_id: row.int("project_id")?,
        name: row.text("name")?,
        access: BranchAccess {
            push_access_level: row.int("push_access_level")?,
            merge_access_level: row.int("merge_access_level")?,
            unprotect_access_level: row.int("unprotect_access_level")?,
            allow_force_push: row.flag("allow_force_push")?,
            code_owner_approval_required: row.flag("code_owner_approval_required")?,
        },
        created_at: row.int("created_at")?,
    })
}

/// Whether branch `name` matches `pattern`, as GitLab's `RefMatcher`: the whole name, where
/// each `*` matches any run of characters (slashes included).
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let middle: Vec<&str> = parts.collect();
    let Some((last, inner)) = middle.split_last() else {
        return rest.is_empty();
    };
    for part in inner {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Whether `ref_name` of project `project_id` is protected, read in `tx` when a pipeline is
/// made. Tags are not: Kiln has no protected tags.
pub(crate) async fn protects(
    tx: &mut Tx<'_>,
    project_id: i64,
    ref_name: &str,
    tag: bool,
) -> StoreResult<bool> {
    if tag {
        return Ok(false);
    }
    let rows = tx
        .fetch_all(
            "SELECT name FROM protected_branches WHERE project_id = $1",
            args![project_id],
        )
        .await?;
    for row in &rows {
        if pattern_matches(&row.text("name")?, ref_name) {
            return Ok(true);
        }
    }
    Ok(false)
}

pub struct ProtectedBranches<'a> {
    pub(crate) db: &'a Db,
    pub(crate) feed: &'a ChangeFeed,
}

impl ProtectedBranches<'_> {
    /// The project's protected branches, by name.
    pub async fn list(&self, project_id: i64) -> StoreResult<Vec<ProtectedBranchRecord>> {
        let sql =
            format!("SELECT {COLUMNS} FROM protected_branches WHERE project_id = $1 ORDER BY name");
        let rows = self.db.read_all(&sql, args![project_id]).await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    pub async fn get(&self, project_id: i64, name: &str) -> StoreResult<ProtectedBranchRecord> {
        let sql =
            format!("SELECT {COLUMNS} FROM protected_branches WHERE project_id = $1 AND name = $2");
        let row = self.db.read_optional(&sql, args![project_id, name]).await?;
        Ok(from_row(&row.ok_or(StoreError::NotFound)?)?)
    }

    /// Protects `name`; `Conflict` when it is protected already.
    pub async fn create(
        &self,
        project_id: i64,
        name: &str,
        access: &BranchAccess,
    ) -> StoreResult<ProtectedBranchRecord> {
        let mut tx = self.db.begin(self.feed).await?;
        let created_at = now_ms();
        let id = tx
            .int(
                "INSERT INTO protected_branches (project_id, name, push_access_level, \
                 merge_access_level, unprotect_access_level, allow_force_push, \
                 code_owner_approval_required, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                args![
                    project_id,
                    name,
                    access.push_access_level,
                    access.merge_access_level,
                    access.unprotect_access_level,
                    access.allow_force_push,
                    access.code_owner_approval_required,
                    created_at
                ],
            )
            .await
            .map_err(|e| match e {
                StoreError::Db(e) => {
                    StoreError::on_unique(e, format!("Protected branch '{name}' already exists"))
                }
                other => other,
            })?;
        tx.notify(Change::Access).await?;
        tx.commit().await?;
        Ok(ProtectedBranchRecord {
            id,
            project_id,
            name: name.to_owned(),
            access: access.clone(),
            created_at,
        })
    }

    /// Changes the access of protected branch `name`.
    pub async fn update(
        &self,
        project_id: i64,
        name: &str,
        access: &BranchAccess,
    ) -> StoreResult<ProtectedBranchRecord> {
        let mut tx = self.db.begin(self.feed).await?;
        let changed = tx
            .execute(
                "UPDATE protected_branches SET push_access_level = $1, merge_access_level = $2, \
                 unprotect_access_level = $3, allow_force_push = $4, \
                 code_owner_approval_required = $5 WHERE project_id = $6 AND name = $7",
                args![
                    access.push_access_level,
                    access.merge_access_level,
                    access.unprotect_access_level,
                    access.allow_force_push,
                    access.code_owner_approval_required,
                    project_id,
                    name
                ],
            )
            .await?;
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        tx.notify(Change::Access).await?;
        tx.commit().await?;
        self.get(project_id, name).await
    }

    /// Unprotects `name`. Pipelines made before keep their protection, as in GitLab.
    pub async fn delete(&self, project_id: i64, name: &str) -> StoreResult<()> {
        let mut tx = self.db.begin(self.feed).await?;
        let removed = tx
            .execute(
                "DELETE FROM protected_branches WHERE project_id = $1 AND name = $2",
                args![project_id, name],
            )
            .await?;
        if removed == 0 {
            return Err(StoreError::NotFound);
        }
        tx.notify(Change::Access).await?;
        tx.commit().await
    }
}

#[cfg(test)]
mod tests {
    use super::pattern_matches;

    #[test]
    fn patterns_match_as_gitlab_ref_matcher() {
        assert!(pattern_matches("main", "main"));
        assert!(!pattern_matches("main", "main2"));
        assert!(!pattern_matches("main", "xmain"));
        assert!(pattern_matches("release/*", "release/1.0"));
        assert!(pattern_matches("release/*", "release/1/hotfix"));
        assert!(!pattern_matches("release/*", "release"));
        assert!(pattern_matches("*-stable", "15-0-stable"));
        assert!(!pattern_matches("*-stable", "15-0-stable-x"));
        assert!(pattern_matches("*", "anything"));
        assert!(pattern_matches("a*b*c", "aXbYc"));
        assert!(pattern_matches("a*b*c", "abc"));
        assert!(!pattern_matches("a*b*c", "acb"));
        assert!(!pattern_matches("ab*ba", "aba"));
    }
}
