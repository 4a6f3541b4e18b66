//! A job's artifacts for people, at GitLab's addresses: `/NS/PROJECT/-/jobs/ID/artifacts/
//! download` (the archive), `…/browse[/DIR]` (its files, a directory at a time), `…/raw/PATH`
//! (one file), and the job page's summary with its Keep button (`POST …/artifacts/keep`).

use super::jobs::job_of;
use super::page::{self, Page};
use super::pipelines::failed;
use super::session::Visitor;
use crate::service::builds as service;
use crate::{ApiError, AppState};
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use kiln_store::BuildRecord;

/// What the job page says about the artifacts.
pub(super) struct Summary {
    pub size: String,
    /// "in 6 days", or None when they are kept.
    pub expires: Option<String>,
}

/// The artifacts a job page shows, if the job has any that have not expired or been erased.
pub(super) fn summary(build: &BuildRecord, now: i64) -> Option<Summary> {
    service::live_archive(build)?;
    Some(Summary {
        size: human_size(build.artifacts_size.unwrap_or(0)),
        expires: build
            .artifacts_expire_at
            .map(|at| in_words((at - now).max(0) / 1000)),
    })
}

fn human_size(bytes: i64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn in_words(secs: i64) -> String {
    let (count, unit) = match secs {
        s if s < 3600 => ((s / 60).max(1), "minute"),
        s if s < 86_400 => (s / 3600, "hour"),
        s => (s / 86_400, "day"),
    };
    format!("in {count} {unit}{}", if count == 1 { "" } else { "s" })
}

struct Entry {
    name: String,
    href: String,
    size: Option<String>,
}

#[derive(Template)]
#[template(path = "artifacts.html")]
struct BrowsePage<'a> {
    page: &'a Page,
    project: String,
    id: i64,
    name: String,
    /// The directory shown, `""` for the top, else ending in `/`.
    dir: String,
    parent: Option<String>,
    entries: Vec<Entry>,
}

/// `GET /NS/PROJECT/-/jobs/ID/artifacts/download`
pub async fn download(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((namespace, repo, id)): Path<(String, String, String)>,
) -> Response {
    let found = async {
        let build = job_of(&state, &visitor, (&namespace, &repo), &id)
            .await?
            .build;
        crate::api::build_files::send_artifacts(&state, &build).await
    };
    found.await.unwrap_or_else(|err| failed(&visitor, err))
}

/// `GET /NS/PROJECT/-/jobs/ID/artifacts/raw/PATH`
pub async fn raw(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((namespace, repo, id, path)): Path<(String, String, String, String)>,
) -> Response {
    let found = async {
        let build = job_of(&state, &visitor, (&namespace, &repo), &id)
            .await?
            .build;
        crate::api::build_files::send_archive_entry(&state, &build, &path).await
    };
    found.await.unwrap_or_else(|err| failed(&visitor, err))
}

/// `GET /NS/PROJECT/-/jobs/ID/artifacts/browse`
pub async fn browse_top(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((namespace, repo, id)): Path<(String, String, String)>,
) -> Response {
    browse_page(&state, &visitor, (&namespace, &repo), &id, "")
        .await
        .unwrap_or_else(|err| failed(&visitor, err))
}

/// `GET /NS/PROJECT/-/jobs/ID/artifacts/browse/DIR`
pub async fn browse(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((namespace, repo, id, dir)): Path<(String, String, String, String)>,
) -> Response {
    browse_page(&state, &visitor, (&namespace, &repo), &id, &dir)
        .await
        .unwrap_or_else(|err| failed(&visitor, err))
}

async fn browse_page(
    state: &AppState,
    visitor: &Visitor,
    path: (&str, &str),
    id: &str,
    dir: &str,
) -> Result<Response, ApiError> {
    let seen = job_of(state, visitor, path, id).await?;
    let names = crate::api::build_files::archive_entries(state, &seen.build).await?;
    let dir = match dir.trim_matches('/') {
        "" => String::new(),
        inner => format!("{inner}/"),
    };
    let project = seen.project.full_path();
    let base = format!("/{project}/-/jobs/{}/artifacts", seen.build.id);
    let entries = children(&names, &dir)
        .into_iter()
        .map(|(name, size)| Entry {
            href: match size {
                None => format!("{base}/browse/{}", encode_path(&format!("{dir}{name}"))),
                Some(_) => format!("{base}/raw/{}", encode_path(&format!("{dir}{name}"))),
            },
            size: size.map(|s| human_size(s as i64)),
            name,
        })
        .collect::<Vec<_>>();
    if entries.is_empty() && !dir.is_empty() {
        return Err(ApiError::NotFoundMessage("404 Not found"));
    }
    let parent = (!dir.is_empty()).then(|| {
        let up = dir.trim_end_matches('/').rsplit_once('/').map(|(up, _)| up);
        match up {
            Some(up) => format!("{base}/browse/{}", encode_path(up)),
            None => format!("{base}/browse"),
        }
    });
    let (page, cookies) = visitor.page();
    let body = BrowsePage {
        page: &page,
        project,
        id: seen.build.id,
        name: seen.build.name.clone(),
        dir,
        parent,
        entries,
    };
    Ok(page::render(StatusCode::OK, &body, &cookies))
}

/// The directories (size None, named with a trailing `/`) and files directly inside `dir`
/// among the archive's `names` (with sizes), directories first, each once.
fn children(names: &[(String, u64)], dir: &str) -> Vec<(String, Option<u64>)> {
    let mut dirs = std::collections::BTreeSet::new();
    let mut files = Vec::new();
    for (name, size) in names {
        let Some(rest) = name.strip_prefix(dir) else {
            continue;
        };
        match rest.split_once('/') {
            Some((sub, _)) if !sub.is_empty() => {
                dirs.insert(format!("{sub}/"));
            }
            Some(_) => {}
            None if !rest.is_empty() => files.push((rest.to_owned(), Some(*size))),
            None => {}
        }
    }
    files.sort();
    dirs.into_iter().map(|d| (d, None)).chain(files).collect()
}

/// Each segment of a path percent-encoded, the slashes kept.
fn encode_path(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            percent_encoding::utf8_percent_encode(segment, percent_encoding::NON_ALPHANUMERIC)
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_lists_its_subdirectories_then_its_files() {
        let names = [
            ("dist/app.txt".to_owned(), 20),
            ("dist/lib/a.so".to_owned(), 5),
            ("dist/lib/".to_owned(), 0),
            ("README".to_owned(), 3),
            ("dist/b c.txt".to_owned(), 1),
        ];
        assert_eq!(
            children(&names, ""),
            [("dist/".to_owned(), None), ("README".to_owned(), Some(3))]
        );
        assert_eq!(
            children(&names, "dist/"),
            [
                ("lib/".to_owned(), None),
                ("app.txt".to_owned(), Some(20)),
                ("b c.txt".to_owned(), Some(1))
            ]
        );
        assert_eq!(encode_path("dist/b c.txt"), "dist/b%20c%2Etxt");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(in_words(6 * 86_400 + 5), "in 6 days");
        assert_eq!(in_words(30), "in 1 minute");
    }
}
