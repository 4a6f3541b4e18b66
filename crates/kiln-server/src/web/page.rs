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
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
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
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}
