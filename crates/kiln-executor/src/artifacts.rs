//! The artifacts archive: the job's `artifacts:paths` (globs, files and directories) zipped.

use crate::ArtifactsSpec;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Most bytes of one dotenv file read for its report; the server refuses reports past
/// GitLab's 5 KiB, this only keeps a huge file from being read whole.
const MAX_DOTENV_READ: u64 = 64 * 1024;

/// The dotenv files `paths` (relative, inside `root`) gzip'd one member after another, as
/// gitlab-runner sends `artifact_format=gzip`; and the paths that name no file.
pub fn dotenv_report(root: &Path, paths: &[String]) -> std::io::Result<(Vec<u8>, Vec<String>)> {
    use flate2::{write::GzEncoder, Compression};
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for path in paths {
        let rel = Path::new(path);
        let inside = !rel.is_absolute()
            && !rel
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir));
        let file = root.join(rel);
        if !inside || !file.is_file() {
            missing.push(path.clone());
            continue;
        }
        let mut text = Vec::new();
        std::fs::File::open(&file)?
            .take(MAX_DOTENV_READ)
            .read_to_end(&mut text)?;
        let mut member = GzEncoder::new(Vec::new(), Compression::default());
        member.write_all(&text)?;
        out.extend(member.finish()?);
    }
    Ok((out, missing))
}

/// A path of `artifacts:` or `cache:` with the job's variables expanded (`$CI_PROJECT_DIR/out`,
/// a matrix variable), as gitlab-runner does; a path inside the work directory `root` is taken
/// relative to it.
pub(crate) fn expand_path(path: &str, env: &[(String, String)], root: &Path) -> String {
    let expanded = crate::variables::expand_in(path, env);
    match Path::new(&expanded).strip_prefix(root) {
        Ok(rel) if Path::new(&expanded).is_absolute() => rel.to_string_lossy().into_owned(),
        _ => expanded,
    }
}

pub struct Archive {
    pub path: PathBuf,
    pub size: u64,
    pub files: usize,
    /// Patterns that matched nothing, for a warning in the trace.
    pub unmatched: Vec<String>,
}

/// Zips what `spec` names under `root` into `out`. Paths may not leave `root`. Stops as soon
/// as the archive passes `limit` bytes (its `size` then says so): a job's huge output never
/// fills the disk first.
pub fn archive(
    root: &Path,
    spec: &ArtifactsSpec,
    out: &Path,
    limit: u64,
) -> std::io::Result<Archive> {
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
    if spec.untracked {
        for rel in untracked(root)? {
            collect(&root.join(rel), &mut files)?;
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
        let mut buf = vec![0_u8; 1 << 20];
        loop {
            let n = source.read(&mut buf)?;
            if n == 0 {
                break;
            }
            zip.write_all(&buf[..n])?;
            // The deflater writes through to the file as it goes.
            let written = std::fs::metadata(out)?.len();
            if written > limit {
                return Ok(Archive {
                    path: out.to_owned(),
                    size: written,
                    files: count,
                    unmatched,
                });
            }
        }
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

/// Files git does not track under `root` (`git ls-files --others`, ignored ones included,
/// as GitLab's `artifacts:untracked`); none outside a git work tree.
fn untracked(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["ls-files", "--others", "-z"])
        .output()?;
    if !out.status.success() {
        return Ok(Vec::new());
    }
    Ok(out
        .stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| PathBuf::from(String::from_utf8_lossy(p).into_owned()))
        .collect())
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
