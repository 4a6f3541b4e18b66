//! `cache:` on the runner, as gitlab-runner keeps a local cache: one archive per project and
//! key, `<cache dir>/<project>/<key>/cache.zip`, restored into the work directory before the
//! job's artifacts arrive and saved after `after_script`. Keys and paths are expanded with the
//! job's variables here, as the server sends them written. A save writes a new file and
//! renames it into place, so a job restoring at the same moment reads the old or the new
//! archive, never half of one.

use crate::{artifacts, ArtifactsSpec, ArtifactsWhen, CacheSpec};
use std::path::{Path, PathBuf};

/// The archives of one project.
#[derive(Debug, Clone)]
pub(crate) struct ProjectCache {
    dir: PathBuf,
}

/// What a cache's policy lets a job do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    Pull,
    Push,
    PullPush,
}

impl ProjectCache {
    /// The cache of `project` (its full path) under `root`; each part of the path becomes a
    /// plain folder name, so no project reaches another's archives.
    pub(crate) fn new(root: &Path, project: &str) -> ProjectCache {
        let mut dir = root.to_path_buf();
        for part in project.split('/').filter(|p| !p.is_empty()) {
            dir.push(folder_name(part));
        }
        ProjectCache { dir }
    }

    fn archive(&self, key: &str) -> Result<PathBuf, String> {
        if key.is_empty() {
            return Err("the cache key is empty".into());
        }
        if key.contains(['/', '\\', '\0']) || key == "." || key == ".." {
            return Err(format!(
                "the cache key {key:?} may not contain \"/\" or be \".\" or \"..\""
            ));
        }
        Ok(self.dir.join(key).join("cache.zip"))
    }

    /// Unpacks the first archive found of the cache's key, its fallback keys and
    /// `CACHE_FALLBACK_KEY` into `into`; the lines to show in the trace.
    pub(crate) fn restore(
        &self,
        cache: &CacheSpec,
        env: &[(String, String)],
        into: &Path,
    ) -> Vec<String> {
        let mut lines = Vec::new();
        match policy(cache, env) {
            Ok(Policy::Push) => return lines,
            Ok(_) => {}
            Err(err) => return vec![warning(&err)],
        }
        let mut keys: Vec<String> = std::iter::once(&cache.key)
            .chain(&cache.fallback_keys)
            .map(|key| crate::variables::expand_in(key, env))
            .collect();
        if let Some((_, fallback)) = env.iter().rev().find(|(k, _)| k == "CACHE_FALLBACK_KEY") {
            // gitlab-runner's rule: an unprotected job may not fall back on a protected cache.
            if fallback.ends_with("-protected") {
                lines.push(warning(&format!(
                    "CACHE_FALLBACK_KEY {fallback:?} is not used: it may not end in \"-protected\""
                )));
            } else if !fallback.is_empty() {
                keys.push(fallback.clone());
            }
        }
        for key in keys {
            lines.push(format!("Checking cache for {key}..."));
            let file = match self.archive(&key) {
                Ok(file) => file,
                Err(err) => {
                    lines.push(warning(&err));
                    continue;
                }
            };
            if !file.is_file() {
                lines.push(warning("file does not exist"));
                lines.push("Failed to extract cache".into());
                continue;
            }
            match artifacts::unpack(&file, into) {
                Ok(()) => {
                    lines.push(format!("Successfully extracted cache {key}"));
                    return lines;
                }
                Err(err) => {
                    lines.push(warning(&format!("extracting the cache failed: {err}")));
                }
            }
        }
        lines
    }

    /// Archives what the cache names under `root`, if its policy and `when` ask for it after
    /// a job that `succeeded` (or not); the lines to show in the trace. A cache over `limit`
    /// bytes is not kept.
    pub(crate) fn save(
        &self,
        cache: &CacheSpec,
        env: &[(String, String)],
        (root, job_id): (&Path, i64),
        succeeded: bool,
        limit: u64,
    ) -> Vec<String> {
        match policy(cache, env) {
            Ok(Policy::Pull) => return Vec::new(),
            Ok(_) => {}
            Err(err) => return vec![warning(&err)],
        }
        let wanted = match cache.when {
            ArtifactsWhen::OnSuccess => succeeded,
            ArtifactsWhen::OnFailure => !succeeded,
            ArtifactsWhen::Always => true,
        };
        if !wanted || (cache.paths.is_empty() && !cache.untracked) {
            return Vec::new();
        }
        let key = crate::variables::expand_in(&cache.key, env);
        let mut lines = vec![format!("Creating cache {key}...")];
        let file = match self.archive(&key) {
            Ok(file) => file,
            Err(err) => {
                lines.push(warning(&err));
                return lines;
            }
        };
        let spec = ArtifactsSpec {
            name: "cache".into(),
            untracked: cache.untracked,
            paths: cache
                .paths
                .iter()
                .map(|p| artifacts::expand_path(p, env, root))
                .collect(),
            exclude: Vec::new(),
            when: cache.when,
        };
        let partial = file.with_file_name(format!("cache.zip.{job_id}.partial"));
        let made = std::fs::create_dir_all(file.parent().unwrap_or(&self.dir))
            .and_then(|()| artifacts::archive(root, &spec, &partial, limit));
        let archive = match made {
            Ok(archive) => archive,
            Err(err) => {
                let _ = std::fs::remove_file(&partial);
                lines.push(warning(&format!("creating the cache failed: {err}")));
                return lines;
            }
        };
        for pattern in &archive.unmatched {
            lines.push(warning(&format!("{pattern}: no matching files")));
        }
        if archive.size > limit {
            let _ = std::fs::remove_file(&partial);
            lines.push(warning(&format!(
                "the cache passed {} bytes, over the limit of {limit}: not saved",
                archive.size
            )));
            return lines;
        }
        match std::fs::rename(&partial, &file) {
            Ok(()) => lines.push(format!("Created cache ({} files)", archive.files)),
            Err(err) => {
                let _ = std::fs::remove_file(&partial);
                lines.push(warning(&format!("saving the cache failed: {err}")));
            }
        }
        lines
    }
}

/// The cache's policy, a `$VARIABLE` expanded.
fn policy(cache: &CacheSpec, env: &[(String, String)]) -> Result<Policy, String> {
    let text = crate::variables::expand_in(&cache.policy, env);
    match text.as_str() {
        "" | "pull-push" => Ok(Policy::PullPush),
        "pull" => Ok(Policy::Pull),
        "push" => Ok(Policy::Push),
        other => Err(format!(
            "unknown cache policy {other:?}: the cache is not used"
        )),
    }
}

fn warning(text: &str) -> String {
    format!("\x1b[33;1mWARNING: {text}\x1b[0;m")
}

/// A path part as a folder name of its own: nothing that climbs or hides.
fn folder_name(part: &str) -> String {
    let name: String = part
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    match name.trim_start_matches('.') {
        "" => "_".to_owned(),
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(key: &str, policy: &str) -> CacheSpec {
        CacheSpec {
            key: key.into(),
            paths: vec!["vendor".into()],
            untracked: false,
            when: ArtifactsWhen::OnSuccess,
            policy: policy.into(),
            fallback_keys: vec!["$BASE-fallback".into()],
        }
    }

    #[test]
    fn saved_then_restored_through_a_fallback_key() {
        let root = tempfile::tempdir().expect("tmp");
        let store = ProjectCache::new(&root.path().join("cache"), "group/../project");
        assert!(store.dir.starts_with(root.path().join("cache")));
        let (first, second) = (root.path().join("w1"), root.path().join("w2"));
        std::fs::create_dir_all(first.join("vendor")).expect("dir");
        std::fs::create_dir_all(&second).expect("dir");
        std::fs::write(first.join("vendor/lib.txt"), "kept").expect("write");
        let env = vec![("BASE".to_owned(), "main".to_owned())];
        let saved = store.save(
            &cache("main-fallback", "push"),
            &env,
            (&first, 1),
            true,
            1 << 20,
        );
        assert_eq!(
            saved.last().map(String::as_str),
            Some("Created cache (1 files)")
        );
        // `pull` never saves; the key misses and the fallback key is found.
        assert!(store
            .save(&cache("other", "pull"), &env, (&first, 2), true, 1 << 20)
            .is_empty());
        let lines = store.restore(&cache("other", "pull"), &env, &second);
        assert_eq!(
            lines.last().map(String::as_str),
            Some("Successfully extracted cache main-fallback")
        );
        assert_eq!(
            std::fs::read_to_string(second.join("vendor/lib.txt")).expect("restored"),
            "kept"
        );
    }

    #[test]
    fn keys_that_leave_the_cache_are_refused() {
        let store = ProjectCache::new(Path::new("/c"), "p");
        assert!(store.archive("../x").is_err());
        assert!(store.archive("..").is_err());
        assert!(store.archive("").is_err());
        assert_eq!(
            store.archive("deps-protected").expect("key"),
            Path::new("/c/p/deps-protected/cache.zip")
        );
        assert_eq!(folder_name(".."), "_");
        assert_eq!(folder_name("a b"), "a_b");
    }

    #[test]
    fn a_protected_fallback_is_not_taken() {
        let root = tempfile::tempdir().expect("tmp");
        let store = ProjectCache::new(root.path(), "p");
        let env = vec![("CACHE_FALLBACK_KEY".to_owned(), "x-protected".to_owned())];
        let lines = store.restore(&cache("k", "pull"), &env, root.path());
        assert!(
            lines[0].contains("may not end in \"-protected\""),
            "{lines:?}"
        );
        assert!(!lines
            .iter()
            .any(|l| l.contains("Checking cache for x-protected")));
    }
}
