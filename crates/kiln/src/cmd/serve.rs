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
}

pub async fn run(cli: &Cli, args: &ServeArgs) -> anyhow::Result<()> {
    let store = Store::open(&cli.database_url()?).await?;
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
    let state = kiln_server::start(store.clone(), config).await?;
    if args.demo {
        super::demo::create(&state, &external_url).await?;
    }
    tracing::info!(%bound, backend = store.backend_name(), "kiln serving");
    kiln_server::serve(listener, kiln_server::router(state), shutdown_signal()).await?;
    store.close().await;
    tracing::info!("kiln stopped");
    Ok(())
}

async fn shutdown_signal() {
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
