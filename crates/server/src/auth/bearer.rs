//! The publish key of an HTTP publish (WHIP, HTTP push) in an `Authorization: Bearer` header.

use axum::http::{header, HeaderMap};

/// The Bearer token of an `Authorization` header (RFC 6750 §2.1), if there is one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::AUTHORIZATION, v.parse().unwrap());
            m
        };
        assert_eq!(bearer(&h("Bearer s3cret")), Some("s3cret"));
        assert_eq!(bearer(&h("bearer  s3cret ")), Some("s3cret"));
        assert_eq!(bearer(&h("Basic czNjcmV0")), None);
        assert_eq!(bearer(&h("Bearer ")), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }
}
