//! The origin's HTTP router: every route in one table, CORS for players on other origins.

use axum::{
    extract::State,
    http::{header, Method, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};

use tower_http::cors::{Any, CorsLayer};

use super::{api, origin, player, recordings, state::HttpState};

/// The router, separate from the listener so tests can call it directly.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/", get(api::index))
        .route("/api/streams", get(api::streams))
        .route("/time", get(origin::time))
        .route("/live/{name}/manifest.mpd", get(origin::manifest))
        .route("/live/{name}/master.m3u8", get(origin::hls_master))
        .route("/live/{name}/{rep}/{file}", get(origin::playlist))
        .route("/live/{name}/{pres}/{rep}/{file}", get(origin::segment))
        .route("/api/recordings", get(recordings::list))
        .route("/recordings/{name}/{id}/{file}", get(recordings::manifest))
        .route(
            "/recordings/{name}/{id}/{rep}/{file}",
            get(recordings::rep_file_get),
        )
        .merge(player::routes())
        .merge(crate::webrtc::routes())
        .fallback(fallback)
        .layer(cors())
        // The operator's routes come after the CORS layer: no page on another origin reads
        // health or metrics (monitoring fetches them server to server).
        .route(
            "/healthz",
            get(|State(st): State<HttpState>| async move { st.health.respond().await }),
        )
        .route(
            "/internal/healthz",
            get(
                |State(st): State<HttpState>,
                 peer: Option<
                    axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>,
                >| async move { st.health.respond_detail(peer).await },
            ),
        )
        .route("/metrics", get(api::metrics))
        .with_state(state)
}

/// Browser players on other origins (dash.js on a CDN page) must be able to read everything,
/// including the `Date` header dash.js falls back to for clock sync. Preflights are answered
/// by the layer itself.
pub fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        // POST, DELETE and PATCH for WHEP (a page on another origin plays over WebRTC).
        .allow_methods([
            Method::GET,
            Method::HEAD,
            Method::OPTIONS,
            Method::POST,
            Method::DELETE,
            Method::PATCH,
        ])
        .allow_headers([header::RANGE, header::CONTENT_TYPE, header::AUTHORIZATION])
        .expose_headers([
            header::DATE,
            header::CONTENT_LENGTH,
            header::AGE,
            // hls.js reads the size of a part's byte range from it.
            header::CONTENT_RANGE,
            header::LOCATION,
        ])
        // The answer does not depend on the Origin: one cached copy serves every page.
        .vary([])
}

async fn fallback() -> Response {
    (
        StatusCode::NOT_FOUND,
        "not found: see / for the live streams and /api/streams for the API\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use axum::{body::Body, http::Request};
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn players_on_other_origins_can_read_responses_and_preflight() {
        let app = Router::new()
            .route("/time", get(origin::time))
            .layer(cors());
        let r = app
            .clone()
            .oneshot(
                Request::get("/time")
                    .header(header::ORIGIN, "https://player.example")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        let exposed = r.headers()[header::ACCESS_CONTROL_EXPOSE_HEADERS]
            .to_str()
            .unwrap()
            .to_ascii_lowercase();
        assert!(
            exposed.contains("date") && exposed.contains("age"),
            "{exposed}"
        );
        let pre = app
            .oneshot(
                Request::builder()
                    .method(Method::OPTIONS)
                    .uri("/live/x/manifest.mpd")
                    .header(header::ORIGIN, "https://player.example")
                    .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET")
                    .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "range")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert!(pre.status().is_success());
        assert_eq!(pre.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert!(pre.headers()[header::ACCESS_CONTROL_ALLOW_METHODS]
            .to_str()
            .unwrap()
            .contains("GET"));
        assert!(pre.headers()[header::ACCESS_CONTROL_ALLOW_HEADERS]
            .to_str()
            .unwrap()
            .to_ascii_lowercase()
            .contains("range"));
    }
}
