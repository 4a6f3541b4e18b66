//! Pipeline triggers: made by a maintainer, their token sealed with the server's key so that
//! their owner can read it again (GitLab shows others its first four characters).

use crate::{ApiError, AppInner};
use kiln_store::TriggerRecord;

/// The trigger's token, unsealed; None for one made before tokens were kept.
pub fn token(app: &AppInner, trigger: &TriggerRecord) -> Option<String> {
    let sealed = trigger.token_sealed.as_ref()?;
    app.cipher.decrypt(sealed).ok()
}

/// The token as `viewer_id` may see it: whole by its owner, its first four characters else.
pub fn shown_token(app: &AppInner, trigger: &TriggerRecord, viewer_id: i64) -> Option<String> {
    let token = token(app, trigger)?;
    let owns = trigger.owner.as_ref().is_some_and(|o| o.id == viewer_id);
    Some(if owns {
        token
    } else {
        token.chars().take(4).collect()
    })
}

/// A new trigger of the project, owned by `owner_id`.
pub async fn create(
    app: &AppInner,
    project_id: i64,
    owner_id: i64,
    description: &str,
) -> Result<TriggerRecord, ApiError> {
    let (trigger, _) = app
        .store
        .triggers()
        .create_owned(project_id, owner_id, description, |token| {
            app.cipher.encrypt(token)
        })
        .await?;
    Ok(trigger)
}
