//! Waldur's list: its filters, page-number pagination (DRF's
//! `PageNumberPagination`: `page`, `page_size` default 10, at most 300), the
//! total in `X-Result-Count` and first/prev/next/last in `Link`.

use axum::http::StatusCode;
use uuid::Uuid;

use super::wire::WaldurError;
use super::Kind;
use crate::admin::dialects::uuid_any;
use crate::store::{AccountFilter, AccountState};

const DEFAULT_PAGE_SIZE: u32 = 10;
const MAX_PAGE_SIZE: u32 = 300;
/// The longest `Link` a list answers: it repeats the query four times, and
/// clients refuse a response head past 64 KiB. A longer one is left out
/// (the page and `X-Result-Count` still answer).
const MAX_LINK: usize = 8 * 1024;

/// A list request, parsed.
pub(super) struct ListQuery {
    /// The query as sent, for the `Link` URLs.
    pairs: Vec<(String, String)>,
    pub(super) filter: AccountFilter,
    /// Case-insensitive substring of the `email` attribute.
    pub(super) email: Option<String>,
    page: PageNumber,
    pub(super) page_size: u32,
    /// A scope filter that names nothing: the answer is empty.
    pub(super) matches_nothing: bool,
}

/// Which page the query asks for.
enum PageNumber {
    Number(u64),
    Last,
    Invalid,
}

/// The last non-empty path segment of a URL or path, as an id (Waldur's
/// `project=<project URL>` filter); `None` when it is not one.
fn id_of_url(s: &str) -> Option<Uuid> {
    let path = s.split(['?', '#']).next().unwrap_or("");
    path.rsplit('/')
        .find(|seg| !seg.is_empty())
        .and_then(uuid_any)
}

impl ListQuery {
    pub(super) fn parse(kind: Kind, query: Option<&str>) -> Result<Self, WaldurError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
            .map_err(|_| WaldurError::detail(StatusCode::BAD_REQUEST, "Malformed query string."))?;
        let mut q = ListQuery {
            filter: AccountFilter {
                in_project: Some(kind == Kind::Project),
                ..AccountFilter::default()
            },
            email: None,
            page: PageNumber::Number(1),
            page_size: DEFAULT_PAGE_SIZE,
            matches_nothing: false,
            pairs: Vec::new(),
        };
        let scope = kind.path();
        let scope_uuid = format!("{scope}_uuid");
        for (k, v) in &pairs {
            match k.as_str() {
                "username" => q.filter.name = Some(v.clone()),
                "email" => q.email = Some(v.to_lowercase()),
                "state" => {
                    let states: &[AccountState] = match v.as_str() {
                        "OK" => &[AccountState::Active],
                        "Closed" => &[AccountState::Closed],
                        "Erred" => &[AccountState::Disabled, AccountState::Expired],
                        other => {
                            return Err(WaldurError::field(
                                "state",
                                format!(
                                    "Select a valid choice. {other} is not one of the available choices."
                                ),
                            ))
                        }
                    };
                    q.filter.states.extend_from_slice(states);
                }
                "page" => {
                    q.page = match v.as_str() {
                        "last" => PageNumber::Last,
                        n => n
                            .parse::<u64>()
                            .ok()
                            .filter(|n| *n >= 1)
                            .map_or(PageNumber::Invalid, PageNumber::Number),
                    }
                }
                "page_size" => {
                    if let Some(n) = v.parse::<u32>().ok().filter(|n| *n >= 1) {
                        q.page_size = n.min(MAX_PAGE_SIZE);
                    }
                }
                k if k == scope_uuid => {
                    let id = uuid_any(v)
                        .ok_or_else(|| WaldurError::field(&scope_uuid, "Enter a valid UUID."))?;
                    q.narrow(kind, id);
                }
                k if k == scope => match id_of_url(v) {
                    Some(id) => q.narrow(kind, id),
                    None => q.matches_nothing = true,
                },
                _ => {}
            }
        }
        q.pairs = pairs;
        Ok(q)
    }

    fn narrow(&mut self, kind: Kind, id: Uuid) {
        let slot = match kind {
            Kind::Project => &mut self.filter.project_id,
            Kind::Customer => &mut self.filter.organization_id,
        };
        if slot.is_some_and(|prior| prior != id) {
            self.matches_nothing = true;
        }
        *slot = Some(id);
    }

    /// The page asked for by number, if it was (not `last`, not garbage).
    pub(super) fn page_number(&self) -> Option<u64> {
        match self.page {
            PageNumber::Number(n) => Some(n),
            _ => None,
        }
    }

    /// The page to show of `total` results (1-based), or 404 `Invalid page.`
    pub(super) fn page_of(&self, total: u64) -> Result<u64, WaldurError> {
        let pages = self.pages(total);
        match self.page {
            PageNumber::Number(n) if n <= pages => Ok(n),
            PageNumber::Last => Ok(pages),
            _ => Err(WaldurError::detail(StatusCode::NOT_FOUND, "Invalid page.")),
        }
    }

    fn pages(&self, total: u64) -> u64 {
        total.div_ceil(u64::from(self.page_size)).max(1)
    }

    /// The `Link` header: absolute URLs keeping every parameter of the
    /// request but `page`; commas and semicolons stay percent-encoded, as
    /// clients split the header on them. `None` past [`MAX_LINK`] bytes.
    pub(super) fn link(&self, base: &str, page: u64, total: u64) -> Option<String> {
        // Each URL holds the query once; four would not fit.
        let query: usize = self.pairs.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
        if 4 * (base.len() + query) > MAX_LINK {
            return None;
        }
        let pages = self.pages(total);
        let url = |n: Option<u64>| {
            let mut pairs: Vec<(&str, String)> = self
                .pairs
                .iter()
                .filter(|(k, _)| k != "page")
                .map(|(k, v)| (k.as_str(), v.clone()))
                .collect();
            if let Some(n) = n.filter(|n| *n > 1) {
                pairs.insert(0, ("page", n.to_string()));
            }
            let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
            if query.is_empty() {
                base.to_string()
            } else {
                format!("{base}?{query}")
            }
        };
        let mut parts = vec![format!("<{}>; rel=\"first\"", url(None))];
        if page > 1 {
            parts.push(format!("<{}>; rel=\"prev\"", url(Some(page - 1))));
        }
        if page < pages {
            parts.push(format!("<{}>; rel=\"next\"", url(Some(page + 1))));
        }
        parts.push(format!("<{}>; rel=\"last\"", url(Some(pages))));
        Some(parts.join(", ")).filter(|l| l.len() <= MAX_LINK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_keep_filters_and_carry_the_page_in_next() {
        let q = ListQuery::parse(Kind::Project, Some("page=2&page_size=2&username=a,b")).unwrap();
        let page = q.page_of(5).unwrap();
        assert_eq!(page, 2);
        let link = q.link("http://h/x/", page, 5).unwrap();
        assert!(
            link.contains("<http://h/x/?page_size=2&username=a%2Cb>; rel=\"first\""),
            "{link}"
        );
        assert!(
            link.contains("<http://h/x/?page_size=2&username=a%2Cb>; rel=\"prev\""),
            "{link}"
        );
        assert!(
            link.contains("<http://h/x/?page=3&page_size=2&username=a%2Cb>; rel=\"next\""),
            "{link}"
        );
        assert!(
            link.contains("page=3&page_size=2&username=a%2Cb>; rel=\"last\""),
            "{link}"
        );
    }

    #[test]
    fn pages_past_the_end_and_garbage_are_invalid() {
        let q = ListQuery::parse(Kind::Customer, Some("page=3")).unwrap();
        assert!(q.page_of(21).is_ok());
        assert!(q.page_of(20).is_err());
        assert!(ListQuery::parse(Kind::Customer, Some("page=0"))
            .unwrap()
            .page_of(1)
            .is_err());
        // Page 1 of nothing is fine.
        assert_eq!(
            ListQuery::parse(Kind::Customer, None)
                .unwrap()
                .page_of(0)
                .unwrap(),
            1
        );
    }

    #[test]
    fn scope_urls_name_their_last_segment() {
        let id = Uuid::now_v7();
        assert_eq!(
            id_of_url(&format!("http://w/api/projects/{}/", id.simple())),
            Some(id)
        );
        assert_eq!(id_of_url("http://w/api/projects/nope/"), None);
    }
}
