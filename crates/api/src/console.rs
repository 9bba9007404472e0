//! The web console's static files (`crates/api/console/`), embedded in the
//! binary so that any node serves them with nothing else installed and
//! nothing fetched from elsewhere: `/console/` is the page, `/console/{file}`
//! its scripts and style; `/` and `/console` redirect to `/console/`.
//!
//! The files hold no data: they need no token (the page asks for one and
//! sends it with every API call it makes). Each answer carries an `ETag`
//! (the build's digest of the file), so a reload costs a `304`.

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use crate::{ApiError, AppState};

/// One embedded file: its name under `/console/`, its media type, its bytes.
struct Asset {
    name: &'static str,
    media_type: &'static str,
    bytes: &'static [u8],
}

/// Every file of the console. A file added to `crates/api/console/` must be
/// listed here (the test `every_console_file_is_served` checks it).
const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        media_type: "text/html; charset=utf-8",
        bytes: include_bytes!("../console/index.html"),
    },
    Asset {
        name: "app.js",
        media_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../console/app.js"),
    },
    Asset {
        name: "graph.js",
        media_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../console/graph.js"),
    },
    Asset {
        name: "style.css",
        media_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../console/style.css"),
    },
];

/// The names of the embedded files (for tests and the size check).
pub fn asset_names() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|a| a.name)
}

/// The console's total size in bytes: what a first load transfers.
pub fn total_size() -> usize {
    ASSETS.iter().map(|a| a.bytes.len()).sum()
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console", get(|| async { Redirect::permanent("/console/") }))
        .route("/console/", get(|headers: HeaderMap| async move { serve("index.html", &headers) }))
        .route(
            "/console/{file}",
            get(|Path(file): Path<String>, headers: HeaderMap| async move { serve(&file, &headers) }),
        )
}

/// The root's answer to a browser: the console.
pub(crate) async fn root() -> Redirect {
    Redirect::permanent("/console/")
}

fn serve(name: &str, headers: &HeaderMap) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        let known: Vec<_> = asset_names().collect();
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "route_not_found",
            format!(
                "the console has no file `{name}`; it has {}",
                known.join(", ")
            ),
        )
        .into_response();
    };
    let etag = format!("\"{:016x}\"", fnv1a(asset.bytes));
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let mut response = asset.bytes.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.media_type),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    // Revalidate on every load: a new binary may bring new files.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // The page runs only its own scripts and talks only to this server.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// FNV-1a (64 bits): a cheap, stable digest for the `ETag` (not security).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
