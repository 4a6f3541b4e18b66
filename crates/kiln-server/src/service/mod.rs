//! Services: what Kiln does, independent of how a request asked for it.

pub mod builds;
pub mod projects;
