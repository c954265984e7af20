//! The console's stylesheet and script, compiled into the binary: nothing
//! to build, nothing fetched from elsewhere. Both are the project's own
//! and short enough to review.

use axum::extract::Path;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::layout;

const CSS: &str = include_str!("static/console.css");
const JS: &str = include_str!("static/console.js");

pub(super) async fn serve(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return layout::not_found(),
    };
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(kind))],
        body,
    )
        .into_response()
}
