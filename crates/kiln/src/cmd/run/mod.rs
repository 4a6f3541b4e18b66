//! `kiln run [JOB…]`: runs this directory's pipeline (or the named jobs) locally with the same
//! compiler, processing rules, variables and executor as the server; no server, no database.
//! Each job runs in its own copy of the working tree (uncommitted changes included, `.git`
//! left out), earlier jobs' artifacts unpacked into it; with `-j N`, up to N jobs at once, as
//! stages and `needs:` allow. `kiln lint [FILE]` prints the compile errors.

mod local;
mod selection;
mod transport;

use anyhow::Context;
use clap::Args;
use kiln_ci::CompileContext;
use kiln_core::{processing, BuildEvent, BuildStatus, JobState, PipelineStatus};
use kiln_executor::ExecutorConfig;
use kiln_server::service::pipelines::compile_variables;
use kiln_store::PipelineArchive;
use local::{copy_tree, git, LocalPipeline, WorkingTree};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use transport::{Local, Shared};

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Jobs to run (default: the whole pipeline). Each keeps its `when`; a named manual job
    /// is played.
    pub jobs: Vec<String>,
    /// The pipeline file.
    #[arg(long, default_value = ".gitlab-ci.yml")]
    pub file: PathBuf,
    /// The ref the pipeline runs for (default: the current branch).
    #[arg(long = "ref")]
    pub ref_name: Option<String>,
    /// List the pipeline's jobs (stage, when, needs) instead of running them.
    #[arg(long)]
    pub list: bool,
    /// With job names: also run every job they need, transitively.
    #[arg(long)]
    pub needs: bool,
    /// Run the jobs of this stage only.
    #[arg(long)]
    pub stage: Option<String>,
    /// Play this manual job when it is reached (may be repeated).
    #[arg(long = "manual", value_name = "JOB")]
    pub manual: Vec<String>,
    /// A pipeline variable, KEY=VALUE (may be repeated); it wins over every other.
    #[arg(long = "variable", value_name = "KEY=VALUE")]
    pub variables: Vec<String>,
    /// Jobs run at once, as stages and needs allow (default: one per processor, as
    /// gitlab-ci-local runs a stage's jobs side by side).
    #[arg(short = 'j', long = "jobs")]
    pub concurrency: Option<usize>,
    /// Unpack each job's artifacts into the working tree once it succeeds.
    #[arg(long)]
    pub artifacts_to_host: bool,
}

#[derive(Args, Debug)]
pub struct LintArgs {
    /// The file to check.
    #[arg(default_value = ".gitlab-ci.yml")]
    pub file: PathBuf,
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
            for warning in &plan.warnings {
                println!("  warning: {warning}");
            }
            Ok(())
        }
        Err(err) => {
            println!("{} is invalid:", args.file.display());
            println!("  {}", err.message);
            std::process::exit(1);
        }
    }
}

/// `KEY=VALUE` pairs of `--variable`.
fn pipeline_variables(given: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    given
        .iter()
        .map(|pair| {
            let (key, value) = pair
                .split_once('=')
                .with_context(|| format!("--variable {pair:?}: expected KEY=VALUE"))?;
            anyhow::ensure!(
                !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                "--variable {pair:?}: a key has letters, digits and '_'"
            );
            Ok((key.to_owned(), value.to_owned()))
        })
        .collect()
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
    let given = pipeline_variables(&args.variables)?;
    let settings = local::settings(&cwd)?;
    let mut local = LocalPipeline::read(&cwd, &ref_name);
    local.pipeline.variables = serde_json::to_string(&given).unwrap_or_else(|_| "[]".into());
    let (sha, tag) = (local.commit.sha.clone(), local.tag);
    let mut vars = compile_variables(
        &local.project,
        &ref_name,
        tag,
        &sha,
        &local.commit.message,
        "push",
    );
    // Rules see the CI/CD settings and the pipeline's variables, as on the server.
    vars.extend(settings.iter().map(|v| (v.key.clone(), v.value.clone())));
    vars.extend(given.iter().cloned());
    let tree = WorkingTree { root: &cwd };
    let ctx = CompileContext {
        ref_name: &ref_name,
        tag,
        source: "push",
        variables: &vars,
        repository: &tree,
    };
    let plan = kiln_ci::compile(&text, &ctx)
        .map_err(|err| anyhow::anyhow!("{}: {}", args.file.display(), err.message))?;
    if args.list {
        selection::list(&plan);
        return Ok(());
    }
    let wanted = selection::Wanted {
        jobs: &args.jobs,
        needs: args.needs,
        stage: args.stage.as_deref(),
        manual: &args.manual,
    };
    let chosen = selection::select(&plan, &wanted, &ref_name)?;
    let run = Run {
        cwd: &cwd,
        local: &local,
        settings: &settings,
        concurrency: args
            .concurrency
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .clamp(1, chosen.jobs.len().max(1)),
        artifacts_to_host: args.artifacts_to_host,
    };
    let (states, took) = run.pipeline(&chosen).await?;
    summary(&chosen, &states, &took)
}

/// One local run of the selected jobs.
struct Run<'a> {
    cwd: &'a Path,
    local: &'a LocalPipeline,
    settings: &'a [kiln_ci::variables::JobVariable],
    concurrency: usize,
    artifacts_to_host: bool,
}

/// A job finished: its id and whether it succeeded, failed or was canceled.
type Finished = (i64, kiln_executor::Outcome);

impl Run<'_> {
    /// Runs the jobs as processing lets them start, at most `concurrency` at once; returns
    /// their final states and how long each took.
    async fn pipeline(
        &self,
        chosen: &selection::Selection<'_>,
    ) -> anyhow::Result<(Vec<JobState>, Vec<Option<Duration>>)> {
        let mut states = selection::states(chosen);
        let mut took: Vec<Option<Duration>> = vec![None; states.len()];
        let mut started_at: Vec<Option<Instant>> = vec![None; states.len()];
        let work = tempfile::tempdir()?;
        let config = ExecutorConfig {
            cache_dir: local::cache_dir(),
            ..ExecutorConfig::new(work.path().join("builds"))
        };
        let shared = Arc::new(Mutex::new(Shared::default()));
        // Ctrl-C cancels the running jobs (their whole process groups, after_script still
        // runs) and ends the run; the jobs left are not started.
        let (interrupt, interrupted) = tokio::sync::watch::channel(false);
        let interrupt = Arc::new(interrupt);
        let on_signal = interrupt.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                let _ = on_signal.send(true);
            }
        });
        let mut running: tokio::task::JoinSet<Finished> = tokio::task::JoinSet::new();
        let mut played: std::collections::BTreeSet<String> = Default::default();
        let mut stopped = false;
        loop {
            advance(&mut states, &chosen.play, &mut played);
            while !stopped && running.len() < self.concurrency {
                let Some(index) = states.iter().position(|s| s.status == BuildStatus::Pending)
                else {
                    break;
                };
                if chosen.jobs[index].trigger.is_some() {
                    // A bridge: its child pipeline is another file, which kiln run runs on
                    // its own; here it counts as skipped, as a job that did not run.
                    println!(
                        "{}: a trigger: job (a child pipeline), not run locally",
                        chosen.jobs[index].name
                    );
                    if let Some(state) = states.get_mut(index) {
                        state.status = BuildStatus::Skipped;
                    }
                    advance(&mut states, &chosen.play, &mut played);
                    continue;
                }
                if let Some(state) = states.get_mut(index) {
                    state.status = BuildStatus::Running;
                }
                started_at[index] = Some(Instant::now());
                let job = self.prepare(chosen, index, &shared, work.path())?;
                let (config, cancel) = (config.clone(), interrupted.clone());
                let (spec, mut transport) = job;
                running.spawn(async move {
                    let outcome =
                        kiln_executor::execute(&spec, &config, &mut transport, cancel).await;
                    transport.finish();
                    (spec.id, outcome)
                });
            }
            let Some(done) = running.join_next().await else {
                break;
            };
            let (id, outcome) = done.context("a job's task failed")?;
            let index = (id - 1) as usize;
            took[index] = started_at[index].map(|at| at.elapsed());
            let event = if outcome.canceled {
                BuildEvent::Cancel
            } else if outcome.success() {
                BuildEvent::Succeed
            } else {
                BuildEvent::Fail
            };
            if let Some(state) = states.get_mut(index) {
                state.status = BuildStatus::Running
                    .apply(event)
                    .unwrap_or(BuildStatus::Failed);
            }
            if outcome.canceled {
                stopped = true;
                let _ = interrupt.send(true);
            } else if outcome.success() && self.artifacts_to_host {
                self.unpack_to_host(&shared, id)?;
            }
        }
        Ok((states, took))
    }

    /// The executor's job `index` with its own copy of the tree, what earlier jobs left it,
    /// and its side of the transport.
    fn prepare(
        &self,
        chosen: &selection::Selection<'_>,
        index: usize,
        shared: &Arc<Mutex<Shared>>,
        work: &Path,
    ) -> anyhow::Result<(kiln_executor::JobSpec, Local)> {
        let job = chosen.jobs[index];
        let id = index as i64 + 1;
        let prefix = (self.concurrency > 1).then(|| format!("{} │ ", job.name));
        match &prefix {
            Some(_) => println!("\x1b[1m── {} ({}) starts ──\x1b[0m", job.name, job.stage),
            None => println!("\n\x1b[1m── {} ({}) ──\x1b[0m", job.name, job.stage),
        }
        let dir = work.join(format!("job-{id}"));
        copy_tree(self.cwd, &dir)?;
        let (available, reports) = {
            let left = shared.lock().unwrap_or_else(|p| p.into_inner());
            let made = |id: &i64| chosen.jobs[*id as usize - 1];
            let available: Vec<PipelineArchive> = left
                .archives
                .keys()
                .map(|id| PipelineArchive {
                    build_id: *id,
                    name: made(id).name.clone(),
                    stage_idx: made(id).stage_idx as i64,
                    size: None,
                })
                .collect();
            let reports: Vec<kiln_store::PipelineDotenv> = left
                .dotenv
                .iter()
                .map(|(id, variables)| kiln_store::PipelineDotenv {
                    build_id: *id,
                    name: made(id).name.clone(),
                    stage_idx: made(id).stage_idx as i64,
                    variables: variables.clone(),
                })
                .collect();
            (available, reports)
        };
        let dotenv = kiln_server::service::jobs::dotenv_of(job, &reports);
        let mut spec = self.local.job_spec(job, id, &dir, (&dotenv, self.settings));
        spec.dependencies = kiln_server::service::jobs::dependencies_of(job, &available);
        let transport = Local::new(shared.clone(), work.join("artifacts"), id, prefix);
        Ok((spec, transport))
    }

    /// `--artifacts-to-host`: the job's archive unpacked into the working tree.
    fn unpack_to_host(&self, shared: &Arc<Mutex<Shared>>, id: i64) -> anyhow::Result<()> {
        let archive = shared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .archives
            .get(&id)
            .cloned();
        if let Some(zip) = archive {
            kiln_executor::unpack_artifacts(&zip, self.cwd)
                .with_context(|| format!("unpacking {} into the working tree", zip.display()))?;
        }
        Ok(())
    }
}

/// Applies processing until it settles, playing the manual jobs that were asked for once.
fn advance(
    states: &mut [JobState],
    play: &std::collections::BTreeSet<String>,
    played: &mut std::collections::BTreeSet<String>,
) {
    loop {
        let mut changed = false;
        for (id, event) in processing::process(states) {
            if let Some(state) = states.iter_mut().find(|s| s.id == id) {
                if let Ok(next) = state.status.apply(event) {
                    changed |= next != state.status;
                    state.status = next;
                }
            }
        }
        for state in states.iter_mut() {
            if state.status == BuildStatus::Manual
                && play.contains(&state.name)
                && played.insert(state.name.clone())
            {
                if let Ok(next) = state.status.apply(BuildEvent::Play) {
                    state.status = next;
                    changed = true;
                }
            }
        }
        if !changed {
            return;
        }
    }
}

/// The table of jobs and the pipeline's status; a pipeline that did not succeed exits 1.
fn summary(
    chosen: &selection::Selection<'_>,
    states: &[JobState],
    took: &[Option<Duration>],
) -> anyhow::Result<()> {
    let status = processing::pipeline_status(states);
    println!(
        "\n{:<30} {:<12} {:<10} {:>8}",
        "job", "stage", "status", "time"
    );
    for ((job, state), took) in chosen.jobs.iter().zip(states).zip(took) {
        let took = took
            .map(|d| format!("{:.1}s", d.as_secs_f64()))
            .unwrap_or_default();
        println!(
            "{:<30} {:<12} {:<10} {:>8}",
            job.name,
            job.stage,
            state.status.as_str(),
            took
        );
    }
    println!("pipeline: {}", status.as_str());
    if !matches!(status, PipelineStatus::Success | PipelineStatus::Manual) {
        std::process::exit(1);
    }
    Ok(())
}
