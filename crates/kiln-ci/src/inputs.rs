//! `spec: inputs:` and `$[[ inputs.NAME ]]` (GitLab's `Ci::Config::Interpolation`): a file
//! whose first YAML document is a `spec:` header declares its inputs (type, default, options,
//! regex); whoever includes it gives values (`include: inputs:`); every `$[[ … ]]` block of the
//! file's content (keys and values) is replaced by the input's value — typed when the block is
//! the whole node, as text inside a longer string — through up to three functions
//! (`expand_vars`, `truncate(offset, length)`, `posix_escape`). A file without a header is not
//! interpolated. What interpolation makes is charged against the file's byte budget.

use std::collections::BTreeMap;

use crate::budget::{size_of, Budget, MAX_FILE_BYTES};
use crate::value::{Map, Value};

const TYPES: &[&str] = &["array", "boolean", "number", "string"];
const SPEC_KEYS: &[&str] = &["default", "description", "options", "regex", "type"];
/// GitLab's `Block::MAX_FUNCTIONS`, `Template::MAX_BLOCKS` and `Access::MAX_ACCESS_BYTESIZE`.
const MAX_FUNCTIONS: usize = 3;
const MAX_BLOCKS: usize = 10_000;
const MAX_ACCESS_BYTES: usize = 1024;
/// GitLab surfaces the first three errors, joined.
const ERRORS_SHOWN: usize = 3;

/// The content of a file after interpolating its inputs from `args`; `Err` is the message.
/// `variables` are what `expand_vars` sees (none in a lint).
pub(crate) fn interpolate(
    header: Option<&Value>,
    args: Option<&Map>,
    content: Value,
    variables: Option<&BTreeMap<String, String>>,
) -> Result<Value, String> {
    let given = args.filter(|a| !a.is_empty());
    let Some(header) = header else {
        return match given {
            Some(_) => Err("unknown input arguments".to_owned()),
            None => Ok(content),
        };
    };
    let inputs = resolve(header, given).map_err(|errors| shown(&errors))?;
    let mut run = Interpolation {
        inputs: &inputs,
        variables,
        blocks: 0,
        budget: Budget::new(MAX_FILE_BYTES),
        errors: Vec::new(),
    };
    let result = run.value(content);
    if !run.errors.is_empty() {
        return Err(shown(&run.errors));
    }
    Ok(result)
}

fn shown(errors: &[String]) -> String {
    errors
        .iter()
        .take(ERRORS_SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ")
}

/// Each declared input's value (given or default), or every error found.
fn resolve(header: &Value, args: Option<&Map>) -> Result<BTreeMap<String, Value>, Vec<String>> {
    let empty = Map::new();
    let specs = match header.as_map().and_then(|h| h.get("spec")) {
        Some(Value::Map(spec)) => match spec.get("inputs") {
            None | Some(Value::Null) => &empty,
            Some(Value::Map(inputs)) => inputs,
            Some(_) => return Err(vec!["header:spec:inputs config must be a hash".into()]),
        },
        _ => return Err(vec!["header:spec config must be a hash".into()]),
    };
    let mut errors = Vec::new();
    if let Some(args) = args {
        let unknown: Vec<&str> = args
            .keys()
            .filter(|k| !specs.contains_key(k))
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            errors.push(format!("unknown input arguments: {}", unknown.join(", ")));
        }
    }
    let mut values = BTreeMap::new();
    for (name, spec) in specs.iter() {
        match input_value(name, spec, args.and_then(|a| a.get(name))) {
            Ok(value) => {
                values.insert(name.clone(), value);
            }
            Err(error) => errors.push(error),
        }
    }
    if errors.is_empty() {
        Ok(values)
    } else {
        Err(errors)
    }
}

/// One input's value under its spec (`BaseInput#validate!` and its types).
fn input_value(name: &str, spec: &Value, given: Option<&Value>) -> Result<Value, String> {
    let error = |text: &str| format!("`{name}` input: {text}");
    let empty = Map::new();
    let spec = match spec {
        Value::Null => &empty,
        Value::Map(map) => map,
        _ => return Err(format!("header:spec:inputs:{name} config must be a hash")),
    };
    let unknown = spec.unknown_keys(SPEC_KEYS);
    if !unknown.is_empty() {
        return Err(format!(
            "header:spec:inputs:{name} config contains unknown keys: {}",
            unknown.join(", ")
        ));
    }
    let kind = match spec.get("type") {
        None | Some(Value::Null) => "string",
        Some(Value::Str(t)) if TYPES.contains(&t.as_str()) => t.as_str(),
        Some(_) => {
            return Err(format!(
                "unknown input specification for `{name}` (valid types: {})",
                TYPES.join(", ")
            ))
        }
    };
    let default = spec.get("default");
    let (value, from) = match (given.filter(|v| !v.is_null()), default) {
        (Some(value), _) => (value.clone(), "provided"),
        (None, Some(default)) => (default.clone(), "default"),
        (None, None) => return Err(error("required value has not been provided")),
    };
    let typed = match kind {
        "string" => matches!(value, Value::Str(_)),
        "number" => matches!(value, Value::Int(_) | Value::Float(_)),
        "boolean" => matches!(value, Value::Bool(_)),
        _ => matches!(value, Value::Seq(_)),
    };
    if !typed {
        return Err(error(&format!("{from} value is not a {kind}")));
    }
    if let Some(Value::Seq(options)) = spec.get("options") {
        if !options.contains(&value) {
            let shown = value.scalar_to_string().unwrap_or_default();
            return Err(error(&format!(
                "`{shown}` cannot be used because it is not in the list of allowed options"
            )));
        }
    }
    if let (Some(pattern), Value::Str(text)) = (spec.get("regex"), &value) {
        let pattern = pattern.scalar_to_string().unwrap_or_default();
        let pattern = pattern
            .strip_prefix('/')
            .and_then(|p| p.strip_suffix('/'))
            .unwrap_or(&pattern);
        let regex = regex::RegexBuilder::new(pattern)
            .size_limit(1 << 20)
            .build()
            .map_err(|_| error("invalid regular expression"))?;
        if !regex.is_match(text) {
            return Err(error(&format!(
                "{from} value does not match required RegEx pattern"
            )));
        }
    }
    Ok(value)
}

struct Interpolation<'a> {
    inputs: &'a BTreeMap<String, Value>,
    variables: Option<&'a BTreeMap<String, String>>,
    blocks: usize,
    budget: Budget,
    errors: Vec<String>,
}

impl Interpolation<'_> {
    fn value(&mut self, value: Value) -> Value {
        if !self.errors.is_empty() {
            return value;
        }
        match value {
            Value::Str(text) if text.contains("$[[") => self.text(text),
            Value::Seq(items) => Value::Seq(items.into_iter().map(|v| self.value(v)).collect()),
            Value::Reference(items) => {
                Value::Reference(items.into_iter().map(|v| self.value(v)).collect())
            }
            Value::Map(map) => {
                let mut out = Map::new();
                for (key, value) in map {
                    let key = match self.text(key) {
                        Value::Str(key) => key,
                        other => other.scalar_to_string().unwrap_or_default(),
                    };
                    let value = self.value(value);
                    out.insert(key, value);
                }
                Value::Map(out)
            }
            other => other,
        }
    }

    /// A string with its blocks replaced: the value itself when one block is all of it.
    fn text(&mut self, text: String) -> Value {
        let mut out = String::new();
        let mut rest = text.as_str();
        while let Some((before, data, after)) = next_block(rest) {
            self.blocks += 1;
            if self.blocks > MAX_BLOCKS {
                self.errors.push("too many interpolation blocks".into());
                return Value::Str(text);
            }
            let value = match self.block(data) {
                Ok(value) => value,
                Err(error) => {
                    self.errors.push(error);
                    return Value::Str(text);
                }
            };
            if self.budget.charge(size_of(&value)).is_err() {
                self.errors.push(crate::budget::TOO_BIG.into());
                return Value::Str(text);
            }
            if before.is_empty() && after.is_empty() && out.is_empty() {
                return value;
            }
            out.push_str(before);
            out.push_str(&as_text(&value));
            rest = after;
        }
        out.push_str(rest);
        Value::Str(out)
    }

    /// `<access> | <function> | …` → its value.
    fn block(&self, data: &str) -> Result<Value, String> {
        let mut parts = data.split('|').map(str::trim);
        let access = parts.next().unwrap_or_default();
        let functions: Vec<&str> = parts.collect();
        if access.len() > MAX_ACCESS_BYTES {
            return Err("maximum interpolation expression size exceeded".into());
        }
        let objects: Vec<&str> = access.splitn(5, '.').collect();
        let [context, name] = objects.as_slice() else {
            return Err(match objects.len() {
                0 | 1 => "invalid interpolation access pattern".into(),
                _ => format!("unknown interpolation key: `{}`", objects[2]),
            });
        };
        if *context != "inputs" {
            return Err(format!("unknown interpolation key: `{context}`"));
        }
        let mut value = self
            .inputs
            .get(*name)
            .cloned()
            .ok_or_else(|| format!("unknown interpolation key: `{name}`"))?;
        if functions.len() > MAX_FUNCTIONS {
            return Err("too many functions in interpolation block".into());
        }
        for function in functions {
            value = self.apply(function, value)?;
        }
        Ok(value)
    }

    fn apply(&self, function: &str, value: Value) -> Result<Value, String> {
        let unknown = || {
            format!("no function matching `{function}`: check that the function name, arguments, and types are correct")
        };
        let text = |name: &str| match &value {
            Value::Str(s) => Ok(s.clone()),
            _ => Err(format!(
                "invalid input type: {name} can only be used with string inputs"
            )),
        };
        match function {
            "expand_vars" => {
                let text = text("expand_vars")?;
                Ok(Value::Str(match self.variables {
                    Some(vars) => crate::load::expand_variables(&text, vars),
                    None => text,
                }))
            }
            "posix_escape" => Ok(Value::Str(posix_escape(&text("posix_escape")?))),
            _ => {
                let args = function
                    .strip_prefix("truncate(")
                    .and_then(|a| a.strip_suffix(')'))
                    .ok_or_else(unknown)?;
                let (offset, length) = args.split_once(',').ok_or_else(unknown)?;
                let offset: usize = offset.trim().parse().map_err(|_| unknown())?;
                let length: usize = length.trim().parse().map_err(|_| unknown())?;
                let text = text("truncate")?;
                Ok(Value::Str(text.chars().skip(offset).take(length).collect()))
            }
        }
    }
}

/// The first `$[[ data ]]` of `text`: (before, data, after). GitLab's `BLOCK_PATTERN` wants
/// at least two characters of data.
fn next_block(text: &str) -> Option<(&str, &str, &str)> {
    let mut from = 0;
    loop {
        let start = from + text.get(from..)?.find("$[[")?;
        let inner = text.get(start + 3..)?;
        let end = inner.find("]]")?;
        let data = inner.get(..end)?.trim();
        if data.chars().count() >= 2 {
            return Some((
                text.get(..start)?,
                data,
                inner.get(end + 2..).unwrap_or_default(),
            ));
        }
        from = start + 3;
    }
}

/// A value inside a longer string: Ruby's `to_s` of it.
fn as_text(value: &Value) -> String {
    match value {
        Value::Seq(_) | Value::Map(_) | Value::Reference(_) => value.to_json().to_string(),
        other => other.scalar_to_string().unwrap_or_default(),
    }
}

/// Ruby's `Shellwords.escape`.
fn posix_escape(text: &str) -> String {
    if text.is_empty() {
        return "''".into();
    }
    let mut out = String::with_capacity(text.len() * 2);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("'\n'"),
            c if c.is_ascii_alphanumeric() || "_-.,:+/@".contains(c) => out.push(c),
            c => {
                out.push('\\');
                out.push(c);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        crate::load::parse_yaml(text).expect("yaml")
    }

    fn run(header: &str, args: &str, content: &str) -> Result<Value, String> {
        let args = yaml(args);
        interpolate(Some(&yaml(header)), args.as_map(), yaml(content), None)
    }

    #[test]
    fn values_typed_or_as_text_defaults_and_functions() {
        let header = "spec:\n  inputs:\n    stage: {default: test}\n    count: {type: number, default: 2}\n    tags: {type: array, default: [a]}\n    name:\n";
        let out = run(
            header,
            "{name: \"it's here\"}",
            "job-$[[ inputs.name | truncate(0,4) ]]:\n  stage: $[[ inputs.stage ]]\n  parallel: $[[ inputs.count ]]\n  tags: $[[ inputs.tags ]]\n  script:\n    - echo $[[ inputs.name | posix_escape ]] $[[inputs.count]]\n",
        )
        .expect("interpolated");
        let expected = yaml("job-it's:\n  stage: test\n  parallel: 2\n  tags: [a]\n  script: [\"echo it\\\\'s\\\\ here 2\"]\n");
        assert_eq!(out, expected);
    }

    #[test]
    fn gitlab_messages() {
        let header = "spec:\n  inputs:\n    env: {options: [staging, production]}\n    version: {regex: '^v\\d+$', default: v1}\n    flag: {type: boolean, default: false}\n";
        let content = "x: $[[ inputs.env ]]";
        assert_eq!(
            run(header, "{}", content).expect_err("required"),
            "`env` input: required value has not been provided"
        );
        assert_eq!(
            run(header, "{env: dev}", content).expect_err("options"),
            "`env` input: `dev` cannot be used because it is not in the list of allowed options"
        );
        assert_eq!(
            run(header, "{env: staging, version: '2'}", content).expect_err("regex"),
            "`version` input: provided value does not match required RegEx pattern"
        );
        assert_eq!(
            run(header, "{env: staging, flag: 'yes'}", content).expect_err("type"),
            "`flag` input: provided value is not a boolean"
        );
        assert_eq!(
            run(header, "{env: staging, other: 1, more: 2}", content).expect_err("unknown"),
            "unknown input arguments: other, more"
        );
        assert_eq!(
            run(header, "{env: staging}", "x: $[[ inputs.nope ]]").expect_err("key"),
            "unknown interpolation key: `nope`"
        );
        assert_eq!(
            run(header, "{env: staging}", "x: $[[ inputs.env | upcase ]]").expect_err("fn"),
            "no function matching `upcase`: check that the function name, arguments, and types are correct"
        );
        assert_eq!(
            run("spec:\n  inputs:\n    a: {type: text}\n", "{}", content).expect_err("type"),
            "unknown input specification for `a` (valid types: array, boolean, number, string)"
        );
        assert_eq!(
            interpolate(None, yaml("{a: 1}").as_map(), yaml(content), None).expect_err("no header"),
            "unknown input arguments"
        );
    }

    #[test]
    fn interpolation_is_bounded() {
        let header = "spec:\n  inputs:\n    big: {type: array}\n";
        let big = format!("{{big: [\"{}\"]}}", "x".repeat(100_000));
        let content = format!("list: [{}]", vec!["\"$[[ inputs.big ]]\""; 100].join(", "));
        assert_eq!(
            run(header, &big, &content).expect_err("too big"),
            crate::budget::TOO_BIG
        );
    }
}
