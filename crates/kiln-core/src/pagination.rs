//! GitLab's offset pagination (Kaminari): `page` from 1, `per_page` 20 by default and at most 100.

pub const DEFAULT_PER_PAGE: u32 = 20;
pub const MAX_PER_PAGE: u32 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub page: u32,
    pub per_page: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaginationError {
    #[error("page is invalid")]
    Page,
    #[error("per_page is invalid")]
    PerPage,
}

impl Default for PageRequest {
    fn default() -> Self {
        PageRequest {
            page: 1,
            per_page: DEFAULT_PER_PAGE,
        }
    }
}

impl PageRequest {
    /// Parses the raw parameters. Like Grape's `type: Integer`, a value that is not an integer is
    /// an error; like Kaminari, a page below 1 is page 1, and `per_page` is capped at 100.
    pub fn parse(
        page: Option<&str>,
        per_page: Option<&str>,
    ) -> Result<PageRequest, PaginationError> {
        let page = match page.filter(|p| !p.is_empty()) {
            None => 1,
            Some(raw) => parse_int(raw).ok_or(PaginationError::Page)?.max(1),
        };
        let per_page = match per_page.filter(|p| !p.is_empty()) {
            None => DEFAULT_PER_PAGE as i64,
            Some(raw) => match parse_int(raw).ok_or(PaginationError::PerPage)? {
                n if n < 1 => DEFAULT_PER_PAGE as i64,
                n => n.min(MAX_PER_PAGE as i64),
            },
        };
        Ok(PageRequest {
            page: u32::try_from(page).unwrap_or(u32::MAX),
            per_page: per_page as u32,
        })
    }

    pub fn offset(&self) -> u64 {
        (self.page as u64 - 1) * self.per_page as u64
    }
}

fn parse_int(raw: &str) -> Option<i64> {
    raw.trim().parse::<i64>().ok()
}

/// What the pagination headers say about one page of a list of `total` items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageInfo {
    pub page: u32,
    pub per_page: u32,
    pub total: u64,
    /// At least 1, as in later GitLab 8.x helpers, so `rel="last"` always points at a page.
    pub total_pages: u64,
}

impl PageInfo {
    pub fn new(request: PageRequest, total: u64) -> PageInfo {
        let per_page = request.per_page as u64;
        PageInfo {
            page: request.page,
            per_page: request.per_page,
            total,
            total_pages: total.div_ceil(per_page).max(1),
        }
    }

    pub fn next_page(&self) -> Option<u64> {
        let page = self.page as u64;
        (page < self.total_pages).then_some(page + 1)
    }

    /// Kaminari 0.16 (GitLab 8.x): every page but the first has a previous one, even a page
    /// past the end.
    pub fn prev_page(&self) -> Option<u64> {
        let page = self.page as u64;
        (page > 1).then_some(page - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        assert_eq!(
            PageRequest::parse(None, None),
            Ok(PageRequest {
                page: 1,
                per_page: 20
            })
        );
        assert_eq!(
            PageRequest::parse(Some(""), Some("")),
            Ok(PageRequest::default())
        );
    }

    #[test]
    fn per_page_is_capped_at_100() {
        assert_eq!(
            PageRequest::parse(None, Some("1000")).unwrap().per_page,
            100
        );
        assert_eq!(PageRequest::parse(None, Some("0")).unwrap().per_page, 20);
    }

    #[test]
    fn non_integers_are_errors() {
        assert_eq!(
            PageRequest::parse(Some("abc"), None),
            Err(PaginationError::Page)
        );
        assert_eq!(
            PageRequest::parse(Some("1.5"), None),
            Err(PaginationError::Page)
        );
        assert_eq!(
            PageRequest::parse(None, Some("x")),
            Err(PaginationError::PerPage)
        );
    }

    #[test]
    fn page_below_one_is_page_one() {
        assert_eq!(PageRequest::parse(Some("-3"), None).unwrap().page, 1);
        assert_eq!(PageRequest::parse(Some("0"), None).unwrap().page, 1);
    }

    #[test]
    fn huge_page_saturates() {
        assert_eq!(
            PageRequest::parse(Some("99999999999"), None).unwrap().page,
            u32::MAX
        );
    }

    #[test]
    fn page_info_first_middle_last_empty() {
        let req = |page| PageRequest { page, per_page: 10 };
        let first = PageInfo::new(req(1), 25);
        assert_eq!(
            (first.total_pages, first.prev_page(), first.next_page()),
            (3, None, Some(2))
        );
        let middle = PageInfo::new(req(2), 25);
        assert_eq!((middle.prev_page(), middle.next_page()), (Some(1), Some(3)));
        let last = PageInfo::new(req(3), 25);
        assert_eq!((last.prev_page(), last.next_page()), (Some(2), None));
        let empty = PageInfo::new(req(1), 0);
        assert_eq!(
            (empty.total_pages, empty.prev_page(), empty.next_page()),
            (1, None, None)
        );
        assert_eq!(req(3).offset(), 20);
        let beyond = PageInfo::new(req(7), 25);
        assert_eq!((beyond.prev_page(), beyond.next_page()), (Some(6), None));
    }
}
