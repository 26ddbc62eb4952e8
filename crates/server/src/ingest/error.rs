//! Why an HTTP push was refused or ended, each with the status that says whose fault it is.

use std::net::IpAddr;

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use metrics::counter;

use crate::{auth::AuthError, stream::HubError};

/// An HTTP push's refusal (before the stream starts) or its end (a refusal mid-stream, bad
/// input). The text is what the broadcaster's tool prints: it says what to do.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// This server takes no HTTP push (a cluster role, or a relaying node).
    #[error("{0}")]
    NoIngest(&'static str),
    /// Not a stream name.
    #[error("invalid stream name {0:?}: use 1-64 characters of A-Z a-z 0-9 _ -")]
    BadName(String),
    /// The key check failed.
    #[error("{}", push_auth_text(.0))]
    Auth(AuthError),
    /// The per-address connection cap.
    #[error("{0} already holds {1} connections (the per-address limit, max_connections_per_ip); end one first")]
    PerAddress(IpAddr, usize),
    /// The server's publisher connections are all taken.
    #[error("the server is at its connection limit (max_connections): try again later")]
    Full,
    /// Someone publishes this name already.
    #[error(transparent)]
    Busy(#[from] HubError),
    /// The body is neither FLV nor MPEG-TS.
    #[error("the body is neither FLV nor MPEG-TS: push with ffmpeg -c:v libx264 -c:a aac -f flv (or -f mpegts) -method POST URL")]
    NotMedia,
    /// MPEG-TS without a stream we take.
    #[error("{0}")]
    Unsupported(String),
    /// The body's FLV or TS is broken.
    #[error("bad {0} from the broadcaster: {1}")]
    BadInput(&'static str, media::MediaError),
    /// The validator refused the stream (codec, size, rate…).
    #[error("stream {name:?} refused: {reason}")]
    Refused {
        /// The stream.
        name: String,
        /// The validator's reason.
        reason: String,
    },
    /// Nothing the validator could accept arrived in time.
    #[error("stream {0:?}: no playable audio or video within {1} s of the request; send H.264/AAC (ffmpeg -c:v libx264 -c:a aac -f flv, or -f mpegts)")]
    NotAccepted(String, u64),
}

fn push_auth_text(e: &AuthError) -> String {
    match e {
        AuthError::MissingKey(name) => format!(
            "stream key missing: push to /ingest/live/{name}?key=SECRET or send Authorization: Bearer SECRET"
        ),
        AuthError::UnknownName(name) => format!(
            "stream key rejected: no publish key is configured for {name:?} — add one with `ferrocast keys add {name}` (or --publish-key {name}=SECRET) and push to /ingest/live/{name}?key=SECRET"
        ),
        other => other.to_string(),
    }
}

impl PushError {
    /// The status: 4xx for what the broadcaster can fix, 503 for the server's limits.
    pub fn status(&self) -> StatusCode {
        match self {
            PushError::NoIngest(_) => StatusCode::NOT_FOUND,
            PushError::BadName(_) | PushError::BadInput(..) => StatusCode::BAD_REQUEST,
            PushError::Auth(AuthError::TooManyAttempts { .. }) | PushError::PerAddress(..) => {
                StatusCode::TOO_MANY_REQUESTS
            }
            PushError::Auth(_) => StatusCode::UNAUTHORIZED,
            PushError::Full => StatusCode::SERVICE_UNAVAILABLE,
            PushError::Busy(_) => StatusCode::CONFLICT,
            PushError::NotMedia | PushError::Unsupported(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            PushError::Refused { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            PushError::NotAccepted(..) => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// Short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            PushError::NoIngest(_) => "no_ingest",
            PushError::BadName(_) => "bad_name",
            PushError::Auth(e) => e.label(),
            PushError::PerAddress(..) => "per_address",
            PushError::Full => "full",
            PushError::Busy(_) => "busy",
            PushError::NotMedia => "not_media",
            PushError::Unsupported(_) => "unsupported_media",
            PushError::BadInput(..) => "bad_input",
            PushError::Refused { .. } => "unsupported_media",
            PushError::NotAccepted(..) => "not_accepted",
        }
    }
}

impl IntoResponse for PushError {
    fn into_response(self) -> Response {
        counter!("ferrocast_publish_rejected_total", "reason" => self.label(), "protocol" => "http")
            .increment(1);
        let mut r = (self.status(), format!("{self}\n")).into_response();
        let h = r.headers_mut();
        match &self {
            PushError::Full | PushError::PerAddress(..) => {
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            PushError::Auth(AuthError::TooManyAttempts {
                retry_after_secs, ..
            }) => {
                h.insert(header::RETRY_AFTER, (*retry_after_secs).into());
            }
            // RFC 6750 §3: a 401 says which scheme to use.
            PushError::Auth(_) => {
                h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        r
    }
}
