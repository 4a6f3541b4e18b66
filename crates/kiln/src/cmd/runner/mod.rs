//! `kiln runner`: a runner on another machine, speaking gitlab-runner's protocol to any
//! Kiln (or GitLab) server. `register` writes its configuration; `run` takes jobs.

mod config;
mod coordinator;
mod job;
mod work;

use clap::{Args, Subcommand};
use config::RunnerConfig;
use coordinator::Coordinator;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Subcommand, Debug)]
pub enum RunnerCommand {
    /// Register this machine with a server and write the runner's configuration.
    Register(RegisterArgs),
    /// Take jobs from the server and run them, until Ctrl-C.
    Run(RunArgs),
}

#[derive(Args, Debug)]
pub struct RegisterArgs {
    /// The server, e.g. `http://ci.example.com:8080`.
    #[arg(long, env = "KILN_RUNNER_URL")]
    pub url: String,
    /// An instance or project registration token (`kiln admin runner registration-token`).
    #[arg(long, env = "KILN_REGISTRATION_TOKEN")]
    pub registration_token: String,
    /// Tags (comma-separated): the runner takes builds whose every tag it has.
    #[arg(long, value_delimiter = ',')]
    pub tags: Vec<String>,
    /// Take untagged builds too (default: only when no tags are given).
    #[arg(long)]
    pub run_untagged: bool,
    /// Lock a project runner to its project.
    #[arg(long)]
    pub locked: bool,
    /// The runner's description (default: this machine's host name).
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long, default_value = "kiln-runner.toml")]
    pub config: PathBuf,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[arg(long, default_value = "kiln-runner.toml")]
    pub config: PathBuf,
    /// Jobs run at once (default: the configuration's, 1).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Where jobs' work directories go.
    #[arg(long)]
    pub builds_dir: Option<PathBuf>,
    /// Contain jobs as a process tree only, without cgroups.
    #[arg(long)]
    pub no_cgroups: bool,
}

pub async fn run(command: &RunnerCommand) -> anyhow::Result<()> {
    match command {
        RunnerCommand::Register(args) => register(args).await,
        RunnerCommand::Run(args) => run_jobs(args).await,
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "kiln-runner".to_owned())
}

async fn register(args: &RegisterArgs) -> anyhow::Result<()> {
    let coordinator = Coordinator::new(&args.url)?;
    let name = args.name.clone().unwrap_or_else(host_name);
    let tags: Vec<String> = args
        .tags
        .iter()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect();
    let body = json!({
        "token": args.registration_token,
        "description": name,
        "tag_list": tags.join(","),
        "run_untagged": args.run_untagged || tags.is_empty(),
        "locked": args.locked,
        "paused": false,
        "info": coordinator::info(),
    });
    let (id, token) = coordinator.register(body).await.map_err(|err| match err {
        coordinator::CallError::Status { status: 403, .. } => {
            anyhow::anyhow!("the server refused the registration token (403)")
        }
        other => anyhow::anyhow!("registering failed: {other}"),
    })?;
    let config = RunnerConfig {
        url: args.url.clone(),
        token,
        id,
        name,
        concurrency: 1,
        builds_dir: None,
        cache_dir: None,
    };
    config.save(&args.config)?;
    eprintln!(
        "registered runner {id}; its configuration is in {}",
        args.config.display()
    );
    println!("{id}");
    Ok(())
}

async fn run_jobs(args: &RunArgs) -> anyhow::Result<()> {
    let config = RunnerConfig::load(&args.config)?;
    let coordinator = Coordinator::new(&config.url)?;
    let builds_dir = args
        .builds_dir
        .clone()
        .or(config.builds_dir.clone())
        .unwrap_or_else(|| {
            let beside = args.config.parent().unwrap_or(std::path::Path::new("."));
            beside.join("kiln-builds")
        });
    std::fs::create_dir_all(&builds_dir)?;
    let builds_dir = std::path::absolute(&builds_dir)?;
    let cache_dir = config.cache_dir.clone().unwrap_or_else(|| {
        let beside = args.config.parent().unwrap_or(std::path::Path::new("."));
        beside.join("kiln-cache")
    });
    let cache_dir = std::path::absolute(&cache_dir)?;
    // Names this runner's cgroups: unique per registration (ids repeat across servers, and two
    // runners on one machine must never empty each other's jobs).
    let tag = format!(
        "kiln-runner-{}",
        &kiln_store::hash_secret(&config.token)[..12]
    );
    let executor = kiln_executor::ExecutorConfig {
        isolation: if args.no_cgroups {
            kiln_executor::Isolation::ProcessTree
        } else {
            kiln_executor::Isolation::Auto
        },
        runner_tag: tag.clone(),
        cache_dir: Some(cache_dir),
        ..kiln_executor::ExecutorConfig::new(builds_dir)
    };
    // A runner killed before left its jobs' processes; the server fails those jobs when
    // their leases run out, and nothing of them may keep running here.
    let leftovers = tokio::task::spawn_blocking(move || kiln_executor::kill_runner_cgroups(&tag))
        .await
        .unwrap_or(0);
    if leftovers > 0 {
        tracing::warn!(leftovers, "killed processes a previous run left behind");
    }
    let concurrency = args.concurrency.unwrap_or(config.concurrency).max(1);
    let runner = Arc::new(work::Runner {
        coordinator,
        token: config.token.clone(),
        executor,
    });
    tracing::info!(id = config.id, url = %config.url, concurrency, "runner started");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut workers = tokio::task::JoinSet::new();
    for index in 0..concurrency {
        workers.spawn(work::worker(runner.clone(), index, stopped.clone()));
    }
    super::serve::shutdown_signal().await;
    let _ = stop.send(true);
    while workers.join_next().await.is_some() {}
    tracing::info!("runner stopped");
    Ok(())
}
