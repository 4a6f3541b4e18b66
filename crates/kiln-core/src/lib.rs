//! Kiln's pure domain core. Nothing here does I/O: the store, the HTTP layer and the runners
//! ask this crate what a change means and then carry it out.

pub mod access;
pub mod external_status;
pub mod pagination;
pub mod processing;
pub mod schedule;
pub mod scope;
pub mod status;

pub use access::{AccessLevel, Caller, Permission, Visibility};
pub use pagination::{PageInfo, PageRequest, PaginationError};
pub use processing::{JobState, JobWhen, PipelineStatus};
pub use scope::{Scope, ScopeError};
pub use status::{BuildEvent, BuildStatus, TransitionError};
