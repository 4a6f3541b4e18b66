//! A fresh work directory checked out at the job's commit, with the git command line.

use std::path::Path;
use tokio::process::Command;

/// Clones `repo` (a URL, or a local repository) into `dir` and checks out `sha` (detached).
pub async fn checkout(repo: &str, sha: &str, dir: &Path) -> Result<(), String> {
    checkout_with(repo, sha, dir, true).await
}

/// As `checkout`. A local repository's objects are borrowed when `borrow` (which makes a
/// checkout cost milliseconds, but leaves the clone needing read access to `repo`), else
/// copied.
pub async fn checkout_with(repo: &str, sha: &str, dir: &Path, borrow: bool) -> Result<(), String> {
    let local = Path::new(repo).exists();
    let mut clone = Command::new("git");
    clone.args(["clone", "--quiet", "--no-checkout"]);
    if local {
        clone.arg(if borrow { "--shared" } else { "--no-hardlinks" });
    }
    clone.arg(repo).arg(dir);
    git(clone).await?;
    let mut co = Command::new("git");
    co.arg("-C")
        .arg(dir)
        .args(["checkout", "--quiet", "--detach", sha]);
    git(co).await
}

async fn git(mut command: Command) -> Result<(), String> {
    command.env("GIT_TERMINAL_PROMPT", "0");
    let output = command.output().await.map_err(|e| format!("git: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}
