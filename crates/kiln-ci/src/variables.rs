//! Variables that refer to variables, expanded as GitLab's server expands them before a job
//! goes to a runner (`Ci::BuildRunnerPresenter#runner_variables`, which calls
//! `Collection#sort_and_expand_all(keep_undefined: true, expand_file_refs: false,
//! expand_raw_refs: false)`):
//!
//! - variables are ordered so that each comes after those it refers to (a topological sort);
//!   a cycle leaves every value as written, as GitLab's collection with errors does;
//! - `$NAME`, `${NAME}` and `%NAME%` are replaced by the value of the last variable of that
//!   name expanded so far; an undefined name stays as written, for the runner (and the shell);
//! - a reference to a `file` or a `raw` variable also stays as written, so that the runner's
//!   own pass turns it into the file's path, or the raw value, unexpanded;
//! - a raw variable's own value is never touched, and `$$` / `%%` stay for the runner, which
//!   makes `$$` a `$`.
//!
//! One more limit than GitLab's: a value that would grow past `MAX_EXPANDED_BYTES` (`A: $B$B`,
//! `B: $C$C`, …) is left as written instead of being built.

use std::collections::HashMap;

/// One variable as a job receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobVariable {
    pub key: String,
    pub value: String,
    /// `expand: false` in the file, or a CI/CD variable marked raw.
    pub raw: bool,
    /// A `file` variable: the job gets a path to a file holding the value.
    pub file: bool,
}

impl JobVariable {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> JobVariable {
        JobVariable {
            key: key.into(),
            value: value.into(),
            raw: false,
            file: false,
        }
    }
}

/// A variables file (`kiln run`'s `.kiln-variables.yml`): a YAML map of names to values, a
/// value being a scalar or `{value:, file: true|false, raw: true|false}`. Err: what is wrong.
pub fn parse_file(text: &str) -> Result<Vec<JobVariable>, String> {
    use crate::value::Value;
    let root = crate::load::parse_yaml(text).map_err(|e| e.message)?;
    let map = match root {
        Value::Map(map) => map,
        Value::Null => return Ok(Vec::new()),
        _ => return Err("a variables file is a map of names to values".into()),
    };
    let mut out = Vec::new();
    for (key, value) in map.iter() {
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("{key:?}: a name has letters, digits and '_'"));
        }
        let flag = |hash: &crate::value::Map, name: &str| match hash.get(name) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(format!("{key}: {name} should be true or false")),
        };
        let variable = match value {
            Value::Map(hash) => JobVariable {
                key: key.clone(),
                value: hash
                    .get("value")
                    .and_then(Value::scalar_to_string)
                    .unwrap_or_default(),
                raw: flag(hash, "raw")?,
                file: flag(hash, "file")?,
            },
            Value::Null => JobVariable::new(key.clone(), ""),
            other => JobVariable::new(
                key.clone(),
                other
                    .scalar_to_string()
                    .ok_or_else(|| format!("{key}: a value is a scalar or a map"))?,
            ),
        };
        out.push(variable);
    }
    Ok(out)
}

/// The most bytes one expanded value may have.
pub const MAX_EXPANDED_BYTES: usize = 1 << 20;

/// A piece of a value: text kept as written, or a reference to a variable (its name, and the
/// text it was written as: `$A`, `${A}` or `%A%`).
enum Piece<'a> {
    Text(&'a str),
    Reference { name: &'a str, written: &'a str },
}

/// Splits `value` by GitLab's `Item::VARIABLES_REGEXP`:
/// `\$\$|%%|\$(?<key>[a-zA-Z_][a-zA-Z0-9_]*)|\${\g<key>?}|%\g<key>%`.
fn pieces(value: &str) -> Vec<Piece<'_>> {
    let bytes = value.as_bytes();
    let name_len = |from: usize| {
        let first = bytes.get(from).copied();
        if !first.is_some_and(|b| b.is_ascii_alphabetic() || b == b'_') {
            return 0;
        }
        bytes
            .get(from..)
            .unwrap_or_default()
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
            .count()
    };
    let mut out = Vec::new();
    let (mut text_start, mut i) = (0, 0);
    while i < bytes.len() {
        let (sigil, next) = (bytes.get(i).copied(), bytes.get(i + 1).copied());
        // (start of the name, its length, bytes the whole match takes)
        let found = match (sigil, next) {
            (Some(b'$'), Some(b'$')) | (Some(b'%'), Some(b'%')) => Some((i, 0, 2)),
            (Some(b'$'), Some(b'{')) => {
                let n = name_len(i + 2);
                (bytes.get(i + 2 + n) == Some(&b'}')).then_some((i + 2, n, n + 3))
            }
            (Some(b'$'), _) => {
                let n = name_len(i + 1);
                (n > 0).then_some((i + 1, n, n + 1))
            }
            (Some(b'%'), _) => {
                let n = name_len(i + 1);
                (n > 0 && bytes.get(i + 1 + n) == Some(&b'%')).then_some((i + 1, n, n + 2))
            }
            _ => None,
        };
        match found {
            Some((name_start, name_len, taken)) => {
                if name_len > 0 {
                    if text_start < i {
                        out.push(Piece::Text(value.get(text_start..i).unwrap_or_default()));
                    }
                    out.push(Piece::Reference {
                        name: value
                            .get(name_start..name_start + name_len)
                            .unwrap_or_default(),
                        written: value.get(i..i + taken).unwrap_or_default(),
                    });
                    text_start = i + taken;
                }
                i += taken;
            }
            None => i += 1,
        }
    }
    if text_start < value.len() {
        out.push(Piece::Text(value.get(text_start..).unwrap_or_default()));
    }
    out
}

/// The names a variable's value refers to (none for a raw variable).
fn references(variable: &JobVariable) -> Vec<&str> {
    if variable.raw {
        return Vec::new();
    }
    pieces(&variable.value)
        .into_iter()
        .filter_map(|p| match p {
            Piece::Reference { name, .. } => Some(name),
            Piece::Text(_) => None,
        })
        .collect()
}

/// The order in which to expand: each variable after every variable of each name it refers to;
/// None on a cycle. Independent variables keep their order (as Ruby's TSort visits them).
fn sorted(variables: &[JobVariable]) -> Option<Vec<usize>> {
    let mut by_key: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, v) in variables.iter().enumerate() {
        by_key.entry(v.key.as_str()).or_default().push(i);
    }
    let children: Vec<Vec<usize>> = variables
        .iter()
        .map(|v| {
            references(v)
                .into_iter()
                .flat_map(|name| by_key.get(name).into_iter().flatten().copied())
                .collect()
        })
        .collect();
    // 0: not seen, 1: on the current path, 2: done.
    let mut state = vec![0u8; variables.len()];
    let mut order = Vec::with_capacity(variables.len());
    for root in 0..variables.len() {
        if state.get(root) != Some(&0) {
            continue;
        }
        // An explicit stack: a chain of thousands of variables must not overflow ours.
        let mut stack = vec![(root, 0usize)];
        if let Some(s) = state.get_mut(root) {
            *s = 1;
        }
        while let Some((node, next)) = stack.last().copied() {
            let child = children.get(node).and_then(|c| c.get(next)).copied();
            match child {
                Some(child) => {
                    if let Some(top) = stack.last_mut() {
                        top.1 += 1;
                    }
                    match state.get(child).copied() {
                        Some(0) => {
                            if let Some(s) = state.get_mut(child) {
                                *s = 1;
                            }
                            stack.push((child, 0));
                        }
                        Some(1) => return None,
                        _ => {}
                    }
                }
                None => {
                    stack.pop();
                    if let Some(s) = state.get_mut(node) {
                        *s = 2;
                    }
                    order.push(node);
                }
            }
        }
    }
    Some(order)
}

/// Expands `variables` as GitLab's server does before handing a job to a runner (see the
/// module's documentation). The result is in expansion order; later entries still win.
pub fn expand_all(variables: Vec<JobVariable>) -> Vec<JobVariable> {
    let Some(order) = sorted(&variables) else {
        return variables;
    };
    let mut done: Vec<JobVariable> = Vec::with_capacity(variables.len());
    let mut latest: HashMap<String, usize> = HashMap::new();
    for index in order {
        let Some(variable) = variables.get(index) else {
            continue;
        };
        let mut variable = variable.clone();
        if !variable.raw && variable.value.contains(['$', '%']) {
            if let Some(expanded) = expand_value(&variable.value, &done, &latest) {
                variable.value = expanded;
            }
        }
        latest.insert(variable.key.clone(), done.len());
        done.push(variable);
    }
    done
}

/// `text` with its references to `variables` (already expanded) replaced, as `expand_all`
/// replaces them; unchanged when the result would be too big.
pub fn expand_text(text: &str, variables: &[JobVariable]) -> String {
    let latest: HashMap<String, usize> = variables
        .iter()
        .enumerate()
        .map(|(i, v)| (v.key.clone(), i))
        .collect();
    expand_value(text, variables, &latest).unwrap_or_else(|| text.to_owned())
}

/// One value against the variables expanded so far; None when it would be too big.
fn expand_value(
    value: &str,
    done: &[JobVariable],
    latest: &HashMap<String, usize>,
) -> Option<String> {
    let mut out = String::with_capacity(value.len());
    for piece in pieces(value) {
        let replacement = match piece {
            Piece::Text(text) => text,
            Piece::Reference { name, written } => match latest.get(name).and_then(|i| done.get(*i))
            {
                Some(v) if !v.file && !v.raw => v.value.as_str(),
                _ => written,
            },
        };
        if out.len() + replacement.len() > MAX_EXPANDED_BYTES {
            return None;
        }
        out.push_str(replacement);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(key: &str, value: &str) -> JobVariable {
        JobVariable::new(key, value)
    }

    fn values(vars: &[JobVariable]) -> Vec<(&str, &str)> {
        vars.iter()
            .map(|v| (v.key.as_str(), v.value.as_str()))
            .collect()
    }

    fn value<'a>(vars: &'a [JobVariable], key: &str) -> Option<&'a str> {
        vars.iter()
            .rev()
            .find(|v| v.key == key)
            .map(|v| v.value.as_str())
    }

    #[test]
    fn refers_recursively_in_any_order() {
        let out = expand_all(vec![
            var("C", "$B-baz"),
            var("B", "${A}-bar"),
            var("A", "foo"),
            var("IMAGE", "$CI_REGISTRY_IMAGE:$CI_COMMIT_SHA"),
            var("CI_REGISTRY_IMAGE", "registry/x"),
            var("CI_COMMIT_SHA", "abc"),
        ]);
        assert_eq!(value(&out, "C"), Some("foo-bar-baz"));
        assert_eq!(value(&out, "IMAGE"), Some("registry/x:abc"));
    }

    #[test]
    fn keeps_undefined_escapes_files_and_raw_for_the_runner() {
        let mut raw = var("R", "raw-$A");
        raw.raw = true;
        let mut file = var("F", "contents");
        file.file = true;
        let out = expand_all(vec![
            var("A", "a"),
            raw,
            file,
            var("X", "$$A $NOPE %A% %% $R $F 100%"),
        ]);
        assert_eq!(value(&out, "R"), Some("raw-$A"));
        assert_eq!(value(&out, "X"), Some("$$A $NOPE a %% $R $F 100%"));
    }

    #[test]
    fn later_definitions_win() {
        let out = expand_all(vec![var("A", "1"), var("A", "2"), var("B", "$A")]);
        assert_eq!(value(&out, "B"), Some("2"));
        assert_eq!(values(&out).len(), 3);
    }

    #[test]
    fn a_cycle_leaves_everything_as_written() {
        let input = vec![var("A", "$B"), var("B", "$A"), var("C", "x")];
        assert_eq!(expand_all(input.clone()), input);
        let own = vec![var("A", "$A-x")];
        assert_eq!(expand_all(own.clone()), own);
    }

    #[test]
    fn doubling_chains_stop_at_the_limit() {
        let mut vars = vec![var("V0", &"x".repeat(1024))];
        for i in 1..40 {
            vars.push(var(&format!("V{i}"), &format!("$V{p}$V{p}", p = i - 1)));
        }
        let out = expand_all(vars);
        assert!(out.iter().all(|v| v.value.len() <= MAX_EXPANDED_BYTES));
        assert_eq!(value(&out, "V1").map(str::len), Some(2048));
    }

    #[test]
    fn variables_files() {
        let vars = parse_file("A: 1\nB: {value: x, file: true}\nC: {value: $A, raw: true}\nD:\n")
            .unwrap_or_default();
        assert_eq!(
            values(&vars),
            [("A", "1"), ("B", "x"), ("C", "$A"), ("D", "")]
        );
        assert!(vars[1].file && vars[2].raw && !vars[0].raw);
        assert!(parse_file("[a]").is_err());
        assert!(parse_file("BAD-KEY: 1").is_err());
        assert!(parse_file("A: {value: x, file: maybe}").is_err());
        assert_eq!(parse_file(""), Ok(Vec::new()));
    }

    #[test]
    fn long_chains_do_not_recurse() {
        let mut vars = vec![var("V0", "end")];
        for i in 1..20_000 {
            vars.push(var(&format!("V{i}"), &format!("$V{}", i - 1)));
        }
        let out = expand_all(vars);
        assert_eq!(value(&out, "V19999"), Some("end"));
    }
}
