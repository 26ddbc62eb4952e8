//! One error type for every HTTP handler (origin and edge), with the party at fault in the
//! variant: the client sees a status and a reason that says what to do; what went wrong inside
//! (a store or upstream failure, our own bug) is logged, not sent.

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// The client asked for something malformed: 400 with the reason.
    #[error("{0}")]
    BadRequest(String),
    /// Nothing there (not live, no such segment): 404 with the reason, not cached.
    #[error("{0}")]
    NotFound(String),
    /// A backend this server depends on failed (the segment store): 503; the detail is logged.
    #[error("{what} unavailable: {detail}")]
    Backend {
        /// What the client is told is unavailable.
        what: &'static str,
        /// The backend's error, for the log only.
        detail: String,
    },
    /// The edge's upstream failed or refused (origin down, breaker open): its status, and
    /// `Retry-After` when waiting helps.
    #[error("edge: {0}")]
    Upstream(#[from] edge::EdgeError),
    /// The client's address made too many requests that cost a backend round trip: 429 with
    /// `Retry-After`.
    #[error(
        "too many requests for segments that are not in memory from this address; retry in {0:?}"
    )]
    TooManyRequests(std::time::Duration),
    /// Our own bug (a response that could not be built): 500; logged.
    #[error("internal error: {0}")]
    Internal(#[from] axum::http::Error),
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            AppError::BadRequest(msg) => (StatusCode::BAD_REQUEST, msg + "\n").into_response(),
            AppError::NotFound(msg) => (
                StatusCode::NOT_FOUND,
                [(header::CACHE_CONTROL, "no-cache")],
                msg + "\n",
            )
                .into_response(),
            AppError::Backend { what, detail } => {
                tracing::warn!("{what}: {detail}");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("{what} unavailable\n"),
                )
                    .into_response()
            }
            AppError::Upstream(e) => {
                let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_GATEWAY);
                let public = e.public_text();
                if public != e.to_string() {
                    tracing::debug!("edge: {e}");
                }
                let mut r =
                    (status, [("x-cache", "ERROR")], format!("edge: {public}\n")).into_response();
                if let Some(d) = e.retry_after() {
                    let secs = d.as_secs_f64().ceil().max(1.0) as u64;
                    r.headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
                }
                r
            }
            AppError::TooManyRequests(wait) => {
                let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::RETRY_AFTER, HeaderValue::from(secs))],
                    format!("too many requests for segments not in memory from this address; retry in {secs} s\n"),
                )
                    .into_response()
            }
            AppError::Internal(e) => {
                tracing::error!("could not build a response: {e}");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    }
}

/// What handlers return.
pub type AppResult<T = Response> = Result<T, AppError>;
