//! GitLab's pagination headers: `X-Total`, `X-Total-Pages`, `X-Per-Page`, `X-Page`,
//! `X-Next-Page`, `X-Prev-Page` (empty when there is none) and `Link` (first and last always,
//! prev and next when they exist). Link URLs repeat every query parameter, as Rails'
//! `params.to_query` does, with `page` and `per_page` replaced and keys sorted.

use crate::present::ApiVersion;
use crate::query::QueryPairs;
use crate::ApiError;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use kiln_core::{PageInfo, PageRequest, PaginationError};

/// `page` and `per_page`, refused as each version's Grape words it: v3's
/// `400 (Bad request) "page" is invalid`, current GitLab's `{"error":"page is invalid"}`.
pub fn page_request(query: &QueryPairs, version: ApiVersion) -> Result<PageRequest, ApiError> {
    PageRequest::parse(query.get("page"), query.get("per_page")).map_err(|e| {
        let name = match e {
            PaginationError::Page => "page",
            PaginationError::PerPage => "per_page",
        };
        match version {
            ApiVersion::V3 => ApiError::invalid_param(name),
            ApiVersion::V4 => ApiError::Params(format!("{name} is invalid")),
        }
    })
}

pub fn headers(info: &PageInfo, url_base: &str, query: &QueryPairs) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    let opt = |page: Option<u64>| page.map(|p| p.to_string()).unwrap_or_default();
    set("x-total", info.total.to_string());
    set("x-total-pages", info.total_pages.to_string());
    set("x-per-page", info.per_page.to_string());
    set("x-page", info.page.to_string());
    set("x-next-page", opt(info.next_page()));
    set("x-prev-page", opt(info.prev_page()));

    let mut links = Vec::with_capacity(4);
    let mut link = |page: u64, rel: &str| {
        links.push(format!(
            "<{}>; rel=\"{rel}\"",
            page_url(url_base, query, page, info.per_page)
        ));
    };
    if let Some(prev) = info.prev_page() {
        link(prev, "prev");
    }
    if let Some(next) = info.next_page() {
        link(next, "next");
    }
    link(1, "first");
    link(info.total_pages, "last");
    set("link", links.join(", "));
    headers
}

/// The headers of a page whose total is not counted (GitLab's `without_count`): no
/// `X-Total`, `X-Total-Pages` or `last` link; `has_more` tells whether a next page exists.
pub fn headers_without_total(
    page: PageRequest,
    has_more: bool,
    url_base: &str,
    query: &QueryPairs,
) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let page_no = u64::from(page.page);
    let next = has_more.then_some(page_no + 1);
    let prev = (page_no > 1).then_some(page_no - 1);
    let opt = |page: Option<u64>| page.map(|p| p.to_string()).unwrap_or_default();
    let mut links = Vec::with_capacity(3);
    let url = |p: u64| page_url(url_base, query, p, page.per_page);
    if let Some(prev) = prev {
        links.push(format!("<{}>; rel=\"prev\"", url(prev)));
    }
    if let Some(next) = next {
        links.push(format!("<{}>; rel=\"next\"", url(next)));
    }
    links.push(format!("<{}>; rel=\"first\"", url(1)));
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    set("x-per-page", page.per_page.to_string());
    set("x-page", page_no.to_string());
    set("x-next-page", opt(next));
    set("x-prev-page", opt(prev));
    set("link", links.join(", "));
    headers
}

/// The header of a keyset page: a `next` link carrying the cursor, when more follow.
pub fn keyset_headers(next_cursor: Option<&str>, url_base: &str, query: &QueryPairs) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(cursor) = next_cursor {
        let pairs = pairs_without(query, &["cursor"], vec![("cursor", cursor.to_owned())]);
        let link = format!("<{url_base}?{pairs}>; rel=\"next\"");
        if let Ok(value) = HeaderValue::from_str(&link) {
            headers.insert(HeaderName::from_static("link"), value);
        }
    }
    headers
}

fn page_url(base: &str, query: &QueryPairs, page: u64, per_page: u32) -> String {
    let pairs = pairs_without(
        query,
        &["page", "per_page"],
        vec![
            ("page", page.to_string()),
            ("per_page", per_page.to_string()),
        ],
    );
    format!("{base}?{pairs}")
}

/// The query with `replaced` keys (and any token) dropped and `added` put in, keys sorted,
/// as Rails' `to_query` writes it.
fn pairs_without<'a>(
    query: &'a QueryPairs,
    replaced: &[&str],
    added: Vec<(&'a str, String)>,
) -> String {
    let mut pairs: Vec<(&str, String)> = query
        .iter()
        // A token given in the query must not travel on in links (and into proxy logs).
        .filter(|(k, _)| !replaced.contains(k) && *k != "private_token")
        .map(|(k, v)| (k, v.to_owned()))
        .collect();
    pairs.extend(added);
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in &pairs {
        out.append_pair(k, v);
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(h: &HeaderMap, name: &str) -> String {
        h.get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_else(|| "<none>".into())
    }

    #[test]
    fn links_never_carry_the_private_token() {
        let query = QueryPairs::parse(Some("private_token=secret&scope=failed"));
        let info = PageInfo::new(
            PageRequest {
                page: 1,
                per_page: 2,
            },
            5,
        );
        let links = header(&headers(&info, "http://x/b", &query), "link");
        assert!(
            !links.contains("secret") && links.contains("scope=failed"),
            "{links}"
        );
    }

    #[test]
    fn middle_page_links_keep_other_params() {
        let query = QueryPairs::parse(Some("scope[]=failed&page=2&per_page=2"));
        let info = PageInfo::new(
            PageRequest {
                page: 2,
                per_page: 2,
            },
            5,
        );
        let h = headers(&info, "http://k/api/v3/projects/1/builds", &query);
        assert_eq!(header(&h, "x-total"), "5");
        assert_eq!(header(&h, "x-total-pages"), "3");
        assert_eq!(header(&h, "x-next-page"), "3");
        assert_eq!(header(&h, "x-prev-page"), "1");
        assert_eq!(
            header(&h, "link"),
            "<http://k/api/v3/projects/1/builds?page=1&per_page=2&scope%5B%5D=failed>; rel=\"prev\", \
             <http://k/api/v3/projects/1/builds?page=3&per_page=2&scope%5B%5D=failed>; rel=\"next\", \
             <http://k/api/v3/projects/1/builds?page=1&per_page=2&scope%5B%5D=failed>; rel=\"first\", \
             <http://k/api/v3/projects/1/builds?page=3&per_page=2&scope%5B%5D=failed>; rel=\"last\""
        );
    }

    #[test]
    fn empty_list_has_empty_next_and_prev() {
        let info = PageInfo::new(PageRequest::default(), 0);
        let h = headers(&info, "http://k/x", &QueryPairs::default());
        assert_eq!(header(&h, "x-next-page"), "");
        assert_eq!(header(&h, "x-prev-page"), "");
        assert_eq!(header(&h, "x-total-pages"), "1");
        assert!(!header(&h, "link").contains("rel=\"next\""));
    }
}
