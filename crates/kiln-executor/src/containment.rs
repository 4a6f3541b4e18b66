//! Keeping a job's whole process tree together, so that cancel, timeout, the job's end and
//! crash recovery kill all of it: children that left the process group with `setsid`, and
//! those that also emptied their environment with `env -i`, included.
//!
//! Where the machine has a writable cgroup v2 hierarchy, each job gets its own cgroup, which
//! its processes join before bash starts and cannot leave; killing the cgroup kills them
//! all. Elsewhere the runner becomes a child subreaper, so orphans of a job are re-parented
//! to it instead of to init, and a kill walks `/proc` for the job's process group, its
//! descendants, and orphans adopted since the job began.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// How jobs are contained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// A cgroup per job when cgroup v2 can be used here, else process-tree tracking.
    Auto,
    /// Process-tree tracking with a child subreaper, even where cgroups exist.
    ProcessTree,
}

pub(crate) struct Containment {
    kind: Kind,
    /// Killed with nothing started since: nothing is left to kill.
    emptied: bool,
    /// Bash processes started for the job (each leads its own process group).
    leaders: Vec<i32>,
    /// Boot-relative start time (clock ticks) of the job's first process.
    since: Option<u64>,
}

enum Kind {
    Cgroup { dir: PathBuf, procs: CString },
    ProcessTree,
}

/// The directory under which this process may make cgroups, if cgroup v2 works here.
fn cgroup_base() -> Option<&'static PathBuf> {
    static BASE: OnceLock<Option<PathBuf>> = OnceLock::new();
    BASE.get_or_init(|| {
        let base = own_cgroup_dir()?;
        probe(&base).then_some(base)
    })
    .as_ref()
}

fn own_cgroup_dir() -> Option<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    // "… mount-point … - cgroup2 …"
    let mount = mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        right
            .starts_with("cgroup2 ")
            .then(|| left.split(' ').nth(4).map(PathBuf::from))?
    })?;
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let own = cgroups.lines().find_map(|l| l.strip_prefix("0::"))?;
    Some(mount.join(own.trim_start_matches('/')))
}

/// Whether a process can be started inside a new cgroup here (delegation, permissions and
/// the no-internal-process rule all allow it).
fn probe(base: &Path) -> bool {
    let dir = base.join(format!("kiln-probe-{}", std::process::id()));
    if std::fs::create_dir(&dir).is_err() {
        return false;
    }
    let ok = CString::new(
        dir.join("cgroup.procs")
            .into_os_string()
            .into_encoded_bytes(),
    )
    .ok()
    .and_then(|procs| {
        let mut command = std::process::Command::new("true");
        // SAFETY: the hook only calls async-signal-safe functions (see join_cgroup).
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, move || join_cgroup(&procs));
        }
        command.status().ok()
    })
    .is_some_and(|status| status.success());
    let _ = std::fs::remove_dir(&dir);
    ok
}

/// In a child between fork and exec: moves the calling process into the cgroup whose
/// `cgroup.procs` is `procs`. Only open(2), write(2) and close(2): async-signal-safe.
pub(crate) fn join_cgroup(procs: &CString) -> std::io::Result<()> {
    // SAFETY: `procs` is a valid NUL-terminated path; the buffer is a static byte string.
    unsafe {
        let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let written = libc::write(fd, b"0".as_ptr().cast(), 1);
        libc::close(fd);
        if written != 1 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// `<tag>-job-`: the start of the names of a runner's job cgroups.
fn runner_prefix(tag: &str) -> String {
    let tag: String = tag
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{tag}-job-")
}

/// `<tag>-job-<id>-`: the start of the names of a job's cgroups.
fn cgroup_prefix(tag: &str, job_id: i64) -> String {
    format!("{}{job_id}-", runner_prefix(tag))
}

/// A cgroup name no other containment of this machine uses: the prefix, this process and a
/// counter.
fn cgroup_name(tag: &str, job_id: i64) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}{}-{n}", cgroup_prefix(tag, job_id), std::process::id())
}

impl Containment {
    pub(crate) fn new(isolation: Isolation, tag: &str, job_id: i64) -> Containment {
        let cgroup = match isolation {
            Isolation::Auto => cgroup_base().and_then(|base| {
                let dir = base.join(cgroup_name(tag, job_id));
                std::fs::create_dir(&dir).ok()?;
                let procs = CString::new(
                    dir.join("cgroup.procs")
                        .into_os_string()
                        .into_encoded_bytes(),
                )
                .ok()?;
                Some(Kind::Cgroup { dir, procs })
            }),
            Isolation::ProcessTree => None,
        };
        let kind = cgroup.unwrap_or_else(|| {
            become_subreaper();
            Kind::ProcessTree
        });
        Containment {
            kind,
            emptied: true,
            leaders: Vec::new(),
            since: None,
        }
    }

    /// What the trace's first lines say about it.
    pub(crate) fn describe(&self) -> String {
        match &self.kind {
            Kind::Cgroup { dir, .. } => format!("cgroup v2 ({})", dir.display()),
            Kind::ProcessTree => "process-tree tracking (child subreaper)".into(),
        }
    }

    /// The `cgroup.procs` a new process of the job joins before it execs, if any.
    pub(crate) fn cgroup_procs(&self) -> Option<CString> {
        match &self.kind {
            Kind::Cgroup { procs, .. } => Some(procs.clone()),
            Kind::ProcessTree => None,
        }
    }

    /// Records a process the executor started for the job.
    pub(crate) fn started(&mut self, pid: i32) {
        self.emptied = false;
        self.leaders.push(pid);
        if self.since.is_none() {
            self.since = proc_stat(pid).map(|s| s.start);
        }
    }

    /// Kills every process of the job. Returns how many were signalled.
    pub(crate) fn kill_all(&mut self) -> usize {
        if self.emptied {
            return 0;
        }
        self.emptied = true;
        match &self.kind {
            Kind::Cgroup { dir, .. } => kill_cgroup(dir),
            Kind::ProcessTree => kill_tree(&self.leaders, self.since),
        }
    }
}

impl Drop for Containment {
    fn drop(&mut self) {
        self.kill_all();
        if let Kind::Cgroup { dir, .. } = &self.kind {
            remove_cgroup(dir);
        }
    }
}

fn become_subreaper() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) only sets a flag of this process.
        unsafe {
            libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        }
    });
}

fn cgroup_pids(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Kills everything in the cgroup `dir` and waits (briefly) until it is empty.
fn kill_cgroup(dir: &Path) -> usize {
    let before = cgroup_pids(dir).len();
    // cgroup.kill (Linux 5.14) kills atomically, forks in flight included.
    if std::fs::write(dir.join("cgroup.kill"), "1").is_err() {
        for _ in 0..50 {
            let pids = cgroup_pids(dir);
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                // SAFETY: kill(2) has no memory effects on this process.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
    for _ in 0..200 {
        if cgroup_pids(dir).is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    before
}

fn remove_cgroup(dir: &Path) {
    for _ in 0..100 {
        if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What `/proc/<pid>/stat` says of a process.
struct ProcStat {
    ppid: i32,
    pgid: i32,
    sid: i32,
    /// Clock ticks after boot.
    start: u64,
}

fn proc_stat(pid: i32) -> Option<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold anything; the fields follow the last ')'.
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
    Some(ProcStat {
        ppid: fields.get(1)?.parse().ok()?,
        pgid: fields.get(2)?.parse().ok()?,
        sid: fields.get(3)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

fn all_processes() -> Vec<(i32, ProcStat)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| Some((pid, proc_stat(pid)?)))
        .collect()
}

/// The process-tree fallback: kills the leaders' process groups, their descendants, and the
/// orphans this (subreaper) process adopted from a new session since the job began, with
/// their descendants; then reaps the adopted ones. Repeats until nothing is left, since a
/// process may fork while it is being killed.
fn kill_tree(leaders: &[i32], since: Option<u64>) -> usize {
    let me = std::process::id() as i32;
    let my_sid = proc_stat(me).map_or(-1, |s| s.sid);
    let mut killed = 0;
    for _ in 0..20 {
        let procs = all_processes();
        let mut targets: Vec<i32> = Vec::new();
        for (pid, stat) in &procs {
            let in_group = leaders.contains(&stat.pgid);
            let adopted =
                stat.ppid == me && stat.sid != my_sid && since.is_some_and(|t| stat.start >= t);
            if (in_group || adopted || leaders.contains(pid)) && *pid != me {
                targets.push(*pid);
            }
        }
        // Descendants of everything found so far.
        loop {
            let before = targets.len();
            for (pid, stat) in &procs {
                if targets.contains(&stat.ppid) && !targets.contains(pid) && *pid != me {
                    targets.push(*pid);
                }
            }
            if targets.len() == before {
                break;
            }
        }
        let alive: Vec<i32> = targets
            .into_iter()
            .filter(|pid| std::fs::metadata(format!("/proc/{pid}/task")).is_ok())
            .filter(|pid| !is_zombie(*pid))
            .collect();
        for pid in &alive {
            // SAFETY: kill(2) has no memory effects on this process.
            unsafe { libc::kill(*pid, libc::SIGKILL) };
        }
        reap_adopted(me, my_sid);
        if alive.is_empty() {
            break;
        }
        killed += alive.len();
        std::thread::sleep(Duration::from_millis(5));
    }
    killed
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.get(s.rfind(')')? + 2..).map(|r| r.starts_with('Z')))
        .unwrap_or(true)
}

/// Collects the exit of adopted orphans (children of this process from another session),
/// which no one else waits for. Never this process's own children: those belong to whoever
/// spawned them (tokio, std), and none of them starts a new session.
fn reap_adopted(me: i32, my_sid: i32) {
    for (pid, stat) in all_processes() {
        if stat.ppid == me && stat.sid != my_sid && is_zombie(pid) {
            // SAFETY: waitpid on a specific zombie child only collects its status.
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
        }
    }
}

/// Kills what is left in the cgroups of jobs `job_ids` of runner `tag` after the runner
/// died without cleaning up (a crash, SIGKILL). Returns how many cgroups were emptied.
pub fn kill_leftover_cgroups(tag: &str, job_ids: &[i64]) -> usize {
    let prefixes: Vec<String> = job_ids.iter().map(|id| cgroup_prefix(tag, *id)).collect();
    kill_cgroups_named(&prefixes)
}

/// Kills what is left in every job cgroup of runner `tag` (a runner that will not return).
/// Returns how many cgroups were emptied.
pub fn kill_runner_cgroups(tag: &str) -> usize {
    kill_cgroups_named(&[runner_prefix(tag)])
}

fn kill_cgroups_named(prefixes: &[String]) -> usize {
    let Some(base) = own_cgroup_dir() else {
        return 0;
    };
    let Ok(entries) = std::fs::read_dir(&base) else {
        return 0;
    };
    let mut emptied = 0;
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if prefixes.iter().any(|p| name.starts_with(p)) {
            kill_cgroup(&entry.path());
            remove_cgroup(&entry.path());
            emptied += 1;
        }
    }
    emptied
}
