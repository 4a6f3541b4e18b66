//! Finding a project for a caller and checking what they may do with it.

use crate::ApiError;
use kiln_core::{access::Caller, Permission};
use kiln_store::{ProjectRecord, ProjectRef, Store, StoreError, UserRecord};

/// The project named `raw` (an id or `namespace/path`) if `user` holds `permission` on it.
/// A project the user cannot see is `404 Project Not Found`, as if it did not exist; one they
/// see but may not act on is `403 Forbidden`.
pub async fn authorize(
    store: &Store,
    user: &UserRecord,
    raw: &str,
    permission: Permission,
) -> Result<ProjectRecord, ApiError> {
    let not_found = ApiError::NotFound("Project");
    let project = ProjectRef::parse(raw).ok_or(ApiError::NotFound("Project"))?;
    let access = match store.projects().with_access(&project, Some(user.id)).await {
        Ok(access) => access,
        Err(StoreError::NotFound) => return Err(not_found),
        Err(err) => return Err(err.into()),
    };
    let caller = Caller {
        is_admin: user.is_admin,
        access: access.access,
    };
    let visibility = access.project.visibility;
    if !caller.can(Permission::ReadProject, visibility) {
        return Err(not_found);
    }
    if !caller.can(permission, visibility) {
        return Err(ApiError::Forbidden(None));
    }
    Ok(access.project)
}
