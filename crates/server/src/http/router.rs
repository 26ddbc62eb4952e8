//! The origin's HTTP router: every route in one table, CORS for players on other origins.

use axum::{
    extract::State,
    http::{header, HeaderValue, Method, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};

use super::{api, origin, player, state::HttpState};

/// The router, separate from the listener so tests can call it directly.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/", get(api::index))
        .route("/healthz", get(|State(st): State<HttpState>| async move { st.health.respond().await }))
        .route("/api/streams", get(api::streams))
        .route("/metrics", get(api::metrics))
        .route("/time", get(origin::time))
        .route("/live/{name}/manifest.mpd", get(origin::manifest))
        .route("/live/{name}/master.m3u8", get(origin::hls_master))
        .route("/live/{name}/{rep}/{file}", get(origin::segment))
        .merge(player::routes())
        .fallback(fallback)
        .layer(axum::middleware::map_response(cors))
        .with_state(state)
}

/// Browser players on other origins (dash.js on a CDN page) must be able to read everything,
/// including the `Date` header dash.js falls back to for clock sync.
pub async fn cors(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("Date, Content-Length, Age"));
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, HEAD, OPTIONS"));
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("Range, Content-Type"));
    r
}

async fn fallback(method: Method) -> Response {
    if method == Method::OPTIONS {
        return StatusCode::NO_CONTENT.into_response();
    }
    (StatusCode::NOT_FOUND, "not found: see / for the live streams and /api/streams for the API\n").into_response()
}

