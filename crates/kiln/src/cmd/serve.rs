//! `kiln serve`: the HTTP API, with graceful shutdown on SIGTERM and Ctrl-C.

use crate::Cli;
use clap::Args;
use kiln_core::Visibility;
use kiln_store::{ProjectRef, Store, StoreError};
use std::net::SocketAddr;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "KILN_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The URL users reach Kiln at (for `web_url` and links); default: from --listen.
    #[arg(long, env = "KILN_EXTERNAL_URL")]
    pub external_url: Option<String>,
    /// Create a demo project with generated history (once) and print a token and a curl line.
    #[arg(long)]
    pub demo: bool,
    /// How long a cached read (token, project access, list page, build) may be served, in ms.
    /// This process's own writes show at once; other processes' writes within this bound.
    /// 0 turns the read caches off.
    #[arg(long, env = "KILN_READ_CACHE_TTL_MS", default_value_t = 1000)]
    pub read_cache_ttl_ms: u64,
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
    if args.demo {
        demo(&store, &external_url).await?;
    }
    tracing::info!(%bound, backend = store.backend_name(), "kiln serving");
    let config = kiln_server::Config {
        external_url,
        read_cache_ttl: std::time::Duration::from_millis(args.read_cache_ttl_ms),
    };
    kiln_server::serve(
        listener,
        kiln_server::router(store.clone(), config),
        shutdown_signal(),
    )
    .await?;
    store.close().await;
    tracing::info!("kiln stopped");
    Ok(())
}

/// The demo: user `demo` (admin), project `demo/app` with 200 generated pipelines.
async fn demo(store: &Store, external_url: &str) -> anyhow::Result<()> {
    let user_id = match store.users().by_username("demo").await {
        Ok(user) => user.id,
        Err(StoreError::NotFound) => {
            store
                .users()
                .create("demo", "Demo Admin", "demo@example.com", true)
                .await?
        }
        Err(err) => return Err(err.into()),
    };
    let path = ProjectRef::parse("demo/app").expect("a valid path");
    let project_id = match store.projects().get(&path).await {
        Ok(project) => project.id,
        Err(StoreError::NotFound) => {
            let id = store
                .projects()
                .create("demo", "app", Visibility::Public, None)
                .await?;
            kiln_store::generate::generate(store, id, 200, 42).await?;
            id
        }
        Err(err) => return Err(err.into()),
    };
    let token = store.users().create_token(user_id, "demo").await?;
    println!("Kiln demo: project demo/app (id {project_id}), user demo, token {token}");
    println!("  curl -H \"PRIVATE-TOKEN: {token}\" \"{external_url}/api/v3/projects/{project_id}/builds?per_page=2\"");
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
