//! Presentation: domain records into GitLab's wire shapes. The records never derive the wire
//! format themselves, because each API version presents the same build differently.

pub mod job_payload;
pub mod runners;
pub mod time;
pub mod v3;
pub mod v4;
