//! `kiln run`'s transport: each job's trace goes to the terminal (its lines prefixed with the
//! job's name when several jobs run at once), artifacts and dotenv reports stay in the run's
//! temporary directory for the later jobs that want them.

use kiln_executor::{Dependency, SinkError, Transport};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// What the run's jobs leave for each other.
#[derive(Default)]
pub struct Shared {
    /// The archive of each job that made one, by job id.
    pub archives: BTreeMap<i64, PathBuf>,
    /// The dotenv report's variables of each job that made one, by job id.
    pub dotenv: BTreeMap<i64, Vec<(String, String)>>,
}

/// One job's side of the run's transport.
pub struct Local {
    pub shared: Arc<Mutex<Shared>>,
    /// Where archives are kept.
    pub store: PathBuf,
    pub job: i64,
    /// `name │ ` before each line, when jobs run side by side.
    pub prefix: Option<String>,
    /// The end of the trace not yet printed (a line not finished).
    pending: Vec<u8>,
}

impl Local {
    pub fn new(
        shared: Arc<Mutex<Shared>>,
        store: PathBuf,
        job: i64,
        prefix: Option<String>,
    ) -> Local {
        Local {
            shared,
            store,
            job,
            prefix,
            pending: Vec::new(),
        }
    }

    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Prints what is left of the trace (a last line without its newline).
    pub fn finish(&mut self) {
        if !self.pending.is_empty() {
            let mut rest = std::mem::take(&mut self.pending);
            rest.push(b'\n');
            let _ = self.print(&rest);
        }
    }

    fn print(&mut self, data: &[u8]) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        match &self.prefix {
            None => out.write_all(data)?,
            Some(prefix) => {
                self.pending.extend_from_slice(data);
                while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = self.pending.drain(..=end).collect();
                    out.write_all(prefix.as_bytes())?;
                    out.write_all(&line)?;
                }
            }
        }
        out.flush()
    }
}

impl Transport for Local {
    async fn append_trace(&mut self, _offset: u64, data: &[u8]) -> Result<(), SinkError> {
        self.print(data)
            .map_err(|e| SinkError::Retry(e.to_string()))
    }

    async fn download_artifacts(
        &mut self,
        dependency: &Dependency,
        zip: &Path,
    ) -> Result<(), String> {
        let archive = self
            .shared()
            .archives
            .get(&dependency.id)
            .cloned()
            .ok_or("no archive")?;
        std::fs::copy(archive, zip)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn upload_artifacts(&mut self, zip: &Path, name: &str) -> Result<(), String> {
        let dir = self.store.join(self.job.to_string());
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let kept = dir.join(format!("{name}.zip"));
        std::fs::copy(zip, &kept).map_err(|e| e.to_string())?;
        let job = self.job;
        self.shared().archives.insert(job, kept);
        Ok(())
    }

    async fn upload_dotenv(&mut self, gz: &[u8]) -> Result<(), String> {
        let variables = kiln_server::service::jobs::dotenv_report(gz)?;
        let job = self.job;
        self.shared().dotenv.insert(job, variables);
        Ok(())
    }
}
