//! The technician's page: `/`, `/app.js` and `/app.css`, on the same listener as `/status`.
//!
//! One static page, its stylesheet and a small script, embedded in the binary with
//! `include_str!`: it must work on a site with no internet, so no CDN and no external font.
//! The script polls `/status` every second and draws it; it only reads (every route here is a
//! `GET`). Device names, error strings and reasons come from devices and configuration files,
//! so the script writes them as text (`textContent`), never as HTML.
//!
//! Each answer carries a Content-Security-Policy of `default-src 'self'`, with no inline script
//! or style allowed: even a name that slipped through as markup could not run, and the page
//! talks to no one but the gateway. `X-Content-Type-Options: nosniff` keeps a browser from
//! guessing types; `frame-ancestors 'none'` keeps the page out of frames.

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

const INDEX_HTML: &str = include_str!("page/index.html");
const APP_JS: &str = include_str!("page/app.js");
const APP_CSS: &str = include_str!("page/app.css");

/// The policy every answer of the gateway's listener carries (`/status` too).
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The page's routes, to merge into the status router.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
}

/// An embedded file. `no-cache`: a browser revalidates, so an upgraded gateway's page is
/// never mixed with an old script.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}
