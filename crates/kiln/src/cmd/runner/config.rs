//! The runner's configuration file (`kiln-runner.toml`, mode 0600: it holds the runner's
//! token), written by `kiln runner register` and read by `kiln runner run`.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerConfig {
    /// The server, as given to `register` (`https://ci.example.com`).
    pub url: String,
    /// The runner's authentication token.
    pub token: String,
    pub id: i64,
    pub name: String,
    /// Jobs run at once.
    #[serde(default = "one")]
    pub concurrency: usize,
    /// Where jobs' work directories go (default: `kiln-builds` beside the file).
    #[serde(default)]
    pub builds_dir: Option<PathBuf>,
    /// Where caches are kept (default: `kiln-cache` beside the file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_dir: Option<PathBuf>,
}

fn one() -> usize {
    1
}

impl RunnerConfig {
    pub fn load(path: &Path) -> anyhow::Result<RunnerConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    /// Writes the file, readable by its owner only, replacing any earlier one.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let text = toml::to_string_pretty(self)?;
        let partial = path.with_extension("toml.partial");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&partial, path)?;
        Ok(())
    }
}
