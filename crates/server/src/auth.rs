//! Publish authorization: open mode, or a secret per stream name compared in constant time.

use std::collections::BTreeMap;

use subtle::ConstantTimeEq;

/// Publish keys by stream name; empty means anyone may publish any name.
#[derive(Debug, Clone, Default)]
pub struct PublishAuth {
    keys: BTreeMap<String, String>,
}

/// Why a publish was not authorized. The text goes to the broadcaster, so it says what to do.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// No key configured for this name.
    #[error("stream key rejected: no publish key is configured for {0:?} — add one with --publish-key {0}=SECRET (or [auth.keys] in the config) and publish to live/{0}?key=SECRET")]
    UnknownName(String),
    /// No `?key=` given.
    #[error("stream key missing: publish to live/{0}?key=SECRET (OBS: stream key \"{0}?key=SECRET\")")]
    MissingKey(String),
    /// Wrong secret.
    #[error("stream key rejected for {0:?}: the key does not match the one configured for this stream")]
    WrongKey(String),
}

impl PublishAuth {
    /// From the configured keys.
    pub fn new(keys: BTreeMap<String, String>) -> Self {
        Self { keys }
    }

    /// True when no keys are configured (anyone may publish).
    pub fn is_open(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks a publish of `name` with the `key` the client sent.
    pub fn check(&self, name: &str, key: Option<&str>) -> Result<(), AuthError> {
        if self.is_open() {
            return Ok(());
        }
        let expected = self.keys.get(name).ok_or_else(|| AuthError::UnknownName(name.into()))?;
        let given = key.ok_or_else(|| AuthError::MissingKey(name.into()))?;
        if bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
            Ok(())
        } else {
            Err(AuthError::WrongKey(name.into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_and_keyed() {
        assert!(PublishAuth::default().check("x", None).is_ok());
        let a = PublishAuth::new([("demo".to_string(), "s3cret".to_string())].into());
        assert!(a.check("demo", Some("s3cret")).is_ok());
        assert_eq!(a.check("demo", Some("nope")), Err(AuthError::WrongKey("demo".into())));
        assert_eq!(a.check("demo", None), Err(AuthError::MissingKey("demo".into())));
        assert_eq!(a.check("other", Some("s3cret")), Err(AuthError::UnknownName("other".into())));
        assert!(AuthError::UnknownName("x".into()).to_string().contains("--publish-key x=SECRET"));
    }
}
