//! Who visits a page: the session their cookie names (if live), the CSRF token their forms
//! must carry, and the address they come from (to slow failed sign-ins). Signed in, the token
//! is the session's; signed out, it is a random value in a cookie of its own that the form
//! repeats (a double submit), so a page elsewhere can post neither.

use super::page::Page;
use crate::{ApiError, AppState};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use kiln_store::SessionRecord;
use std::net::IpAddr;

pub const SESSION_COOKIE: &str = "_kiln_session";
const CSRF_COOKIE: &str = "_kiln_csrf";
pub use crate::service::sign_in::SESSION_TTL_SECS;

/// The peer address of a connection, added by the HTTP server to each of its requests.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub std::net::SocketAddr);

pub struct Visitor {
    /// The session cookie's value and its live session.
    pub session: Option<(String, SessionRecord)>,
    /// The signed-out CSRF cookie, if the browser has one.
    form_cookie: Option<String>,
    pub address: Option<IpAddr>,
    /// Cookies must be `Secure` (the external URL is https).
    secure: bool,
}

impl FromRequestParts<AppState> for Visitor {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let session = match cookie(&parts.headers, SESSION_COOKIE) {
            Some(id) => state
                .store
                .sessions()
                .get(&id)
                .await?
                .map(|record| (id, record)),
            None => None,
        };
        Ok(Visitor {
            session,
            form_cookie: cookie(&parts.headers, CSRF_COOKIE).filter(|v| v.len() >= 32),
            address: parts.extensions.get::<PeerAddr>().map(|p| p.0.ip()),
            secure: state.config.external_url.starts_with("https://"),
        })
    }
}

impl Visitor {
    /// The signed-in user, if any.
    pub fn user(&self) -> Option<&kiln_store::UserRecord> {
        self.session.as_ref().map(|(_, session)| &session.user)
    }

    /// The layout's part of a page for this visitor, and the cookie to set for a signed-out
    /// visitor's forms when they have none yet.
    pub fn page(&self) -> (Page, Vec<String>) {
        if let Some((_, session)) = &self.session {
            let page = Page {
                viewer: Some(session.user.clone()),
                csrf_token: session.csrf_token.clone(),
                live: None,
            };
            return (page, Vec::new());
        }
        let (token, cookies) = match &self.form_cookie {
            Some(token) => (token.clone(), Vec::new()),
            None => {
                let token = format!("{}{}", kiln_store::new_secret(), kiln_store::new_secret());
                let cookie = self.cookie(CSRF_COOKIE, &token, None);
                (token, vec![cookie])
            }
        };
        let page = Page {
            viewer: None,
            csrf_token: token,
            live: None,
        };
        (page, cookies)
    }

    /// None when `given` is this visitor's CSRF token; otherwise the 422 GitLab answers.
    pub fn refuse_form(&self, given: Option<&str>) -> Option<Response> {
        let expected = match &self.session {
            Some((_, session)) => Some(session.csrf_token.as_str()),
            None => self.form_cookie.as_deref(),
        };
        match (expected, given) {
            (Some(expected), Some(given)) if same(expected, given) => None,
            _ => {
                let (page, _) = self.page();
                Some(super::page::error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &page,
                    "The change you requested was rejected.",
                    "The form was not sent from this site, or it is too old. Reload the page and try again.",
                ))
            }
        }
    }

    /// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Secure behind https; `max_age` None is
    /// a cookie for the browser's session, Some(0) removes it.
    pub fn cookie(&self, name: &str, value: &str, max_age: Option<i64>) -> String {
        let mut cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
        if let Some(age) = max_age {
            cookie.push_str(&format!("; Max-Age={age}"));
        }
        if self.secure {
            cookie.push_str("; Secure");
        }
        cookie
    }
}

/// The value of cookie `name`.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
        .filter(|v| !v.is_empty())
}

/// Compares in time that does not depend on where the strings differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0_u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}
