//! The v3 Builds API shapes (`lib/api/entities.rb` of GitLab 8.x): Build, RepoCommit, User, Runner.

use super::time::{utc, with_offset};
use kiln_store::{BuildRecord, CommitRecord, RunnerSummary, UserRecord};
use serde::Serialize;

#[derive(Serialize)]
pub struct Build<'a> {
    pub commit: Commit<'a>,
    pub coverage: Option<f64>,
    pub created_at: String,
    pub download_url: Option<String>,
    pub finished_at: Option<String>,
    pub id: i64,
    pub name: &'a str,
    #[serde(rename = "ref")]
    pub ref_name: &'a str,
    pub runner: Option<Runner<'a>>,
    pub stage: &'a str,
    pub started_at: Option<String>,
    pub status: &'static str,
    pub tag: bool,
    pub user: Option<User<'a>>,
    /// Present only when the build has artifacts, as in GitLab 8.x.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifacts_file: Option<ArtifactsFile<'a>>,
}

#[derive(Serialize)]
pub struct Commit<'a> {
    pub author_email: &'a str,
    pub author_name: &'a str,
    pub created_at: String,
    pub id: &'a str,
    pub message: &'a str,
    pub short_id: &'a str,
    pub title: std::borrow::Cow<'a, str>,
}

#[derive(Serialize)]
pub struct User<'a> {
    pub avatar_url: String,
    pub bio: Option<&'a str>,
    pub created_at: String,
    pub id: i64,
    pub is_admin: bool,
    pub linkedin: &'a str,
    pub name: &'a str,
    pub skype: &'a str,
    pub state: &'a str,
    pub twitter: &'a str,
    pub username: &'a str,
    pub web_url: String,
    pub website_url: &'a str,
}

#[derive(Serialize)]
pub struct Runner<'a> {
    pub active: bool,
    pub description: &'a str,
    pub id: i64,
    pub is_shared: bool,
    pub name: Option<&'a str>,
}

#[derive(Serialize)]
pub struct ArtifactsFile<'a> {
    pub filename: &'a str,
    pub size: i64,
}

/// Presents builds against one external URL.
pub struct Presenter<'a> {
    pub external_url: &'a str,
}

impl<'a> Presenter<'a> {
    pub fn build<'b>(&self, b: &'b BuildRecord) -> Build<'b> {
        let artifacts = b
            .artifacts_file
            .as_deref()
            .filter(|_| b.erased_at.is_none());
        Build {
            commit: commit(&b.commit),
            coverage: b.coverage,
            created_at: utc(b.created_at),
            // GitLab 8.x pointed at a web UI path; Kiln points at the API download, which works
            // with the same token.
            download_url: artifacts.map(|_| {
                format!(
                    "{}/api/v3/projects/{}/builds/{}/artifacts",
                    self.external_url, b.project_id, b.id
                )
            }),
            finished_at: b.finished_at.map(utc),
            id: b.id,
            name: &b.name,
            ref_name: &b.ref_name,
            runner: b.runner.as_ref().map(runner),
            stage: &b.stage,
            started_at: b.started_at.map(utc),
            status: b.status.as_str(),
            tag: b.tag,
            user: b.user.as_ref().map(|u| self.user(u)),
            // `<artifacts:name>.zip` (artifacts.zip by default), as gitlab-runner uploads it.
            artifacts_file: artifacts.map(|file| ArtifactsFile {
                filename: archive_name(file),
                size: b.artifacts_size.unwrap_or(0),
            }),
        }
    }

    pub fn user<'b>(&self, u: &'b UserRecord) -> User<'b> {
        User {
            avatar_url: gravatar(&u.email),
            bio: u.bio.as_deref(),
            created_at: utc(u.created_at),
            id: u.id,
            is_admin: u.is_admin,
            linkedin: &u.linkedin,
            name: &u.name,
            skype: &u.skype,
            state: &u.state,
            twitter: &u.twitter,
            username: &u.username,
            web_url: format!("{}/u/{}", self.external_url, u.username),
            website_url: &u.website_url,
        }
    }
}

fn commit(c: &CommitRecord) -> Commit<'_> {
    Commit {
        author_email: &c.author_email,
        author_name: &c.author_name,
        created_at: with_offset(c.authored_at, c.author_tz_offset_minutes),
        id: &c.sha,
        message: &c.message,
        short_id: c.sha.get(..8).unwrap_or(&c.sha),
        title: commit_title(&c.message),
    }
}

/// The file name of an artifacts archive stored at `path`.
pub fn archive_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// GitLab's `Commit#title`: the first line, or "--no commit message"; a line of 100
/// characters or more is cut at its last space within 80 characters and ends in "…".
pub fn commit_title(message: &str) -> std::borrow::Cow<'_, str> {
    let first = message.lines().next().unwrap_or("");
    if message.trim().is_empty() {
        return "--no commit message".into();
    }
    if first.chars().count() < 100 {
        return first.into();
    }
    // ActiveSupport's truncate(81, separator: ' ', omission: '…').
    let room: String = first.chars().take(81).collect();
    let stop = room
        .rfind(' ')
        .unwrap_or_else(|| room.char_indices().nth(80).map_or(room.len(), |(i, _)| i));
    format!("{}…", &room[..stop]).into()
}

fn runner(r: &RunnerSummary) -> Runner<'_> {
    Runner {
        active: r.active,
        description: &r.description,
        id: r.id,
        is_shared: r.is_shared,
        name: r.name.as_deref(),
    }
}

/// GitLab's default avatar: Gravatar by the MD5 of the lower-cased email.
pub fn gravatar(email: &str) -> String {
    use md5::{Digest, Md5};
    let digest = Md5::digest(email.trim().to_lowercase().as_bytes());
    format!(
        "http://www.gravatar.com/avatar/{}?s=80&d=identicon",
        hex::encode(digest)
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn gravatar_matches_gitlab() {
        // The doc's example user admin@example.com has this avatar.
        assert_eq!(
            super::gravatar("admin@example.com"),
            "http://www.gravatar.com/avatar/e64c7d89f26bd1972efa854d13d7dd61?s=80&d=identicon"
        );
    }

    #[test]
    fn commit_titles_as_gitlab_cuts_them() {
        assert_eq!(super::commit_title("Fix it\n\nBecause."), "Fix it");
        assert_eq!(super::commit_title(""), "--no commit message");
        assert_eq!(super::commit_title("  \n"), "--no commit message");
        let short = "x".repeat(99);
        assert_eq!(super::commit_title(&short), short);
        let words = "word ".repeat(30);
        let cut = super::commit_title(&words);
        assert!(cut.ends_with('…') && cut.chars().count() <= 81, "{cut}");
        assert_eq!(cut, format!("{}…", "word ".repeat(16).trim_end()));
        let unbroken = "y".repeat(120);
        assert_eq!(
            super::commit_title(&unbroken),
            format!("{}…", "y".repeat(80))
        );
    }
}
