use clap::Args;
#[derive(Args, Debug)]
pub struct BenchArgs {}
pub async fn run(_: &crate::Cli, _: &BenchArgs) -> anyhow::Result<()> {
    Ok(())
}
