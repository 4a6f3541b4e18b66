//! `kiln admin …`: each command prints only the new id or token on stdout, so scripts can
//! capture it; messages go to stderr.

use crate::Cli;
use anyhow::Context;
use clap::Subcommand;
use kiln_core::{AccessLevel, Visibility};
use kiln_store::{ProjectRef, Store};

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Users.
    #[command(subcommand)]
    User(UserCommand),
    /// Personal access tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Projects.
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Project members.
    #[command(subcommand)]
    Member(MemberCommand),
    /// Trigger tokens for the Triggers API.
    #[command(subcommand)]
    Trigger(TriggerCommand),
    /// Runners and their registration tokens.
    #[command(subcommand)]
    Runner(RunnerCommand),
    /// CI/CD variables of a project (--project) or of the instance.
    #[command(subcommand)]
    Variable(VariableCommand),
    /// Write N generated pipelines (10 builds each) into a project: for benchmarks and demos.
    Generate {
        #[arg(long)]
        project: String,
        #[arg(long)]
        pipelines: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[derive(Subcommand, Debug)]
pub enum VariableCommand {
    /// Create or change a variable; the value comes from --value or, without it, stdin.
    Set {
        #[arg(long)]
        key: String,
        #[arg(long)]
        value: Option<String>,
        #[arg(long)]
        project: Option<String>,
        /// Only for jobs on protected refs (the default branch).
        #[arg(long)]
        protected: bool,
        /// Never shown in a trace (GitLab's rules: 8 or more of A-Z a-z 0-9 @:.~-_+/=).
        #[arg(long)]
        masked: bool,
        /// Given to jobs as a file whose path is the variable.
        #[arg(long)]
        file: bool,
        #[arg(long)]
        raw: bool,
        #[arg(long, default_value = "*")]
        environment_scope: String,
    },
    /// Print the variables: key, type, flags (values are not printed).
    List {
        #[arg(long)]
        project: Option<String>,
    },
    Remove {
        #[arg(long)]
        key: String,
        #[arg(long)]
        project: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum RunnerCommand {
    /// Issue a registration token for the instance, or for a project with --project, and
    /// print it. Tokens are stored hashed, so each call issues a new one; --reset revokes
    /// the earlier ones of the same scope.
    RegistrationToken {
        #[arg(long)]
        project: Option<String>,
        #[arg(long)]
        reset: bool,
    },
    /// List the runners: id, status, type, tags, description.
    List,
    /// Stop a runner from taking builds.
    Pause { id: i64 },
    /// Let a paused runner take builds again.
    Resume { id: i64 },
    /// Remove a runner: its token stops working.
    Remove { id: i64 },
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    Create {
        #[arg(long)]
        username: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        admin: bool,
        /// Read a password for signing in to the web UI from standard input (its first line).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set the user's password for the web UI, read from standard input (its first line);
    /// their sessions end.
    Password {
        #[arg(long)]
        username: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    Create {
        #[arg(long)]
        username: String,
        #[arg(long, default_value = "kiln-admin")]
        name: String,
    },
    /// Revokes a token; every server sharing the database refuses it at once.
    Revoke {
        #[arg(long)]
        token: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum ProjectCommand {
    Create {
        /// NAMESPACE/NAME
        #[arg(long)]
        path: String,
        #[arg(long, default_value = "private", value_parser = parse_visibility)]
        visibility: Visibility,
        /// A local path or URL of the git repository.
        #[arg(long)]
        repo: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum TriggerCommand {
    /// Prints the new trigger token.
    Create {
        #[arg(long)]
        project: String,
        #[arg(long, default_value = "")]
        description: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum MemberCommand {
    Add {
        #[arg(long)]
        project: String,
        #[arg(long)]
        username: String,
        #[arg(long, value_parser = parse_access)]
        access: AccessLevel,
    },
}

fn parse_visibility(s: &str) -> Result<Visibility, String> {
    s.parse()
        .map_err(|e: kiln_core::access::UnknownVisibility| e.to_string())
}

fn parse_access(s: &str) -> Result<AccessLevel, String> {
    s.parse()
        .map_err(|e: kiln_core::access::UnknownAccessLevel| e.to_string())
}

fn project_ref(raw: &str) -> anyhow::Result<ProjectRef> {
    ProjectRef::parse(raw).with_context(|| format!("{raw:?} is not a project id or NAMESPACE/NAME"))
}

pub async fn run(cli: &Cli, command: &AdminCommand) -> anyhow::Result<()> {
    let store = Store::open(&cli.database_url()?).await?;
    let out = match command {
        AdminCommand::User(UserCommand::Create {
            username,
            name,
            email,
            admin,
            password_stdin,
        }) => {
            // Read (and checked) before the user exists: a bad password makes no user.
            let hash = match password_stdin {
                true => Some(password_hash_from_stdin().await?),
                false => None,
            };
            let id = store.users().create(username, name, email, *admin).await?;
            if let Some(hash) = hash {
                store.sessions().set_password_hash(id, Some(&hash)).await?;
            }
            id.to_string()
        }
        AdminCommand::User(UserCommand::Password { username }) => {
            let user = store
                .users()
                .by_username(username)
                .await
                .with_context(|| format!("no user {username:?}"))?;
            let hash = password_hash_from_stdin().await?;
            store
                .sessions()
                .set_password_hash(user.id, Some(&hash))
                .await?;
            "password set".to_owned()
        }
        AdminCommand::Token(TokenCommand::Create { username, name }) => {
            let user = store
                .users()
                .by_username(username)
                .await
                .with_context(|| format!("no user {username:?}"))?;
            store.users().create_token(user.id, name).await?
        }
        AdminCommand::Token(TokenCommand::Revoke { token }) => {
            anyhow::ensure!(
                store.users().revoke_token(token).await?,
                "no such live token"
            );
            "revoked".to_owned()
        }
        AdminCommand::Project(ProjectCommand::Create {
            path,
            visibility,
            repo,
        }) => {
            let Some(ProjectRef::Path { namespace, path }) = ProjectRef::parse(path) else {
                anyhow::bail!("--path must be NAMESPACE/NAME, got {path:?}");
            };
            // A local path is kept absolute: `serve` may start from another directory.
            let repo = repo.as_deref().map(|repo| {
                let local = std::path::Path::new(repo);
                match std::path::absolute(local) {
                    Ok(abs) if !repo.contains("://") && local.exists() => {
                        abs.to_string_lossy().into_owned()
                    }
                    _ => repo.to_owned(),
                }
            });
            store
                .projects()
                .create(&namespace, &path, *visibility, repo.as_deref())
                .await?
                .to_string()
        }
        AdminCommand::Member(MemberCommand::Add {
            project,
            username,
            access,
        }) => {
            let project = store
                .projects()
                .get(&project_ref(project)?)
                .await
                .context("no such project")?;
            let user = store
                .users()
                .by_username(username)
                .await
                .with_context(|| format!("no user {username:?}"))?;
            store
                .projects()
                .add_member(project.id, user.id, *access)
                .await?;
            format!("{}", user.id)
        }
        AdminCommand::Trigger(TriggerCommand::Create {
            project,
            description,
        }) => {
            let project = store
                .projects()
                .get(&project_ref(project)?)
                .await
                .context("no such project")?;
            store.triggers().create(project.id, description).await?
        }
        AdminCommand::Runner(command) => runner(&store, command).await?,
        AdminCommand::Variable(command) => variable(cli, &store, command).await?,
        AdminCommand::Generate {
            project,
            pipelines,
            seed,
        } => {
            let project = store
                .projects()
                .get(&project_ref(project)?)
                .await
                .context("no such project")?;
            let started = std::time::Instant::now();
            let builds =
                kiln_store::generate::generate(&store, project.id, *pipelines, *seed).await?;
            eprintln!(
                "generated {builds} builds in {:.1}s",
                started.elapsed().as_secs_f64()
            );
            builds.to_string()
        }
    };
    println!("{out}");
    store.close().await;
    Ok(())
}

async fn runner(store: &Store, command: &RunnerCommand) -> anyhow::Result<String> {
    let paused = |active: bool| kiln_store::RunnerUpdate {
        active: Some(active),
        ..Default::default()
    };
    Ok(match command {
        RunnerCommand::RegistrationToken { project, reset } => {
            let project_id = match project {
                Some(project) => Some(
                    store
                        .projects()
                        .get(&project_ref(project)?)
                        .await
                        .context("no such project")?
                        .id,
                ),
                None => None,
            };
            store
                .runners()
                .issue_registration_token(project_id, *reset)
                .await?
        }
        RunnerCommand::List => {
            let now = kiln_store::now_ms();
            let runners = store.runners().list(kiln_store::RunnerScope::All).await?;
            let lines: Vec<String> = runners
                .iter()
                .map(|r| {
                    format!(
                        "{}\t{}\t{}\t{}\t{}",
                        r.id,
                        kiln_server::service::runners::status(r, now),
                        r.runner_type,
                        r.tags.join(","),
                        r.description
                    )
                })
                .collect();
            lines.join("\n")
        }
        RunnerCommand::Pause { id } => {
            store.runners().update(*id, &paused(false)).await?;
            "paused".to_owned()
        }
        RunnerCommand::Resume { id } => {
            store.runners().update(*id, &paused(true)).await?;
            "resumed".to_owned()
        }
        RunnerCommand::Remove { id } => {
            store
                .runners()
                .remove(*id)
                .await
                .context("no such runner")?;
            "removed".to_owned()
        }
    })
}

async fn variable(cli: &Cli, store: &Store, command: &VariableCommand) -> anyhow::Result<String> {
    use kiln_server::service::ci_variables::{self as service, VariableInput};
    let mut config = kiln_server::Config::new("http://127.0.0.1:8080", cli.data_dir.clone());
    config.secret_key = cli.secret_key()?;
    config.builds_concurrency = 0;
    let app = kiln_server::state(store.clone(), config)?;
    let project_id = |project: &Option<String>| {
        let project = project.clone();
        async move {
            match project {
                None => Ok::<_, anyhow::Error>(None),
                Some(raw) => Ok(Some(
                    store
                        .projects()
                        .get(&project_ref(&raw)?)
                        .await
                        .context("no such project")?
                        .id,
                )),
            }
        }
    };
    let failed = |e: kiln_server::ApiError| anyhow::anyhow!("{}", e.message());
    match command {
        VariableCommand::Set {
            key,
            value,
            project,
            protected,
            masked,
            file,
            raw,
            environment_scope,
        } => {
            let owner = project_id(project).await?;
            let value = match value {
                Some(value) => value.clone(),
                None => {
                    let mut text = String::new();
                    std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
                    text.strip_suffix('\n').unwrap_or(&text).to_owned()
                }
            };
            let input = VariableInput {
                key: Some(key.clone()),
                value: Some(value),
                variable_type: Some(if *file { "file" } else { "env_var" }.to_owned()),
                protected: Some(*protected),
                masked: Some(*masked),
                raw: Some(*raw),
                environment_scope: Some(environment_scope.clone()),
                description: None,
            };
            let scope = Some(environment_scope.as_str());
            let set = match service::get(&app, owner, key, scope).await {
                Ok(_) => service::update(&app, owner, key, scope, input).await,
                Err(_) => service::create(&app, owner, input).await,
            };
            Ok(set.map_err(failed)?.key)
        }
        VariableCommand::List { project } => {
            let owner = project_id(project).await?;
            let listed = service::list(&app, owner).await.map_err(failed)?;
            Ok(listed
                .iter()
                .map(|v| {
                    let mut flags = Vec::new();
                    for (on, name) in [
                        (v.protected, "protected"),
                        (v.masked, "masked"),
                        (v.raw, "raw"),
                    ] {
                        if on {
                            flags.push(name);
                        }
                    }
                    let kind = if v.file { "file" } else { "env_var" };
                    format!(
                        "{}\t{kind}\t{}\t{}",
                        v.key,
                        v.environment_scope,
                        flags.join(",")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"))
        }
        VariableCommand::Remove { key, project } => {
            let owner = project_id(project).await?;
            service::delete(&app, owner, key, None)
                .await
                .map_err(failed)?;
            Ok("removed".to_owned())
        }
    }
}

/// The first line of standard input as an Argon2id hash (at least 8 characters, as GitLab).
async fn password_hash_from_stdin() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']);
    kiln_server::service::sign_in::hash_password(password)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
}
