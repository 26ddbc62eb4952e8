//! Errors, tagged pingora-style with where they come from, which decides the
//! status code (502/504/503 upstream, 400 downstream, 500/503 internal) and
//! whether a retry makes sense.

use std::time::Duration;

/// Which side of the edge an error comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorSource {
    /// The origin (or the path to it) failed, or is being protected.
    Upstream,
    /// The client's request is unusable.
    Downstream,
    /// The edge itself gave up (waiting, rate limit, abandoned fetches).
    Internal,
}

impl ErrorSource {
    /// `upstream`, `downstream` or `internal` (log field, metrics label).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorSource::Upstream => "upstream",
            ErrorSource::Downstream => "downstream",
            ErrorSource::Internal => "internal",
        }
    }
}

/// What a circuit breaker guards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BreakerScope {
    /// One object (path).
    Object,
    /// Every segment of one rendition (`live/NAME/REP`).
    Rendition,
    /// One origin server.
    Origin,
}

impl BreakerScope {
    /// `object`, `rendition` or `origin`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerScope::Object => "object",
            BreakerScope::Rendition => "rendition",
            BreakerScope::Origin => "origin",
        }
    }
}

impl std::fmt::Display for BreakerScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An origin fetch failure, as reported by the server's fetch closure or
/// body source. Error statuses are not errors here: a 5xx response is an
/// [`OriginResponse`](crate::OriginResponse) that the edge counts as a failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OriginError {
    /// No connection could be made.
    #[error("cannot connect to the origin: {0}")]
    Connect(String),
    /// The request failed before a response head arrived.
    #[error("origin request failed: {0}")]
    Request(String),
    /// The response body failed part way.
    #[error("origin body failed: {0}")]
    Body(String),
    /// Every origin for the stream is down or fail-fast.
    #[error("no origin available")]
    NoOrigin,
}

/// An edge failure. Cloneable: one failed fetch is handed to every
/// coalesced waiter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EdgeError {
    /// The origin fetch failed.
    #[error("origin: {0}")]
    Origin(#[from] OriginError),
    /// No response head from the origin within the adaptive timeout.
    #[error("origin timed out after {0:?}")]
    OriginTimeout(Duration),
    /// The origin stopped sending body chunks for this long.
    #[error("origin body stalled for {0:?}")]
    BodyTimeout(Duration),
    /// A circuit breaker is open: failing fast.
    #[error("circuit breaker open for {scope} {key}; retry in {retry_after:?}")]
    CircuitOpen {
        /// What is broken.
        scope: BreakerScope,
        /// Its key (object path, rendition prefix or origin name).
        key: String,
        /// Cool-down left (for `Retry-After`).
        retry_after: Duration,
        /// The same segment in the next lower rendition, when
        /// [`FallbackMode::LowerRendition`](crate::FallbackMode) allows it.
        fallback: Option<String>,
    },
    /// The per-object token bucket would make this request wait too long.
    #[error("origin fetches of {key} are rate limited; retry in {retry_after:?}")]
    RateLimited {
        /// The object.
        key: String,
        /// When a fetch will be allowed.
        retry_after: Duration,
    },
    /// This client has used its budget of origin fetches (a per-client limit of misses);
    /// others are not affected.
    #[error("too many requests that go to the origin from this address; retry in {retry_after:?}")]
    ClientRateLimited {
        /// When the client's budget allows another one.
        retry_after: Duration,
    },
    /// No progress from the coalesced fetch within the wait timeout.
    #[error("gave up waiting for the shared fetch after {0:?}")]
    WaitTimeout(Duration),
    /// The fetching requests kept going away without finishing.
    #[error("the shared fetch of {0} was abandoned repeatedly")]
    Abandoned(String),
    /// The object key is unusable.
    #[error("invalid object key {0:?}")]
    InvalidKey(String),
}

impl EdgeError {
    /// Where the error comes from.
    pub fn error_source(&self) -> ErrorSource {
        match self {
            EdgeError::Origin(_)
            | EdgeError::OriginTimeout(_)
            | EdgeError::BodyTimeout(_)
            | EdgeError::CircuitOpen { .. } => ErrorSource::Upstream,
            EdgeError::InvalidKey(_) | EdgeError::ClientRateLimited { .. } => {
                ErrorSource::Downstream
            }
            EdgeError::RateLimited { .. } | EdgeError::WaitTimeout(_) | EdgeError::Abandoned(_) => {
                ErrorSource::Internal
            }
        }
    }

    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            EdgeError::Origin(_) => 502,
            EdgeError::OriginTimeout(_) | EdgeError::BodyTimeout(_) | EdgeError::WaitTimeout(_) => {
                504
            }
            EdgeError::CircuitOpen { .. }
            | EdgeError::RateLimited { .. }
            | EdgeError::Abandoned(_) => 503,
            EdgeError::InvalidKey(_) => 400,
            EdgeError::ClientRateLimited { .. } => 429,
        }
    }

    /// The `Retry-After` to send, rounded up to whole seconds by the caller.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            EdgeError::CircuitOpen { retry_after, .. }
            | EdgeError::RateLimited { retry_after, .. }
            | EdgeError::ClientRateLimited { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// Whether the same request may succeed if retried later.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, EdgeError::InvalidKey(_))
    }

    /// The text a client may see: an origin failure without its detail, which names internal
    /// hosts and addresses (that stays in the edge's log).
    pub fn public_text(&self) -> String {
        match self {
            EdgeError::Origin(OriginError::Connect(_)) => {
                "origin: cannot connect to the origin".into()
            }
            EdgeError::Origin(OriginError::Request(_)) => "origin: origin request failed".into(),
            EdgeError::Origin(OriginError::Body(_)) => "origin: origin body failed".into(),
            e => e.to_string(),
        }
    }

    /// The lower-rendition substitute, if one is allowed.
    pub fn fallback(&self) -> Option<&str> {
        match self {
            EdgeError::CircuitOpen { fallback, .. } => fallback.as_deref(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_source_and_retry() {
        let open = EdgeError::CircuitOpen {
            scope: BreakerScope::Rendition,
            key: "live/a/v720".into(),
            retry_after: Duration::from_secs(4),
            fallback: Some("live/a/v400/3.m4s".into()),
        };
        assert_eq!(open.status(), 503);
        assert_eq!(open.error_source(), ErrorSource::Upstream);
        assert_eq!(open.retry_after(), Some(Duration::from_secs(4)));
        assert_eq!(open.fallback(), Some("live/a/v400/3.m4s"));
        assert!(open.to_string().contains("rendition live/a/v720"));
        let bad = EdgeError::InvalidKey(String::new());
        assert_eq!(
            (bad.status(), bad.error_source()),
            (400, ErrorSource::Downstream)
        );
        assert!(!bad.is_retryable());
        let inside: EdgeError =
            OriginError::Connect("http://10.1.2.3:8083: connection refused".into()).into();
        assert!(inside.to_string().contains("10.1.2.3"));
        assert_eq!(inside.public_text(), "origin: cannot connect to the origin");
        for o in [
            OriginError::Request("http://10.1.2.3/x".into()),
            OriginError::Body("10.1.2.3".into()),
        ] {
            assert!(!EdgeError::Origin(o).public_text().contains("10.1.2.3"));
        }
        assert_eq!(open.public_text(), open.to_string());
        let e: EdgeError = OriginError::Connect("refused".into()).into();
        assert_eq!((e.status(), e.error_source().as_str()), (502, "upstream"));
        assert_eq!(
            EdgeError::WaitTimeout(Duration::ZERO).error_source(),
            ErrorSource::Internal
        );
        assert_eq!(EdgeError::OriginTimeout(Duration::ZERO).status(), 504);
    }
}
