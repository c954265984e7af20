//! The console's pages, one file per family. Each handler takes the
//! signed-in caller ([`super::session::Signed`]) or a checked form
//! ([`super::form::Posted`]), calls `manage` as `/v1` does, and renders.

pub(super) mod account;
pub(super) mod account_writes;
pub(super) mod accounts;
pub(super) mod orgs;
pub(super) mod sign_in;
pub(super) mod system;

use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use super::layout;
use super::session::Signed;

/// `/console/`: the organizations, once signed in.
pub(super) async fn home(_: Signed) -> Response {
    layout::see_other("/console/organizations")
}

/// A path or query that names nothing: "no such page".
pub(super) struct NoSuchPage;

impl IntoResponse for NoSuchPage {
    fn into_response(self) -> Response {
        layout::not_found()
    }
}

/// An id from a path or query; anything else reads as "no such page".
pub(super) fn id(text: &str) -> Result<Uuid, NoSuchPage> {
    Uuid::parse_str(text).map_err(|_| NoSuchPage)
}

/// An optional id from a query string: empty is none, garbage is a 404.
pub(super) fn query_id(text: Option<&str>) -> Result<Option<Uuid>, NoSuchPage> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => id(t).map(Some),
    }
}
