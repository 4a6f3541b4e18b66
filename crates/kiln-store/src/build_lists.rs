//! The filtered build lists of the v4 API: a project's jobs by status, name and ref, and a
//! pipeline's jobs, by offset pages or by keyset pages (`id` past a cursor).
//!
//! Every list selects the page's ids with a narrow query on one index, then reads those rows
//! whole; a keyset page is a range of that index below (or above) the cursor, so its cost
//! does not grow with its depth.

use crate::build_rows::{builds_from_array, select_build_array};
use crate::builds::{status_list, BuildRecord, Builds};
use crate::db::Arg;
use crate::StoreResult;
use kiln_core::{PageRequest, Scope};

/// Which builds a list shows.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildFilter {
    pub scope: Scope,
    pub name: Option<String>,
    pub ref_name: Option<String>,
    pub pipeline_id: Option<i64>,
    /// Builds replaced by a retry (a project's list shows them; a pipeline's does only when
    /// asked).
    pub include_retried: bool,
    /// The bridges (`trigger:` jobs) instead of the jobs, as GitLab lists them apart.
    pub bridges: bool,
}

impl Default for BuildFilter {
    fn default() -> Self {
        BuildFilter {
            scope: Scope::all(),
            name: None,
            ref_name: None,
            pipeline_id: None,
            include_retried: true,
            bridges: false,
        }
    }
}

impl BuildFilter {
    /// Whether the maintained counters give this list's total (a status filter at most).
    fn is_counted(&self) -> bool {
        self.name.is_none()
            && self.ref_name.is_none()
            && self.pipeline_id.is_none()
            && self.include_retried
            && !self.bridges
    }
}

/// Which part of a list to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// A numbered page, ordered by id (descending when `newest_first`).
    Offset {
        page: PageRequest,
        newest_first: bool,
    },
    /// The `per_page` builds after the build `after` (from the start when None).
    Keyset {
        after: Option<i64>,
        per_page: u32,
        newest_first: bool,
    },
}

/// A page of a filtered list.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildSlice {
    pub builds: Vec<BuildRecord>,
    /// The exact total, when it is cheap: from the counters, or counted within one pipeline.
    pub total: Option<u64>,
    /// Whether builds follow this page.
    pub has_more: bool,
}

impl Builds<'_> {
    /// A page of the project's builds that pass `filter`.
    pub async fn find(
        &self,
        project_id: i64,
        filter: &BuildFilter,
        window: Window,
    ) -> StoreResult<BuildSlice> {
        if let Window::Offset {
            page,
            newest_first: true,
        } = window
        {
            if filter.is_counted() {
                let listed = self.list(project_id, &filter.scope, page).await?;
                let has_more = page.offset() + (listed.builds.len() as u64) < listed.total;
                return Ok(BuildSlice {
                    builds: listed.builds,
                    total: Some(listed.total),
                    has_more,
                });
            }
        }
        let mut args: Vec<Arg<'_>> = vec![Arg::from(project_id)];
        // Within one pipeline, its index (pipeline_id, id) must lead: with a plain
        // `project_id =` SQLite walks the project's (project_id, id) index for the order and
        // filters a million builds to find ten. The unary plus keeps the check but makes the
        // term unusable for an index, on both backends.
        let project_condition = if filter.pipeline_id.is_some() {
            "+project_id = $1"
        } else {
            "project_id = $1"
        };
        let mut conditions = vec![project_condition.to_owned()];
        if let Some(pipeline) = filter.pipeline_id {
            args.push(Arg::from(pipeline));
            conditions.push(format!("pipeline_id = ${}", args.len()));
        }
        for (column, value) in [("name", &filter.name), ("ref", &filter.ref_name)] {
            if let Some(value) = value {
                args.push(Arg::from(value.as_str()));
                conditions.push(format!("{column} = ${}", args.len()));
            }
        }
        if !filter.scope.is_all() {
            conditions.push(format!(
                "status IN ({})",
                status_list(filter.scope.statuses())
            ));
        }
        if !filter.include_retried {
            conditions.push("NOT retried".to_owned());
        }
        conditions.push(
            if filter.bridges {
                "kind = 'bridge'"
            } else {
                "kind <> 'bridge'"
            }
            .to_owned(),
        );
        let (per_page, newest_first, offset) = match window {
            Window::Offset { page, newest_first } => (page.per_page, newest_first, page.offset()),
            Window::Keyset {
                after,
                per_page,
                newest_first,
            } => {
                if let Some(after) = after {
                    args.push(Arg::from(after));
                    let op = if newest_first { "<" } else { ">" };
                    conditions.push(format!("id {op} ${}", args.len()));
                }
                (per_page, newest_first, 0)
            }
        };
        let direction = if newest_first { "DESC" } else { "ASC" };
        let condition = conditions.join(" AND ");
        let total = match filter.pipeline_id {
            Some(_) if !matches!(window, Window::Keyset { .. }) => {
                let sql = format!("SELECT COUNT(*) FROM builds WHERE {condition}");
                Some(self.db.read_int(&sql, &args).await?.max(0) as u64)
            }
            _ => None,
        };
        // One more than the page, to know whether another follows. Written into the
        // statement, not bound, so PostgreSQL's generic plan knows the page's size (see
        // `Builds::list`).
        let limit = per_page as u64 + 1;
        let sql = select_build_array(
            self.db,
            &format!(
                "b.id IN (SELECT id FROM builds WHERE {condition} ORDER BY id {direction} \
                 LIMIT {limit} OFFSET {offset})"
            ),
            &format!("b.id {direction}"),
        );
        let row = self.db.read_optional(&sql, &args).await?;
        let mut builds = row
            .as_ref()
            .map(builds_from_array)
            .transpose()?
            .unwrap_or_default();
        let has_more = builds.len() > per_page as usize;
        builds.truncate(per_page as usize);
        Ok(BuildSlice {
            builds,
            total,
            has_more,
        })
    }
}

impl Builds<'_> {
    /// The coverage of the newest successful current build named `name` in the ref's newest
    /// successful, running and failed pipelines: what GitLab's coverage badge with `job=`
    /// shows. None when there is no such build, or it reported none.
    pub async fn job_coverage(
        &self,
        project_id: i64,
        ref_name: &str,
        name: &str,
    ) -> StoreResult<Option<f64>> {
        use crate::row::KilnRow as _;
        let row = self
            .db
            .read_optional(
                "SELECT coverage FROM builds WHERE +project_id = $1 AND name = $2 \
                 AND NOT retried AND status = 'success' AND pipeline_id IN \
                 (SELECT MAX(id) FROM pipelines WHERE project_id = $1 AND ref = $3 \
                 AND status IN ('success', 'running', 'failed') GROUP BY status) \
                 ORDER BY id DESC LIMIT 1",
                &[Arg::from(project_id), Arg::from(name), Arg::from(ref_name)],
            )
            .await?;
        Ok(row
            .map(|row| row.opt_float("coverage"))
            .transpose()?
            .flatten())
    }
}
