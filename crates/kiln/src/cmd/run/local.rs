//! The local side of `kiln run`: what the server would know of the pipeline, made from the
//! working directory's git repository; the working tree as the compiler reads it; each job's
//! copy of it; and the variables files that stand for a project's CI/CD settings.

use kiln_ci::variables::JobVariable;
use kiln_ci::JobPlan;
use kiln_core::{BuildStatus, Visibility};
use kiln_executor::JobSpec;
use kiln_server::service::variables;
use kiln_store::{BuildRecord, CommitRecord, PipelineRecord, ProjectRecord};
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A working tree as the CI compiler reads it: its files, tracked or not (but not ignored),
/// for `include: local` and `rules: exists`; `rules: changes` always holds in a local run.
pub struct WorkingTree<'a> {
    pub root: &'a Path,
}

/// Most files a working tree lists for globs.
const MAX_LISTED_FILES: usize = 100_000;

impl WorkingTree<'_> {
    /// `path` of the repository on disk; None for one that climbs out of it.
    fn inside(&self, path: &str) -> Option<PathBuf> {
        let path = Path::new(path.trim_start_matches('/'));
        let climbs = path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir));
        (!climbs).then(|| self.root.join(path))
    }
}

impl kiln_ci::Repository for WorkingTree<'_> {
    fn read_file(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(self.inside(path)?).ok()
    }

    /// The id git would give the file as it is now in the working tree.
    fn blob_id(&self, path: &str) -> Option<String> {
        let bytes = std::fs::read(self.inside(path)?).ok()?;
        Some(kiln_ci::git_blob_id(&bytes))
    }

    fn files(&self) -> Vec<String> {
        let listed = Command::new("git")
            .arg("-C")
            .arg(self.root)
            .args([
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
            ])
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|out| out.status.success());
        match listed {
            Some(out) => String::from_utf8_lossy(&out.stdout)
                .split('\0')
                .filter(|p| !p.is_empty())
                .take(MAX_LISTED_FILES)
                .map(str::to_owned)
                .collect(),
            None => walk(self.root),
        }
    }
}

/// The files under `root` (not in `.git`), relative, for a tree that is not a git repository.
fn walk(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_name() == ".git" || files.len() >= MAX_LISTED_FILES {
                continue;
            }
            match entry.file_type() {
                Ok(t) if t.is_dir() => dirs.push(path),
                Ok(_) => {
                    if let Ok(rel) = path.strip_prefix(root) {
                        files.push(rel.to_string_lossy().into_owned());
                    }
                }
                Err(_) => {}
            }
        }
    }
    files
}

/// What the server would know of this pipeline, made from the working directory's git
/// repository, so that jobs see the same predefined variables locally as on the server.
pub struct LocalPipeline {
    pub project: ProjectRecord,
    pub pipeline: PipelineRecord,
    pub commit: CommitRecord,
    pub ref_name: String,
    pub tag: bool,
    /// Whose caches the jobs use: this working tree's (`run/<folder>-<hash of its path>`).
    pub cache_scope: String,
}

/// Where `kiln run` keeps caches: `$XDG_CACHE_HOME/kiln` or `~/.cache/kiln`.
pub fn cache_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|dir| dir.join("kiln"))
}

fn cache_scope(cwd: &Path) -> String {
    let path = cwd.canonicalize().unwrap_or_else(|_| cwd.to_owned());
    let folder = path
        .file_name()
        .map_or_else(|| "root".into(), |n| n.to_string_lossy().into_owned());
    let hash = kiln_store::hash_secret(&path.to_string_lossy());
    format!("run/{folder}-{}", hash.get(..12).unwrap_or(&hash))
}

impl LocalPipeline {
    pub fn read(cwd: &Path, ref_name: &str) -> LocalPipeline {
        let field = |format: &str| git(cwd, &["log", "-1", &format!("--format={format}")]);
        let sha = git(cwd, &["rev-parse", "HEAD"]).unwrap_or_else(|| "0".repeat(40));
        let commit = CommitRecord {
            sha: sha.clone(),
            message: field("%B").unwrap_or_default(),
            author_name: field("%an").unwrap_or_default(),
            author_email: field("%ae").unwrap_or_default(),
            authored_at: field("%at")
                .and_then(|t| t.parse::<i64>().ok())
                .map_or(0, |t| t * 1000),
            author_tz_offset_minutes: 0,
        };
        let tag = git(
            cwd,
            &[
                "rev-parse",
                "-q",
                "--verify",
                &format!("refs/tags/{ref_name}"),
            ],
        )
        .is_some();
        // origin's default branch if known, else main or master, else the ref itself.
        let default_branch = git(
            cwd,
            &["symbolic-ref", "-q", "--short", "refs/remotes/origin/HEAD"],
        )
        .and_then(|b| b.strip_prefix("origin/").map(str::to_owned))
        .or_else(|| {
            ["main", "master"].into_iter().find_map(|b| {
                git(
                    cwd,
                    &["rev-parse", "-q", "--verify", &format!("refs/heads/{b}")],
                )
                .map(|_| b.to_owned())
            })
        })
        .unwrap_or_else(|| ref_name.to_owned());
        let name = cwd.file_name().map_or_else(
            || "project".to_owned(),
            |n| n.to_string_lossy().into_owned(),
        );
        let project = ProjectRecord {
            id: 0,
            namespace: "local".into(),
            path: name.clone(),
            name,
            visibility: Visibility::Private,
            repo_url: None,
            default_branch,
            build_timeout: 3600,
            created_at: 0,
        };
        let pipeline = PipelineRecord {
            id: 0,
            project_id: 0,
            sha,
            ref_name: ref_name.to_owned(),
            tag,
            status: "running".into(),
            source: "push".into(),
            variables: "[]".into(),
            yaml_errors: None,
            user_id: None,
            created_at: 0,
            started_at: None,
            finished_at: None,
            user: None,
            coverage: None,
        };
        LocalPipeline {
            project,
            pipeline,
            commit,
            ref_name: ref_name.to_owned(),
            tag,
            cache_scope: cache_scope(cwd),
        }
    }

    /// The executor's job, with the variables the server would give it.
    pub fn job_spec(
        &self,
        job: &JobPlan,
        id: i64,
        dir: &Path,
        (dotenv, settings): (&[JobVariable], &[JobVariable]),
    ) -> JobSpec {
        let mut spec = kiln_server::service::jobs::spec_from_plan(job, id, 3600);
        let build = BuildRecord {
            id,
            project_id: 0,
            pipeline_id: 0,
            name: job.name.clone(),
            stage: job.stage.clone(),
            stage_idx: job.stage_idx as i64,
            status: BuildStatus::Running,
            ref_name: self.ref_name.clone(),
            tag: self.tag,
            when: job.when.as_str().to_owned(),
            allow_failure: job.allow_failure,
            coverage: None,
            options: String::new(),
            commands: String::new(),
            created_at: 0,
            queued_at: None,
            started_at: None,
            finished_at: None,
            artifacts_backend: None,
            artifacts_file: None,
            artifacts_size: None,
            artifacts_expire_at: None,
            erased_at: None,
            tags: job.tags.clone(),
            failure_reason: None,
            retried: false,
            trace_size: 0,
            job_variables: "[]".into(),
            // A local run has no protected branches (nor protected variables to give).
            protected: false,
            kind: "build".into(),
            target_url: None,
            description: None,
            pipeline: kiln_store::PipelineSummary {
                status: "running".into(),
                source: "push".into(),
                created_at: 0,
                started_at: None,
                finished_at: None,
            },
            commit: self.commit.clone(),
            user: None,
            runner: None,
        };
        let yaml = variables::yaml_of(&spec);
        let sources = variables::JobSources {
            yaml: &yaml,
            dotenv,
            environment: job.environment.as_deref(),
            settings,
        };
        let all = variables::for_build(
            "http://localhost",
            (&self.project, &self.pipeline, &build),
            sources,
            None,
        );
        variables::give(&mut spec, all);
        spec.workdir = Some(dir.to_owned());
        spec.cache_scope = self.cache_scope.clone();
        spec
    }
}

/// A job's copy of the working tree (uncommitted changes included) in `to`, without `.git`:
/// its cost does not grow with the history. Copy-on-write where the file system can.
pub fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    let entries: Vec<PathBuf> = std::fs::read_dir(from)?
        .flatten()
        .filter(|e| e.file_name() != ".git")
        .map(|e| e.path())
        .collect();
    if entries.is_empty() {
        return Ok(());
    }
    let status = Command::new("cp")
        .args(["-a", "--reflink=auto"])
        .args(&entries)
        .arg(to)
        .status()?;
    anyhow::ensure!(status.success(), "copying the working tree failed");
    Ok(())
}

/// The name of the variables file in a repository and in the user's configuration.
pub const VARIABLES_FILE: &str = ".kiln-variables.yml";

/// The variables files' variables, standing for the project's CI/CD settings: the user's
/// (`~/.config/kiln/variables.yml`) and then the repository's (`.kiln-variables.yml`),
/// a later one winning.
pub fn settings(cwd: &Path) -> anyhow::Result<Vec<JobVariable>> {
    let config_home = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
    let files = config_home
        .map(|dir| dir.join("kiln").join("variables.yml"))
        .into_iter()
        .chain(std::iter::once(cwd.join(VARIABLES_FILE)));
    let mut all = Vec::new();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let found = kiln_ci::variables::parse_file(&text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        all.extend(found);
    }
    Ok(all)
}
