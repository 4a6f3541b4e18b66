//! What a job's runner provides the executor: where the trace goes, how the source is
//! fetched, and where artifacts come from and go. The embedded runner calls the jobs service
//! in-process; `kiln run` keeps everything local; a remote runner speaks HTTP.

use crate::{Dependency, GitSource};
use std::future::Future;
use std::path::Path;

/// Why a trace append did not store its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkError {
    /// Not now (the server is unreachable, a database error): the same bytes are sent again.
    Retry(String),
    /// The job is no longer this runner's (canceled, failed by the reaper): stop it.
    JobGone,
}

pub trait Transport: Send {
    /// Stores `data` at byte `offset` of the job's trace. Sending the same range twice must
    /// be harmless (the first answer may have been lost).
    fn append_trace(
        &mut self,
        offset: u64,
        data: &[u8],
    ) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// Puts the job's source at `git.sha` into the empty directory `dir`. By default a clone
    /// of `git.url`.
    fn checkout(
        &mut self,
        git: &GitSource,
        dir: &Path,
    ) -> impl Future<Output = Result<(), String>> + Send {
        crate::checkout::checkout(&git.url, &git.sha, dir)
    }

    /// Writes the artifacts archive of the earlier job `dependency` to the file `zip`.
    fn download_artifacts(
        &mut self,
        dependency: &Dependency,
        zip: &Path,
    ) -> impl Future<Output = Result<(), String>> + Send;

    /// Hands over the job's artifacts archive `zip` (named `<name>.zip`); the executor
    /// removes the file afterwards.
    fn upload_artifacts(
        &mut self,
        zip: &Path,
        name: &str,
    ) -> impl Future<Output = Result<(), String>> + Send;

    /// Hands over the job's `dotenv` report: its files, gzip (one member per file), as
    /// gitlab-runner uploads `artifact_type=dotenv`. Err: the report was refused (the reason).
    fn upload_dotenv(&mut self, gz: &[u8]) -> impl Future<Output = Result<(), String>> + Send;
}
