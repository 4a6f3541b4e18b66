//! A project's pipelines as the v4 list filters and orders them (GitLab's `PipelinesFinder`).

use crate::db::Arg;
use crate::pipelines::{pipeline_from_row, select_pipelines, PipelineRecord, Pipelines};
use crate::row::KilnRow as _;
use crate::StoreResult;
use kiln_core::PageRequest;

/// `scope`: a status group, or the newest pipeline of each branch or tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipelineScope {
    Running,
    Pending,
    Finished,
    Branches,
    Tags,
}

impl PipelineScope {
    pub fn parse(raw: &str) -> Option<PipelineScope> {
        Some(match raw {
            "running" => PipelineScope::Running,
            "pending" => PipelineScope::Pending,
            "finished" => PipelineScope::Finished,
            "branches" => PipelineScope::Branches,
            "tags" => PipelineScope::Tags,
            _ => return None,
        })
    }
}

/// `order_by`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipelineOrder {
    Id,
    Status,
    Ref,
    UpdatedAt,
    UserId,
}

impl PipelineOrder {
    pub fn parse(raw: &str) -> Option<PipelineOrder> {
        Some(match raw {
            "id" => PipelineOrder::Id,
            "status" => PipelineOrder::Status,
            "ref" => PipelineOrder::Ref,
            "updated_at" => PipelineOrder::UpdatedAt,
            "user_id" => PipelineOrder::UserId,
            _ => return None,
        })
    }

    fn column(self) -> &'static str {
        match self {
            PipelineOrder::Id => "p.id",
            PipelineOrder::Status => "p.status",
            PipelineOrder::Ref => "p.ref",
            PipelineOrder::UpdatedAt => UPDATED_AT,
            PipelineOrder::UserId => "p.user_id",
        }
    }
}

/// When a pipeline last changed: Kiln keeps no `updated_at`; its last status change is
/// its finish, start or creation.
const UPDATED_AT: &str = "COALESCE(p.finished_at, p.started_at, p.created_at)";

#[derive(Debug, Clone, PartialEq)]
pub struct PipelineFilter {
    pub scope: Option<PipelineScope>,
    /// A pipeline status (validated by the caller).
    pub status: Option<String>,
    pub ref_name: Option<String>,
    pub sha: Option<String>,
    pub username: Option<String>,
    pub source: Option<String>,
    pub updated_after: Option<i64>,
    pub updated_before: Option<i64>,
    pub order: PipelineOrder,
    pub ascending: bool,
}

impl Default for PipelineFilter {
    fn default() -> Self {
        PipelineFilter {
            scope: None,
            status: None,
            ref_name: None,
            sha: None,
            username: None,
            source: None,
            updated_after: None,
            updated_before: None,
            order: PipelineOrder::Id,
            ascending: false,
        }
    }
}

impl PipelineFilter {
    /// The SQL condition and its arguments (after `$1`, the project).
    fn condition(&self) -> (String, Vec<Arg<'_>>) {
        let mut args: Vec<Arg<'_>> = Vec::new();
        let mut conditions = vec!["p.project_id = $1".to_owned()];
        match self.scope {
            Some(PipelineScope::Running) => conditions.push("p.status = 'running'".into()),
            Some(PipelineScope::Pending) => conditions.push("p.status = 'pending'".into()),
            Some(PipelineScope::Finished) => {
                conditions.push("p.status IN ('success', 'failed', 'canceled', 'skipped')".into())
            }
            Some(scope @ (PipelineScope::Branches | PipelineScope::Tags)) => {
                let tag = if scope == PipelineScope::Tags {
                    "TRUE"
                } else {
                    "FALSE"
                };
                conditions.push(format!(
                    "p.id IN (SELECT MAX(id) FROM pipelines WHERE project_id = $1 AND tag = {tag} \
                     GROUP BY ref)"
                ));
            }
            None => {}
        }
        let texts = [
            ("p.status", &self.status),
            ("p.ref", &self.ref_name),
            ("c.sha", &self.sha),
            ("u.username", &self.username),
            ("p.source", &self.source),
        ];
        for (column, value) in texts {
            if let Some(value) = value {
                args.push(Arg::from(value.as_str()));
                conditions.push(format!("{column} = ${}", args.len() + 1));
            }
        }
        for (op, value) in [(">=", self.updated_after), ("<=", self.updated_before)] {
            if let Some(value) = value {
                args.push(Arg::from(value));
                conditions.push(format!("{UPDATED_AT} {op} ${}", args.len() + 1));
            }
        }
        (conditions.join(" AND "), args)
    }
}

impl Pipelines<'_> {
    /// A page of the project's pipelines that pass `filter`, and how many pass it.
    pub async fn find(
        &self,
        project_id: i64,
        filter: &PipelineFilter,
        page: PageRequest,
    ) -> StoreResult<(Vec<PipelineRecord>, u64)> {
        let (condition, extra) = filter.condition();
        let mut args = vec![Arg::from(project_id)];
        args.extend(extra);
        // Joined only for the filters that need them: counting a project's 100,000
        // pipelines through a join costs twenty times what counting them does.
        let mut joins = String::new();
        if filter.sha.is_some() {
            joins.push_str(" JOIN commits c ON c.id = p.commit_id");
        }
        if filter.username.is_some() {
            joins.push_str(" LEFT JOIN users u ON u.id = p.user_id");
        }
        let count_sql = format!("SELECT COUNT(*) FROM pipelines p{joins} WHERE {condition}");
        let total = self.db.read_int(&count_sql, &args).await?.max(0) as u64;
        let direction = if filter.ascending { "ASC" } else { "DESC" };
        // Ties (same status, ref …) in id order, so pages never overlap.
        let order = match filter.order {
            PipelineOrder::Id => format!("p.id {direction}"),
            other => format!("{} {direction}, p.id {direction}", other.column()),
        };
        args.push(Arg::from(page.per_page as i64));
        args.push(Arg::from(page.offset() as i64));
        let sql = select_pipelines(&format!(
            "{condition} ORDER BY {order} LIMIT ${} OFFSET ${}",
            args.len() - 1,
            args.len()
        ));
        let rows = self.db.read_all(&sql, &args).await?;
        let pipelines = rows
            .iter()
            .map(pipeline_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((pipelines, total))
    }

    /// The newest pipeline of the commit `sha` in the project; child pipelines do not count
    /// (GitLab's `ci_sources`).
    pub async fn latest_of_sha(
        &self,
        project_id: i64,
        sha: &str,
    ) -> StoreResult<Option<PipelineRecord>> {
        let sql = select_pipelines(
            "p.project_id = $1 AND c.sha = $2 AND p.upstream_build_id IS NULL \
             ORDER BY p.id DESC LIMIT 1",
        );
        let row = self
            .db
            .read_optional(&sql, &[Arg::from(project_id), Arg::from(sha)])
            .await?;
        Ok(row.as_ref().map(pipeline_from_row).transpose()?)
    }

    /// The status of the newest pipeline of `ref_name` in the project (skipped ones left
    /// out if asked), as GitLab's pipeline badge reads it: child pipelines count.
    pub async fn latest_status(
        &self,
        project_id: i64,
        ref_name: &str,
        ignore_skipped: bool,
    ) -> StoreResult<Option<String>> {
        let skipped = if ignore_skipped {
            " AND status <> 'skipped'"
        } else {
            ""
        };
        let sql = format!(
            "SELECT status FROM pipelines WHERE project_id = $1 AND ref = $2{skipped} \
             ORDER BY id DESC LIMIT 1"
        );
        let row = self
            .db
            .read_optional(&sql, &[Arg::from(project_id), Arg::from(ref_name)])
            .await?;
        Ok(row.map(|row| row.text("status")).transpose()?)
    }

    /// The newest pipeline of `ref_name` in the project, child pipelines left out.
    pub async fn latest(
        &self,
        project_id: i64,
        ref_name: &str,
    ) -> StoreResult<Option<PipelineRecord>> {
        let sql = select_pipelines(
            "p.project_id = $1 AND p.ref = $2 AND p.upstream_build_id IS NULL \
             ORDER BY p.id DESC LIMIT 1",
        );
        let row = self
            .db
            .read_optional(&sql, &[Arg::from(project_id), Arg::from(ref_name)])
            .await?;
        Ok(row.as_ref().map(pipeline_from_row).transpose()?)
    }
}
