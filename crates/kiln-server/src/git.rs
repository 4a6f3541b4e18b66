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
    pub parents: Vec<String>,
}

impl CommitInfo {
    /// The commit as the store keeps it with a pipeline.
    pub fn into_record(self) -> kiln_store::CommitRecord {
        kiln_store::CommitRecord {
            sha: self.sha,
            message: self.message,
            author_name: self.author_name,
            author_email: self.author_email,
            authored_at: self.authored_at_ms,
            author_tz_offset_minutes: self.tz_offset_minutes,
        }
    }
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
            if path_exists(&target) {
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

    /// The mirror, fetched first if it lacks `sha`: a build may come from a pipeline that
    /// another server (sharing the database) created from a newer fetch.
    pub async fn with_commit(
        &self,
        project_id: i64,
        url: &str,
        sha: &str,
    ) -> Result<PathBuf, GitError> {
        let path = self.path(project_id);
        let (repo, object) = (path.clone(), format!("{sha}^{{commit}}"));
        let present = tokio::task::spawn_blocking(move || {
            path_exists(&repo) && git(&repo, &["cat-file", "-e", &object]).is_ok()
        })
        .await
        .unwrap_or(false);
        if present {
            return Ok(path);
        }
        self.sync(project_id, url).await
    }
}

fn path_exists(repo: &Path) -> bool {
    repo.join("HEAD").exists()
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

/// The branches whose history holds commit `sha` (a full sha), by name.
pub fn branches_containing(repo: &Path, sha: &str) -> Result<Vec<String>, GitError> {
    let contains = format!("--contains={sha}");
    let out = git(
        repo,
        &[
            "for-each-ref",
            "--format=%(refname:lstrip=2)",
            &contains,
            "refs/heads",
        ],
    )?;
    Ok(out.lines().map(str::to_owned).collect())
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

/// What a pipeline needs from the mirror, read through one `git cat-file --batch` process
/// (one process instead of four: this is on the trigger → running path): the sha `ref_name`
/// points at (a branch wins over a tag of the same name, as in GitLab; a sha is accepted too),
/// whether it is a tag, the commit, and the file at `path` in it.
pub fn read_for_pipeline(
    repo: &Path,
    ref_name: &str,
    path: &str,
) -> Result<(CommitInfo, bool, Option<String>), GitError> {
    use std::io::{BufRead, BufReader, Read, Write};
    let unknown = || GitError::UnknownRef(ref_name.to_owned());
    if ref_name.is_empty()
        || ref_name.starts_with('-')
        || ref_name.chars().any(|c| c.is_control() || c == ' ')
    {
        return Err(unknown());
    }
    let failed = |e: std::io::Error| GitError::Failed(e.to_string());
    let mut child = Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(["cat-file", "--batch"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(failed)?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| GitError::Failed("no stdin".into()))?;
    let mut stdout = BufReader::new(
        child
            .stdout
            .take()
            .ok_or_else(|| GitError::Failed("no stdout".into()))?,
    );
    // One object per request: "<oid> <type> <size>\n<content>\n", or "<name> missing\n".
    let mut ask = |name: &str| -> Result<Option<(String, Vec<u8>)>, GitError> {
        writeln!(stdin, "{name}")
            .and_then(|_| stdin.flush())
            .map_err(failed)?;
        let mut header = String::new();
        stdout.read_line(&mut header).map_err(failed)?;
        let fields: Vec<&str> = header.split_whitespace().collect();
        let [oid, _kind, size] = fields.as_slice() else {
            return Ok(None);
        };
        let size: usize = size
            .parse()
            .map_err(|_| GitError::Failed(format!("bad cat-file header {header:?}")))?;
        let mut content = vec![0; size + 1];
        stdout.read_exact(&mut content).map_err(failed)?;
        content.truncate(size);
        Ok(Some((oid.to_string(), content)))
    };
    let mut found = None;
    for (prefix, tag) in [("refs/heads/", false), ("refs/tags/", true), ("", false)] {
        if let Some((sha, raw)) = ask(&format!("{prefix}{ref_name}^{{commit}}"))? {
            found = Some((sha, raw, tag));
            break;
        }
    }
    let (sha, raw, tag) = found.ok_or_else(unknown)?;
    let file = ask(&format!(
        "{sha}:{}",
        path.trim_start_matches("./").trim_start_matches('/')
    ))?
    .map(|(_, content)| String::from_utf8_lossy(&content).into_owned());
    let _ = child.kill();
    let _ = child.wait();
    Ok((
        parse_commit(&sha, &String::from_utf8_lossy(&raw)),
        tag,
        file,
    ))
}

/// A raw commit object: headers, a blank line, the message.
fn parse_commit(sha: &str, raw: &str) -> CommitInfo {
    let (headers, message) = raw.split_once("\n\n").unwrap_or((raw, ""));
    let author = headers
        .lines()
        .find_map(|l| l.strip_prefix("author "))
        .unwrap_or("");
    // "Name <email> 1450972274 +0100"
    let (name, rest) = author.split_once(" <").unwrap_or((author, ""));
    let (email, when) = rest.split_once("> ").unwrap_or((rest, ""));
    let mut when = when.split_whitespace();
    let at: i64 = when.next().and_then(|t| t.parse().ok()).unwrap_or(0);
    CommitInfo {
        sha: sha.to_owned(),
        author_name: name.to_owned(),
        author_email: email.to_owned(),
        authored_at_ms: at * 1000,
        tz_offset_minutes: parse_offset(when.next().unwrap_or("")),
        // A NUL is legal in a git message but not in PostgreSQL text.
        message: message.trim_end().replace('\0', "\u{fffd}"),
        parents: headers
            .lines()
            .filter_map(|l| l.strip_prefix("parent "))
            .map(str::to_owned)
            .collect(),
    }
}

/// Whether `rev` may be handed to git as a revision (not an option, no control characters).
fn is_safe_rev(rev: &str) -> bool {
    !rev.is_empty() && !rev.starts_with('-') && !rev.chars().any(|c| c.is_control() || c == ' ')
}

/// Commits reachable from `rev`, newest first: `skip` of them passed over, at most `max`,
/// authored within `since`..`until` (Unix seconds) when given. `UnknownRef` for a rev that
/// names nothing.
pub fn log(
    repo: &Path,
    rev: &str,
    (since, until): (Option<i64>, Option<i64>),
    skip: u64,
    max: u32,
) -> Result<Vec<CommitInfo>, GitError> {
    if !is_safe_rev(rev) {
        return Err(GitError::UnknownRef(rev.to_owned()));
    }
    let commit = format!("{rev}^{{commit}}");
    if git(repo, &["rev-parse", "--verify", "--quiet", &commit]).is_err() {
        return Err(GitError::UnknownRef(rev.to_owned()));
    }
    let mut args = vec![
        "log".to_owned(),
        "--format=%H%x1f%P%x1f%an%x1f%ae%x1f%at%x1f%ad%x1f%B%x1e".to_owned(),
        "--date=format:%z".to_owned(),
        format!("--skip={skip}"),
        format!("--max-count={max}"),
    ];
    if let Some(since) = since {
        args.push(format!("--since=@{since}"));
    }
    if let Some(until) = until {
        args.push(format!("--until=@{until}"));
    }
    args.push(commit);
    args.push("--".to_owned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = git(repo, &args)?;
    Ok(out
        .split('\u{1e}')
        .filter_map(|record| commit_fields(record.trim_start_matches('\n')))
        .collect())
}

/// A commit from `sha␟parents␟name␟email␟unix time␟offset␟message` (the fields `log` and
/// `branch_heads` ask git for).
fn commit_fields(record: &str) -> Option<CommitInfo> {
    let fields: Vec<&str> = record.splitn(7, '\u{1f}').collect();
    let [sha, parents, name, email, at, offset, message] = fields.as_slice() else {
        return None;
    };
    Some(CommitInfo {
        sha: (*sha).to_owned(),
        author_name: (*name).to_owned(),
        author_email: email
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_owned(),
        authored_at_ms: at.parse::<i64>().unwrap_or(0) * 1000,
        tz_offset_minutes: parse_offset(offset),
        message: message.trim_end().replace('\0', "\u{fffd}"),
        parents: parents.split_whitespace().map(str::to_owned).collect(),
    })
}

/// Every branch with its head commit, by name, read by one `git for-each-ref` (not a
/// process per branch).
pub fn branch_heads(repo: &Path) -> Result<Vec<(String, CommitInfo)>, GitError> {
    let format = "--format=%(refname:lstrip=2)%1f%(objectname)%1f%(parent)%1f%(authorname)%1f\
        %(authoremail)%1f%(authordate:unix)%1f%(authordate:format:%z)%1f%(contents)%1e";
    let out = git(
        repo,
        &["for-each-ref", "--sort=refname", format, "refs/heads"],
    )?;
    Ok(out
        .split('\u{1e}')
        .filter_map(|record| {
            let (name, rest) = record.trim_start_matches('\n').split_once('\u{1f}')?;
            Some((name.to_owned(), commit_fields(rest)?))
        })
        .collect())
}

/// A file at `sha`, or None when it does not exist there.
pub fn read_file(repo: &Path, sha: &str, path: &str) -> Option<String> {
    let path = path.trim_start_matches("./").trim_start_matches('/');
    // `cat-file blob`: a directory is not a file (`show` would list it).
    git(repo, &["cat-file", "blob", &format!("{sha}:{path}")]).ok()
}

/// Most paths a commit's listing gives the compiler's globs.
const MAX_LISTED_FILES: usize = 100_000;

/// Every file of the commit `sha` (relative paths), at most `MAX_LISTED_FILES`.
pub fn list_files(repo: &Path, sha: &str) -> Vec<String> {
    git(repo, &["ls-tree", "-r", "-z", "--name-only", sha])
        .map(|out| {
            out.split('\0')
                .filter(|p| !p.is_empty())
                .take(MAX_LISTED_FILES)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The files that differ between the commits `from` and `to`; None when git cannot say.
pub fn changed_files(repo: &Path, from: &str, to: &str) -> Option<Vec<String>> {
    let out = git(
        repo,
        &["diff", "--name-only", "-z", "--no-renames", from, to],
    )
    .ok()?;
    Some(
        out.split('\0')
            .filter(|p| !p.is_empty())
            .take(MAX_LISTED_FILES)
            .map(str::to_owned)
            .collect(),
    )
}

/// The repository at one commit of a mirror, as the CI compiler reads it; `before` is the
/// commit the push moved the branch from, when known (for `rules: changes`).
pub struct CommitFiles {
    pub repo: std::path::PathBuf,
    pub sha: String,
    pub before: Option<String>,
}

impl kiln_ci::Repository for CommitFiles {
    fn read_file(&self, path: &str) -> Option<String> {
        read_file(&self.repo, &self.sha, path)
    }

    fn files(&self) -> Vec<String> {
        list_files(&self.repo, &self.sha)
    }

    fn changed_files(&self) -> Option<Vec<String>> {
        changed_files(&self.repo, self.before.as_deref()?, &self.sha)
    }

    /// The blob's id as git stores it (binary files too), for `cache: key: files:`.
    fn blob_id(&self, path: &str) -> Option<String> {
        let path = path.trim_start_matches("./").trim_start_matches('/');
        // `<mode> blob <id>\t<path>`; a folder is a tree, not a file.
        let listed = git(&self.repo, &["ls-tree", &self.sha, "--", path]).ok()?;
        let mut fields = listed.split_whitespace();
        match (fields.next(), fields.next(), fields.next()) {
            (Some(_), Some("blob"), Some(id)) => Some(id.to_owned()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn blob_ids_of_a_commit_are_gits_own() {
        use kiln_ci::Repository;
        let dir = tempfile::tempdir().expect("dir");
        let run = |args: &[&str]| {
            let out = std::process::Command::new("git")
                .current_dir(dir.path())
                .args(["-c", "user.name=t", "-c", "user.email=t@t"])
                .args(args)
                .output()
                .expect("git");
            assert!(out.status.success(), "{args:?}");
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        run(&["init", "-q"]);
        std::fs::write(dir.path().join("Cargo.lock"), b"lock\n\xff binary").expect("write");
        run(&["add", "."]);
        run(&["commit", "-q", "-m", "x"]);
        let files = super::CommitFiles {
            repo: dir.path().join(".git"),
            sha: run(&["rev-parse", "HEAD"]),
            before: None,
        };
        assert_eq!(
            files.blob_id("Cargo.lock"),
            Some(kiln_ci::git_blob_id(b"lock\n\xff binary"))
        );
        assert_eq!(files.blob_id("missing"), None);
    }

    #[test]
    fn commit_objects() {
        let raw = "tree abc\nparent def\nauthor Ada Lovelace <ada@example.com> 1450972274 +0100\ncommitter X <x@y> 1 +0000\n\nAdd CI\n\nBody.\n";
        let c = super::parse_commit("0ff3", raw);
        assert_eq!(
            (c.author_name.as_str(), c.author_email.as_str()),
            ("Ada Lovelace", "ada@example.com")
        );
        assert_eq!(
            (c.authored_at_ms, c.tz_offset_minutes),
            (1_450_972_274_000, 60)
        );
        assert_eq!(c.message, "Add CI\n\nBody.");
    }

    #[test]
    fn offsets() {
        assert_eq!(super::parse_offset("+0100"), 60);
        assert_eq!(super::parse_offset("-0530"), -330);
        assert_eq!(super::parse_offset("+0000"), 0);
        assert_eq!(super::parse_offset("junk"), 0);
    }
}
