//! Kiln's `.gitlab-ci.yml` compiler: YAML text in, a [`PipelinePlan`] or a [`CompileError`] out.
//!
//! Pure: no I/O, no async. Files for `include: local` and `rules: exists` are read through the
//! caller's `Repository`. Semantics follow GitLab (see
//! `runner-protocol-and-ci-yaml.md` §9); module docs list where and why we differ.

mod budget;
mod cache;
pub mod dotenv;
mod duration;
mod error;
mod expression;
mod inputs;
mod job;
mod keywords;
mod load;
mod merge;
mod parallel;
mod pattern;
mod pipeline;
mod plan;
mod reference;
mod refs;
mod repository;
mod rules;
mod trigger;
mod value;
pub mod variables;

use std::collections::BTreeMap;

pub use duration::parse_duration;
pub use error::CompileError;
pub use plan::{
    ArtifactsPlan, ArtifactsWhen, CachePlan, JobPlan, Need, PipelinePlan, RetryPlan, TriggerPlan,
    When,
};
pub use repository::{git_blob_id, NoRepository, Repository};
pub use trigger::child_config;

/// What the compiler needs to know about the pipeline being created.
pub struct CompileContext<'a> {
    pub ref_name: &'a str,
    pub tag: bool,
    /// Pipeline source: "push", "web", "trigger", "api", "schedule", "pipeline".
    pub source: &'a str,
    /// Variables visible to `rules: if:` (predefined CI_* vars, trigger variables). The compiler
    /// adds the file's global `variables:` to these for rule evaluation (job variables too, for
    /// that job's rules); on a name clash the value given here wins.
    pub variables: &'a BTreeMap<String, String>,
    /// The repository at the pipeline's sha: files for `include: local` and `rules: exists`,
    /// what the push changed for `rules: changes`.
    pub repository: &'a dyn Repository,
}

/// Compiles `.gitlab-ci.yml` text for one pipeline: includes, extends, defaults, then
/// workflow/only/except/rules filtering for `ctx`. A workflow that rejects the pipeline is the
/// error with path "workflow" and message "Pipeline filtered out by workflow rules.". When no
/// job (or only `.pre`/`.post` jobs) would run, the plan is empty: GitLab then creates no
/// pipeline and answers "No stages / jobs for this pipeline.".
pub fn compile(text: &str, ctx: &CompileContext) -> Result<PipelinePlan, CompileError> {
    pipeline::build(text, ctx.repository, pipeline::Mode::Compile(ctx))
}

/// Validates the file without ref filtering (for `kiln lint` and POST /ci/lint): every job is kept regardless of only/except/rules. Returns the plan of all visible jobs or the first error.
pub fn lint(text: &str, repository: &dyn Repository) -> Result<PipelinePlan, CompileError> {
    pipeline::build(text, repository, pipeline::Mode::Lint)
}
