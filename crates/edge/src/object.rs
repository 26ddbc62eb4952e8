//! The objects the edge stores and replays: the response head it keeps,
//! a complete [`CachedObject`], and entity tags (RFC 9110 §8.8.3, §13.1.2).
//! Pure: ages and freshness are computed from the `now` passed in.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use md5::{Digest, Md5};

/// Status and the header subset the edge keeps and replays.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObjectHead {
    /// HTTP status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// `Cache-Control` as the origin sent it (replayed to clients).
    pub cache_control: Option<String>,
    /// `ETag` (the origin's, or [`etag_of`] the body once it is complete).
    pub etag: Option<String>,
    /// `Content-Length`, when known before the body ends.
    pub content_length: Option<u64>,
}

/// A complete object in the cache.
#[derive(Debug, Clone)]
pub struct CachedObject {
    /// Status and headers; `etag` and `content_length` are always set.
    pub head: Arc<ObjectHead>,
    /// The whole body.
    pub body: Bytes,
    /// When it was stored (for `Age` and freshness).
    pub stored_at: Instant,
    /// Freshness lifetime from the [`CachePolicy`](crate::CachePolicy).
    pub ttl: Duration,
}

impl CachedObject {
    /// Builds an entry; a missing ETag is computed from the body and the
    /// content length is set from it.
    pub fn new(mut head: ObjectHead, body: Bytes, stored_at: Instant, ttl: Duration) -> Self {
        if head.etag.is_none() {
            head.etag = Some(etag_of(&body));
        }
        head.content_length = Some(body.len() as u64);
        CachedObject {
            head: Arc::new(head),
            body,
            stored_at,
            ttl,
        }
    }

    /// Time since it was stored (the `Age` header, in whole seconds).
    pub fn age(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.stored_at)
    }

    /// Still within its TTL at `now`.
    pub fn is_fresh(&self, now: Instant) -> bool {
        self.age(now) < self.ttl
    }

    /// The entity tag (always present on a cached object).
    pub fn etag(&self) -> &str {
        self.head.etag.as_deref().unwrap_or_default()
    }
}

/// A strong entity tag from the body: `"` + hex MD5 + `"`. Stable across
/// processes and edges, so every edge gives the same ETag for one object.
pub fn etag_of(body: &[u8]) -> String {
    let d = Md5::digest(body);
    let mut s = String::with_capacity(34);
    s.push('"');
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s.push('"');
    s
}

/// Whether an `If-None-Match` header value matches `etag` (weak comparison,
/// RFC 9110 §13.1.2: `*`, or any listed tag equal ignoring `W/`).
pub fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    let strip = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    let etag = strip(etag);
    if_none_match
        .split(',')
        .any(|t| t.trim() == "*" || strip(t) == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags() {
        let e = etag_of(b"");
        assert_eq!(e, "\"d41d8cd98f00b204e9800998ecf8427e\"");
        assert!(etag_matches(&e, &e));
        assert!(etag_matches(
            "\"x\", W/\"d41d8cd98f00b204e9800998ecf8427e\"",
            &e
        ));
        assert!(etag_matches("*", &e));
        assert!(!etag_matches("\"x\"", &e));
        let ttl = Duration::from_secs(1);
        let obj = CachedObject::new(ObjectHead::default(), "abc".into(), Instant::now(), ttl);
        assert_eq!(obj.etag(), etag_of(b"abc"));
        assert_eq!(obj.head.content_length, Some(3));
        let h = ObjectHead {
            etag: Some("\"origin\"".into()),
            ..ObjectHead::default()
        };
        let obj = CachedObject::new(h, Bytes::new(), Instant::now(), ttl);
        assert_eq!(obj.etag(), "\"origin\"");
    }
}
