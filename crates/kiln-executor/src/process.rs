//! One bash process in its own process group (and the job's cgroup, where there is one), so
//! that a cancel or a timeout stops everything the script started (TERM, then KILL after a
//! grace period), not just bash. It starts with only the environment it is given, as the job
//! user when there is one. The caller pulls events (output chunks, then the exit) with `next`.

use crate::JobUser;
use std::ffi::CString;
use std::path::Path;
use std::pin::Pin;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStderr, ChildStdout, Command};
use tokio::sync::watch;
use tokio::time::Sleep;

pub enum Exit {
    Code(i32),
    /// Killed by a signal without a code.
    Signaled,
    TimedOut,
    Canceled,
}

pub enum Event {
    Output(Vec<u8>),
    /// The flush deadline passed without output: time to send what is buffered.
    Idle,
    Done(Exit),
}

pub struct Running {
    child: Child,
    pgid: Option<i32>,
    stdout: ChildStdout,
    stderr: ChildStderr,
    out_open: bool,
    err_open: bool,
    deadline: Pin<Box<Sleep>>,
    grace: Duration,
    /// bash has been reaped; its group needs no more killing.
    reaped: bool,
}

impl Drop for Running {
    /// A job dropped before its end (the server shutting down, `kiln run` interrupted) takes
    /// its whole process group with it, not only bash (`kill_on_drop`).
    fn drop(&mut self) {
        if let (false, Some(pgid)) = (self.reaped, self.pgid) {
            kill_group(pgid, libc::SIGKILL);
        }
    }
}

impl Running {
    /// Starts `script` with bash in `dir`, with exactly the environment `env`, joining the
    /// cgroup whose `cgroup.procs` is `cgroup` and becoming `user`, when given.
    pub fn spawn(
        script: &str,
        dir: &Path,
        env: &[(String, String)],
        limits: (Duration, Duration),
        user: Option<&JobUser>,
        cgroup: Option<CString>,
    ) -> std::io::Result<Running> {
        let (timeout, grace) = limits;
        let identity = user.map(|u| (u.uid, u.gid));
        // Joining the cgroup: a process running as the runner's user joins it itself, as the
        // first thing bash does (no command of the job has run, so nothing has escaped), and
        // needs no hook, so it is started with posix_spawn (much cheaper than fork for a large
        // server). One that changes user must join before it loses the right to, in a hook.
        let (script, hook_cgroup) = match (&cgroup, identity) {
            (Some(procs), None) => {
                let path = crate::script::quote(&procs.to_string_lossy());
                (format!("echo $$ > {path}\n{script}"), None)
            }
            _ => (script.to_owned(), cgroup),
        };
        let mut command = Command::new("bash");
        command
            .args([
                "--noprofile",
                "--norc",
                "-e",
                "-o",
                "pipefail",
                "-c",
                &script,
            ])
            .current_dir(dir)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if hook_cgroup.is_some() || identity.is_some() {
            // SAFETY: the hook runs between fork and exec and only makes async-signal-safe
            // calls: open/write/close (join_cgroup), setgroups, setgid, setuid.
            unsafe {
                command.pre_exec(move || {
                    if let Some(procs) = &hook_cgroup {
                        crate::containment::join_cgroup(procs)?;
                    }
                    if let Some((uid, gid)) = identity {
                        // Groups first, then the group, then the user: afterwards nothing of
                        // the runner's privileges is left.
                        if libc::setgroups(1, &gid) != 0
                            || libc::setgid(gid) != 0
                            || libc::setuid(uid) != 0
                        {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    Ok(())
                });
            }
        }
        let mut child = command.spawn()?;
        let pgid = child.id().map(|id| id as i32);
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout"))?;
        // The script sends stderr to stdout itself (`exec 2>&1`); this catches bash's own errors.
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| std::io::Error::other("no stderr"))?;
        Ok(Running {
            child,
            pgid,
            stdout,
            stderr,
            out_open: true,
            err_open: true,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            grace,
            reaped: false,
        })
    }

    /// The next output chunk, or how the process ended (after a kill on cancel or timeout).
    /// The pid of bash.
    pub fn pid(&self) -> Option<i32> {
        self.pgid
    }

    /// `flush_in`: when buffered output is due to be sent (an `Idle` event then); None when
    /// nothing waits.
    pub async fn next(
        &mut self,
        cancel: &mut watch::Receiver<bool>,
        flush_in: Option<Duration>,
    ) -> std::io::Result<Event> {
        let idle = flush_in.unwrap_or(Duration::from_secs(3600));
        let mut buf = vec![0_u8; 16 * 1024];
        let mut err_buf = vec![0_u8; 4 * 1024];
        loop {
            if *cancel.borrow() {
                return self.stop(Exit::Canceled).await;
            }
            tokio::select! {
                read = self.stdout.read(&mut buf), if self.out_open => match read {
                    Ok(0) | Err(_) => self.out_open = false,
                    Ok(n) => return Ok(Event::Output(buf[..n].to_vec())),
                },
                read = self.stderr.read(&mut err_buf), if self.err_open => match read {
                    Ok(0) | Err(_) => self.err_open = false,
                    Ok(n) => return Ok(Event::Output(err_buf[..n].to_vec())),
                },
                _ = &mut self.deadline => return self.stop(Exit::TimedOut).await,
                _ = tokio::time::sleep(idle) => return Ok(Event::Idle),
                changed = cancel.changed() => {
                    if changed.is_err() || *cancel.borrow() {
                        return self.stop(Exit::Canceled).await;
                    }
                }
                status = self.child.wait(), if !self.out_open && !self.err_open => {
                    let status = status?;
                    self.reaped = true;
                    return Ok(Event::Done(status.code().map_or(Exit::Signaled, Exit::Code)));
                }
            }
        }
    }

    /// Stops the script now (its transport said the job is gone).
    pub async fn cancel(&mut self) -> std::io::Result<Event> {
        self.stop(Exit::Canceled).await
    }

    async fn stop(&mut self, why: Exit) -> std::io::Result<Event> {
        if let Some(pgid) = self.pgid {
            kill_group(pgid, libc::SIGTERM);
            if tokio::time::timeout(self.grace, self.child.wait())
                .await
                .is_err()
            {
                kill_group(pgid, libc::SIGKILL);
            }
            // Children that ignored TERM and outlived bash.
            kill_group(pgid, libc::SIGKILL);
        }
        let _ = self.child.wait().await;
        self.reaped = true;
        Ok(Event::Done(why))
    }
}

fn kill_group(pgid: i32, signal: i32) {
    // SAFETY: kill(2) with a negative pid signals that process group; it has no memory
    // effects on this process. The group was created for this job by process_group(0).
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// Kills what is left of jobs `job_ids` that ran from `builds_dir` before the runner's process
/// died without cleaning up (a crash, SIGKILL): every process whose environment has both
/// `CI_BUILDS_DIR=<builds_dir>` and `CI_JOB_ID=<id>` takes its process group with it. Both
/// must match, so no other runner's job and no unrelated process is touched. Returns how many
/// process groups were killed. Reads `/proc`; elsewhere it finds nothing.
pub fn kill_leftovers(builds_dir: &Path, job_ids: &[i64]) -> usize {
    if job_ids.is_empty() {
        return 0;
    }
    let dir_entry = format!("CI_BUILDS_DIR={}", builds_dir.display());
    let id_entries: Vec<String> = job_ids.iter().map(|id| format!("CI_JOB_ID={id}")).collect();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut groups: Vec<i32> = procs
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
                return false;
            };
            let vars: Vec<&[u8]> = environ.split(|b| *b == 0).collect();
            let has = |entry: &str| vars.contains(&entry.as_bytes());
            has(&dir_entry) && id_entries.iter().any(|e| has(e))
        })
        // SAFETY: getpgid(2) only reads the process table.
        .map(|pid| unsafe { libc::getpgid(pid) })
        .filter(|pgid| *pgid > 1)
        .collect();
    groups.sort_unstable();
    groups.dedup();
    for pgid in &groups {
        kill_group(*pgid, libc::SIGKILL);
    }
    groups.len()
}
