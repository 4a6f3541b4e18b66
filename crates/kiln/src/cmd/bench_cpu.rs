//! `kiln bench --build-cpu N [--kiln PATH]`: the server's own CPU time per finished build in
//! one-job pipelines. Starts `PATH serve` (this binary by default; any Kiln with the same
//! `admin` and `serve` commands, so an older release can be measured the same way) on
//! SQLite, creates N one-job pipelines through the v4 API, waits for all to finish, and
//! reads the server process's user + system CPU from `/proc` (the jobs' own processes are
//! not counted).

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

pub async fn run(builds: usize, kiln: Option<PathBuf>) -> anyhow::Result<()> {
    let kiln = match kiln {
        Some(path) => path,
        None => std::env::current_exe()?,
    };
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let repo = dir.path().join("repo");
    git_repo(&repo, "job:\n  script: [\"true\"]\n")?;
    admin(
        &kiln,
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
        &kiln,
        &data,
        &["admin", "token", "create", "--username", "bench"],
    )?;
    let project = admin(
        &kiln,
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
    let mut server = Command::new(&kiln)
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
    let result = measure(&mut server, &log, &token, &project, builds).await;
    let _ = server.kill();
    let _ = server.wait();
    let (cpu, took) = result?;
    println!(
        "{builds} one-job pipelines on SQLite, {} (2 workers)",
        kiln.display()
    );
    println!(
        "server CPU: {:.3} s in all, {:.2} ms per finished build; {:.1} s wall",
        cpu,
        cpu * 1000.0 / builds as f64,
        took.as_secs_f64()
    );
    Ok(())
}

async fn measure(
    server: &mut std::process::Child,
    log: &Path,
    token: &str,
    project: &str,
    builds: usize,
) -> anyhow::Result<(f64, Duration)> {
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
    for _ in 0..builds {
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
    let deadline = Instant::now() + Duration::from_secs(600);
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
