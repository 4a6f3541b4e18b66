//! `kiln run [JOB…]`: runs this directory's pipeline (or the named jobs) locally with the same
//! compiler, processing rules and executor as the server; no server, no database. Each job
//! runs in a fresh copy of the working tree (uncommitted changes included), earlier jobs'
//! artifacts unpacked into it. `kiln lint [FILE]` prints the compile errors.

use anyhow::{bail, Context};
use clap::Args;
use kiln_ci::{CompileContext, JobPlan};
use kiln_core::Visibility;
use kiln_core::{processing, BuildEvent, BuildStatus, JobState, JobWhen, PipelineStatus};
use kiln_executor::{Dependency, ExecutorConfig, JobSpec, SinkError, Transport};
use kiln_server::service::{pipelines::compile_variables, variables};
use kiln_store::{BuildRecord, CommitRecord, PipelineArchive, PipelineRecord, ProjectRecord};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Jobs to run (default: the whole pipeline).
    pub jobs: Vec<String>,
    /// The pipeline file.
    #[arg(long, default_value = ".gitlab-ci.yml")]
    pub file: PathBuf,
    /// The ref the pipeline runs for (default: the current branch).
    #[arg(long = "ref")]
    pub ref_name: Option<String>,
}

#[derive(Args, Debug)]
pub struct LintArgs {
    /// The file to check.
    #[arg(default_value = ".gitlab-ci.yml")]
    pub file: PathBuf,
}

/// `kiln run`'s transport: the trace goes to the terminal, artifacts stay in the run's
/// temporary directory for the later jobs that want them.
struct Local {
    /// Where archives are kept.
    store: PathBuf,
    /// The archive of each job that made one, by job id.
    archives: BTreeMap<i64, PathBuf>,
    /// The dotenv report's variables of each job that made one, by job id.
    dotenv: BTreeMap<i64, Vec<(String, String)>>,
    /// The job running now.
    job: i64,
}

impl Transport for Local {
    async fn append_trace(&mut self, _offset: u64, data: &[u8]) -> Result<(), SinkError> {
        let mut out = std::io::stdout().lock();
        out.write_all(data)
            .and_then(|_| out.flush())
            .map_err(|e| SinkError::Retry(e.to_string()))
    }

    async fn download_artifacts(
        &mut self,
        dependency: &Dependency,
        zip: &Path,
    ) -> Result<(), String> {
        let archive = self.archives.get(&dependency.id).ok_or("no archive")?;
        std::fs::copy(archive, zip)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn upload_artifacts(&mut self, zip: &Path, name: &str) -> Result<(), String> {
        let dir = self.store.join(self.job.to_string());
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let kept = dir.join(format!("{name}.zip"));
        std::fs::copy(zip, &kept).map_err(|e| e.to_string())?;
        self.archives.insert(self.job, kept);
        Ok(())
    }

    async fn upload_dotenv(&mut self, gz: &[u8]) -> Result<(), String> {
        use std::io::Read;
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(gz)
            .take(64 * 1024)
            .read_to_string(&mut text)
            .map_err(|_| "Invalid Format".to_owned())?;
        let variables = kiln_ci::dotenv::parse(&text)?;
        self.dotenv.insert(self.job, variables);
        Ok(())
    }
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
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
struct WorkingTree<'a> {
    root: &'a Path,
}

/// Most files a working tree lists for globs.
const MAX_LISTED_FILES: usize = 100_000;

impl kiln_ci::Repository for WorkingTree<'_> {
    fn read_file(&self, path: &str) -> Option<String> {
        let path = Path::new(path.trim_start_matches('/'));
        if path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return None;
        }
        std::fs::read_to_string(self.root.join(path)).ok()
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

pub fn lint(args: &LintArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let base = args
        .file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    match kiln_ci::lint(&text, &WorkingTree { root: &base }) {
        Ok(plan) => {
            println!(
                "{} is valid: {} jobs in {} stages",
                args.file.display(),
                plan.jobs.len(),
                plan.stages.len()
            );
            Ok(())
        }
        Err(err) => {
            println!("{} is invalid:", args.file.display());
            println!("  {}", err.message);
            std::process::exit(1);
        }
    }
}

struct Row {
    name: String,
    stage: String,
    status: BuildStatus,
    took: Option<Duration>,
}

pub async fn run(args: &RunArgs) -> anyhow::Result<()> {
    let cwd = std::env::current_dir()?;
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let ref_name = args
        .ref_name
        .clone()
        .or_else(|| git(&cwd, &["rev-parse", "--abbrev-ref", "HEAD"]).filter(|b| b != "HEAD"))
        .unwrap_or_else(|| "main".into());
    let local = LocalPipeline::read(&cwd, &ref_name);
    let sha = local.commit.sha.clone();
    let tag = local.tag;
    let vars = compile_variables(
        &local.project,
        &ref_name,
        tag,
        &sha,
        &local.commit.message,
        "push",
    );
    let tree = WorkingTree { root: &cwd };
    let ctx = CompileContext {
        ref_name: &ref_name,
        tag,
        source: "push",
        variables: &vars,
        repository: &tree,
    };
    let plan = match kiln_ci::compile(&text, &ctx) {
        Ok(plan) => plan,
        Err(err) => bail!("{}: {}", args.file.display(), err.message),
    };
    let selected: Vec<&JobPlan> = if args.jobs.is_empty() {
        plan.jobs.iter().collect()
    } else {
        let mut picked = Vec::new();
        for name in &args.jobs {
            picked.push(
                plan.jobs
                    .iter()
                    .find(|j| &j.name == name)
                    .with_context(|| format!("no job named {name:?} for ref {ref_name}"))?,
            );
        }
        picked.sort_by_key(|j| j.stage_idx);
        picked
    };
    let named = !args.jobs.is_empty();
    let names: Vec<&str> = selected.iter().map(|j| j.name.as_str()).collect();
    let mut states: Vec<JobState> = selected
        .iter()
        .enumerate()
        .map(|(i, job)| JobState {
            id: i as i64 + 1,
            name: job.name.clone(),
            stage_idx: job.stage_idx as i64,
            status: BuildStatus::Created,
            // Named jobs run as asked, whatever their `when`.
            when: if named {
                JobWhen::OnSuccess
            } else {
                JobWhen::parse(job.when.as_str())
            },
            allow_failure: job.allow_failure,
            needs: job.needs.as_ref().map(|n| {
                n.iter()
                    .map(|n| n.job.clone())
                    .filter(|j| names.contains(&j.as_str()))
                    .collect()
            }),
            retried: false,
        })
        .collect();
    let work = tempfile::tempdir()?;
    let config = ExecutorConfig::new(work.path().join("builds"));
    let mut transport = Local {
        store: work.path().join("artifacts"),
        archives: BTreeMap::new(),
        dotenv: BTreeMap::new(),
        job: 0,
    };
    let mut rows: Vec<Row> = selected
        .iter()
        .map(|j| Row {
            name: j.name.clone(),
            stage: j.stage.clone(),
            status: BuildStatus::Created,
            took: None,
        })
        .collect();
    // Ctrl-C cancels the running job (its whole process group, after_script still runs) and
    // ends the run; the jobs left are not started.
    let (interrupt, interrupted) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = interrupt.send(true);
        }
        // Keep the sender: a closed channel would read as a cancel.
        std::future::pending::<()>().await
    });
    loop {
        for (id, event) in processing::process(&states) {
            if let Some(state) = states.iter_mut().find(|s| s.id == id) {
                if let Ok(next) = state.status.apply(event) {
                    state.status = next;
                }
            }
        }
        let Some(index) = states.iter().position(|s| s.status == BuildStatus::Pending) else {
            break;
        };
        let job = selected[index];
        println!("\n\x1b[1m── {} ({}) ──\x1b[0m", job.name, job.stage);
        let dir = work.path().join(format!("job-{}", index + 1));
        copy_tree(&cwd, &dir)?;
        let available: Vec<PipelineArchive> = transport
            .archives
            .keys()
            .map(|id| {
                let made_it = selected[*id as usize - 1];
                PipelineArchive {
                    build_id: *id,
                    name: made_it.name.clone(),
                    stage_idx: made_it.stage_idx as i64,
                    size: None,
                }
            })
            .collect();
        let id = index as i64 + 1;
        let reports: Vec<kiln_store::PipelineDotenv> = transport
            .dotenv
            .iter()
            .map(|(id, variables)| {
                let made_it = selected[*id as usize - 1];
                kiln_store::PipelineDotenv {
                    build_id: *id,
                    name: made_it.name.clone(),
                    stage_idx: made_it.stage_idx as i64,
                    variables: variables.clone(),
                }
            })
            .collect();
        let dotenv = kiln_server::service::jobs::dotenv_of(job, &reports);
        let mut spec = local.job_spec(job, id, &dir, &dotenv);
        spec.dependencies = kiln_server::service::jobs::dependencies_of(job, &available);
        let started = Instant::now();
        transport.job = id;
        let outcome =
            kiln_executor::execute(&spec, &config, &mut transport, interrupted.clone()).await;
        let state = &mut states[index];
        let event = if outcome.canceled {
            BuildEvent::Cancel
        } else if outcome.success() {
            BuildEvent::Succeed
        } else {
            BuildEvent::Fail
        };
        state.status = BuildStatus::Running
            .apply(event)
            .unwrap_or(BuildStatus::Failed);
        rows[index].took = Some(started.elapsed());
        if outcome.canceled {
            break;
        }
    }
    for (row, state) in rows.iter_mut().zip(&states) {
        row.status = state.status;
    }
    let status = processing::pipeline_status(&states);
    println!(
        "\n{:<30} {:<12} {:<10} {:>8}",
        "job", "stage", "status", "time"
    );
    for row in &rows {
        let took = row
            .took
            .map(|d| format!("{:.1}s", d.as_secs_f64()))
            .unwrap_or_default();
        println!(
            "{:<30} {:<12} {:<10} {:>8}",
            row.name,
            row.stage,
            row.status.as_str(),
            took
        );
    }
    println!("pipeline: {}", status.as_str());
    if status != PipelineStatus::Success {
        std::process::exit(1);
    }
    Ok(())
}

/// What the server would know of this pipeline, made from the working directory's git
/// repository, so that jobs see the same predefined variables locally as on the server.
struct LocalPipeline {
    project: ProjectRecord,
    pipeline: PipelineRecord,
    commit: CommitRecord,
    ref_name: String,
    tag: bool,
}

impl LocalPipeline {
    fn read(cwd: &Path, ref_name: &str) -> LocalPipeline {
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
        }
    }

    /// The executor's job, with the variables the server would give it.
    fn job_spec(
        &self,
        job: &JobPlan,
        id: i64,
        dir: &Path,
        dotenv: &[kiln_ci::variables::JobVariable],
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
            settings: &[],
        };
        let all = variables::for_build(
            "http://localhost",
            (&self.project, &self.pipeline, &build),
            sources,
            None,
        );
        variables::give(&mut spec, all);
        spec.workdir = Some(dir.to_owned());
        spec
    }
}

fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .status()?;
    anyhow::ensure!(status.success(), "copying the working tree failed");
    Ok(())
}
