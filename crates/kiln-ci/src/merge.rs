//! Deep merge (used by `include:` and `extends:`) and `extends:` resolution.
//!
//! GitLab merges with ActiveSupport's `deep_merge`: hashes merge recursively, anything else
//! (arrays included) is replaced by the overriding side, and keys keep the position they first
//! had. `extends:` follows `Gitlab::Ci::Config::Extendable::Entry`: bases are merged in list order,
//! then the job's own keys; at most 10 levels; unknown bases, non-hash bases and cycles are errors.

use std::collections::HashMap;

use crate::budget::{size_of_map, Budget};
use crate::error::{CompileError, Result};
use crate::value::{Map, Value};

/// GitLab's `Extendable::Entry::MAX_NESTING_LEVELS`.
const MAX_EXTENDS_LEVELS: usize = 10;

/// Merges `over` into `base`: nested maps merge, other values from `over` replace.
pub(crate) fn deep_merge(mut base: Map, over: Map) -> Map {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(Value::Map(existing)), Value::Map(incoming)) => {
                let merged = deep_merge(std::mem::take(existing), incoming);
                *existing = merged;
            }
            (Some(slot), value) => *slot = value,
            (None, value) => base.insert(key, value),
        }
    }
    base
}

/// Resolves `extends:` for every top-level hash that has it, in place.
/// Each merged entry is charged to `budget`: a chain of `extends:` copies its bases.
pub(crate) fn resolve_extends(root: &mut Map, budget: &mut Budget) -> Result<()> {
    let keys: Vec<String> = root
        .iter()
        .filter(|(_, v)| v.as_map().is_some_and(|m| m.contains_key("extends")))
        .map(|(k, _)| k.clone())
        .collect();
    let mut done = HashMap::new();
    for key in keys {
        extend(root, &key, &mut Vec::new(), &mut done, budget)?;
    }
    Ok(())
}

fn extends_list(key: &str, value: &Value) -> Result<Vec<String>> {
    let invalid = || {
        CompileError::new(
            format!("jobs:{key}:extends"),
            format!("jobs:{key} extends should be an array of strings or a string").to_lowercase(),
        )
    };
    match value {
        Value::Str(s) => Ok(vec![s.clone()]),
        Value::Seq(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string).ok_or_else(invalid))
            .collect(),
        _ => Err(invalid()),
    }
}

fn nesting_error(key: &str) -> CompileError {
    CompileError::new(
        format!("jobs:{key}:extends"),
        format!("{key}: nesting too deep in `extends`"),
    )
}

/// A resolved entry: how many extending entries its longest `extends` chain has (itself
/// included) and the base that chain continues with. Memoising keeps diamond-shaped
/// hierarchies linear while still letting us report GitLab's depth error from any entry point.
type Resolved = HashMap<String, (usize, Option<String>)>;

/// Extends `key` (whose extending ancestors are `ancestors`) and returns its chain length.
fn extend(
    root: &mut Map,
    key: &str,
    ancestors: &mut Vec<String>,
    done: &mut Resolved,
    budget: &mut Budget,
) -> Result<usize> {
    let depth = ancestors.len();
    if let Some((len, _)) = done.get(key) {
        let len = *len;
        if len > 0 && depth + len - 1 > MAX_EXTENDS_LEVELS {
            // GitLab re-walks the chain from every entry point and fails at the first entry
            // deeper than the limit; find that entry along the memoised longest chain.
            let mut node = key.to_string();
            for _ in depth..=MAX_EXTENDS_LEVELS {
                match done.get(&node).and_then(|(_, next)| next.clone()) {
                    Some(next) => node = next,
                    None => break,
                }
            }
            return Err(nesting_error(&node));
        }
        return Ok(len);
    }
    let Some(Value::Map(own)) = root.get(key) else {
        return Ok(0);
    };
    let Some(extends) = own.get("extends") else {
        return Ok(0);
    };
    let bases = extends_list(key, extends)?;
    let path = format!("jobs:{key}:extends");
    let unknown: Vec<&str> = bases
        .iter()
        .filter(|b| !root.contains_key(b))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(CompileError::new(
            path,
            format!("{key}: unknown keys in `extends` ({})", unknown.join(", ")),
        ));
    }
    let invalid: Vec<&str> = bases
        .iter()
        .filter(|b| !matches!(root.get(b), Some(Value::Map(_))))
        .map(String::as_str)
        .collect();
    if !invalid.is_empty() {
        return Err(CompileError::new(
            path,
            format!(
                "{key}: invalid base hashes in `extends` ({})",
                invalid.join(", ")
            ),
        ));
    }
    if depth > MAX_EXTENDS_LEVELS {
        return Err(nesting_error(key));
    }
    if ancestors.iter().any(|a| a == key) {
        return Err(CompileError::new(
            path,
            format!("{key}: circular dependency detected in `extends`"),
        ));
    }
    ancestors.push(key.to_string());
    let mut longest: (usize, Option<String>) = (0, None);
    for base in &bases {
        let len = extend(root, base, ancestors, done, budget)?;
        if len > longest.0 {
            longest = (len, Some(base.clone()));
        }
    }
    ancestors.pop();

    let mut merged = Map::new();
    for base in &bases {
        if let Some(Value::Map(base_map)) = root.get(base) {
            budget.charge(size_of_map(base_map))?;
            merged = deep_merge(merged, base_map.clone());
        }
    }
    if let Some(Value::Map(own)) = root.get(key) {
        merged = deep_merge(merged, own.clone());
    }
    root.insert(key.to_string(), Value::Map(merged));
    let len = longest.0 + 1;
    done.insert(key.to_string(), (len, longest.1));
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::parse_yaml;

    fn map(text: &str) -> Map {
        match parse_yaml(text) {
            Ok(Value::Map(m)) => m,
            other => panic!("expected map: {other:?}"),
        }
    }

    fn get<'a>(m: &'a Map, path: &[&str]) -> Option<&'a Value> {
        let (first, rest) = path.split_first()?;
        rest.iter()
            .try_fold(m.get(first)?, |v, k| v.as_map()?.get(k))
    }

    #[test]
    fn deep_merge_hashes_recursively_and_replaces_arrays() {
        let base = map("a: {x: 1, y: [1, 2], z: {p: 1}}\nb: keep\n");
        let over = map("a: {y: [3], z: {q: 2}, w: new}\nc: added\n");
        let merged = deep_merge(base, over);
        assert_eq!(get(&merged, &["a", "x"]), Some(&Value::Int(1)));
        assert_eq!(
            get(&merged, &["a", "y"]),
            Some(&Value::Seq(vec![Value::Int(3)]))
        );
        assert_eq!(get(&merged, &["a", "z", "p"]), Some(&Value::Int(1)));
        assert_eq!(get(&merged, &["a", "z", "q"]), Some(&Value::Int(2)));
        assert_eq!(get(&merged, &["a", "w"]), Some(&Value::Str("new".into())));
        let keys: Vec<_> = merged.keys().cloned().collect();
        assert_eq!(keys, ["a", "b", "c"]);
    }

    #[test]
    fn deep_merge_scalar_replaces_hash_and_back() {
        let merged = deep_merge(map("a: {x: 1}\nb: 1\n"), map("a: 5\nb: {y: 2}\n"));
        assert_eq!(merged.get("a"), Some(&Value::Int(5)));
        assert_eq!(get(&merged, &["b", "y"]), Some(&Value::Int(2)));
    }

    #[test]
    fn extends_multi_level_and_list_order() {
        let mut root = map(".a: {script: a, variables: {A: 1, X: a}}\n\
             .b: {extends: .a, variables: {B: 2, X: b}}\n\
             .c: {variables: {X: c}, tags: [c]}\n\
             job: {extends: [.b, .c], variables: {J: 3}}\n");
        resolve_extends(&mut root, &mut Budget::new(usize::MAX)).unwrap();
        assert_eq!(
            get(&root, &["job", "script"]),
            Some(&Value::Str("a".into()))
        );
        assert_eq!(get(&root, &["job", "variables", "A"]), Some(&Value::Int(1)));
        assert_eq!(get(&root, &["job", "variables", "B"]), Some(&Value::Int(2)));
        assert_eq!(
            get(&root, &["job", "variables", "X"]),
            Some(&Value::Str("c".into()))
        );
        assert_eq!(get(&root, &["job", "variables", "J"]), Some(&Value::Int(3)));
    }

    #[test]
    fn extends_errors() {
        let cases = [
            (
                "job: {extends: .nope, script: x}",
                "job: unknown keys in `extends` (.nope)",
            ),
            (
                "job: {extends: .s, script: x}\n.s: 5",
                "job: invalid base hashes in `extends` (.s)",
            ),
            (
                "a: {extends: b}\nb: {extends: a}",
                "a: circular dependency detected in `extends`",
            ),
            (
                "a: {extends: a}",
                "a: circular dependency detected in `extends`",
            ),
        ];
        for (text, message) in cases {
            let mut root = map(text);
            let err = resolve_extends(&mut root, &mut Budget::new(usize::MAX))
                .err()
                .map(|e| e.message);
            assert_eq!(err.as_deref(), Some(message), "{text}");
        }
    }

    #[test]
    fn extends_depth_limit() {
        let mut text = String::from("l0: {script: x}\n");
        for i in 1..=11 {
            text.push_str(&format!("l{i}: {{extends: l{}}}\n", i - 1));
        }
        let mut ok = map(&text);
        assert!(resolve_extends(&mut ok, &mut Budget::new(usize::MAX)).is_ok());
        text.push_str("l12: {extends: l11}\n");
        let mut too_deep = map(&text);
        let err = resolve_extends(&mut too_deep, &mut Budget::new(usize::MAX))
            .err()
            .map(|e| e.message);
        assert_eq!(err.as_deref(), Some("l1: nesting too deep in `extends`"));
    }
}
