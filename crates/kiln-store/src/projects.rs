//! Projects and their members.

use crate::changes::{Change, ChangeFeed};
use crate::db::{args, on_read, Db};
use crate::row::KilnRow;
use crate::{now_ms, StoreError, StoreResult};
use kiln_core::{AccessLevel, Visibility};

#[derive(Debug, Clone, PartialEq)]
pub struct ProjectRecord {
    pub id: i64,
    pub namespace: String,
    pub path: String,
    pub name: String,
    pub visibility: Visibility,
    pub repo_url: Option<String>,
    pub default_branch: String,
    pub build_timeout: i64,
    pub created_at: i64,
}

impl ProjectRecord {
    pub fn full_path(&self) -> String {
        format!("{}/{}", self.namespace, self.path)
    }
}

/// How the API names a project: its id, or its `namespace/path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectRef {
    Id(i64),
    Path { namespace: String, path: String },
}

impl ProjectRef {
    /// Reads `42` or `group/name` (already URL-decoded). `None` for anything else.
    pub fn parse(raw: &str) -> Option<ProjectRef> {
        // Plain decimal only: `+1` and `01` are not project 1.
        let decimal = !raw.is_empty()
            && raw.bytes().all(|b| b.is_ascii_digit())
            && (raw == "0" || !raw.starts_with('0'));
        if decimal {
            return raw.parse::<i64>().ok().map(ProjectRef::Id);
        }
        let (namespace, path) = raw.rsplit_once('/')?;
        if namespace.is_empty() || path.is_empty() {
            return None;
        }
        Some(ProjectRef::Path {
            namespace: namespace.to_owned(),
            path: path.to_owned(),
        })
    }
}

/// A project together with one user's membership in it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectAccess {
    pub project: ProjectRecord,
    pub access: Option<AccessLevel>,
}

const PROJECT_COLUMNS: &str = "p.id, p.namespace, p.path, p.name, p.visibility, p.repo_url, \
    p.default_branch, p.build_timeout, p.created_at";

fn project_from_row(row: &impl KilnRow) -> Result<ProjectRecord, sqlx::Error> {
    let visibility = row.text("visibility")?;
    Ok(ProjectRecord {
        id: row.int("id")?,
        namespace: row.text("namespace")?,
        path: row.text("path")?,
        name: row.text("name")?,
        visibility: visibility
            .parse()
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        repo_url: row.opt_text("repo_url")?,
        default_branch: row.text("default_branch")?,
        build_timeout: row.int("build_timeout")?,
        created_at: row.int("created_at")?,
    })
}

pub struct Projects<'a> {
    pub(crate) db: &'a Db,
    pub(crate) feed: &'a ChangeFeed,
}

impl Projects<'_> {
    pub async fn create(
        &self,
        namespace: &str,
        path: &str,
        visibility: Visibility,
        repo_url: Option<&str>,
    ) -> StoreResult<i64> {
        let mut tx = self.db.begin(self.feed).await?;
        let id = tx
            .int(
                "INSERT INTO projects (namespace, path, name, visibility, repo_url, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                args![
                    namespace,
                    path,
                    path,
                    visibility.as_str(),
                    repo_url,
                    now_ms()
                ],
            )
            .await
            .map_err(|e| match e {
                StoreError::Db(e) => {
                    StoreError::on_unique(e, "project path has already been taken")
                }
                other => other,
            })?;
        // The default branch starts protected, as GitLab's default branch protection does.
        tx.execute(
            "INSERT INTO protected_branches (project_id, name, created_at) \
             SELECT id, default_branch, created_at FROM projects WHERE id = $1",
            args![id],
        )
        .await?;
        tx.notify(Change::Access).await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn get(&self, project: &ProjectRef) -> StoreResult<ProjectRecord> {
        Ok(self.with_access(project, None).await?.project)
    }

    /// The project and, when `user_id` is given, that user's access level in it: one query,
    /// since every API request needs both.
    pub async fn with_access(
        &self,
        project: &ProjectRef,
        user_id: Option<i64>,
    ) -> StoreResult<ProjectAccess> {
        let select = format!(
            "SELECT {PROJECT_COLUMNS}, m.access_level FROM projects p \
             LEFT JOIN members m ON m.project_id = p.id AND m.user_id = $1"
        );
        let user = user_id.unwrap_or(-1);
        on_read!(self.db, pool => {
            let row = match project {
                ProjectRef::Id(id) => sqlx::query(&format!("{select} WHERE p.id = $2"))
                    .bind(user)
                    .bind(id)
                    .fetch_optional(pool)
                    .await?,
                ProjectRef::Path { namespace, path } => {
                    sqlx::query(&format!("{select} WHERE p.namespace = $2 AND p.path = $3"))
                        .bind(user)
                        .bind(namespace)
                        .bind(path)
                        .fetch_optional(pool)
                        .await?
                }
            };
            let row = row.ok_or(StoreError::NotFound)?;
            Ok(ProjectAccess {
                project: project_from_row(&row)?,
                access: row.opt_int("access_level")?.and_then(AccessLevel::from_value),
            })
        })
    }

    /// Projects that point at a repository.
    pub async fn with_repository(&self) -> StoreResult<Vec<ProjectRecord>> {
        let sql = format!(
            "SELECT {PROJECT_COLUMNS} FROM projects p WHERE p.repo_url IS NOT NULL ORDER BY p.id"
        );
        on_read!(self.db, pool => {
            let rows = sqlx::query(&sql).fetch_all(pool).await?;
            rows.iter().map(project_from_row).collect::<Result<Vec<_>, _>>().map_err(StoreError::from)
        })
    }

    /// Adds the user to the project, or changes their level if already a member.
    pub async fn add_member(
        &self,
        project_id: i64,
        user_id: i64,
        level: AccessLevel,
    ) -> StoreResult<()> {
        let mut tx = self.db.begin(self.feed).await?;
        tx.execute(
            "INSERT INTO members (project_id, user_id, access_level) VALUES ($1, $2, $3) \
             ON CONFLICT (project_id, user_id) DO UPDATE SET access_level = excluded.access_level",
            args![project_id, user_id, level.value()],
        )
        .await?;
        tx.notify(Change::Access).await?;
        tx.commit().await
    }
}

/// Which projects a list shows (GitLab's `ProjectsFinder` as far as Kiln keeps projects).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProjectFilter {
    /// Only those the user is a member of (`membership`).
    pub membership: bool,
    /// Only those the user owns (`owned`).
    pub owned: bool,
    pub visibility: Option<Visibility>,
    /// In the name or path (`search`).
    pub search: Option<String>,
    /// `id`, `name`, `path`, `created_at`, `last_activity_at`.
    pub order_by: &'static str,
    pub ascending: bool,
}

/// A member of a project, with the user they are.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberRecord {
    pub user: crate::UserRecord,
    pub access: AccessLevel,
}

impl Projects<'_> {
    /// A page of the projects `user_id` may see (every one for an admin, `None`: public ones
    /// only) that pass `filter`, and how many pass it.
    pub async fn list(
        &self,
        viewer: Option<(i64, bool)>,
        filter: &ProjectFilter,
        page: kiln_core::PageRequest,
    ) -> StoreResult<(Vec<ProjectAccess>, u64)> {
        let (user, is_admin) = viewer.unwrap_or((-1, false));
        let mut conditions = Vec::new();
        if !is_admin || filter.membership || filter.owned {
            let mut seen = vec!["m.access_level IS NOT NULL".to_owned()];
            if !(filter.membership || filter.owned) {
                seen.push("p.visibility = 'public'".into());
                if viewer.is_some() {
                    seen.push("p.visibility = 'internal'".into());
                }
            }
            conditions.push(format!("({})", seen.join(" OR ")));
        }
        if filter.owned {
            conditions.push(format!("m.access_level >= {}", AccessLevel::Owner.value()));
        }
        let mut args = vec![crate::db::Arg::from(user)];
        if let Some(visibility) = filter.visibility {
            args.push(crate::db::Arg::from(visibility.as_str()));
            conditions.push(format!("p.visibility = ${}", args.len()));
        }
        let search = filter
            .search
            .as_ref()
            .map(|s| format!("%{}%", s.to_lowercase()));
        if let Some(search) = &search {
            args.push(crate::db::Arg::from(search.as_str()));
            let n = args.len();
            conditions.push(format!(
                "(LOWER(p.name) LIKE ${n} OR LOWER(p.path) LIKE ${n} OR LOWER(p.namespace) LIKE ${n})"
            ));
        }
        let condition = if conditions.is_empty() {
            "TRUE".to_owned()
        } else {
            conditions.join(" AND ")
        };
        let from = "FROM projects p LEFT JOIN members m ON m.project_id = p.id AND m.user_id = $1";
        let total = self
            .db
            .read_int(&format!("SELECT COUNT(*) {from} WHERE {condition}"), &args)
            .await?;
        let column = match filter.order_by {
            "name" => "p.name",
            "path" => "p.path",
            "created_at" => "p.created_at",
            _ => "p.id",
        };
        let direction = if filter.ascending { "ASC" } else { "DESC" };
        args.push(crate::db::Arg::from(page.per_page as i64));
        args.push(crate::db::Arg::from(page.offset() as i64));
        let sql = format!(
            "SELECT {PROJECT_COLUMNS}, m.access_level {from} WHERE {condition} \
             ORDER BY {column} {direction}, p.id {direction} LIMIT ${} OFFSET ${}",
            args.len() - 1,
            args.len()
        );
        let rows = self.db.read_all(&sql, &args).await?;
        let mut projects = Vec::with_capacity(rows.len());
        for row in &rows {
            projects.push(ProjectAccess {
                project: project_from_row(row)?,
                access: row
                    .opt_int("access_level")?
                    .and_then(AccessLevel::from_value),
            });
        }
        Ok((projects, total.max(0) as u64))
    }

    /// The project's members, by user id.
    pub async fn members(&self, project_id: i64) -> StoreResult<Vec<MemberRecord>> {
        let sql = format!(
            "SELECT {}, m.access_level FROM members m JOIN users u ON u.id = m.user_id \
             WHERE m.project_id = $1 ORDER BY u.id",
            crate::users::USER_COLUMNS
        );
        let rows = self.db.read_all(&sql, args![project_id]).await?;
        let mut members = Vec::with_capacity(rows.len());
        for row in &rows {
            let Some(user) = crate::users::user_from_row(row)? else {
                continue;
            };
            let Some(access) = AccessLevel::from_value(row.int("access_level")?) else {
                continue;
            };
            members.push(MemberRecord { user, access });
        }
        Ok(members)
    }

    /// Sets (or, with None, removes) the sealed secret of the project's incoming push hook.
    pub async fn set_push_secret(&self, project_id: i64, sealed: Option<&[u8]>) -> StoreResult<()> {
        let mut tx = self.db.begin(self.feed).await?;
        let changed = match sealed {
            Some(sealed) => {
                tx.execute(
                    "UPDATE projects SET push_secret_sealed = $1 WHERE id = $2",
                    &[crate::db::Arg::Bytes(sealed), project_id.into()],
                )
                .await?
            }
            None => {
                tx.execute(
                    "UPDATE projects SET push_secret_sealed = NULL WHERE id = $1",
                    args![project_id],
                )
                .await?
            }
        };
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await
    }

    /// The sealed secret of the project's incoming push hook, if it has one.
    pub async fn push_secret(&self, project_id: i64) -> StoreResult<Option<Vec<u8>>> {
        let row = self
            .db
            .read_optional(
                "SELECT push_secret_sealed FROM projects WHERE id = $1",
                args![project_id],
            )
            .await?
            .ok_or(StoreError::NotFound)?;
        Ok(row
            .bytes("push_secret_sealed")
            .ok()
            .filter(|b| !b.is_empty()))
    }

    /// Gives the project a display name other than its path.
    pub async fn rename(&self, project_id: i64, name: &str) -> StoreResult<()> {
        let mut tx = self.db.begin(self.feed).await?;
        tx.execute(
            "UPDATE projects SET name = $1 WHERE id = $2",
            args![name, project_id],
        )
        .await?;
        tx.notify(Change::Access).await?;
        tx.commit().await
    }

    /// Removes the user from the project; false when they were not a member.
    pub async fn remove_member(&self, project_id: i64, user_id: i64) -> StoreResult<bool> {
        let mut tx = self.db.begin(self.feed).await?;
        let removed = tx
            .execute(
                "DELETE FROM members WHERE project_id = $1 AND user_id = $2",
                args![project_id, user_id],
            )
            .await?;
        tx.notify(Change::Access).await?;
        tx.commit().await?;
        Ok(removed == 1)
    }
}
