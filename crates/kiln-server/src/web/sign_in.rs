//! `/users/sign_in` and `/users/sign_out`, at GitLab's addresses and with its field names
//! (`user[login]`, `user[password]`, `authenticity_token`).

use super::page::{self, Page};
use super::session::{Visitor, SESSION_COOKIE, SESSION_TTL_SECS};
use crate::params::Params;
use crate::service::sign_in::{self, SignInError};
use crate::{ApiError, AppState};
use askama::Template;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage<'a> {
    page: &'a Page,
    alert: Option<String>,
    login: &'a str,
}

/// `GET /users/sign_in`
pub async fn form(visitor: Visitor) -> Response {
    if visitor.session.is_some() {
        return page::redirect("/", &[]);
    }
    let (page, cookies) = visitor.page();
    let body = SignInPage {
        page: &page,
        alert: None,
        login: "",
    };
    page::render(StatusCode::OK, &body, &cookies)
}

/// `POST /users/sign_in`: a session and back to the projects, or the form again.
pub async fn submit(
    State(state): State<AppState>,
    visitor: Visitor,
    Params(params): Params,
) -> Result<Response, ApiError> {
    if let Some(refused) = visitor.refuse_form(params.get("authenticity_token")) {
        return Ok(refused);
    }
    let login = params.get("user[login]").unwrap_or_default().trim();
    let password = params.get("user[password]").unwrap_or_default();
    match sign_in::sign_in(&state, login, password, visitor.address).await {
        Ok(session) => {
            let cookie = visitor.cookie(SESSION_COOKIE, &session, Some(SESSION_TTL_SECS));
            Ok(page::redirect("/", &[cookie]))
        }
        Err(err @ (SignInError::Invalid | SignInError::Throttled(_))) => {
            let (page, cookies) = visitor.page();
            let status = match err {
                SignInError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::UNAUTHORIZED,
            };
            let body = SignInPage {
                page: &page,
                alert: Some(err.to_string()),
                login,
            };
            let mut response = page::render(status, &body, &cookies);
            if let SignInError::Throttled(secs) = err {
                if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
            }
            Ok(response)
        }
        Err(SignInError::Store(err)) => Err(err.into()),
        Err(SignInError::Hashing(err)) => Err(ApiError::Internal(anyhow::anyhow!(err))),
    }
}

/// `POST /users/sign_out`: the session ends on the server, not only in the browser.
pub async fn sign_out(
    State(state): State<AppState>,
    visitor: Visitor,
    Params(params): Params,
) -> Result<Response, ApiError> {
    let Some((id, _)) = &visitor.session else {
        return Ok(page::redirect("/users/sign_in", &[]));
    };
    if let Some(refused) = visitor.refuse_form(params.get("authenticity_token")) {
        return Ok(refused);
    }
    state.store.sessions().end(id).await?;
    let gone = visitor.cookie(SESSION_COOKIE, "", Some(0));
    Ok(page::redirect("/users/sign_in", &[gone]))
}
