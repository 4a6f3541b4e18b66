//! How a build is read: one JSON object per row, built by the database (`json_object` on
//! SQLite, `json_build_object` on PostgreSQL) and decoded here with serde. A build with its
//! pipeline, commit, user and runner is some 55 values; read as columns, each one is copied,
//! looked up by name and freed by the driver, which cost more than the query itself. As one
//! text value per row the page decodes in a fraction of that, and the SQL stays written once:
//! only the function's name differs.

use crate::builds::{BuildRecord, CommitRecord, PipelineSummary, RunnerSummary};
use crate::row::KilnRow;
use crate::UserRecord;
use serde::{Deserialize, Deserializer};
use std::sync::OnceLock;

/// The joins every build read uses, as `b`, `c`, `pl`, `u` and `r`.
pub(crate) const BUILD_JOINS: &str = " FROM builds b JOIN commits c ON c.id = b.commit_id \
    JOIN pipelines pl ON pl.id = b.pipeline_id \
    LEFT JOIN users u ON u.id = b.user_id LEFT JOIN runners r ON r.id = b.runner_id";

const BUILD_FIELDS: &[(&str, &str)] = &[
    ("id", "b.id"),
    ("project_id", "b.project_id"),
    ("pipeline_id", "b.pipeline_id"),
    ("name", "b.name"),
    ("stage", "b.stage"),
    ("stage_idx", "b.stage_idx"),
    ("status", "b.status"),
    ("ref", "b.ref"),
    ("tag", "b.tag"),
    ("when", "b.\"when\""),
    ("allow_failure", "b.allow_failure"),
    ("coverage", "b.coverage"),
    ("options", "b.options"),
    ("commands", "b.commands"),
    ("created_at", "b.created_at"),
    ("queued_at", "b.queued_at"),
    ("started_at", "b.started_at"),
    ("finished_at", "b.finished_at"),
    ("artifacts_backend", "b.artifacts_backend"),
    ("artifacts_file", "b.artifacts_file"),
    ("artifacts_size", "b.artifacts_size"),
    ("artifacts_expire_at", "b.artifacts_expire_at"),
    ("erased_at", "b.erased_at"),
    ("tag_list", "b.tag_list"),
    ("failure_reason", "b.failure_reason"),
    ("retried", "b.retried"),
    ("trace_size", "b.trace_size"),
    ("job_variables", "b.job_variables"),
    ("protected", "b.protected"),
    ("kind", "b.kind"),
    ("target_url", "b.target_url"),
    ("description", "b.description"),
];

const PIPELINE_FIELDS: &[(&str, &str)] = &[
    ("status", "pl.status"),
    ("source", "pl.source"),
    ("created_at", "pl.created_at"),
    ("started_at", "pl.started_at"),
    ("finished_at", "pl.finished_at"),
];

const COMMIT_FIELDS: &[(&str, &str)] = &[
    ("sha", "c.sha"),
    ("message", "c.message"),
    ("author_name", "c.author_name"),
    ("author_email", "c.author_email"),
    ("authored_at", "c.authored_at"),
    ("author_tz_offset_minutes", "c.author_tz_offset_minutes"),
];

const USER_FIELDS: &[(&str, &str)] = &[
    ("id", "u.id"),
    ("username", "u.username"),
    ("name", "u.name"),
    ("email", "u.email"),
    ("is_admin", "u.is_admin"),
    ("state", "u.state"),
    ("bio", "u.bio"),
    ("skype", "u.skype"),
    ("linkedin", "u.linkedin"),
    ("twitter", "u.twitter"),
    ("website_url", "u.website_url"),
    ("created_at", "u.created_at"),
];

const RUNNER_FIELDS: &[(&str, &str)] = &[
    ("id", "r.id"),
    ("description", "r.description"),
    ("active", "r.active"),
    ("is_shared", "r.is_shared"),
    ("name", "r.name"),
    ("runner_type", "r.runner_type"),
    ("contacted_at", "r.contacted_at"),
    ("created_at", "r.created_at"),
];

/// `function('key', value, …)`; nested objects keep each call under PostgreSQL's 100
/// arguments.
fn object(function: &str, fields: &[(&str, &str)], nested: &[(&str, String)]) -> String {
    let pairs: Vec<String> = fields
        .iter()
        .map(|(key, column)| format!("'{key}', {column}"))
        .chain(
            nested
                .iter()
                .map(|(key, inner)| format!("'{key}', {inner}")),
        )
        .collect();
    format!("{function}({})", pairs.join(", "))
}

fn build_object(function: &str) -> String {
    let nested = [
        ("pl", object(function, PIPELINE_FIELDS, &[])),
        ("c", object(function, COMMIT_FIELDS, &[])),
        ("u", object(function, USER_FIELDS, &[])),
        ("r", object(function, RUNNER_FIELDS, &[])),
    ];
    object(function, BUILD_FIELDS, &nested)
}

/// Where a statement runs: a pool or a transaction, on one backend or the other.
pub(crate) trait Backend {
    fn is_postgres(&self) -> bool;
}

impl Backend for crate::db::Db {
    fn is_postgres(&self) -> bool {
        crate::db::Db::is_postgres(self)
    }
}

impl Backend for crate::db::Tx<'_> {
    fn is_postgres(&self) -> bool {
        crate::db::Tx::is_postgres(self)
    }
}

/// The JSON object of the build in `b` and its joins, for this backend.
fn build_expression(db: &impl Backend) -> &'static str {
    static SQLITE: OnceLock<String> = OnceLock::new();
    static POSTGRES: OnceLock<String> = OnceLock::new();
    if db.is_postgres() {
        POSTGRES.get_or_init(|| build_object("json_build_object"))
    } else {
        SQLITE.get_or_init(|| build_object("json_object"))
    }
}

/// The select list of a build read: one text column, `build`.
pub(crate) fn build_column(db: &impl Backend) -> String {
    format!("CAST({} AS TEXT) AS build", build_expression(db))
}

/// The select list of a page of builds: one text column, `builds`, a JSON array in
/// `order` (over `b`). A page then comes back as one value in one row: the driver hands
/// each row from its thread to the caller's, and twenty handoffs cost more than the page.
pub(crate) fn build_array_column(db: &impl Backend, order: &str) -> String {
    let aggregate = if db.is_postgres() {
        "json_agg"
    } else {
        "json_group_array"
    };
    format!(
        "CAST({aggregate}({} ORDER BY {order}) AS TEXT) AS builds",
        build_expression(db)
    )
}

/// The builds of `condition` (no ORDER BY or LIMIT: those belong in its subqueries) as one
/// `builds` array in `order`.
pub(crate) fn select_build_array(db: &impl Backend, condition: &str, order: &str) -> String {
    format!(
        "SELECT {}{BUILD_JOINS} WHERE {condition}",
        build_array_column(db, order)
    )
}

/// The builds in a row's `builds` array (none when it is NULL: PostgreSQL's aggregate of
/// no rows).
pub(crate) fn builds_from_array(row: &impl KilnRow) -> Result<Vec<BuildRecord>, sqlx::Error> {
    let Some(text) = row.opt_text("builds")? else {
        return Ok(Vec::new());
    };
    let rows: Vec<BuildRow> = serde_json::from_str(&text).map_err(decode_error)?;
    rows.into_iter().map(BuildRow::into_record).collect()
}

/// The builds matching `condition` (which may order and limit), one `build` column each.
pub(crate) fn select_builds(db: &impl Backend, condition: &str) -> String {
    format!("SELECT {}{BUILD_JOINS} WHERE {condition}", build_column(db))
}

/// SQLite has no boolean type: its JSON says 0 or 1 where PostgreSQL's says false or true.
fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    struct FlagVisitor;
    impl serde::de::Visitor<'_> for FlagVisitor {
        type Value = bool;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a boolean, 0 or 1")
        }
        fn visit_bool<E>(self, b: bool) -> Result<bool, E> {
            Ok(b)
        }
        fn visit_i64<E>(self, i: i64) -> Result<bool, E> {
            Ok(i != 0)
        }
        fn visit_u64<E>(self, i: u64) -> Result<bool, E> {
            Ok(i != 0)
        }
    }
    d.deserialize_any(FlagVisitor)
}

fn opt_flag<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    struct Wrapped(#[serde(deserialize_with = "flag")] bool);
    Ok(Option::<Wrapped>::deserialize(d)?.map(|Wrapped(b)| b))
}

#[derive(Deserialize)]
struct BuildRow {
    id: i64,
    project_id: i64,
    pipeline_id: i64,
    name: String,
    stage: String,
    stage_idx: i64,
    status: String,
    #[serde(rename = "ref")]
    ref_name: String,
    #[serde(deserialize_with = "flag")]
    tag: bool,
    when: String,
    #[serde(deserialize_with = "flag")]
    allow_failure: bool,
    coverage: Option<f64>,
    options: String,
    commands: String,
    created_at: i64,
    queued_at: Option<i64>,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    artifacts_backend: Option<String>,
    artifacts_file: Option<String>,
    artifacts_size: Option<i64>,
    artifacts_expire_at: Option<i64>,
    erased_at: Option<i64>,
    tag_list: String,
    failure_reason: Option<String>,
    #[serde(deserialize_with = "flag")]
    retried: bool,
    trace_size: i64,
    job_variables: String,
    #[serde(deserialize_with = "flag")]
    protected: bool,
    kind: String,
    target_url: Option<String>,
    description: Option<String>,
    pl: PipelineRow,
    c: CommitRow,
    u: UserRow,
    r: RunnerRow,
}

#[derive(Deserialize)]
struct PipelineRow {
    status: String,
    source: String,
    created_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
}

#[derive(Deserialize)]
struct CommitRow {
    sha: String,
    message: String,
    author_name: String,
    author_email: String,
    authored_at: i64,
    author_tz_offset_minutes: i64,
}

/// A LEFT JOIN that found no user gives an object of nulls.
#[derive(Deserialize)]
struct UserRow {
    id: Option<i64>,
    username: Option<String>,
    name: Option<String>,
    email: Option<String>,
    #[serde(deserialize_with = "opt_flag")]
    is_admin: Option<bool>,
    state: Option<String>,
    bio: Option<String>,
    skype: Option<String>,
    linkedin: Option<String>,
    twitter: Option<String>,
    website_url: Option<String>,
    created_at: Option<i64>,
}

#[derive(Deserialize)]
struct RunnerRow {
    id: Option<i64>,
    description: Option<String>,
    #[serde(deserialize_with = "opt_flag")]
    active: Option<bool>,
    #[serde(deserialize_with = "opt_flag")]
    is_shared: Option<bool>,
    name: Option<String>,
    runner_type: Option<String>,
    contacted_at: Option<i64>,
    created_at: Option<i64>,
}

fn decode_error(err: impl std::error::Error + Send + Sync + 'static) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(err))
}

impl UserRow {
    fn into_record(self) -> Option<UserRecord> {
        Some(UserRecord {
            id: self.id?,
            username: self.username.unwrap_or_default(),
            name: self.name.unwrap_or_default(),
            email: self.email.unwrap_or_default(),
            is_admin: self.is_admin.unwrap_or(false),
            state: self.state.unwrap_or_default(),
            bio: self.bio,
            skype: self.skype.unwrap_or_default(),
            linkedin: self.linkedin.unwrap_or_default(),
            twitter: self.twitter.unwrap_or_default(),
            website_url: self.website_url.unwrap_or_default(),
            created_at: self.created_at.unwrap_or(0),
        })
    }
}

impl RunnerRow {
    fn into_summary(self) -> Option<RunnerSummary> {
        Some(RunnerSummary {
            id: self.id?,
            description: self.description.unwrap_or_default(),
            active: self.active.unwrap_or(false),
            is_shared: self.is_shared.unwrap_or(false),
            name: self.name,
            runner_type: self.runner_type.unwrap_or_default(),
            contacted_at: self.contacted_at,
            created_at: self.created_at.unwrap_or(0),
        })
    }
}

/// The build in a row's `build` column.
pub(crate) fn build_from_row(row: &impl KilnRow) -> Result<BuildRecord, sqlx::Error> {
    let text = row.text("build")?;
    let b: BuildRow = serde_json::from_str(&text).map_err(decode_error)?;
    b.into_record()
}

impl BuildRow {
    fn into_record(self) -> Result<BuildRecord, sqlx::Error> {
        let b = self;
        Ok(BuildRecord {
            id: b.id,
            project_id: b.project_id,
            pipeline_id: b.pipeline_id,
            name: b.name,
            stage: b.stage,
            stage_idx: b.stage_idx,
            status: b.status.parse().map_err(decode_error)?,
            ref_name: b.ref_name,
            tag: b.tag,
            when: b.when,
            allow_failure: b.allow_failure,
            coverage: b.coverage,
            options: b.options,
            commands: b.commands,
            created_at: b.created_at,
            queued_at: b.queued_at,
            started_at: b.started_at,
            finished_at: b.finished_at,
            artifacts_backend: b.artifacts_backend,
            artifacts_file: b.artifacts_file,
            artifacts_size: b.artifacts_size,
            artifacts_expire_at: b.artifacts_expire_at,
            erased_at: b.erased_at,
            tags: serde_json::from_str(&b.tag_list).map_err(decode_error)?,
            failure_reason: b.failure_reason,
            retried: b.retried,
            trace_size: b.trace_size,
            job_variables: b.job_variables,
            protected: b.protected,
            kind: b.kind,
            target_url: b.target_url,
            description: b.description,
            pipeline: PipelineSummary {
                status: b.pl.status,
                source: b.pl.source,
                created_at: b.pl.created_at,
                started_at: b.pl.started_at,
                finished_at: b.pl.finished_at,
            },
            commit: CommitRecord {
                sha: b.c.sha,
                message: b.c.message,
                author_name: b.c.author_name,
                author_email: b.c.author_email,
                authored_at: b.c.authored_at,
                author_tz_offset_minutes: b.c.author_tz_offset_minutes,
            },
            user: b.u.into_record(),
            runner: b.r.into_summary(),
        })
    }
}
