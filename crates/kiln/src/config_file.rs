//! `kiln --config kiln.toml`: one TOML file whose keys are the flags' names (`listen`,
//! `database_url`, `max_trace_size` …). A flag wins over its `KILN_…` variable, which wins
//! over the file: the file's values become the variables that are not set, before the
//! command line is read. A key that is no flag's name is an error that names it.
//! `kiln config check` prints what `kiln serve` would run with, and where each value came
//! from, secrets hidden.

use anyhow::{bail, Context};
use clap::parser::ValueSource;
use clap::CommandFactory;
use std::collections::BTreeMap;
use std::ffi::OsString;

/// The settings a file may hold: each flag that has a `KILN_…` variable, by its name with
/// underscores, and that variable.
fn settings() -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let mut commands = vec![crate::Cli::command()];
    while let Some(command) = commands.pop() {
        for arg in command.get_arguments() {
            if let (Some(long), Some(env)) = (arg.get_long(), arg.get_env()) {
                if long != "config" {
                    found.insert(long.replace('-', "_"), env.to_string_lossy().into_owned());
                }
            }
        }
        commands.extend(command.get_subcommands().cloned());
    }
    found
}

/// The file named by `--config` (or `--config=`) before the command in `args` (a
/// command's own `--config`, the runner's, is not this one), else by `KILN_CONFIG`.
fn named(args: &[OsString]) -> Option<OsString> {
    let root = crate::Cli::command();
    let takes_value = |long: &str| {
        root.get_arguments()
            .any(|a| a.get_long() == Some(long) && a.get_action().takes_values())
    };
    let mut args = args.iter().skip(1);
    while let Some(arg) = args.next() {
        let text = arg.to_string_lossy();
        if text == "--config" {
            return args.next().cloned();
        }
        if let Some(path) = text.strip_prefix("--config=") {
            return Some(path.into());
        }
        match text.strip_prefix("--") {
            // The command begins: what follows is its own.
            None if !text.starts_with('-') => break,
            Some("") => break,
            Some(long) if !long.contains('=') && takes_value(long) => {
                args.next();
            }
            _ => {}
        }
    }
    std::env::var_os("KILN_CONFIG")
}

fn scalar(key: &str, value: &toml::Value) -> anyhow::Result<String> {
    Ok(match value {
        toml::Value::String(text) => text.clone(),
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::Float(x) => x.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        // A list flag (`embedded_runner_tags = ["docker", "linux"]`) takes commas.
        toml::Value::Array(items) => items
            .iter()
            .map(|item| match item {
                toml::Value::Array(_) | toml::Value::Table(_) => {
                    bail!("`{key}` must be a list of plain values")
                }
                other => scalar(key, other),
            })
            .collect::<anyhow::Result<Vec<_>>>()?
            .join(","),
        toml::Value::Datetime(when) => when.to_string(),
        toml::Value::Table(_) => bail!("`{key}` must be a value, not a table"),
    })
}

/// Reads the file `args` name, if any, and sets each of its values as its flag's variable
/// where that variable is not set. Returns the variables it set. Call it before any
/// thread starts (it changes the environment).
pub fn apply(args: &[OsString]) -> anyhow::Result<Vec<String>> {
    let Some(path) = named(args) else {
        return Ok(Vec::new());
    };
    let shown = std::path::Path::new(&path).display().to_string();
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {shown}"))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("{shown} is not TOML"))?;
    let known = settings();
    let mut set = Vec::new();
    for (key, value) in &table {
        let Some(variable) = known.get(key) else {
            bail!("{shown}: unknown key `{key}` (the keys are the flags' names, e.g. `listen`, `database_url`)");
        };
        let value = scalar(key, value).with_context(|| shown.clone())?;
        if std::env::var_os(variable).is_none() {
            std::env::set_var(variable, value);
            set.push(variable.clone());
        }
    }
    Ok(set)
}

/// Whether a setting's value must not be printed.
fn is_secret(key: &str) -> bool {
    ["secret", "token", "password", "key"]
        .iter()
        .any(|word| key.contains(word))
}

/// A URL with its password replaced.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:(hidden)@{host}"),
        None => url.to_owned(),
    }
}

/// `kiln config check [SERVE FLAGS]` (its command line is `args`): every setting of
/// `kiln serve` and the global ones, with its value and where it came from (flag,
/// environment, file, default), secrets hidden.
pub fn check(args: &[OsString], from_file: &[String]) -> anyhow::Result<String> {
    let command = crate::Cli::command();
    let matches = command
        .clone()
        .try_get_matches_from(args)
        .context("the configuration is not valid for `kiln serve`")?;
    let serve = matches
        .subcommand_matches("config")
        .and_then(|config| config.subcommand_matches("check"))
        .context("config check's settings")?;
    let serve_command = command
        .find_subcommand("config")
        .and_then(|config| config.find_subcommand("check"))
        .context("the config check command")?;
    let mut lines = Vec::new();
    let args = command.get_arguments().chain(serve_command.get_arguments());
    for arg in args {
        let (Some(long), id) = (arg.get_long(), arg.get_id().as_str()) else {
            continue;
        };
        if long == "config" || arg.is_hide_set() {
            continue;
        }
        let values: Vec<String> = serve
            .get_raw(id)
            .map(|raw| raw.map(|v| v.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let source = match serve.value_source(id) {
            Some(ValueSource::EnvVariable)
                if arg
                    .get_env()
                    .is_some_and(|env| from_file.iter().any(|f| f.as_str() == env)) =>
            {
                "file"
            }
            Some(ValueSource::EnvVariable) => "environment",
            Some(ValueSource::CommandLine) => "flag",
            Some(ValueSource::DefaultValue) => "default",
            _ => "unset",
        };
        let key = long.replace('-', "_");
        let value = if values.is_empty() {
            "—".to_owned()
        } else if is_secret(&key) {
            "(hidden)".to_owned()
        } else {
            without_password(&values.join(","))
        };
        lines.push(format!("{key} = {value}   # {source}"));
    }
    Ok(lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_config_before_the_command_is_the_file() {
        let args = |list: &[&str]| list.iter().map(OsString::from).collect::<Vec<_>>();
        std::env::remove_var("KILN_CONFIG");
        assert_eq!(
            named(&args(&["kiln", "--config", "a.toml", "serve"])),
            Some("a.toml".into())
        );
        assert_eq!(
            named(&args(&[
                "kiln",
                "--data-dir",
                "d",
                "--config=b.toml",
                "serve"
            ])),
            Some("b.toml".into())
        );
        assert_eq!(
            named(&args(&["kiln", "runner", "register", "--config", "r.toml"])),
            None
        );
        assert_eq!(
            named(&args(&[
                "kiln",
                "--data-dir",
                "d",
                "runner",
                "run",
                "--config",
                "r.toml"
            ])),
            None
        );
    }

    #[test]
    fn the_keys_are_the_flags_names() {
        let known = settings();
        assert_eq!(known.get("listen").map(String::as_str), Some("KILN_LISTEN"));
        assert_eq!(
            known.get("database_url").map(String::as_str),
            Some("KILN_DATABASE_URL")
        );
        assert!(!known.contains_key("config"));
    }

    #[test]
    fn values_become_flag_text_and_secrets_are_hidden() {
        let list = toml::Value::Array(vec!["docker".into(), "linux".into()]);
        assert_eq!(scalar("tags", &list).unwrap_or_default(), "docker,linux");
        assert_eq!(
            scalar("n", &toml::Value::Integer(5)).unwrap_or_default(),
            "5"
        );
        assert!(scalar("t", &toml::Value::Table(toml::Table::new())).is_err());
        assert_eq!(
            without_password("postgres://kiln:s3cret@db:5432/kiln"),
            "postgres://kiln:(hidden)@db:5432/kiln"
        );
        assert_eq!(without_password("postgres://db/kiln"), "postgres://db/kiln");
        assert!(is_secret("secret_key_file") && !is_secret("listen"));
    }
}
