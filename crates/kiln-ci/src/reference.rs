//! `!reference [key, subkey, …]` resolution, run after `extends:` like GitLab's
//! `Config::Yaml::Tags::Resolver`: each tag is replaced by the value found at that path of the
//! merged configuration (which may itself contain references, up to 10 levels).

use crate::budget::{size_of, Budget};
use crate::error::{CompileError, Result};
use crate::value::{Map, Value};

const MAX_REFERENCE_DEPTH: usize = 10;

/// Replaces every `!reference` in the configuration.
/// Each value a tag copies is charged to `budget` before it is copied.
pub(crate) fn resolve_references(root: &mut Map, budget: &mut Budget) -> Result<()> {
    if !root.iter().any(|(_, v)| contains_reference(v)) {
        return Ok(());
    }
    let snapshot = root.clone();
    let keys: Vec<String> = root.keys().cloned().collect();
    for key in keys {
        if let Some(slot) = root.get_mut(&key) {
            if contains_reference(slot) {
                *slot = resolve(slot, &snapshot, &mut Vec::new(), budget)?;
            }
        }
    }
    Ok(())
}

fn contains_reference(value: &Value) -> bool {
    match value {
        Value::Reference(_) => true,
        Value::Seq(items) => items.iter().any(contains_reference),
        Value::Map(map) => map.iter().any(|(_, v)| contains_reference(v)),
        _ => false,
    }
}

fn inspect(items: &[Value]) -> String {
    let parts: Vec<String> = items
        .iter()
        .map(|i| match i {
            Value::Str(s) => format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")),
            other => other.to_json().to_string(),
        })
        .collect();
    format!("!reference [{}]", parts.join(", "))
}

fn resolve(
    value: &Value,
    root: &Map,
    chain: &mut Vec<Vec<String>>,
    budget: &mut Budget,
) -> Result<Value> {
    match value {
        Value::Seq(items) => Ok(Value::Seq(
            items
                .iter()
                .map(|i| resolve(i, root, chain, budget))
                .collect::<Result<_>>()?,
        )),
        Value::Map(map) => {
            let mut out = Map::new();
            for (k, v) in map.iter() {
                out.insert(k.clone(), resolve(v, root, chain, budget)?);
            }
            Ok(Value::Map(out))
        }
        Value::Reference(items) => {
            let err = |what: &str| CompileError::new("root", format!("{} {what}", inspect(items)));
            let path: Vec<String> = items
                .iter()
                .map(|i| i.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .filter(|p: &Vec<String>| !p.is_empty())
                .ok_or_else(|| err("is not valid"))?;
            if chain.contains(&path) {
                return Err(err("is part of a circular chain"));
            }
            if chain.len() >= MAX_REFERENCE_DEPTH {
                return Err(err("is nested too deep"));
            }
            let (first, rest) = path.split_first().ok_or_else(|| err("is not valid"))?;
            let target = rest
                .iter()
                .try_fold(root.get(first), |cur, key| {
                    Some(cur.and_then(Value::as_map).and_then(|m| m.get(key)))
                })
                .flatten()
                .ok_or_else(|| err("could not be found"))?;
            budget.charge(size_of(target))?;
            chain.push(path.clone());
            let resolved = resolve(target, root, chain, budget);
            chain.pop();
            resolved
        }
        other => Ok(other.clone()),
    }
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

    #[test]
    fn resolves_nested_references() {
        let mut root = map(".setup: {script: [echo a, echo b]}\n\
             .more: {script: [!reference [.setup, script], echo c]}\n\
             job: {script: [!reference [.more, script], echo d]}\n");
        resolve_references(&mut root, &mut Budget::new(usize::MAX)).unwrap();
        let script = root
            .get("job")
            .and_then(Value::as_map)
            .and_then(|m| m.get("script"));
        let expected = map("s: [[[echo a, echo b], echo c], echo d]");
        assert_eq!(script, expected.get("s"));
    }

    #[test]
    fn reference_errors() {
        let mut missing = map("job: {script: !reference [.x, script]}");
        assert_eq!(
            resolve_references(&mut missing, &mut Budget::new(usize::MAX))
                .err()
                .map(|e| e.message)
                .as_deref(),
            Some("!reference [\".x\", \"script\"] could not be found")
        );
        let mut circular = map(".a: {s: !reference [.b, s]}\n.b: {s: !reference [.a, s]}");
        assert!(
            resolve_references(&mut circular, &mut Budget::new(usize::MAX))
                .err()
                .is_some_and(|e| e.message.ends_with("is part of a circular chain"))
        );
    }
}
