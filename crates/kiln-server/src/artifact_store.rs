//! Where artifacts archives live, so that any server can serve any archive: a directory (the
//! default on SQLite; with several servers it must be a shared mount) or the database itself
//! in chunks (the default on PostgreSQL, where nothing else needs sharing). An archive's
//! location names the backend that stored it, so changing the setting never loses one.

use axum::body::Bytes;
use futures_util::Stream;
use kiln_store::{ArchiveLocation, Store};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Bytes per database chunk and per read.
const CHUNK: usize = 1024 * 1024;
const DIRECTORY: &str = "directory";
const DATABASE: &str = "database";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactStore {
    Directory(PathBuf),
    Database,
}

impl ArtifactStore {
    pub fn name(&self) -> &'static str {
        match self {
            ArtifactStore::Directory(_) => DIRECTORY,
            ArtifactStore::Database => DATABASE,
        }
    }

    /// Stores the archive `file` of build `build_id` under `name.zip`; returns where it is and
    /// its size.
    pub async fn put(
        &self,
        store: &Store,
        (project_id, build_id): (i64, i64),
        file: &Path,
        name: &str,
    ) -> std::io::Result<(ArchiveLocation, i64)> {
        let size = tokio::fs::metadata(file).await?.len() as i64;
        let key = format!("{project_id}/{build_id}/{name}.zip");
        match self {
            ArtifactStore::Directory(root) => {
                let target = root.join(&key);
                if let Some(parent) = target.parent() {
                    crate::files::create_private_dir(parent).await?;
                }
                // Written aside and renamed: a reader never sees half an archive.
                let partial = target.with_extension("zip.partial");
                tokio::fs::copy(file, &partial).await?;
                crate::files::make_private(&partial).await?;
                tokio::fs::rename(&partial, &target).await?;
            }
            ArtifactStore::Database => {
                store
                    .builds()
                    .delete_archive_chunks(build_id)
                    .await
                    .map_err(std::io::Error::other)?;
                let mut input = tokio::fs::File::open(file).await?;
                let mut seq = 0;
                loop {
                    let chunk = read_chunk(&mut input).await?;
                    if chunk.is_empty() {
                        break;
                    }
                    store
                        .builds()
                        .put_archive_chunk(build_id, seq, &chunk)
                        .await
                        .map_err(std::io::Error::other)?;
                    seq += 1;
                }
            }
        }
        let location = ArchiveLocation {
            backend: Some(self.name().to_owned()),
            file: key,
        };
        Ok((location, size))
    }

    /// The archive's bytes, a chunk at a time (never held whole). None when it is gone.
    pub async fn open(
        &self,
        store: &Store,
        build_id: i64,
        location: &ArchiveLocation,
    ) -> std::io::Result<Option<ArchiveStream>> {
        match location.backend.as_deref() {
            Some(DATABASE) => {
                let first = store
                    .builds()
                    .archive_chunk(build_id, 0)
                    .await
                    .map_err(std::io::Error::other)?;
                Ok(first.map(|first| ArchiveStream::Database {
                    store: store.clone(),
                    build_id,
                    first: Some(first),
                    next: 1,
                }))
            }
            backend => {
                let path = self.path_of(backend, &location.file)?;
                match tokio::fs::File::open(path).await {
                    Ok(file) => Ok(Some(ArchiveStream::File(file))),
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(err) => Err(err),
                }
            }
        }
    }

    /// Writes the archive to `target` (a job's dependency). False when it is gone.
    pub async fn copy_to(
        &self,
        store: &Store,
        build_id: i64,
        location: &ArchiveLocation,
        target: &Path,
    ) -> std::io::Result<bool> {
        let Some(mut stream) = self.open(store, build_id, location).await? else {
            return Ok(false);
        };
        let mut out = tokio::fs::File::create(target).await?;
        while let Some(chunk) = stream.next_chunk().await? {
            out.write_all(&chunk).await?;
        }
        out.flush().await?;
        Ok(true)
    }

    /// Removes the archive (already forgotten by the build).
    pub async fn delete(&self, store: &Store, build_id: i64, location: &ArchiveLocation) {
        let removed = match location.backend.as_deref() {
            Some(DATABASE) => store
                .builds()
                .delete_archive_chunks(build_id)
                .await
                .map_err(std::io::Error::other),
            backend => match self.path_of(backend, &location.file) {
                Ok(path) => tokio::fs::remove_file(path).await,
                Err(err) => Err(err),
            },
        };
        if let Err(err) = removed {
            if err.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(build = build_id, error = %err, "could not remove an artifacts archive");
            }
        }
    }

    /// The file of an archive in a directory: relative to the configured directory, or (an
    /// older Kiln's) an absolute path.
    fn path_of(&self, backend: Option<&str>, file: &str) -> std::io::Result<PathBuf> {
        match (backend, self) {
            (None, _) => Ok(PathBuf::from(file)),
            (Some(DIRECTORY), ArtifactStore::Directory(root)) => {
                // Keys are made by `put`; refuse anything that would leave the directory.
                if file.split('/').any(|part| part == ".." || part.is_empty()) {
                    return Err(std::io::Error::other("bad archive key"));
                }
                Ok(root.join(file))
            }
            (Some(other), _) => Err(std::io::Error::other(format!(
                "the archive is in the {other} store, which this server is not configured for"
            ))),
        }
    }
}

/// Reads up to `CHUNK` bytes (fewer only at the end).
async fn read_chunk(input: &mut tokio::fs::File) -> std::io::Result<Vec<u8>> {
    let mut chunk = vec![0_u8; CHUNK];
    let mut filled = 0;
    while filled < CHUNK {
        let n = input.read(&mut chunk[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    chunk.truncate(filled);
    Ok(chunk)
}

/// An archive being read.
pub enum ArchiveStream {
    File(tokio::fs::File),
    Database {
        store: Store,
        build_id: i64,
        first: Option<Vec<u8>>,
        next: i64,
    },
}

impl ArchiveStream {
    pub async fn next_chunk(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        match self {
            ArchiveStream::File(file) => {
                let chunk = read_chunk(file).await?;
                Ok((!chunk.is_empty()).then_some(chunk))
            }
            ArchiveStream::Database {
                store,
                build_id,
                first,
                next,
            } => {
                if let Some(chunk) = first.take() {
                    return Ok(Some(chunk));
                }
                let chunk = store
                    .builds()
                    .archive_chunk(*build_id, *next)
                    .await
                    .map_err(std::io::Error::other)?;
                *next += 1;
                Ok(chunk)
            }
        }
    }

    /// As a body stream.
    pub fn into_stream(self) -> impl Stream<Item = std::io::Result<Bytes>> {
        futures_util::stream::try_unfold(self, |mut archive| async move {
            Ok(archive
                .next_chunk()
                .await?
                .map(|chunk| (Bytes::from(chunk), archive)))
        })
    }
}
