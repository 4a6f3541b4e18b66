//! `kiln bench --build-cpu N [--pipeline-jobs 1,10,10000] [--kiln PATH]`: the server's own
//! CPU time per finished build, in pipelines of each size. For each size it starts `PATH serve`
//! (this binary by default; any Kiln with the same `admin` and `serve` commands, so an older
//! release can be measured the same way) on a fresh SQLite, creates N / size pipelines of
//! `size` one-stage jobs through the v4 API, waits for every build to finish, and reads the
//! server process's user + system CPU from `/proc` (the jobs' own processes are not counted).
//! The ratio of each size's CPU per build to the first size's shows whether the work after
//! each build grows with the pipeline (it must not: processing is linear).

use crate::cmd::bench_dispatch::git_repo;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn admin(kiln: &Path, data: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(kiln)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("KILN_DATABASE_URL")
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "kiln {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// User + system CPU seconds of process `pid`, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat
        .get(stat.rfind(')').unwrap_or(0) + 2..)
        .unwrap_or("")
        .split(' ')
        .collect();
    let ticks =
        |i: usize| -> anyhow::Result<f64> { Ok(fields.get(i).unwrap_or(&"0").parse::<f64>()?) };
    // utime and stime are fields 14 and 15 of stat (11 and 12 after the state).
    // SAFETY: sysconf only reads a system constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok((ticks(11)? + ticks(12)?) / per_second)
}

/// A `.gitlab-ci.yml` of `jobs` jobs in one stage, each `true`; past 200 (GitLab's most per
/// `parallel:`) as `parallel:` copies so that the file stays small.
fn ci_file(jobs: usize) -> String {
    if jobs <= 1 {
        return "job:\n  script: [\"true\"]\n".to_owned();
    }
    let mut text = String::new();
    let mut left = jobs;
    let mut n = 0;
    while left > 0 {
        let copies = left.min(200);
        text.push_str(&format!(
            "job{n}:\n  script: [\"true\"]\n  parallel: {copies}\n"
        ));
        left -= copies;
        n += 1;
    }
    text
}

pub async fn run(builds: usize, sizes: &[usize], kiln: Option<PathBuf>) -> anyhow::Result<()> {
    let kiln = match kiln {
        Some(path) => path,
        None => std::env::current_exe()?,
    };
    println!(
        "server CPU per finished build, SQLite, {} (2 workers)",
        kiln.display()
    );
    let mut first: Option<f64> = None;
    for &jobs in sizes {
        let jobs = jobs.max(1);
        let pipelines = (builds / jobs).max(1);
        let (cpu, took) = one_size(&kiln, jobs, pipelines).await?;
        let total = pipelines * jobs;
        let per_build = cpu * 1000.0 / total as f64;
        let ratio = first.map_or(1.0, |base| per_build / base);
        first.get_or_insert(per_build);
        println!(
            "{pipelines} pipelines of {jobs} jobs: {cpu:.3} s in all, {per_build:.2} ms per finished build ({ratio:.2}x the first size); {:.1} s wall",
            took.as_secs_f64()
        );
    }
    Ok(())
}

/// One measurement on a fresh server: `pipelines` pipelines of `jobs` jobs.
async fn one_size(kiln: &Path, jobs: usize, pipelines: usize) -> anyhow::Result<(f64, Duration)> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let repo = dir.path().join("repo");
    git_repo(&repo, &ci_file(jobs))?;
    admin(
        kiln,
        &data,
        &[
            "admin",
            "user",
            "create",
            "--username",
            "bench",
            "--name",
            "Bench",
            "--email",
            "b@x",
            "--admin",
        ],
    )?;
    let token = admin(
        kiln,
        &data,
        &["admin", "token", "create", "--username", "bench"],
    )?;
    let project = admin(
        kiln,
        &data,
        &[
            "admin",
            "project",
            "create",
            "--path",
            "bench/cpu",
            "--repo",
            &repo.to_string_lossy(),
        ],
    )?;
    let log = dir.path().join("serve.log");
    let mut server = Command::new(kiln)
        .arg("--data-dir")
        .arg(&data)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--builds-concurrency",
            "2",
        ])
        .env_remove("KILN_DATABASE_URL")
        .env("RUST_LOG", "warn,kiln=info,kiln_server=info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()?;
    let result = measure(&mut server, &log, &token, &project, (pipelines, jobs)).await;
    let _ = server.kill();
    let _ = server.wait();
    result
}

async fn measure(
    server: &mut std::process::Child,
    log: &Path,
    token: &str,
    project: &str,
    (pipelines, jobs): (usize, usize),
) -> anyhow::Result<(f64, Duration)> {
    let builds = pipelines * jobs;
    let deadline = Instant::now() + Duration::from_secs(30);
    let bound = loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(rest) = text.split("bound=").nth(1) {
            break rest.split_whitespace().next().unwrap_or("").to_owned();
        }
        anyhow::ensure!(Instant::now() < deadline, "serve did not start: {text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let base = format!("http://{bound}");
    let client = reqwest::Client::new();
    // Let start-up work settle before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = cpu_seconds(server.id())?;
    let started = Instant::now();
    for _ in 0..pipelines {
        let response = client
            .post(format!(
                "{base}/api/v4/projects/{project}/pipeline?ref=master"
            ))
            .header("PRIVATE-TOKEN", token)
            .send()
            .await?;
        anyhow::ensure!(
            response.status() == 201,
            "create answered {}",
            response.status()
        );
    }
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let response = client
            .get(format!(
                "{base}/api/v3/projects/{project}/builds?scope[]=success&scope[]=failed&per_page=1"
            ))
            .header("PRIVATE-TOKEN", token)
            .send()
            .await?;
        let finished: usize = response
            .headers()
            .get("x-total")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if finished >= builds {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {finished} of {builds} builds finished"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok((cpu_seconds(server.id())? - before, started.elapsed()))
}
