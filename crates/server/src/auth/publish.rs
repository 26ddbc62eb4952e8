//! Publish authorization: open mode, or a key per stream name — given on the command line /
//! config (compared in constant time) or stored hashed in the keys file (`ferrocast keys`,
//! re-read when it changes, so `keys revoke` takes effect without a restart). Failed attempts
//! are rate limited per client IP so keys cannot be guessed quickly.

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
    path::PathBuf,
    time::{Duration, Instant, SystemTime},
};

use parking_lot::Mutex;
use subtle::ConstantTimeEq;
use tracing::warn;

use crate::auth::keys::KeyFile;

/// Failed attempts allowed per IP within [`FAILURE_WINDOW`] before it is blocked.
pub const MAX_FAILURES: u32 = 5;
/// Window for counting failures, and how long a blocked IP waits.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// Why a publish was not authorized. The text goes to the broadcaster, so it says what to do.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// No key configured for this name.
    #[error("stream key rejected: no publish key is configured for {0:?} — add one with `ferrocast keys add {0}` (or --publish-key {0}=SECRET) and publish to live/{0}?key=SECRET")]
    UnknownName(String),
    /// No `?key=` given.
    #[error(
        "stream key missing: publish to live/{0}?key=SECRET (OBS: stream key \"{0}?key=SECRET\")"
    )]
    MissingKey(String),
    /// Wrong secret.
    #[error(
        "stream key rejected for {0:?}: the key does not match the one configured for this stream"
    )]
    WrongKey(String),
    /// Too many failures from this address.
    #[error("too many failed publish attempts from {ip}: try again in {retry_after_secs} s")]
    TooManyAttempts {
        /// The client address.
        ip: IpAddr,
        /// Seconds until attempts are accepted again.
        retry_after_secs: u64,
    },
}

impl AuthError {
    /// Short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            AuthError::UnknownName(_) => "unknown_name",
            AuthError::MissingKey(_) => "missing_key",
            AuthError::WrongKey(_) => "wrong_key",
            AuthError::TooManyAttempts { .. } => "rate_limited",
        }
    }
}

#[derive(Debug, Default)]
struct Failures {
    count: u32,
    window_start: Option<Instant>,
    blocked_until: Option<Instant>,
}

#[derive(Debug, Default)]
struct FileCache {
    mtime: Option<SystemTime>,
    /// The file exists now, or existed at some point while we ran: a keys file deleted at
    /// run time keeps the server closed (with its last keys) instead of opening it to all.
    exists: bool,
    keys: KeyFile,
}

/// Decides who may publish what.
#[derive(Debug, Default)]
pub struct PublishAuth {
    plain: BTreeMap<String, String>,
    keyfile: Option<PathBuf>,
    cache: Mutex<FileCache>,
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

impl PublishAuth {
    /// Keys from flags/config, plus the keys file if given.
    pub fn new(plain: BTreeMap<String, String>, keyfile: Option<PathBuf>) -> Self {
        Self {
            plain,
            keyfile,
            ..Default::default()
        }
    }

    fn with_file<T>(&self, f: impl FnOnce(&KeyFile, bool) -> T) -> T {
        let mut c = self.cache.lock();
        if let Some(path) = &self.keyfile {
            let meta = std::fs::metadata(path);
            if meta.is_err() && c.exists && c.mtime.is_some() {
                warn!(path = %path.display(), "the publish keys file is gone: keeping its last keys (the server stays closed); `ferrocast keys add` writes a new one");
                c.mtime = None;
            }
            c.exists |= meta.is_ok();
            let mtime = meta.and_then(|m| m.modified()).ok();
            if mtime.is_some() && mtime != c.mtime {
                match KeyFile::load(path) {
                    Ok(k) => c.keys = k,
                    // Keep the last good keys rather than opening up on a bad edit.
                    Err(e) => warn!("keeping the previous publish keys: {e}"),
                }
                c.mtime = mtime;
            }
        }
        f(&c.keys, c.exists)
    }

    /// True when no keys are configured anywhere (anyone may publish). Once a keys file
    /// exists the server stays closed even if every key in it is revoked: revoking the last
    /// key must not open the server to everyone.
    pub fn is_open(&self) -> bool {
        self.plain.is_empty() && !self.with_file(|_, exists| exists)
    }

    /// Checks a publish of `name` with the `key` the client sent, from `ip`.
    pub fn check(
        &self,
        name: &str,
        key: Option<&str>,
        ip: IpAddr,
        now: Instant,
    ) -> Result<(), AuthError> {
        if self.is_open() {
            return Ok(());
        }
        if let Some(until) = self.failures.lock().get(&ip).and_then(|f| f.blocked_until) {
            if until > now {
                let retry_after_secs = (until - now).as_secs().max(1);
                return Err(AuthError::TooManyAttempts {
                    ip,
                    retry_after_secs,
                });
            }
        }
        let r = self.verify(name, key);
        if r.is_err() {
            self.record_failure(ip, now);
        }
        r
    }

    fn verify(&self, name: &str, key: Option<&str>) -> Result<(), AuthError> {
        let plain = self.plain.get(name);
        let in_file = self.with_file(|k, _| k.keys.contains_key(name));
        if plain.is_none() && !in_file {
            return Err(AuthError::UnknownName(name.into()));
        }
        let given = key.ok_or_else(|| AuthError::MissingKey(name.into()))?;
        if let Some(expected) = plain {
            if bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
                return Ok(());
            }
        }
        if self.with_file(|k, _| k.verify(name, given)) == Some(true) {
            return Ok(());
        }
        Err(AuthError::WrongKey(name.into()))
    }

    fn record_failure(&self, ip: IpAddr, now: Instant) {
        let mut map = self.failures.lock();
        // Bound the table: forget stale entries when it grows.
        if map.len() > 10_000 {
            map.retain(|_, f| {
                f.blocked_until.is_some_and(|u| u > now)
                    || f.window_start.is_some_and(|s| now - s < FAILURE_WINDOW)
            });
        }
        let f = map.entry(ip).or_default();
        if f.window_start
            .is_none_or(|s| now.saturating_duration_since(s) > FAILURE_WINDOW)
        {
            f.window_start = Some(now);
            f.count = 0;
        }
        f.count += 1;
        if f.count >= MAX_FAILURES {
            f.blocked_until = Some(now + FAILURE_WINDOW);
            f.count = 0;
            f.window_start = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip() -> IpAddr {
        "192.0.2.7".parse().unwrap()
    }

    #[test]
    fn open_and_plain_keys() {
        let now = Instant::now();
        assert!(PublishAuth::default().check("x", None, ip(), now).is_ok());
        let a = PublishAuth::new([("demo".to_string(), "s3cret".to_string())].into(), None);
        assert!(a.check("demo", Some("s3cret"), ip(), now).is_ok());
        assert_eq!(
            a.check("demo", Some("nope"), ip(), now),
            Err(AuthError::WrongKey("demo".into()))
        );
        assert_eq!(
            a.check("demo", None, ip(), now),
            Err(AuthError::MissingKey("demo".into()))
        );
        assert_eq!(
            a.check("other", Some("s3cret"), ip(), now),
            Err(AuthError::UnknownName("other".into()))
        );
        assert!(AuthError::UnknownName("x".into())
            .to_string()
            .contains("ferrocast keys add x"));
    }

    #[test]
    fn failures_block_an_ip_then_expire() {
        let a = PublishAuth::new([("demo".to_string(), "s3cret".to_string())].into(), None);
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES {
            assert!(matches!(
                a.check("demo", Some("guess"), ip(), t0),
                Err(AuthError::WrongKey(_))
            ));
        }
        // Even the right key is refused while blocked; another IP is not affected.
        assert!(matches!(
            a.check("demo", Some("s3cret"), ip(), t0),
            Err(AuthError::TooManyAttempts { .. })
        ));
        assert!(a
            .check("demo", Some("s3cret"), "192.0.2.8".parse().unwrap(), t0)
            .is_ok());
        assert!(a
            .check(
                "demo",
                Some("s3cret"),
                ip(),
                t0 + FAILURE_WINDOW + Duration::from_secs(1)
            )
            .is_ok());
    }

    #[test]
    fn keys_file_is_reread_after_revoke() {
        let dir = std::env::temp_dir().join(format!("ferrocast-auth-{}", std::process::id()));
        let p = crate::auth::keys::path_in(&dir);
        let mut kf = KeyFile::default();
        let secret = kf.add("cam", None).unwrap();
        kf.save(&p).unwrap();
        let a = PublishAuth::new(BTreeMap::new(), Some(p.clone()));
        assert!(!a.is_open());
        assert!(a.check("cam", Some(&secret), ip(), Instant::now()).is_ok());
        kf.revoke("cam").unwrap();
        kf.add("other", None).unwrap();
        // Make sure the mtime differs even on coarse-timestamp filesystems.
        std::thread::sleep(Duration::from_millis(20));
        kf.save(&p).unwrap();
        let f = std::fs::File::options().write(true).open(&p).unwrap();
        f.set_modified(SystemTime::now() + Duration::from_secs(2))
            .unwrap();
        assert_eq!(
            a.check("cam", Some(&secret), ip(), Instant::now()),
            Err(AuthError::UnknownName("cam".into()))
        );
        // Deleted while we run: still closed, with the last keys.
        std::fs::remove_file(&p).unwrap();
        assert!(!a.is_open());
        assert_eq!(
            a.check("cam", Some(&secret), ip(), Instant::now()),
            Err(AuthError::UnknownName("cam".into()))
        );
        assert!(a.check("other", None, ip(), Instant::now()).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
