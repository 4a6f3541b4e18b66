//! Sending a build's files, the same in every API version: its trace as it is now, and its
//! artifacts archive.

use crate::service::builds as service;
use crate::{ApiError, AppState};
use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use kiln_store::BuildRecord;

/// The trace as a page shows it (`/NS/PROJECT/-/jobs/ID/raw`): UTF-8 text in the browser,
/// streamed like the API's, never sniffed as anything else.
pub fn show_trace(state: &AppState, build: &BuildRecord) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        Body::from_stream(trace_stream(state.store.clone(), build.id)),
    )
        .into_response()
}

/// The trace as plain text, streamed (also while the build runs).
pub fn send_trace(state: &AppState, build: &BuildRecord) -> Response {
    let disposition = format!("infile; filename=\"{}.log\"", build.id);
    (
        [
            (header::CONTENT_TYPE, "text/plain".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        Body::from_stream(trace_stream(state.store.clone(), build.id)),
    )
        .into_response()
}

/// The trace as it is now, read a few parts at a time: a 100 MB trace is never held whole.
fn trace_stream(
    store: kiln_store::Store,
    build_id: i64,
) -> impl futures_util::Stream<Item = Result<Bytes, kiln_store::StoreError>> {
    const PARTS_PER_READ: i64 = 16;
    futures_util::stream::try_unfold(Some(0_i64), move |next| {
        let store = store.clone();
        async move {
            let Some(from) = next else { return Ok(None) };
            let parts = store
                .builds()
                .trace_parts(build_id, from, PARTS_PER_READ)
                .await?;
            let Some((start, last)) = parts.last() else {
                return Ok(None);
            };
            let more = (parts.len() as i64 == PARTS_PER_READ).then_some(start + last.len() as i64);
            let data: Vec<u8> = parts.into_iter().flat_map(|(_, data)| data).collect();
            Ok(Some((Bytes::from(data), more)))
        }
    })
}

pub async fn send_artifacts(state: &AppState, build: &BuildRecord) -> Result<Response, ApiError> {
    let location = service::live_archive(build).ok_or(ApiError::NotFound(""))?;
    // Quoted, as Rails' send_file does; the name comes from the job's `artifacts:name`.
    let disposition = format!(
        "attachment; filename=\"{}\"",
        crate::present::v3::archive_name(&location.file).replace(['"', '\\'], "_")
    );
    let archive = state
        .artifacts
        .open(&state.store, build.id, &location)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .ok_or(ApiError::NotFound(""))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        Body::from_stream(archive.into_stream()),
    )
        .into_response())
}

/// One file of the build's archive (`artifacts/*artifact_path`, `…/raw/*path`), extracted to
/// a temporary file and streamed from there. 404 when the archive or the entry is missing.
pub async fn send_archive_entry(
    state: &AppState,
    build: &BuildRecord,
    entry: &str,
) -> Result<Response, ApiError> {
    let internal = |e: std::io::Error| ApiError::Internal(e.into());
    let archive = local_copy(state, build).await?;
    let name = entry.trim_start_matches('/').to_owned();
    let extracted = tokio::task::spawn_blocking(move || extract(archive.path(), &name))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .map_err(internal)?
        .ok_or(ApiError::NotFound(""))?;
    let file_name = entry
        .rsplit('/')
        .next()
        .unwrap_or(entry)
        .replace(['"', '\\'], "_");
    let file = tokio::fs::File::open(extracted.path())
        .await
        .map_err(internal)?;
    let stream = futures_util::stream::unfold((file, extracted), |(mut file, keep)| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0_u8; 64 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(Bytes::from(buf)), (file, keep)))
            }
            Err(err) => Some((Err(err), (file, keep))),
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file_name}\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// The build's live archive copied to a temporary file (zip needs to seek); 404 without one.
async fn local_copy(
    state: &AppState,
    build: &BuildRecord,
) -> Result<tempfile::NamedTempFile, ApiError> {
    let location = service::live_archive(build).ok_or(ApiError::NotFound(""))?;
    let internal = |e: std::io::Error| ApiError::Internal(e.into());
    let archive = tempfile::NamedTempFile::new().map_err(internal)?;
    let copied = state
        .artifacts
        .copy_to(&state.store, build.id, &location, archive.path())
        .await
        .map_err(internal)?;
    if !copied {
        return Err(ApiError::NotFound(""));
    }
    Ok(archive)
}

/// At most this many entries of an archive are listed (its central directory could hold
/// millions of empty files).
const MAX_LISTED_ENTRIES: usize = 10_000;

/// The names and sizes of the files and directories in the build's archive, in its order.
pub async fn archive_entries(
    state: &AppState,
    build: &BuildRecord,
) -> Result<Vec<(String, u64)>, ApiError> {
    let archive = local_copy(state, build).await?;
    let listed = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(archive.path())?;
        // An archive that is not a zip (a runner may upload anything) lists nothing.
        let Ok(mut zip) = zip::ZipArchive::new(file) else {
            return Ok(Vec::new());
        };
        let mut names = Vec::new();
        for i in 0..zip.len().min(MAX_LISTED_ENTRIES) {
            if let Ok(entry) = zip.by_index_raw(i) {
                names.push((entry.name().to_owned(), entry.size()));
            }
        }
        Ok::<_, std::io::Error>(names)
    });
    listed
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .map_err(|e| ApiError::Internal(e.into()))
}

/// The archive's entry `name` copied out to a temporary file; None when there is no such file.
fn extract(
    archive: &std::path::Path,
    name: &str,
) -> std::io::Result<Option<tempfile::NamedTempFile>> {
    let mut zip =
        zip::ZipArchive::new(std::fs::File::open(archive)?).map_err(std::io::Error::other)?;
    let mut entry = match zip.by_name(name) {
        Ok(entry) if entry.is_file() => entry,
        Ok(_) | Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(err) => return Err(std::io::Error::other(err)),
    };
    let mut out = tempfile::NamedTempFile::new()?;
    std::io::copy(&mut entry, &mut out)?;
    Ok(Some(out))
}
