//! A build's stored job definition (`builds.options`): the compiled job plan with a version,
//! so that a build queued or retried by one release runs the same under the next. Fields
//! added later take their defaults; a definition that does not read fails its build with a
//! message instead of silently running something else.

use kiln_ci::JobPlan;
use serde::{Deserialize, Serialize};

/// The version this release writes. Raise it when a field changes meaning (not when one is
/// added: added fields have defaults).
pub const CURRENT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Stored {
    version: u32,
    #[serde(flatten)]
    plan: JobPlan,
}

/// What a build runs.
#[derive(Debug, Clone, PartialEq)]
pub enum JobDefinition {
    /// A job compiled from `.gitlab-ci.yml`.
    Compiled(Box<JobPlan>),
    /// A build with commands only (the history generator's): no plan was stored.
    Commands,
}

/// The stored text for `plan`.
pub fn encode(plan: &JobPlan) -> String {
    serde_json::to_string(&Stored {
        version: CURRENT_VERSION,
        plan: plan.clone(),
    })
    .unwrap_or_else(|_| "{}".into())
}

/// Reads a stored definition, or says why it cannot be run.
pub fn decode(options: &str) -> Result<JobDefinition, String> {
    let value: serde_json::Value = serde_json::from_str(options)
        .map_err(|e| format!("the job's stored definition is not JSON: {e}"))?;
    let Some(object) = value.as_object() else {
        return Err("the job's stored definition is not an object".into());
    };
    if object.is_empty() {
        return Ok(JobDefinition::Commands);
    }
    let version = match object.get("version") {
        // Written before definitions had versions: the plan itself.
        None => 0,
        Some(v) => v
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .ok_or("the job's stored definition has a bad version")?,
    };
    if version > CURRENT_VERSION {
        return Err(format!(
            "the job's definition has version {version}, written by a newer Kiln (this one reads up to {CURRENT_VERSION})"
        ));
    }
    let plan: JobPlan = serde_json::from_value(value)
        .map_err(|e| format!("the job's stored definition does not read: {e}"))?;
    if plan.name.is_empty() {
        return Err("the job's stored definition has no name".into());
    }
    Ok(JobDefinition::Compiled(Box::new(plan)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> JobPlan {
        JobPlan {
            name: "test".into(),
            stage: "test".into(),
            script: vec!["echo hi".into()],
            ..JobPlan::default()
        }
    }

    #[test]
    fn definitions_round_trip_with_their_version() {
        let text = encode(&plan());
        assert!(text.contains("\"version\":1"), "{text}");
        assert_eq!(decode(&text), Ok(JobDefinition::Compiled(Box::new(plan()))));
    }

    #[test]
    fn older_definitions_read_with_defaults_for_new_fields() {
        // As stored before versions existed, and without the later `retry` field.
        let old = r#"{"name":"test","stage":"test","stage_idx":0,"script":["echo hi"]}"#;
        let JobDefinition::Compiled(read) = decode(old).unwrap() else {
            panic!("compiled")
        };
        assert_eq!(read.script, vec!["echo hi".to_owned()]);
        assert_eq!(read.retry.max, 0);
    }

    #[test]
    fn unreadable_definitions_are_errors_not_something_else() {
        assert_eq!(decode("{}"), Ok(JobDefinition::Commands));
        assert!(decode("not json").is_err());
        assert!(decode(r#"{"name":"x","script":"not a list"}"#).is_err());
        assert!(decode(r#"{"version":99,"name":"x"}"#)
            .unwrap_err()
            .contains("newer Kiln"));
    }
}
