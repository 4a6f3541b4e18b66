//! `kiln serve`: the HTTP API and the embedded runner, with graceful shutdown on SIGTERM and
//! Ctrl-C.

use crate::Cli;
use clap::Args;
use kiln_store::Store;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "KILN_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The URL users reach Kiln at (for `web_url` and links); default: from --listen.
    #[arg(long, env = "KILN_EXTERNAL_URL")]
    pub external_url: Option<String>,
    /// Create a demo project from a small git repository (once), run its pipeline, and print
    /// a token and a curl line.
    #[arg(long)]
    pub demo: bool,
    /// How long a cached read (token, project access, list page, build) may be served, in ms.
    /// This process's own writes show at once; other processes' writes within this bound.
    /// 0 turns the read caches off.
    #[arg(long, env = "KILN_READ_CACHE_TTL_MS", default_value_t = 1000)]
    pub read_cache_ttl_ms: u64,
    /// Builds the embedded runner runs at once (default: the number of CPUs).
    #[arg(long, env = "KILN_BUILDS_CONCURRENCY")]
    pub builds_concurrency: Option<usize>,
    /// Do not run builds in this process (remote runners only).
    #[arg(long)]
    pub no_embedded_runner: bool,
    /// Bytes of trace kept per build.
    #[arg(long, env = "KILN_MAX_TRACE_SIZE", default_value_t = 100 * 1024 * 1024)]
    pub max_trace_size: u64,
    /// Largest artifacts archive, in bytes; a larger one fails its build.
    #[arg(long, env = "KILN_MAX_ARTIFACTS_SIZE", default_value_t = 100 * 1024 * 1024)]
    pub max_artifacts_size: u64,
    /// Poll every project's repository for new branch heads this often (seconds).
    #[arg(long, env = "KILN_POLL_INTERVAL")]
    pub poll_interval: Option<u64>,
    /// How long a runner holds a build it claimed without calling again (seconds); then any
    /// server fails the build as a runner system failure.
    #[arg(long, env = "KILN_BUILD_LEASE", default_value_t = 600)]
    pub build_lease: u64,
    /// How long `POST /api/v4/jobs/request` waits for a build before answering 204 (seconds).
    #[arg(long, env = "KILN_LONG_POLL_TIMEOUT", default_value_t = 50)]
    pub long_poll_timeout: u64,
    /// Tags of the embedded runner (comma-separated): it takes untagged builds and builds
    /// whose every tag it has.
    #[arg(long, env = "KILN_EMBEDDED_RUNNER_TAGS", value_delimiter = ',')]
    pub embedded_runner_tags: Vec<String>,
    /// How long the embedded runner's builds outlive this server's last heartbeat (seconds).
    #[arg(long, env = "KILN_EMBEDDED_LEASE", default_value_t = 30, hide = true)]
    pub embedded_lease: u64,
    /// Run jobs as this unprivileged user (recommended; Kiln must start as root). Jobs then
    /// cannot read the data dir.
    #[arg(long, env = "KILN_JOB_USER")]
    pub job_user: Option<String>,
    /// Where jobs' work directories go (default: `builds` in the data dir; with --job-user, a
    /// folder in the temporary directory).
    #[arg(long, env = "KILN_BUILDS_DIR")]
    pub builds_dir: Option<std::path::PathBuf>,
    /// Keep every job's processes with process-tree tracking even where cgroups exist.
    #[arg(long, env = "KILN_NO_CGROUPS")]
    pub no_cgroups: bool,
    /// Where artifacts are kept: `database` (default on PostgreSQL) or `directory` (default on
    /// SQLite; with several servers, a shared mount given by --artifacts-dir).
    #[arg(long, env = "KILN_ARTIFACTS_STORE")]
    pub artifacts_store: Option<ArtifactsStoreArg>,
    /// The directory of `--artifacts-store directory` (default: `artifacts` in the data dir).
    #[arg(long, env = "KILN_ARTIFACTS_DIR")]
    pub artifacts_dir: Option<std::path::PathBuf>,
    /// Close a connection that sends nothing (or its request too slowly) after this many
    /// seconds; also between requests.
    #[arg(long, env = "KILN_HTTP_IDLE_TIMEOUT", default_value_t = 30)]
    pub http_idle_timeout: u64,
    /// Connections served at once; more are answered 503 (default: from the open-file limit).
    #[arg(long, env = "KILN_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Let webhooks point at loopback and private addresses (a receiver on this machine or
    /// the local network). Off, such hooks are refused when they are saved.
    #[arg(long, env = "KILN_ALLOW_LOCAL_WEBHOOKS")]
    pub allow_local_webhooks: bool,
    /// How long a webhook's receiver has to answer (seconds); a slower one is a failed
    /// attempt, tried again later.
    #[arg(long, env = "KILN_WEBHOOK_TIMEOUT", default_value_t = 10)]
    pub webhook_timeout: u64,
    /// Do not count HTTP requests for /-/metrics (to measure what counting costs).
    #[arg(long, hide = true)]
    pub no_http_metrics: bool,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtifactsStoreArg {
    Database,
    Directory,
}

pub async fn run(cli: &Cli, args: &ServeArgs) -> anyhow::Result<()> {
    let files_cap = kiln_server::http::raise_file_limit();
    let url = cli.database_url()?;
    kiln_server::files::make_data_dir_private(&cli.data_dir)?;
    let store = Store::open(&url).await?;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let bound = listener.local_addr()?;
    let external_url = args
        .external_url
        .clone()
        .unwrap_or_else(|| format!("http://{bound}"))
        .trim_end_matches('/')
        .to_owned();
    let mut config = kiln_server::Config::new(external_url.clone(), cli.data_dir.clone());
    config.read_cache_ttl = Duration::from_millis(args.read_cache_ttl_ms);
    config.max_trace_bytes = args.max_trace_size;
    config.max_artifacts_bytes = args.max_artifacts_size;
    config.poll_interval = args.poll_interval.map(Duration::from_secs);
    if let Some(n) = args.builds_concurrency {
        config.builds_concurrency = n;
    }
    if args.no_embedded_runner {
        config.builds_concurrency = 0;
    }
    config.build_lease = Duration::from_secs(args.build_lease.max(1));
    config.embedded_lease = Duration::from_secs(args.embedded_lease.max(1));
    config.long_poll_timeout = Duration::from_secs(args.long_poll_timeout);
    config.secret_key = cli.secret_key()?;
    config.embedded_tags = args.embedded_runner_tags.clone();
    config.allow_local_webhooks = args.allow_local_webhooks;
    config.webhook_timeout = Duration::from_secs(args.webhook_timeout.max(1));
    config.http_metrics = !args.no_http_metrics;
    config.builds_dir = args.builds_dir.clone();
    if let Some(user) = &args.job_user {
        let user = kiln_executor::JobUser::lookup(user)?;
        anyhow::ensure!(
            is_root(),
            "--job-user needs Kiln to start as root (to switch to {})",
            user.name
        );
        config.job_user = Some(user);
    }
    if args.no_cgroups {
        config.isolation = kiln_executor::Isolation::ProcessTree;
    }
    config.artifacts = match (args.artifacts_store, &args.artifacts_dir) {
        (Some(ArtifactsStoreArg::Database), _) => kiln_server::ArtifactsSetting::Database,
        (Some(ArtifactsStoreArg::Directory), dir) | (None, dir @ Some(_)) => {
            kiln_server::ArtifactsSetting::Directory(
                dir.clone()
                    .unwrap_or_else(|| cli.data_dir.join("artifacts")),
            )
        }
        (None, None) => kiln_server::ArtifactsSetting::Auto,
    };
    config.http = kiln_server::HttpLimits {
        idle_timeout: Duration::from_secs(args.http_idle_timeout.max(1)),
        max_connections: args.max_connections.unwrap_or(files_cap),
    };
    let limits = config.http.clone();
    let state = kiln_server::start(store.clone(), config).await?;
    if args.demo {
        super::demo::create(&state, &external_url).await?;
    }
    tracing::info!(%bound, backend = store.backend_name(), "kiln serving");
    kiln_server::serve(
        listener,
        kiln_server::router(state.clone()),
        limits,
        shutdown_signal(),
    )
    .await?;
    // Builds of this server are given back or failed before the pool closes.
    kiln_server::stop(&state).await;
    store.close().await;
    tracing::info!("kiln stopped");
    Ok(())
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}

fn is_root() -> bool {
    // SAFETY: geteuid(2) only reads this process's credentials.
    unsafe { libc::geteuid() == 0 }
}
