//! Who a job runs as and what environment it starts from. A job sees its variables and a
//! minimal base, never the runner's own environment (which holds the server's secrets); with
//! a job user it also runs without the runner's privileges.

use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};

/// An unprivileged account to run jobs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

impl JobUser {
    /// The account `name` from the password database.
    pub fn lookup(name: &str) -> std::io::Result<JobUser> {
        let c_name = CString::new(name).map_err(std::io::Error::other)?;
        let mut buf = vec![0_u8; 16 * 1024];
        // SAFETY: getpwnam_r writes the entry into `pwd` and its strings into `buf`, whose
        // length we pass; `result` is set to `&pwd` on success or null if there is none.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = unsafe {
            libc::getpwnam_r(
                c_name.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
        if result.is_null() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no user {name:?}"),
            ));
        }
        if pwd.pw_uid == 0 {
            return Err(std::io::Error::other(format!(
                "the job user {name:?} is root; name an unprivileged account"
            )));
        }
        // SAFETY: on success pw_dir points at a NUL-terminated string inside `buf`.
        let home = unsafe { CStr::from_ptr(pwd.pw_dir) }
            .to_string_lossy()
            .into_owned();
        Ok(JobUser {
            name: name.to_owned(),
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
            home: PathBuf::from(home),
        })
    }
}

/// Hands `dir` and everything under it to `user` (symlinks themselves, not their targets).
pub fn chown_tree(dir: &Path, user: &JobUser) -> std::io::Result<()> {
    std::os::unix::fs::lchown(dir, Some(user.uid), Some(user.gid))?;
    if std::fs::symlink_metadata(dir)?.is_dir() {
        for entry in std::fs::read_dir(dir)? {
            chown_tree(&entry?.path(), user)?;
        }
    }
    Ok(())
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The environment a job starts from: `PATH`, `HOME`, `LANG`, `TERM`, `USER`, `SHELL`, from
/// the job user's account or else the runner's values of those six alone.
pub fn base_environment(user: Option<&JobUser>, workdir: &Path) -> Vec<(String, String)> {
    let own = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let (home, login) = match user {
        Some(user) => {
            let home = if user.home.is_dir() {
                user.home.clone()
            } else {
                workdir.to_path_buf()
            };
            (home.to_string_lossy().into_owned(), user.name.clone())
        }
        None => (
            own("HOME").unwrap_or_else(|| workdir.to_string_lossy().into_owned()),
            own("USER").unwrap_or_else(|| "root".into()),
        ),
    };
    vec![
        (
            "PATH".into(),
            own("PATH").unwrap_or_else(|| DEFAULT_PATH.into()),
        ),
        ("HOME".into(), home),
        (
            "LANG".into(),
            own("LANG").unwrap_or_else(|| "C.UTF-8".into()),
        ),
        ("TERM".into(), own("TERM").unwrap_or_else(|| "dumb".into())),
        ("USER".into(), login),
        ("SHELL".into(), "/bin/bash".into()),
    ]
}
