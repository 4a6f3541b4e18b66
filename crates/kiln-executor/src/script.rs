//! The bash scripts a job runs. Each command is echoed as `$ command` first, as
//! gitlab-runner does, so the trace shows what ran.

/// Quotes `s` for bash in single quotes.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `before_script` + `script` (one session: a failure stops it) or `after_script`.
pub fn render(commands: &[String]) -> String {
    let mut out = String::from("exec 2>&1\n");
    for command in commands {
        // Green, like gitlab-runner's command echo.
        out.push_str(&format!(
            "printf '\\033[32;1m$ %s\\033[0;m\\n' {}\n",
            quote(command)
        ));
        out.push_str(command);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn commands_are_echoed_then_run() {
        let s = render(&["echo hi".into()]);
        assert!(
            s.contains("printf '\\033[32;1m$ %s\\033[0;m\\n' 'echo hi'\necho hi\n"),
            "{s}"
        );
    }
}
