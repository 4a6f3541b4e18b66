//! Kiln's bare mirrors of project repositories, and what it reads from them: refs, commit
//! metadata (with the author date's own offset) and files at a sha. Uses the git command line.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("the project has no repository")]
    NoRepository,
    #[error("reference {0:?} not found")]
    UnknownRef(String),
    #[error("git failed: {0}")]
    Failed(String),
}

/// A commit as the builds API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct CommitInfo {
    pub sha: String,
    pub author_name: String,
    pub author_email: String,
    pub authored_at_ms: i64,
    pub tz_offset_minutes: i64,
    pub message: String,
}

/// The mirrors under `<data dir>/repos`, one per project, fetched before reading.
#[derive(Clone)]
pub struct Mirrors {
    root: PathBuf,
    /// One fetch at a time per mirror.
    locks: Arc<Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>>,
}

impl Mirrors {
    pub fn new(root: PathBuf) -> Mirrors {
        Mirrors {
            root,
            locks: Default::default(),
        }
    }

    pub fn path(&self, project_id: i64) -> PathBuf {
        self.root.join(format!("{project_id}.git"))
    }

    /// Clones the mirror on first use, fetches it afterwards. Returns its path.
    pub async fn sync(&self, project_id: i64, url: &str) -> Result<PathBuf, GitError> {
        let lock = {
            let mut locks = self
                .locks
                .lock()
                .map_err(|_| GitError::Failed("lock poisoned".into()))?;
            locks.entry(project_id).or_default().clone()
        };
        let _guard = lock.lock().await;
        let path = self.path(project_id);
        let (root, url, target) = (self.root.clone(), url.to_owned(), path.clone());
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&root).map_err(|e| GitError::Failed(e.to_string()))?;
            if target.join("HEAD").exists() {
                git(
                    &target,
                    &["fetch", "--prune", "--quiet", "--force", "origin"],
                )
                .map(|_| ())
            } else {
                let out = Command::new("git")
                    .args(["clone", "--mirror", "--quiet", &url])
                    .arg(&target)
                    .env("GIT_TERMINAL_PROMPT", "0")
                    .output()
                    .map_err(|e| GitError::Failed(e.to_string()))?;
                if out.status.success() {
                    Ok(())
                } else {
                    Err(GitError::Failed(
                        String::from_utf8_lossy(&out.stderr).trim().to_owned(),
                    ))
                }
            }
        })
        .await
        .map_err(|e| GitError::Failed(e.to_string()))??;
        Ok(path)
    }
}

fn git(repo: &Path, args: &[&str]) -> Result<String, GitError> {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .map_err(|e| GitError::Failed(e.to_string()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(GitError::Failed(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ))
    }
}

/// The sha `ref_name` points at, and whether it is a tag. A branch wins over a tag of the
/// same name, as in GitLab; a full or abbreviated sha is accepted too.
pub fn resolve(repo: &Path, ref_name: &str) -> Result<(String, bool), GitError> {
    if ref_name.is_empty() || ref_name.starts_with('-') {
        return Err(GitError::UnknownRef(ref_name.to_owned()));
    }
    for (prefix, tag) in [("refs/heads/", false), ("refs/tags/", true), ("", false)] {
        let spec = format!("{prefix}{ref_name}^{{commit}}");
        if let Ok(sha) = git(repo, &["rev-parse", "--verify", "--quiet", &spec]) {
            return Ok((sha.trim().to_owned(), tag));
        }
    }
    Err(GitError::UnknownRef(ref_name.to_owned()))
}

/// Branch heads: (name, sha).
pub fn branches(repo: &Path) -> Result<Vec<(String, String)>, GitError> {
    let out = git(
        repo,
        &[
            "for-each-ref",
            "--format=%(refname:lstrip=2) %(objectname)",
            "refs/heads",
        ],
    )?;
    Ok(out
        .lines()
        .filter_map(|l| {
            l.rsplit_once(' ')
                .map(|(n, s)| (n.to_owned(), s.to_owned()))
        })
        .collect())
}

pub fn commit(repo: &Path, sha: &str) -> Result<CommitInfo, GitError> {
    let out = git(
        repo,
        &[
            "log",
            "-1",
            "--date=format:%z",
            "--format=%H%x00%an%x00%ae%x00%at%x00%ad%x00%B",
            sha,
            "--",
        ],
    )?;
    let mut parts = out.splitn(6, '\0');
    let mut next = || parts.next().unwrap_or("").to_owned();
    let (sha, name, email, at, offset, message) = (next(), next(), next(), next(), next(), next());
    Ok(CommitInfo {
        sha,
        author_name: name,
        author_email: email,
        authored_at_ms: at.trim().parse::<i64>().unwrap_or(0) * 1000,
        tz_offset_minutes: parse_offset(offset.trim()),
        message: message.trim_end().to_owned(),
    })
}

/// `+0130` → 90, `-0500` → -300.
fn parse_offset(s: &str) -> i64 {
    let (sign, digits) = match s.split_at_checked(1) {
        Some(("-", d)) => (-1, d),
        Some(("+", d)) => (1, d),
        _ => return 0,
    };
    let hours: i64 = digits.get(..2).and_then(|h| h.parse().ok()).unwrap_or(0);
    let minutes: i64 = digits.get(2..4).and_then(|m| m.parse().ok()).unwrap_or(0);
    sign * (hours * 60 + minutes)
}

/// A file at `sha`, or None when it does not exist there.
pub fn read_file(repo: &Path, sha: &str, path: &str) -> Option<String> {
    let path = path.trim_start_matches("./").trim_start_matches('/');
    git(repo, &["show", &format!("{sha}:{path}")]).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn offsets() {
        assert_eq!(super::parse_offset("+0100"), 60);
        assert_eq!(super::parse_offset("-0530"), -330);
        assert_eq!(super::parse_offset("+0000"), 0);
        assert_eq!(super::parse_offset("junk"), 0);
    }
}
