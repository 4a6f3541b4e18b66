//! The runner's own pass over a job's variables, as gitlab-runner makes it before the job
//! starts (`spec.Variables.Expand`): every variable that is not raw has its `$NAME` and
//! `${NAME}` replaced, once, by the value of the last variable of that name — a `file`
//! variable by the path of its file — and an unknown name by nothing; `$$` becomes `$`.
//! The server has already expanded what refers to other variables (kiln-ci's
//! `variables::expand_all`) and left this pass the rest, so a job sees what GitLab's would.
//! The lookup is Go's `os.Expand`, so odd spellings (`${}`, `$1`, `$?`) come out as they do
//! under gitlab-runner.

/// Go's `os.Expand` with gitlab-runner's lookup (`Variables.value`).
pub fn expand(text: &str, lookup: &dyn Fn(&str) -> String) -> String {
    if !text.contains('$') {
        return text.to_owned();
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes.get(i) != Some(&b'$') || i + 1 >= bytes.len() {
            i += 1;
            continue;
        }
        out.push_str(text.get(copied..i).unwrap_or_default());
        let (name, width) = shell_name(text.get(i + 1..).unwrap_or_default());
        match (name, width) {
            // Invalid syntax (`${}`, an unclosed `${`): the characters are dropped.
            ("", w) if w > 0 => {}
            // `$` not followed by a name stays.
            ("", _) => out.push('$'),
            (name, _) => out.push_str(&lookup(name)),
        }
        i += 1 + width;
        copied = i;
    }
    out.push_str(text.get(copied..).unwrap_or_default());
    out
}

/// Go's `getShellName`: the name after a `$`, and how many bytes it takes.
fn shell_name(s: &str) -> (&str, usize) {
    let bytes = s.as_bytes();
    let special = |b: u8| b"*#$@!?-".contains(&b) || b.is_ascii_digit();
    match bytes.first() {
        Some(b'{') => {
            if bytes.len() > 2
                && bytes.get(1).copied().is_some_and(special)
                && bytes.get(2) == Some(&b'}')
            {
                return (s.get(1..2).unwrap_or_default(), 3);
            }
            match bytes.iter().skip(1).position(|b| *b == b'}') {
                Some(0) => ("", 2),
                Some(end) => (s.get(1..1 + end).unwrap_or_default(), end + 2),
                None => ("", 1),
            }
        }
        Some(b) if special(*b) => (s.get(..1).unwrap_or_default(), 1),
        _ => {
            let n = bytes
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                .count();
            (s.get(..n).unwrap_or_default(), n)
        }
    }
}

/// `text` expanded against the job's environment as the runner expands a path.
pub fn expand_in(text: &str, env: &[(String, String)]) -> String {
    expand(text, &|name: &str| {
        runner_lookup(env, name, &|_: &str| None)
    })
}

/// gitlab-runner's `Variables.value`: `$$` is a `$`, shell specials and positionals are empty,
/// a name is its last variable's value (a `file` variable's path), an unknown one empty.
fn runner_lookup(
    variables: &[(String, String)],
    name: &str,
    path_of: &dyn Fn(&str) -> Option<String>,
) -> String {
    match name {
        "$" => "$".to_owned(),
        "*" | "#" | "@" | "!" | "?" => String::new(),
        n if n.len() == 1 && n.as_bytes().first().is_some_and(u8::is_ascii_digit) => String::new(),
        n => match variables.iter().rev().find(|(k, _)| k == n) {
            Some((key, value)) => path_of(key).unwrap_or_else(|| value.clone()),
            None => String::new(),
        },
    }
}

/// The job's variables after the runner's pass. `path_of` gives a `file` variable's path.
pub fn runner_expand(
    variables: &[(String, String)],
    raw: &[String],
    path_of: &dyn Fn(&str) -> Option<String>,
) -> Vec<(String, String)> {
    let lookup = |name: &str| runner_lookup(variables, name, path_of);
    variables
        .iter()
        .map(|(key, value)| {
            let value = if raw.contains(key) {
                value.clone()
            } else {
                expand(value, &lookup)
            };
            (key.clone(), value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn like_gitlab_runner() {
        let vars = pairs(&[
            ("A", "a"),
            ("A", "later"),
            ("F", "contents"),
            ("X", "$$A ${A} $A-$NOPE ${} $1 100$ %A% $F"),
            ("R", "$A"),
        ]);
        let path_of = |k: &str| (k == "F").then(|| "/tmp/F".to_owned());
        let out = runner_expand(&vars, &["R".to_owned()], &path_of);
        let x = out.iter().find(|(k, _)| k == "X").map(|(_, v)| v.as_str());
        assert_eq!(x, Some("$A later later-   100$ %A% /tmp/F"));
        let r = out.iter().find(|(k, _)| k == "R").map(|(_, v)| v.as_str());
        assert_eq!(r, Some("$A"));
    }

    #[test]
    fn go_shell_names() {
        assert_eq!(shell_name("{A}x"), ("A", 3));
        assert_eq!(shell_name("{}x"), ("", 2));
        assert_eq!(shell_name("{A"), ("", 1));
        assert_eq!(shell_name("{?}"), ("?", 3));
        assert_eq!(shell_name("9x"), ("9", 1));
        assert_eq!(shell_name("AB_1-"), ("AB_1", 4));
        assert_eq!(shell_name("-"), ("-", 1));
        assert_eq!(shell_name(" "), ("", 0));
    }
}
