//! The console's static files, compiled into the binary: htmx (vendored, see
//! `static/VENDORED.md`), the stylesheet and a few lines of script. Nothing is fetched at run
//! time. The versioned htmx is cached for a year; the stylesheet and script for an hour.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

pub(crate) const HTMX: &str = "htmx-2.0.11.min.js";
pub(crate) const CSS: &str = "console.css";
pub(crate) const JS: &str = "console.js";

static HTMX_BYTES: &[u8] = include_bytes!("static/htmx-2.0.11.min.js");
static CSS_BYTES: &[u8] = include_bytes!("static/console.css");
static JS_BYTES: &[u8] = include_bytes!("static/console.js");

pub(crate) async fn serve(Path(file): Path<String>) -> Response {
    const YEAR: &str = "public, max-age=31536000, immutable";
    const HOUR: &str = "public, max-age=3600";
    let (bytes, kind, cache) = match file.as_str() {
        f if f == HTMX => (HTMX_BYTES, "text/javascript; charset=utf-8", YEAR),
        f if f == CSS => (CSS_BYTES, "text/css; charset=utf-8", HOUR),
        f if f == JS => (JS_BYTES, "text/javascript; charset=utf-8", HOUR),
        _ => {
            return super::message(StatusCode::NOT_FOUND, "Not found", "There is no such file.");
        }
    };
    let mut res = bytes.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}
