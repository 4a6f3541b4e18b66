//! `GET /user` (the caller, the first call of most clients and of the `gitlab` command line)
//! and `GET /version`, under v3 (GitLab 8.x's `Entities::UserFull`) and v4 (current GitLab's
//! `Entities::UserPublic`, with `is_admin` for admins as `UserWithAdmin`).

use crate::auth::CurrentUser;
use crate::present::time::utc;
use crate::present::ApiVersion as Version;
use crate::AppState;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

/// The GitLab version whose API each of Kiln's faces follows.
fn gitlab_version(version: Version) -> &'static str {
    match version {
        Version::V3 => "8.17.0",
        Version::V4 => "17.0.0",
    }
}

pub fn routes(version: Version) -> Router<AppState> {
    Router::new()
        .route(
            "/user",
            get(move |s: State<AppState>, u: CurrentUser| current(s, u, version)),
        )
        .route(
            "/version",
            get(move |_: CurrentUser| async move {
                Json(json!({
                    "version": gitlab_version(version),
                    "revision": concat!("kiln-", env!("CARGO_PKG_VERSION")),
                    "enterprise": false,
                }))
            }),
        )
}

async fn current(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    version: Version,
) -> Json<Value> {
    let presenter = crate::present::v3::Presenter {
        external_url: &state.config.external_url,
    };
    let mut out = serde_json::to_value(presenter.user(&user)).unwrap_or(Value::Null);
    let full = json!({
        "email": user.email,
        "location": null,
        "organization": null,
        "last_sign_in_at": null,
        "confirmed_at": utc(user.created_at),
        "current_sign_in_at": null,
        "theme_id": 1,
        "color_scheme_id": 1,
        "projects_limit": 100000,
        "identities": [],
        "can_create_group": user.is_admin,
        "can_create_project": user.is_admin,
        "two_factor_enabled": false,
        "external": false,
    });
    crate::present::merge_json(&mut out, full);
    if version == Version::V4 {
        let current = json!({
            "locked": false,
            "public_email": null,
            "discord": "",
            "job_title": "",
            "pronouns": null,
            "bot": false,
            "work_information": null,
            "followers": 0,
            "following": 0,
            "local_time": null,
            "last_activity_on": null,
            "private_profile": false,
            "commit_email": user.email,
        });
        crate::present::merge_json(&mut out, current);
        if !user.is_admin {
            if let Value::Object(map) = &mut out {
                map.remove("is_admin");
            }
        }
    }
    Json(out)
}
