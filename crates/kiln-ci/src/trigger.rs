//! `trigger:` — a bridge job (GitLab's `Entry::Bridge` and `Entry::Trigger`): it runs no
//! script; when its turn comes the server starts a downstream pipeline for it. A child
//! pipeline (`trigger: include:`) is compiled from a file made of that `include:`, at the
//! parent's commit, as GitLab does.

use crate::error::{CompileError, Result};
use crate::plan::TriggerPlan;
use crate::value::Value;

/// Keys a bridge job may have (`Bridge::ALLOWED_KEYS` and `Processable`'s).
pub(crate) const BRIDGE_KEYS: &[&str] = &[
    "trigger",
    "extends",
    "stage",
    "only",
    "except",
    "rules",
    "variables",
    "inherit",
    "allow_failure",
    "when",
    "needs",
    "resource_group",
    "environment",
    "parallel",
];
/// `SameProjectTrigger::INCLUDE_MAX_SIZE`.
const MAX_INCLUDES: usize = 3;

pub(crate) fn parse_trigger(value: &Value, location: &str) -> Result<TriggerPlan> {
    match value {
        Value::Str(project) if !project.is_empty() => Ok(TriggerPlan {
            project: Some(project.clone()),
            ..TriggerPlan::new()
        }),
        Value::Str(_) => Err(CompileError::entry(location, "config can't be blank")),
        Value::Map(map) => {
            let same_project = map.contains_key("include");
            let allowed: &[&str] = if same_project {
                &["strategy", "include", "forward"]
            } else {
                &["project", "branch", "strategy", "forward"]
            };
            let unknown = map.unknown_keys(allowed);
            if !unknown.is_empty() {
                return Err(CompileError::entry(
                    location,
                    &format!("config contains unknown keys: {}", unknown.join(", ")),
                ));
            }
            let mut plan = TriggerPlan::new();
            if same_project {
                plan.include = Some(parse_include(map.get("include"), location)?);
            } else {
                match map.get("project") {
                    Some(Value::Str(p)) if !p.is_empty() => plan.project = Some(p.clone()),
                    None | Some(Value::Null) => {
                        return Err(CompileError::entry(
                            location,
                            "config must specify either project or include",
                        ))
                    }
                    Some(_) => {
                        return Err(CompileError::entry(location, "project should be a string"))
                    }
                }
                plan.branch = match map.get("branch") {
                    None | Some(Value::Null) => None,
                    Some(Value::Str(b)) => Some(b.clone()),
                    Some(_) => {
                        return Err(CompileError::entry(location, "branch should be a string"))
                    }
                };
            }
            plan.depend = match map.get("strategy") {
                None | Some(Value::Null) => false,
                Some(Value::Str(s)) if s == "depend" => true,
                Some(_) => return Err(CompileError::entry(location, "strategy should be depend")),
            };
            if let Some(forward) = map.get("forward").filter(|v| !v.is_null()) {
                parse_forward(forward, &format!("{location}:forward"), &mut plan)?;
            }
            Ok(plan)
        }
        _ => Err(CompileError::entry(
            location,
            "has to be either a string or a hash",
        )),
    }
}

/// The child's `include:`, kept as JSON for the file compiled when the bridge runs.
fn parse_include(value: Option<&Value>, location: &str) -> Result<String> {
    let location = format!("{location}:include");
    let count = match value {
        Some(Value::Str(_) | Value::Map(_)) => 1,
        Some(Value::Seq(items)) => items.len(),
        _ => {
            return Err(CompileError::entry(
                &location,
                "config should be a hash, a string or an array",
            ))
        }
    };
    if count > MAX_INCLUDES {
        return Err(CompileError::entry(
            &location,
            &format!("config is too long (maximum is {MAX_INCLUDES} characters)"),
        ));
    }
    Ok(value.map(Value::to_json).unwrap_or_default().to_string())
}

fn parse_forward(value: &Value, location: &str, plan: &mut TriggerPlan) -> Result<()> {
    let Value::Map(map) = value else {
        return Err(CompileError::entry(location, "config should be a hash"));
    };
    let unknown = map.unknown_keys(&["yaml_variables", "pipeline_variables"]);
    if !unknown.is_empty() {
        return Err(CompileError::entry(
            location,
            &format!("config contains unknown keys: {}", unknown.join(", ")),
        ));
    }
    for (key, slot) in [
        ("yaml_variables", &mut plan.forward_yaml_variables),
        ("pipeline_variables", &mut plan.forward_pipeline_variables),
    ] {
        match map.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Bool(b)) => *slot = *b,
            Some(_) => {
                return Err(CompileError::entry(
                    &format!("{location}:{key}"),
                    "config should be a boolean value",
                ))
            }
        }
    }
    Ok(())
}

/// The text of a child pipeline's configuration: its `include:` (GitLab's
/// `Ci::Bridge#downstream_pipeline_params` yields `{ include: … }` as the config content).
pub fn child_config(include_json: &str) -> String {
    format!("{{\"include\": {include_json}}}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trigger(text: &str) -> Result<TriggerPlan> {
        parse_trigger(
            &crate::load::parse_yaml(text).expect("yaml"),
            "jobs:b:trigger",
        )
    }

    #[test]
    fn child_and_project_triggers() {
        let child = trigger("{include: child.yml, strategy: depend}").expect("child");
        assert_eq!(child.include.as_deref(), Some("\"child.yml\""));
        assert!(child.depend && child.forward_yaml_variables && !child.forward_pipeline_variables);
        let other = trigger("group/other").expect("project");
        assert_eq!(other.project.as_deref(), Some("group/other"));
        let forwarded = trigger("{include: [{local: a.yml}], forward: {pipeline_variables: true, yaml_variables: false}}").expect("forward");
        assert!(forwarded.forward_pipeline_variables && !forwarded.forward_yaml_variables);
        assert_eq!(
            child_config(forwarded.include.as_deref().unwrap_or_default()),
            "{\"include\": [{\"local\":\"a.yml\"}]}\n"
        );
    }

    #[test]
    fn gitlab_messages() {
        let message = |text: &str| trigger(text).expect_err("refused").message;
        assert_eq!(
            message("{include: a.yml, strategy: wait}"),
            "jobs:b:trigger strategy should be depend"
        );
        assert_eq!(
            message("{branch: main}"),
            "jobs:b:trigger config must specify either project or include"
        );
        assert_eq!(
            message("{include: a.yml, project: x}"),
            "jobs:b:trigger config contains unknown keys: project"
        );
        assert_eq!(
            message("[a]"),
            "jobs:b:trigger has to be either a string or a hash"
        );
        assert_eq!(
            message("{include: [a, b, c, d]}"),
            "jobs:b:trigger:include config is too long (maximum is 3 characters)"
        );
    }
}
