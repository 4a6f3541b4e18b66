//! `kiln pipeline run --project P --ref REF`: creates a pipeline through the same service as
//! the API; a running `kiln serve` runs it. Prints the pipeline id.

use crate::Cli;
use anyhow::Context;
use clap::Subcommand;
use kiln_server::service::pipelines::{self, PipelineRequest};
use kiln_store::{ProjectRef, Store};

#[derive(Subcommand, Debug)]
pub enum PipelineCommand {
    Run {
        #[arg(long)]
        project: String,
        #[arg(long = "ref")]
        ref_name: String,
        /// KEY=VALUE pipeline variables.
        #[arg(long = "variable")]
        variables: Vec<String>,
    },
}

pub async fn run(cli: &Cli, command: &PipelineCommand) -> anyhow::Result<()> {
    let PipelineCommand::Run {
        project,
        ref_name,
        variables,
    } = command;
    let store = Store::open(&cli.database_url()?).await?;
    let config = kiln_server::Config::new("http://127.0.0.1:8080", cli.data_dir.clone());
    let app = kiln_server::state(store.clone(), config)?;
    let reference =
        ProjectRef::parse(project).with_context(|| format!("{project:?} is not a project"))?;
    let project = store
        .projects()
        .get(&reference)
        .await
        .context("no such project")?;
    let variables = variables
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .with_context(|| format!("{kv:?} is not KEY=VALUE"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let request = PipelineRequest {
        project: &project,
        ref_name,
        source: "web",
        user_id: None,
        variables,
        trigger_request_id: None,
        push_key: None,
    };
    let id = pipelines::create(&app, request)
        .await
        .map_err(|e| anyhow::anyhow!(e.message()))?;
    println!("{id}");
    store.close().await;
    Ok(())
}
