//! Runners as each API version shows them: v3's `Entities::Runner` / `RunnerDetails`
//! (GitLab 8.x) and v4's `Entities::Ci::Runner` / `RunnerDetails`.

use super::time::utc;
use crate::service::runners::{is_online, status};
use kiln_store::RunnerRecord;
use serde_json::{json, Value};

pub use super::ApiVersion as Version;

/// The list entry.
pub fn basic(version: Version, runner: &RunnerRecord, now_ms: i64) -> Value {
    let mut out = json!({
        "id": runner.id,
        "description": runner.description,
        "active": runner.active,
        "is_shared": runner.is_shared(),
        "name": runner.info.name,
    });
    if version == Version::V4 {
        out["paused"] = json!(!runner.active);
        out["ip_address"] = json!(runner.info.ip_address);
        out["runner_type"] = json!(runner.runner_type);
        out["online"] = json!(is_online(runner, now_ms));
        out["status"] = json!(status(runner, now_ms));
    }
    out
}

/// One runner in full, with the projects it is assigned to (`id`, `name`, paths).
pub fn details(
    version: Version,
    runner: &RunnerRecord,
    projects: &[kiln_store::ProjectRecord],
    now_ms: i64,
) -> Value {
    let mut out = basic(version, runner, now_ms);
    let projects: Vec<Value> = projects
        .iter()
        .map(|p| {
            json!({
                "id": p.id,
                "name": p.name,
                "name_with_namespace": format!("{} / {}", p.namespace, p.name),
                "path": p.path,
                "path_with_namespace": p.full_path(),
            })
        })
        .collect();
    let fields = json!({
        "tag_list": runner.tags,
        "run_untagged": runner.run_untagged,
        "locked": runner.locked,
        "version": runner.info.version,
        "revision": runner.info.revision,
        "platform": runner.info.platform,
        "architecture": runner.info.architecture,
        "contacted_at": runner.contacted_at.map(utc),
        "projects": projects,
    });
    crate::present::merge_json(&mut out, fields);
    if version == Version::V4 {
        let more = json!({
            "access_level": runner.access_level,
            "maximum_timeout": runner.maximum_timeout,
            "maintenance_note": runner.maintenance_note,
            "created_at": utc(runner.created_at),
            "executor": runner.info.executor,
        });
        crate::present::merge_json(&mut out, more);
    }
    out
}
