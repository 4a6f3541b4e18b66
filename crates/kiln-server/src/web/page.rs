//! What every page's layout shows (who is signed in, the token its forms carry), and turning
//! a template into a response.

use askama::Template;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use kiln_store::UserRecord;

/// The layout's part of a page.
pub struct Page {
    pub viewer: Option<UserRecord>,
    /// The CSRF token of this visitor's forms.
    pub csrf_token: String,
    /// The events that tell this page its live parts (`data-live-part`) changed.
    pub live: Option<String>,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    page: &'a Page,
    heading: &'a str,
    text: &'a str,
}

/// `template` rendered with `status`, and the cookies to set.
pub fn render(status: StatusCode, template: &impl Template, cookies: &[String]) -> Response {
    let mut response = match template.render() {
        Ok(body) => (status, Html(body)).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "a page did not render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html("<h1>500</h1>".to_owned()),
            )
                .into_response()
        }
    };
    set_cookies(&mut response, cookies);
    response
}

/// An error page (a form refused, a page not allowed).
pub fn error(status: StatusCode, page: &Page, heading: &str, text: &str) -> Response {
    render(
        status,
        &ErrorPage {
            page,
            heading,
            text,
        },
        &[],
    )
}

/// `303 See Other` to `to` (after a form), with cookies.
pub fn redirect(to: &str, cookies: &[String]) -> Response {
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_owned())]).into_response();
    set_cookies(&mut response, cookies);
    response
}

/// The `page` a list's query asks for (1 when none or not a page).
pub fn number(query: &crate::query::QueryPairs) -> u32 {
    query
        .get("page")
        .and_then(|p| p.parse().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(1)
}

/// The address of page `number` of the list at `base`, keeping its filters.
pub fn link(base: &str, number: u32, kept: &[(&str, Option<String>)]) -> String {
    let mut href = format!("{base}?page={number}");
    for (key, value) in kept {
        if let Some(value) = value {
            let encoded: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
            href.push_str(&format!("&{key}={encoded}"));
        }
    }
    href
}

fn set_cookies(response: &mut Response, cookies: &[String]) {
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
}
