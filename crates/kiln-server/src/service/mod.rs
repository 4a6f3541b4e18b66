//! Services: what Kiln does, independent of how a request asked for it.

pub mod bridges;
pub mod builds;
pub mod ci_variables;
pub mod commit_statuses;
pub mod compiler;
pub mod definition;
pub mod hooks;
pub mod job_logs;
pub mod jobs;
pub mod pipelines;
pub mod projects;
pub mod push_hook;
pub mod repository;
pub mod runners;
pub mod schedules;
pub mod sign_in;
pub mod triggers;
pub mod variables;
