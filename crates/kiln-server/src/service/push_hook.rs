//! Webhooks in: a forge tells Kiln that a branch or tag moved, and Kiln fetches it into the
//! project's mirror and makes the push pipeline, as GitLab does on a push.
//!
//! The request proves it knows the project's secret the way its forge signs: Gitea and
//! Forgejo with `X-Gitea-Signature` / `X-Forgejo-Signature` (hex HMAC-SHA256 of the body;
//! checked first, since they also send GitHub's header), GitHub with `X-Hub-Signature-256`
//! (`sha256=` and the same HMAC), GitLab with `X-Gitlab-Token` (the secret itself). A tag
//! push makes a tag pipeline; a deleted branch or tag (`after` all zeros) makes none.

use crate::service::pipelines::{self, PipelineRequest};
use crate::{ApiError, AppInner};
use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use kiln_store::ProjectRecord;
use sha2::Sha256;

/// The forge a request came from, known by how it proved the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forge {
    GitLab,
    GitHub,
    Gitea,
}

/// What a push hook did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A pipeline was made for the pushed ref.
    Created(i64),
    /// The pushed commit has its pipeline already (a redelivery, or the poller was first).
    AlreadyMade,
    /// A branch or tag was deleted: nothing to build.
    Deleted,
    /// Not a push (a ping, an issue …): accepted and ignored.
    Ignored(String),
}

const DELETED: &str = "0000000000000000000000000000000000000000";

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Equal in time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn signed_by(secret: &str, body: &[u8], hex_signature: &str) -> bool {
    let Ok(signature) = hex::decode(hex_signature.trim()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&signature).is_ok()
}

/// Which forge sent the request, once its proof of the secret holds.
pub fn verify(headers: &HeaderMap, body: &[u8], secret: &str) -> Result<Forge, ApiError> {
    let gitea = header(headers, "x-gitea-signature").or(header(headers, "x-forgejo-signature"));
    let (forge, valid) = if let Some(signature) = gitea {
        (Forge::Gitea, signed_by(secret, body, signature))
    } else if let Some(signature) = header(headers, "x-hub-signature-256") {
        let hex = signature.strip_prefix("sha256=").unwrap_or("");
        (Forge::GitHub, signed_by(secret, body, hex))
    } else if let Some(token) = header(headers, "x-gitlab-token") {
        (Forge::GitLab, same(token.as_bytes(), secret.as_bytes()))
    } else {
        (Forge::GitLab, false)
    };
    if valid {
        Ok(forge)
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// The event's name, if it is a push (of a branch or a tag).
fn push_event(headers: &HeaderMap, forge: Forge) -> Result<(), String> {
    let (name, pushes): (Option<&str>, &[&str]) = match forge {
        Forge::GitLab => (
            header(headers, "x-gitlab-event"),
            &["Push Hook", "Tag Push Hook"],
        ),
        Forge::GitHub => (header(headers, "x-github-event"), &["push"]),
        Forge::Gitea => (
            header(headers, "x-gitea-event").or(header(headers, "x-forgejo-event")),
            &["push"],
        ),
    };
    match name {
        Some(name) if pushes.contains(&name) => Ok(()),
        other => Err(other.unwrap_or("(no event)").to_owned()),
    }
}

/// The pushed ref (a branch or a tag name) and the sha it now points at.
fn pushed(body: &[u8]) -> Result<(String, String), ApiError> {
    let malformed = |what: &str| ApiError::BadRequest(format!("400 Bad request - {what}"));
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| malformed("the body is not JSON"))?;
    let full_ref = value["ref"]
        .as_str()
        .ok_or_else(|| malformed("ref is missing"))?;
    let after = value["after"]
        .as_str()
        .ok_or_else(|| malformed("after is missing"))?;
    let name = full_ref
        .strip_prefix("refs/heads/")
        .or_else(|| full_ref.strip_prefix("refs/tags/"))
        .ok_or_else(|| malformed("ref is not a branch or a tag"))?;
    if name.is_empty() || after.len() != 40 || !after.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(malformed("ref or after is invalid"));
    }
    Ok((name.to_owned(), after.to_ascii_lowercase()))
}

/// Checks the request against the project's secret and makes what the push asks for.
pub async fn receive(
    app: &AppInner,
    project: &ProjectRecord,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Outcome, ApiError> {
    let sealed = app
        .store
        .projects()
        .push_secret(project.id)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    let secret = app
        .cipher
        .decrypt(&sealed)
        .map_err(|e| ApiError::Internal(e.into()))?;
    let forge = verify(headers, body, &secret)?;
    if let Err(event) = push_event(headers, forge) {
        return Ok(Outcome::Ignored(event));
    }
    let (ref_name, after) = pushed(body)?;
    if after == DELETED {
        return Ok(Outcome::Deleted);
    }
    let request = PipelineRequest {
        project,
        ref_name: &ref_name,
        source: "push",
        user_id: None,
        variables: vec![],
        trigger_request_id: None,
        push_key: Some(format!("{}:{ref_name}:{after}", project.id)),
    };
    match pipelines::create(app, request).await {
        Ok(id) => Ok(Outcome::Created(id)),
        Err(ApiError::Conflict(_)) => Ok(Outcome::AlreadyMade),
        Err(err) => Err(err),
    }
}
