//! The in-memory YAML tree the compiler works on (`Value`, an insertion-ordered `Map`) and the
//! Ruby-compatible scalar conversions GitLab applies (how a YAML number becomes a variable string).
//!
//! We do not use `yaml_rust2::Yaml` directly because we need string keys, ordered merges, a
//! `!reference` node and Psych (YAML 1.1) scalar typing, none of which it offers.

use std::collections::HashMap;

/// A YAML node after loading (aliases expanded, `<<` merge keys applied).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Value>),
    Map(Map),
    /// A `!reference [a, b]` sequence, resolved after `extends:` (see reference.rs).
    Reference(Vec<Value>),
}

/// A mapping with string keys that keeps insertion order, like a Ruby Hash. Lookups go through
/// a hash index so that files with thousands of jobs stay linear to process.
#[derive(Debug, Clone, Default)]
pub(crate) struct Map {
    entries: Vec<(String, Value)>,
    index: HashMap<String, usize>,
}

impl PartialEq for Map {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl Map {
    pub(crate) fn new() -> Self {
        Map::default()
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        let pos = *self.index.get(key)?;
        self.entries.get(pos).map(|(_, v)| v)
    }

    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        let pos = *self.index.get(key)?;
        self.entries.get_mut(pos).map(|(_, v)| v)
    }

    pub(crate) fn contains_key(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    /// Inserts or replaces; a replaced key keeps its original position (Ruby Hash semantics).
    pub(crate) fn insert(&mut self, key: String, value: Value) {
        match self.get_mut(&key) {
            Some(slot) => *slot = value,
            None => {
                self.index.insert(key.clone(), self.entries.len());
                self.entries.push((key, value));
            }
        }
    }

    pub(crate) fn remove(&mut self, key: &str) -> Option<Value> {
        let pos = self.index.remove(key)?;
        if pos >= self.entries.len() {
            return None;
        }
        let (_, value) = self.entries.remove(pos);
        for slot in self.index.values_mut() {
            if *slot > pos {
                *slot -= 1;
            }
        }
        Some(value)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &String> {
        self.entries.iter().map(|(k, _)| k)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The keys not in `allowed`, in file order (for "contains unknown keys: a, b").
    pub(crate) fn unknown_keys(&self, allowed: &[&str]) -> Vec<String> {
        self.keys()
            .filter(|k| !allowed.contains(&k.as_str()))
            .cloned()
            .collect()
    }
}

impl IntoIterator for Map {
    type Item = (String, Value);
    type IntoIter = std::vec::IntoIter<(String, Value)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl FromIterator<(String, Value)> for Map {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        let mut map = Map::new();
        for (k, v) in iter {
            map.insert(k, v);
        }
        map
    }
}

impl Value {
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn as_map(&self) -> Option<&Map> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub(crate) fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Ruby's `blank?` as GitLab's `presence` validators see it: nil, "", whitespace, [] or {}.
    pub(crate) fn is_blank(&self) -> bool {
        match self {
            Value::Null => true,
            Value::Bool(b) => !b,
            Value::Str(s) => s.trim().is_empty(),
            Value::Seq(items) | Value::Reference(items) => items.is_empty(),
            Value::Map(m) => m.is_empty(),
            Value::Int(_) | Value::Float(_) => false,
        }
    }

    /// A scalar rendered the way Ruby's `to_s` would (variables are sent to runners as strings).
    pub(crate) fn scalar_to_string(&self) -> Option<String> {
        match self {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(ruby_float_to_s(*f)),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// A compact JSON-like rendering for messages that quote a config value.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) | Value::Reference(items) => {
                J::Array(items.iter().map(Value::to_json).collect())
            }
            Value::Map(m) => J::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
        }
    }
}

/// Ruby's `Float#to_s`: "1.0" for whole numbers, shortest round-trip digits otherwise, and
/// exponent form ("1.0e+16") outside 1e-4..1e16. Psych turns `VERSION: 1.10` into 1.1, so the
/// variable a GitLab runner receives is "1.1"; we reproduce that.
pub(crate) fn ruby_float_to_s(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-4..1e16).contains(&abs) {
        let text = format!("{f:e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((text.as_str(), "0"));
        let mantissa = if mantissa.contains('.') {
            mantissa.to_string()
        } else {
            format!("{mantissa}.0")
        };
        let (sign, digits) = match exponent.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exponent),
        };
        return format!("{mantissa}e{sign}{digits:0>2}");
    }
    if f.fract() == 0.0 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ruby_floats() {
        assert_eq!(ruby_float_to_s(1.1), "1.1");
        assert_eq!(ruby_float_to_s(1.0), "1.0");
        assert_eq!(ruby_float_to_s(-2.5), "-2.5");
        assert_eq!(ruby_float_to_s(1e16), "1.0e+16");
        assert_eq!(ruby_float_to_s(1.5e-5), "1.5e-05");
        assert_eq!(ruby_float_to_s(0.0), "0.0");
    }

    #[test]
    fn map_keeps_position_on_replace() {
        let mut m = Map::new();
        m.insert("a".into(), Value::Int(1));
        m.insert("b".into(), Value::Int(2));
        m.insert("a".into(), Value::Int(3));
        let keys: Vec<_> = m.keys().cloned().collect();
        assert_eq!(keys, ["a", "b"]);
        assert_eq!(m.get("a"), Some(&Value::Int(3)));
        m.insert("c".into(), Value::Int(4));
        assert_eq!(m.remove("a"), Some(Value::Int(3)));
        assert_eq!(m.get("b"), Some(&Value::Int(2)));
        assert_eq!(m.get("c"), Some(&Value::Int(4)));
        assert_eq!(m.remove("a"), None);
    }
}
