//! Stream names: validated before they touch a map key, a path or a log line.

/// The RTMP application every stream lives under (`rtmp://HOST/live/NAME`), also the first
/// segment of its HTTP paths (`/live/NAME/…`).
pub const APP: &str = "live";

/// Longest stream name.
pub const MAX_NAME_LEN: usize = 64;

/// `[A-Za-z0-9_-]{1,64}`.
pub fn is_valid_stream_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The value of `key=` in a query string such as `key=SECRET&foo=bar`.
pub fn query_param<'a>(query: Option<&'a str>, param: &str) -> Option<&'a str> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == param).then_some(v)
    })
}

/// Separates a stream name from a rendition id in the hub (`demo~v720`); stream names cannot
/// contain it, so renditions never collide with published names.
pub const RENDITION_SEP: char = '~';

/// Hub name of rendition `rep` of stream `name`.
pub fn rendition_name(name: &str, rep: &str) -> String {
    format!("{name}{RENDITION_SEP}{rep}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_valid_stream_name("demo_1-A"));
        for bad in [
            "",
            "../etc",
            "a/b",
            "a b",
            "é",
            &"x".repeat(65),
            "a?b",
            "a%2e",
        ] {
            assert!(!is_valid_stream_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn query() {
        assert_eq!(query_param(Some("key=abc&x=1"), "key"), Some("abc"));
        assert_eq!(query_param(Some("x=1&key=a=b"), "key"), Some("a=b"));
        assert_eq!(query_param(Some("keys=abc"), "key"), None);
        assert_eq!(query_param(None, "key"), None);
    }
}
