//! `kiln`: the CI server (`serve`), its administration (`admin`) and its benchmark (`bench`).

mod cmd;
mod config_file;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "kiln",
    version,
    about = "A self-hosted CI server that speaks GitLab's CI API"
)]
pub struct Cli {
    /// Where Kiln keeps its files (the SQLite database by default).
    #[arg(
        long,
        env = "KILN_DATA_DIR",
        default_value = "./kiln-data",
        global = true
    )]
    pub data_dir: PathBuf,

    /// The database: `postgres://…` for PostgreSQL; default: `kiln.db` in the data dir.
    #[arg(long, env = "KILN_DATABASE_URL", global = true)]
    pub database_url: Option<String>,

    /// A file holding the key that encrypts CI/CD variables at rest (`KILN_SECRET_KEY` gives
    /// the key itself). Default: `secret.key` in the data dir, made on first start. Servers
    /// sharing a database must share it.
    #[arg(long, env = "KILN_SECRET_KEY_FILE", global = true)]
    pub secret_key_file: Option<PathBuf>,

    /// How log lines are written: `text` for people, `json` (one object a line, with each
    /// request's and build's span) for a log collector.
    #[arg(
        long,
        env = "KILN_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,

    /// A TOML file of settings, its keys the flags' names (`listen = "0.0.0.0:8080"`,
    /// `database_url = "postgres://…"`); flags and `KILN_…` variables win over it. Given
    /// before the command (`kiln --config kiln.toml serve`): `kiln runner … --config` is the
    /// runner's own file.
    #[arg(long, env = "KILN_CONFIG")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Print every setting of `kiln serve` (given the same flags) with its value and where
    /// it came from (flag, environment, file, default), secrets hidden.
    Check(cmd::serve::ServeArgs),
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the HTTP API.
    Serve(cmd::serve::ServeArgs),
    /// The configuration: `kiln config check` prints what `kiln serve` would run with.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage users, tokens, projects and members; each prints only the new id or token.
    #[command(subcommand)]
    Admin(cmd::admin::AdminCommand),
    /// Measure the builds API under load against a generated history.
    Bench(cmd::bench::BenchArgs),
    /// Pipelines.
    #[command(subcommand)]
    Pipeline(cmd::pipeline::PipelineCommand),
    /// Run this directory's `.gitlab-ci.yml` (or the named jobs) locally: no server, no database.
    Run(cmd::run::RunArgs),
    /// Check a `.gitlab-ci.yml` and print its errors.
    Lint(cmd::run::LintArgs),
    /// A runner on this machine for a Kiln (or GitLab) server.
    #[command(subcommand)]
    Runner(cmd::runner::RunnerCommand),
}

impl Cli {
    /// The text of the secret key, when one is given rather than kept in the data dir.
    pub fn secret_key(&self) -> anyhow::Result<Option<String>> {
        if let Ok(key) = std::env::var("KILN_SECRET_KEY") {
            if !key.trim().is_empty() {
                return Ok(Some(key));
            }
        }
        match &self.secret_key_file {
            None => Ok(None),
            Some(path) => std::fs::read_to_string(path)
                .map(Some)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display())),
        }
    }

    pub fn database_url(&self) -> anyhow::Result<String> {
        if let Some(url) = &self.database_url {
            return Ok(url.clone());
        }
        std::fs::create_dir_all(&self.data_dir)?;
        Ok(self.data_dir.join("kiln.db").to_string_lossy().into_owned())
    }
}

fn main() -> anyhow::Result<()> {
    // Before anything else (no thread runs yet): the file's values become the variables
    // that are not set, so that flags, then variables, then the file decide.
    let from_file = config_file::apply(&std::env::args_os().collect::<Vec<_>>())?;
    let cli = Cli::parse();
    if let Command::Config(ConfigCommand::Check(_)) = cli.command {
        let args: Vec<_> = std::env::args_os().collect();
        println!("{}", config_file::check(&args, &from_file)?);
        return Ok(());
    }
    if !matches!(cli.command, Command::Run(_) | Command::Lint(_)) {
        // The database, traces, artifacts and mirrors are nobody else's to read: files are
        // created 0600, directories 0700.
        // SAFETY: umask(2) only sets this process's file mode mask.
        unsafe {
            libc::umask(0o077);
        }
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        // Each line carries the spans it was written in (the request's id, the build's).
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match &cli.command {
            Command::Serve(args) => cmd::serve::run(&cli, args).await,
            Command::Admin(command) => cmd::admin::run(&cli, command).await,
            Command::Bench(args) => cmd::bench::run(&cli, args).await,
            Command::Pipeline(command) => cmd::pipeline::run(&cli, command).await,
            Command::Run(args) => cmd::run::run(args).await,
            Command::Lint(args) => cmd::run::lint(args),
            Command::Runner(command) => cmd::runner::run(command).await,
            Command::Config(_) => Ok(()),
        }
    })
}
