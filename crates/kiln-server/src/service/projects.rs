//! Finding a project for a caller and checking what they may do with it.

use crate::{ApiError, AppInner};
use kiln_core::{access::Caller, Permission};
use kiln_store::{ProjectAccess, ProjectRecord, ProjectRef, StoreError, UserRecord};

/// The project named `raw` (an id or `namespace/path`), whoever asks: for the callers that
/// prove themselves to the project itself (a trigger token, a push hook's signature).
pub async fn find(app: &AppInner, raw: &str) -> Result<ProjectRecord, ApiError> {
    let project_ref = ProjectRef::parse(raw).ok_or(ApiError::NotFound("Project"))?;
    match app.store.projects().get(&project_ref).await {
        Ok(project) => Ok(project),
        Err(StoreError::NotFound) => Err(ApiError::NotFound("Project")),
        Err(err) => Err(err.into()),
    }
}

/// The project named `raw` (an id or `namespace/path`) if `user` holds `permission` on it.
/// A project the user cannot see is `404 Project Not Found`, as if it did not exist; one they
/// see but may not act on is `403 Forbidden`.
pub async fn authorize(
    app: &AppInner,
    user: &UserRecord,
    raw: &str,
    permission: Permission,
) -> Result<ProjectRecord, ApiError> {
    Ok(authorize_access(app, user, raw, permission).await?.project)
}

/// As `authorize`, with the caller's membership in the project.
pub async fn authorize_access(
    app: &AppInner,
    user: &UserRecord,
    raw: &str,
    permission: Permission,
) -> Result<ProjectAccess, ApiError> {
    authorize_viewer(app, Some(user), raw, permission).await
}

/// As `authorize_access` for a caller who may be anonymous (None): an anonymous caller sees
/// public projects only, as if internal ones were private, and is a member of none.
pub async fn authorize_viewer(
    app: &AppInner,
    viewer: Option<&UserRecord>,
    raw: &str,
    permission: Permission,
) -> Result<ProjectAccess, ApiError> {
    let access = project_access(app, viewer, raw).await?;
    let caller = Caller {
        is_admin: viewer.is_some_and(|u| u.is_admin),
        access: access.access,
    };
    let visibility = match (viewer, access.project.visibility) {
        (None, kiln_core::Visibility::Internal) => kiln_core::Visibility::Private,
        (_, visibility) => visibility,
    };
    if !caller.can(Permission::ReadProject, visibility) {
        return Err(ApiError::NotFound("Project"));
    }
    if !caller.can(permission, visibility) {
        return Err(ApiError::Forbidden(None));
    }
    Ok(access)
}

async fn project_access(
    app: &AppInner,
    viewer: Option<&UserRecord>,
    raw: &str,
) -> Result<ProjectAccess, ApiError> {
    // User ids start at 1: 0 keys the anonymous caller's view.
    let user_id = viewer.map(|u| u.id);
    let key = (raw.to_owned(), user_id.unwrap_or(0));
    let version = app.store.versions().access();
    if let Some(access) = app.cache.access.get(&key, version) {
        return Ok(access);
    }
    let project = ProjectRef::parse(raw).ok_or(ApiError::NotFound("Project"))?;
    let access = match app.store.projects().with_access(&project, user_id).await {
        Ok(access) => access,
        Err(StoreError::NotFound) => return Err(ApiError::NotFound("Project")),
        Err(err) => return Err(err.into()),
    };
    app.cache.access.insert(key, access.clone(), version);
    Ok(access)
}
