//! Text → `Value`: YAML parsing with anchors, aliases and `<<` merge keys, Psych-compatible scalar
//! typing, size limits, and `include: local` expansion (deep-merged in order, the including file's
//! keys winning).
//!
//! We drive yaml-rust2's event parser ourselves instead of using its `YamlLoader` because it does
//! not apply merge keys, drops the `!reference` tag, and clones aliases without limit (a few
//! lines of nested aliases can expand to gigabytes). Every node and alias is charged its bytes
//! against the file's budget before it is built or copied (see budget.rs), so memory stays
//! bounded whatever the text.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};

use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, ScanError, TScalarStyle};

use crate::budget::{self, Budget, MAX_FILE_BYTES, MAX_LOADED_BYTES, NODE_BYTES};
use crate::error::{CompileError, Result};
use crate::merge::deep_merge;
use crate::repository::{is_glob, Checkout};
use crate::rules::{self, RulesKind};
use crate::value::{Map, Value};

/// GitLab's `Gitlab::Config::Loader::Yaml::MAX_YAML_DEPTH`.
const MAX_DEPTH: usize = 100;
/// Bytes of one file's text (comments included); what it expands to is limited separately.
const MAX_TEXT_BYTES: usize = 4 << 20;
/// GitLab's limit on the number of included files.
pub(crate) const MAX_INCLUDES: usize = 150;

pub(crate) use budget::TOO_BIG;

/// Parses YAML text into a `Value` (the first document, or the second when the first is a
/// `spec:` header). Errors carry Psych's "(<unknown>): … at line L column C" shape.
pub(crate) fn parse_yaml(text: &str) -> Result<Value> {
    parse_sized(text).map(|parsed| parsed.content)
}

/// A file's documents: its `spec:` header (if any), its content, and the bytes charged.
struct Parsed {
    header: Option<Value>,
    content: Value,
    size: usize,
}

/// `parse_yaml`, with the header and the bytes the document was charged (see budget.rs).
fn parse_sized(text: &str) -> Result<Parsed> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(budget::too_big());
    }
    // yaml-rust2 is not supposed to panic, but a CI server must not fall over on a crafted file.
    catch_unwind(AssertUnwindSafe(|| parse_documents(text))).unwrap_or_else(|_| {
        Err(CompileError::new(
            "",
            "(<unknown>): the YAML parser failed on this input",
        ))
    })
}

/// yaml-rust2 says "while parsing a block mapping, did not find expected key"; libyaml (and so
/// Psych and GitLab) says "did not find expected key while parsing a block mapping". We use
/// libyaml's word order so messages read like GitLab's; the position is where the problem was
/// found (Psych reports where the enclosing construct started).
fn scan_error(e: &ScanError) -> CompileError {
    let info = e.info();
    let text = match info
        .strip_prefix("while ")
        .and_then(|rest| rest.split_once(", "))
    {
        Some((context, problem)) => format!("{problem} while {context}"),
        None => info.to_string(),
    };
    syntax_error(&text, e.marker())
}

fn syntax_error(info: &str, mark: &Marker) -> CompileError {
    CompileError::new(
        "",
        format!(
            "(<unknown>): {info} at line {} column {}",
            mark.line(),
            mark.col() + 1
        ),
    )
}

enum Frame {
    Seq {
        items: Vec<Value>,
        anchor: usize,
        reference: bool,
        /// The budget used when the node opened: what it adds is its size.
        start: usize,
    },
    Map {
        entries: Vec<(Value, Value)>,
        key: Option<Value>,
        anchor: usize,
        start: usize,
    },
}

struct Builder {
    stack: Vec<Frame>,
    /// Anchor id → (value, bytes) so aliases can be charged their full size before the copy.
    anchors: HashMap<usize, (Value, usize)>,
    budget: Budget,
    current: Option<Value>,
    docs: Vec<Value>,
}

impl Builder {
    fn new() -> Builder {
        Builder {
            stack: Vec::new(),
            anchors: HashMap::new(),
            budget: Budget::new(MAX_FILE_BYTES),
            current: None,
            docs: Vec::new(),
        }
    }

    fn open(&mut self, frame: Frame) -> Result<()> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(budget::too_big());
        }
        self.budget.charge(NODE_BYTES)?;
        self.stack.push(frame);
        Ok(())
    }

    /// Places a finished node; `size` is what it was charged, kept for aliases of its anchor.
    fn finish(&mut self, value: Value, anchor: usize, size: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, (value.clone(), size));
        }
        match self.stack.last_mut() {
            None => self.current = Some(value),
            Some(Frame::Seq { items, .. }) => items.push(value),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => *key = Some(value),
                Some(k) => entries.push((k, value)),
            },
        }
    }
}

fn parse_documents(text: &str) -> Result<Parsed> {
    let mut parser = Parser::new_from_str(text);
    let mut b = Builder::new();
    loop {
        let (event, mark) = parser.next_token().map_err(|e| scan_error(&e))?;
        match event {
            Event::StreamEnd => break,
            Event::Nothing | Event::StreamStart | Event::DocumentStart => {}
            Event::DocumentEnd => {
                let doc = b.current.take().unwrap_or(Value::Null);
                let header = is_spec_header(&doc);
                b.docs.push(doc);
                // Psych's safe_load reads only the first document; GitLab reads a second one
                // only after a `spec:` header document.
                if !header || b.docs.len() >= 2 {
                    break;
                }
            }
            Event::Scalar(raw, style, anchor, tag) => {
                let size = NODE_BYTES + raw.len();
                b.budget.charge(size)?;
                let value = resolve_scalar(raw, style, tag.as_ref());
                b.finish(value, anchor, size);
            }
            Event::SequenceStart(anchor, tag) => {
                let reference = tag
                    .as_ref()
                    .is_some_and(|t| t.handle == "!" && t.suffix == "reference");
                let start = b.budget.used();
                b.open(Frame::Seq {
                    items: Vec::new(),
                    anchor,
                    reference,
                    start,
                })?;
            }
            Event::MappingStart(anchor, _) => {
                let start = b.budget.used();
                b.open(Frame::Map {
                    entries: Vec::new(),
                    key: None,
                    anchor,
                    start,
                })?
            }
            Event::SequenceEnd => match b.stack.pop() {
                Some(Frame::Seq {
                    items,
                    anchor,
                    reference,
                    start,
                }) => {
                    let value = if reference {
                        Value::Reference(items)
                    } else {
                        Value::Seq(items)
                    };
                    let size = b.budget.used() - start;
                    b.finish(value, anchor, size);
                }
                _ => return Err(syntax_error("unbalanced sequence", &mark)),
            },
            Event::MappingEnd => match b.stack.pop() {
                Some(Frame::Map {
                    entries,
                    anchor,
                    start,
                    ..
                }) => {
                    let map = build_map(entries, &mark)?;
                    let size = b.budget.used() - start;
                    b.finish(Value::Map(map), anchor, size);
                }
                _ => return Err(syntax_error("unbalanced mapping", &mark)),
            },
            Event::Alias(id) => {
                let size = b
                    .anchors
                    .get(&id)
                    .map(|(_, size)| *size)
                    .ok_or_else(|| syntax_error("found undefined alias", &mark))?;
                // Charged before the copy is made: the copy is what could be gigabytes.
                b.budget.charge(size)?;
                let value = b
                    .anchors
                    .get(&id)
                    .map(|(v, _)| v.clone())
                    .unwrap_or(Value::Null);
                b.finish(value, 0, size);
            }
        }
    }
    let used = b.budget.used();
    let mut docs = b.docs.into_iter();
    let first = docs.next().unwrap_or(Value::Null);
    let (header, content) = match docs.next() {
        Some(second) if is_spec_header(&first) => (Some(first), second),
        _ => (None, first),
    };
    Ok(Parsed {
        header,
        content,
        size: used,
    })
}

fn is_spec_header(doc: &Value) -> bool {
    doc.as_map()
        .is_some_and(|m| m.len() == 1 && m.contains_key("spec"))
}

/// Mapping keys become strings the way GitLab sees them after Psych and `deep_symbolize_keys`.
fn key_string(key: Value, mark: &Marker) -> Result<String> {
    match key {
        Value::Str(s) => Ok(s),
        Value::Null => Ok(String::new()),
        Value::Seq(_) | Value::Map(_) | Value::Reference(_) => Err(syntax_error(
            "mapping keys must be scalars while parsing a block mapping",
            mark,
        )),
        other => Ok(other.scalar_to_string().unwrap_or_default()),
    }
}

/// Builds a mapping and applies YAML merge keys: `<<: *a` or `<<: [*a, *b]`. Keys written in the
/// mapping itself win over merged ones wherever they appear; among merged sources the earlier
/// one wins. Duplicate explicit keys: the last value wins, like Psych.
fn build_map(entries: Vec<(Value, Value)>, mark: &Marker) -> Result<Map> {
    let mut pairs = Vec::with_capacity(entries.len());
    for (k, v) in entries {
        pairs.push((key_string(k, mark)?, v));
    }
    let is_merge = |k: &str, v: &Value| {
        k == "<<"
            && match v {
                Value::Map(_) => true,
                Value::Seq(items) => items.iter().all(|i| matches!(i, Value::Map(_))),
                _ => false,
            }
    };
    let explicit: HashSet<String> = pairs
        .iter()
        .filter(|(k, v)| !is_merge(k, v))
        .map(|(k, _)| k.clone())
        .collect();
    let mut merged: HashSet<String> = HashSet::new();
    let mut map = Map::new();
    for (k, v) in pairs {
        if !is_merge(&k, &v) {
            map.insert(k, v);
            continue;
        }
        let sources = match v {
            Value::Map(m) => vec![m],
            Value::Seq(items) => items
                .into_iter()
                .filter_map(|i| match i {
                    Value::Map(m) => Some(m),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        for source in sources {
            for (mk, mv) in source {
                if !explicit.contains(&mk) && merged.insert(mk.clone()) {
                    map.insert(mk, mv);
                }
            }
        }
    }
    Ok(map)
}

/// Types a scalar like Psych (YAML 1.1), which is what GitLab uses: quoted scalars are strings;
/// plain ones may be null, booleans (`yes/no/on/off` too), integers (`0x`, `0o`, `0b`, leading-0
/// octal, `_` separators) or floats (which need a dot, so `1e3` stays a string).
fn resolve_scalar(raw: String, style: TScalarStyle, tag: Option<&Tag>) -> Value {
    if let Some(tag) = tag {
        if tag.handle == "tag:yaml.org,2002:" || tag.handle == "!!" {
            return match tag.suffix.as_str() {
                "str" => Value::Str(raw),
                "null" => Value::Null,
                "bool" | "int" | "float" => match resolve_plain(&raw) {
                    Value::Str(_) => Value::Str(raw),
                    typed => typed,
                },
                _ => Value::Str(raw),
            };
        }
    }
    if style != TScalarStyle::Plain {
        return Value::Str(raw);
    }
    resolve_plain(&raw)
}

fn resolve_plain(raw: &str) -> Value {
    match raw {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        _ => {}
    }
    match raw.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" => return Value::Bool(true),
        "false" | "no" | "off" => return Value::Bool(false),
        ".inf" | "+.inf" => return Value::Float(f64::INFINITY),
        "-.inf" => return Value::Float(f64::NEG_INFINITY),
        ".nan" => return Value::Float(f64::NAN),
        _ => {}
    }
    if let Some(i) = parse_int(raw) {
        return Value::Int(i);
    }
    if let Some(f) = parse_float(raw) {
        return Value::Float(f);
    }
    Value::Str(raw.to_string())
}

fn parse_int(raw: &str) -> Option<i64> {
    let (negative, body) = match raw.as_bytes().first()? {
        b'-' => (true, raw.get(1..)?),
        b'+' => (false, raw.get(1..)?),
        _ => (false, raw),
    };
    let (radix, digits) = if let Some(d) = body.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = body.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = body.strip_prefix("0b") {
        (2, d)
    } else if body.len() > 1 && body.starts_with('0') {
        (8, body.get(1..)?)
    } else {
        (10, body)
    };
    if digits.is_empty() || digits.starts_with('_') || digits.ends_with('_') {
        return None;
    }
    let cleaned: String = digits.chars().filter(|c| *c != '_').collect();
    if !cleaned.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let value = i64::from_str_radix(&cleaned, radix).ok()?;
    Some(if negative { -value } else { value })
}

fn parse_float(raw: &str) -> Option<f64> {
    let body = raw.strip_prefix(['-', '+']).unwrap_or(raw);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(pos) => (body.get(..pos)?, Some(body.get(pos + 1..)?)),
        None => (body, None),
    };
    let (int_part, frac_part) = mantissa.split_once('.')?;
    let digits_ok = |s: &str| s.chars().all(|c| c.is_ascii_digit() || c == '_');
    if !digits_ok(int_part)
        || !frac_part.chars().all(|c| c.is_ascii_digit())
        || (int_part.is_empty() && frac_part.is_empty())
        || int_part.starts_with('_')
    {
        return None;
    }
    if let Some(exp) = exponent {
        let digits = exp.strip_prefix(['-', '+'])?;
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
    }
    raw.replace('_', "").parse().ok()
}

/// How includes are resolved.
pub(crate) struct IncludeEnv<'a> {
    pub(crate) checkout: &'a Checkout<'a>,
    /// Variables for `$VAR` in include paths and for include `rules:`; None in lint mode, where
    /// every include is taken and paths are used as written.
    pub(crate) variables: Option<&'a BTreeMap<String, String>>,
}

struct IncludeState {
    seen: HashSet<String>,
    count: usize,
    /// All files loaded so far, against `MAX_LOADED_BYTES`.
    loaded: Budget,
    /// Includes left out because Kiln cannot fetch them.
    warnings: Vec<String>,
}

/// Parses the main file and expands its includes; the result has no `include` key. Includes
/// Kiln cannot fetch (remote files, templates, other projects, catalog components, artifacts)
/// are left out, each with a warning: the file still compiles when it does not need them.
pub(crate) fn load_config(text: &str, env: &IncludeEnv<'_>) -> Result<(Map, Vec<String>)> {
    let mut state = IncludeState {
        seen: HashSet::new(),
        count: 0,
        loaded: Budget::new(MAX_LOADED_BYTES),
        warnings: Vec::new(),
    };
    let parsed = parse_sized(text)?;
    state.loaded.charge(parsed.size)?;
    let root =
        crate::inputs::interpolate(parsed.header.as_ref(), None, parsed.content, env.variables)
            .map_err(|message| CompileError::new("header", message))?;
    let root = match root {
        Value::Map(map) => map,
        _ => return Err(CompileError::new("root", "Invalid configuration format")),
    };
    let config = expand_includes(root, env, &mut state)?;
    Ok((config, state.warnings))
}

fn expand_includes(mut config: Map, env: &IncludeEnv<'_>, state: &mut IncludeState) -> Result<Map> {
    let Some(include) = config.remove("include") else {
        return Ok(config);
    };
    let mut content = Map::new();
    for entry in include_entries(&include, &mut state.warnings)? {
        if !include_selected(&entry, env)? {
            continue;
        }
        let location = match env.variables {
            Some(vars) => expand_variables(&entry.location, vars),
            None => entry.location.clone(),
        };
        let path = location
            .trim_start_matches("./")
            .trim_start_matches('/')
            .to_string();
        // A glob includes every matching file in path order, and nothing when none matches.
        let paths: Vec<String> = if is_glob(&path) {
            env.checkout
                .matching(&path)
                .into_iter()
                .map(str::to_owned)
                .collect()
        } else {
            vec![path]
        };
        for path in paths {
            // A glob's messages name the file it found.
            let shown = if is_glob(&location) {
                path.clone()
            } else {
                location.clone()
            };
            if let Some(included) = include_file(&shown, (path, entry.inputs.as_ref()), env, state)?
            {
                content = deep_merge(content, included);
            }
        }
    }
    Ok(deep_merge(content, config))
}

/// One local file of an `include:` with its `inputs:`, interpolated and itself expanded;
/// None when it was included already (with the same inputs). `location` is how messages
/// name it.
fn include_file(
    location: &str,
    (path, inputs): (String, Option<&Map>),
    env: &IncludeEnv<'_>,
    state: &mut IncludeState,
) -> Result<Option<Map>> {
    // Every include counts toward the limit, repeated ones too (as GitLab counts them
    // since `ci_includes_count_duplicates`), but a file is merged once, which also breaks
    // include cycles.
    state.count += 1;
    if state.count > MAX_INCLUDES {
        return Err(CompileError::new(
            "include",
            format!("Maximum of {MAX_INCLUDES} nested includes are allowed!"),
        ));
    }
    let given = inputs.map(|i| Value::Map(i.clone()).to_json().to_string());
    if !state
        .seen
        .insert(format!("{path}\0{}", given.unwrap_or_default()))
    {
        return Ok(None);
    }
    let text = env.checkout.read_file(&path).ok_or_else(|| {
        CompileError::new(
            "include",
            format!("Local file `{location}` does not exist!"),
        )
    })?;
    if text.trim().is_empty() {
        return Err(CompileError::new(
            "include",
            format!("Local file `{location}` is empty!"),
        ));
    }
    let invalid = || {
        CompileError::new(
            "include",
            format!("Included file `{location}` does not have valid YAML syntax!"),
        )
    };
    let parsed = match parse_sized(&text) {
        Ok(parsed) => parsed,
        Err(e) if e.message == TOO_BIG => return Err(e),
        Err(_) => return Err(invalid()),
    };
    state.loaded.charge(parsed.size)?;
    let content = crate::inputs::interpolate(
        parsed.header.as_ref(),
        inputs,
        parsed.content,
        env.variables,
    )
    .map_err(|message| CompileError::new("include", format!("`{location}`: {message}")))?;
    let Value::Map(included) = content else {
        return Err(invalid());
    };
    expand_includes(included, env, state).map(Some)
}

struct IncludeEntry {
    location: String,
    rules: Option<Value>,
    /// `inputs:` for the file's `spec: inputs:`.
    inputs: Option<Map>,
}

fn include_entries(include: &Value, warnings: &mut Vec<String>) -> Result<Vec<IncludeEntry>> {
    let items: Vec<&Value> = match include {
        Value::Seq(items) => items.iter().collect(),
        other => vec![other],
    };
    let mut entries = Vec::with_capacity(items.len());
    for item in items {
        match include_entry(item)? {
            Ok(entry) => entries.push(entry),
            Err(warning) => warnings.push(warning),
        }
    }
    Ok(entries)
}

/// The include to load, or the warning saying why it is left out.
fn include_entry(value: &Value) -> Result<std::result::Result<IncludeEntry, String>> {
    let err = |m: String| Err(CompileError::new("include", m));
    let left_out = |what: &str, name: &str| {
        Ok(Err(format!(
            "include: {what} `{name}` was left out: Kiln does not fetch {what}s"
        )))
    };
    match value {
        Value::Str(location) => {
            if is_remote(location) {
                return left_out("remote file", location);
            }
            Ok(Ok(IncludeEntry {
                location: location.clone(),
                rules: None,
                inputs: None,
            }))
        }
        Value::Map(map) => {
            let kinds = [
                "local",
                "remote",
                "template",
                "project",
                "component",
                "artifact",
            ];
            let present: Vec<&str> = kinds.into_iter().filter(|k| map.contains_key(k)).collect();
            let named = |key: &str| {
                map.get(key)
                    .and_then(Value::scalar_to_string)
                    .unwrap_or_default()
            };
            match present.as_slice() {
                ["local"] => match map.get("local") {
                    Some(Value::Str(location)) if is_remote(location) => {
                        left_out("remote file", location)
                    }
                    Some(Value::Str(location)) => Ok(Ok(IncludeEntry {
                        location: location.clone(),
                        rules: map.get("rules").cloned(),
                        inputs: match map.get("inputs") {
                            None | Some(Value::Null) => None,
                            Some(Value::Map(inputs)) => Some(inputs.clone()),
                            Some(_) => {
                                return err("include config inputs should be a hash".to_string())
                            }
                        },
                    })),
                    _ => err("include config local should be a string".to_string()),
                },
                ["remote"] => left_out("remote file", &named("remote")),
                ["template"] => left_out("GitLab template", &named("template")),
                ["project"] => left_out("other project's file", &named("project")),
                ["component"] => left_out("CI/CD catalog component", &named("component")),
                ["artifact"] => left_out("job artifact", &named("artifact")),
                _ => err(format!(
                    "Include `{}` needs to match exactly one accessor!",
                    value.to_json()
                )),
            }
        }
        _ => err("include config should be a hash, a string or an array".to_string()),
    }
}

fn is_remote(location: &str) -> bool {
    let lower = location.to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// Include `rules:` (if/exists/changes, `when: never|always`); lint mode takes every include.
fn include_selected(entry: &IncludeEntry, env: &IncludeEnv<'_>) -> Result<bool> {
    let Some(rules_value) = &entry.rules else {
        return Ok(true);
    };
    let parsed = rules::parse_rules(rules_value, "include:rules", RulesKind::Include)?;
    let Some(vars) = env.variables else {
        return Ok(true);
    };
    Ok(rules::first_match(&parsed, vars, env.checkout).is_some_and(|r| !r.is_never()))
}

/// Replaces `$NAME` / `${NAME}` with defined variables; undefined ones are left as written.
pub(crate) fn expand_variables(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(rest.get(..pos).unwrap_or_default());
        let after = rest.get(pos + 1..).unwrap_or_default();
        let (name, consumed) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (braced.get(..end).unwrap_or_default(), end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (after.get(..end).unwrap_or_default(), end)
        };
        match vars.get(name).filter(|_| !name.is_empty()) {
            Some(value) => out.push_str(value),
            None => {
                out.push('$');
                out.push_str(after.get(..consumed).unwrap_or_default());
            }
        }
        rest = after.get(consumed..).unwrap_or_default();
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(text: &str) -> Map {
        match parse_yaml(text) {
            Ok(Value::Map(m)) => m,
            other => panic!("expected a map, got {other:?}"),
        }
    }

    #[test]
    fn merge_key_single() {
        let m = map("base: &b {a: 1, b: 2}\nx:\n  <<: *b\n  b: 3\n");
        let x = m
            .get("x")
            .and_then(Value::as_map)
            .cloned()
            .unwrap_or_default();
        assert_eq!(x.get("a"), Some(&Value::Int(1)));
        assert_eq!(x.get("b"), Some(&Value::Int(3)));
    }

    #[test]
    fn merge_key_explicit_before_merge_still_wins() {
        let m = map("base: &b {a: 1}\nx:\n  a: 9\n  <<: *b\n");
        let x = m
            .get("x")
            .and_then(Value::as_map)
            .cloned()
            .unwrap_or_default();
        assert_eq!(x.get("a"), Some(&Value::Int(9)));
        assert_eq!(x.len(), 1);
    }

    #[test]
    fn merge_key_list_earlier_wins() {
        let m =
            map("a: &a {k: from_a, only_a: 1}\nb: &b {k: from_b, only_b: 2}\nx:\n  <<: [*a, *b]\n");
        let x = m
            .get("x")
            .and_then(Value::as_map)
            .cloned()
            .unwrap_or_default();
        assert_eq!(x.get("k"), Some(&Value::Str("from_a".into())));
        assert_eq!(x.get("only_a"), Some(&Value::Int(1)));
        assert_eq!(x.get("only_b"), Some(&Value::Int(2)));
    }

    #[test]
    fn merge_key_nested_anchor_chain() {
        let m = map("a: &a {x: 1}\nb: &b\n  <<: *a\n  y: 2\nc:\n  <<: *b\n  z: 3\n");
        let c = m
            .get("c")
            .and_then(Value::as_map)
            .cloned()
            .unwrap_or_default();
        let keys: Vec<_> = c.keys().cloned().collect();
        assert_eq!(keys, ["x", "y", "z"]);
    }

    #[test]
    fn merge_key_non_mapping_is_plain_key() {
        let m = map("x:\n  <<: 5\n");
        let x = m
            .get("x")
            .and_then(Value::as_map)
            .cloned()
            .unwrap_or_default();
        assert_eq!(x.get("<<"), Some(&Value::Int(5)));
    }

    #[test]
    fn scalars_follow_psych() {
        let m = map("a: yes\nb: off\nc: 010\nd: 0x1F\ne: 1.10\nf: 1e3\ng: '5'\nh: ~\ni: 1_000\nj: !!str 12\nk: -7\n");
        assert_eq!(m.get("a"), Some(&Value::Bool(true)));
        assert_eq!(m.get("b"), Some(&Value::Bool(false)));
        assert_eq!(m.get("c"), Some(&Value::Int(8)));
        assert_eq!(m.get("d"), Some(&Value::Int(31)));
        assert_eq!(m.get("e"), Some(&Value::Float(1.1)));
        assert_eq!(m.get("f"), Some(&Value::Str("1e3".into())));
        assert_eq!(m.get("g"), Some(&Value::Str("5".into())));
        assert_eq!(m.get("h"), Some(&Value::Null));
        assert_eq!(m.get("i"), Some(&Value::Int(1000)));
        assert_eq!(m.get("j"), Some(&Value::Str("12".into())));
        assert_eq!(m.get("k"), Some(&Value::Int(-7)));
    }

    #[test]
    fn reference_tag_is_kept() {
        let m = map("x: !reference [.a, script]\n");
        assert!(matches!(m.get("x"), Some(Value::Reference(items)) if items.len() == 2));
    }

    #[test]
    fn alias_bomb_is_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        let err = parse_yaml(&text).err();
        assert_eq!(err.map(|e| e.message), Some(TOO_BIG.to_string()));
    }

    #[test]
    fn depth_limit() {
        let text = "[".repeat(150) + &"]".repeat(150);
        assert_eq!(
            parse_yaml(&text).err().map(|e| e.message),
            Some(TOO_BIG.to_string())
        );
    }

    #[test]
    fn syntax_error_has_position() {
        let err = parse_yaml("a: 1\n b: 2\nc")
            .err()
            .map(|e| (e.path, e.message));
        let (path, message) = err.unwrap_or_default();
        assert_eq!(path, "");
        assert!(message.starts_with("(<unknown>): "), "{message}");
        assert!(message.contains(" at line "), "{message}");
    }

    #[test]
    fn spec_header_document_is_skipped() {
        let m = map("spec:\n  inputs: {}\n---\njob:\n  script: x\n");
        assert!(m.contains_key("job"));
    }

    #[test]
    fn variable_expansion_in_paths() {
        let vars: BTreeMap<String, String> = [("REF".to_string(), "main".to_string())]
            .into_iter()
            .collect();
        assert_eq!(expand_variables("ci/$REF.yml", &vars), "ci/main.yml");
        assert_eq!(expand_variables("ci/${REF}/x", &vars), "ci/main/x");
        assert_eq!(expand_variables("ci/$NOPE/x", &vars), "ci/$NOPE/x");
        assert_eq!(expand_variables("$", &vars), "$");
    }
}
