//! Presentation: domain records into GitLab's wire shapes. The records never derive the wire
//! format themselves, because each API version presents the same build differently.

pub mod job_payload;
pub mod jobs;
pub mod projects;
pub mod runners;
pub mod time;
pub mod v3;
pub mod v4;

/// The API version presenting, where one handler serves both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    V3,
    V4,
}

/// Adds `from`'s fields to the object `into` (a shape that extends another).
pub fn merge_json(into: &mut serde_json::Value, from: serde_json::Value) {
    if let (serde_json::Value::Object(into), serde_json::Value::Object(from)) = (into, from) {
        into.extend(from);
    }
}
