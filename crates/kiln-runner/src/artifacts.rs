//! The artifacts archive: the job's `artifacts:paths` (globs, files and directories) zipped.

use crate::ArtifactsSpec;
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct Archive {
    pub path: PathBuf,
    pub size: u64,
    pub files: usize,
    /// Patterns that matched nothing, for a warning in the trace.
    pub unmatched: Vec<String>,
}

/// Zips what `spec` names under `root` into `out`. Paths may not leave `root`.
pub fn archive(root: &Path, spec: &ArtifactsSpec, out: &Path) -> std::io::Result<Archive> {
    let mut files = Vec::new();
    let mut unmatched = Vec::new();
    let excluded = |rel: &Path| {
        spec.exclude.iter().any(|pattern| {
            glob::Pattern::new(pattern)
                .map(|p| p.matches_path(rel))
                .unwrap_or(false)
        })
    };
    for pattern in &spec.paths {
        if Path::new(pattern).is_absolute() || pattern.split('/').any(|part| part == "..") {
            unmatched.push(pattern.clone());
            continue;
        }
        let full = root.join(pattern);
        let matches: Vec<PathBuf> = match glob::glob(&full.to_string_lossy()) {
            Ok(paths) => paths.filter_map(Result::ok).collect(),
            Err(_) => Vec::new(),
        };
        if matches.is_empty() {
            unmatched.push(pattern.clone());
        }
        for path in matches {
            collect(&path, &mut files)?;
        }
    }
    files.sort();
    files.dedup();
    let file = std::fs::File::create(out)?;
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let mut count = 0;
    for path in &files {
        let Ok(rel) = path.strip_prefix(root) else {
            continue;
        };
        if excluded(rel) {
            continue;
        }
        zip.start_file(rel.to_string_lossy(), options)
            .map_err(std::io::Error::other)?;
        let mut source = std::fs::File::open(path)?;
        std::io::copy(&mut source, &mut zip)?;
        count += 1;
    }
    zip.finish().map_err(std::io::Error::other)?.flush()?;
    let size = std::fs::metadata(out)?.len();
    Ok(Archive {
        path: out.to_owned(),
        size,
        files: count,
        unmatched,
    })
}

/// Unpacks an artifacts archive into `into` (entries leaving it are refused by the zip crate).
pub fn unpack(zip: &Path, into: &Path) -> std::io::Result<()> {
    let mut archive =
        zip::ZipArchive::new(std::fs::File::open(zip)?).map_err(std::io::Error::other)?;
    archive.extract(into).map_err(std::io::Error::other)
}

fn collect(path: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            collect(&entry?.path(), files)?;
        }
    } else if meta.is_file() {
        files.push(path.to_owned());
    }
    Ok(())
}
