//! The publish keys file (`DATA_DIR/keys.toml`), managed with `ferrocast keys add|list|revoke`.
//! Only an Argon2id hash of each secret is stored; the secret is shown once, when added.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use argon2::{
    password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Argon2,
};
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// One stored key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredKey {
    /// Argon2id PHC string of the secret.
    pub hash: String,
    /// Unix seconds when it was added.
    pub created: u64,
}

/// The keys file: stream name → stored key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFile {
    /// Keys by stream name.
    #[serde(default)]
    pub keys: BTreeMap<String, StoredKey>,
}

/// Why the keys file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The IO error.
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("{path}: invalid keys file: {msg}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        msg: String,
    },
    /// A bad stream name.
    #[error("invalid stream name {0:?}: use 1-64 characters of A-Z a-z 0-9 _ -")]
    BadName(String),
    /// Revoking a name that has no key.
    #[error("no key for {0:?}; `ferrocast keys list` shows the names that have one")]
    NoSuchKey(String),
}

/// Path of the keys file in a data dir.
pub fn path_in(data_dir: &Path) -> PathBuf {
    data_dir.join("keys.toml")
}

impl KeyFile {
    /// Loads the file; a missing file is an empty key set.
    pub fn load(path: &Path) -> Result<Self, KeysError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => {
                return Err(KeysError::Io {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        let kf: KeyFile = toml::from_str(&text).map_err(|e| KeysError::Invalid {
            path: path.display().to_string(),
            msg: e.to_string(),
        })?;
        for (name, k) in &kf.keys {
            if !crate::stream::name::is_valid_stream_name(name)
                || PasswordHash::new(&k.hash).is_err()
            {
                return Err(KeysError::Invalid {
                    path: path.display().to_string(),
                    msg: format!("bad entry for {name:?}"),
                });
            }
        }
        Ok(kf)
    }

    /// Writes the file atomically (temp file + rename), readable by the owner only.
    pub fn save(&self, path: &Path) -> Result<(), KeysError> {
        let io = |source| KeysError::Io {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = path.with_extension("toml.tmp");
        let text = toml::to_string_pretty(self).expect("keys serialize");
        std::fs::write(&tmp, text).map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        }
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Adds (or replaces) the key for `name`; returns the secret, which is not stored.
    pub fn add(&mut self, name: &str, secret: Option<String>) -> Result<String, KeysError> {
        if !crate::stream::name::is_valid_stream_name(name) {
            return Err(KeysError::BadName(name.into()));
        }
        let secret = secret.unwrap_or_else(|| {
            let mut b = [0u8; 18];
            rand::thread_rng().fill_bytes(&mut b);
            b.iter().map(|x| format!("{x:02x}")).collect()
        });
        let salt = SaltString::generate(&mut OsRng);
        let hash = Argon2::default()
            .hash_password(secret.as_bytes(), &salt)
            .expect("argon2 hash")
            .to_string();
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.keys.insert(name.into(), StoredKey { hash, created });
        Ok(secret)
    }

    /// Removes the key for `name`.
    pub fn revoke(&mut self, name: &str) -> Result<(), KeysError> {
        self.keys
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| KeysError::NoSuchKey(name.into()))
    }

    /// True if `secret` matches the stored hash for `name` (Argon2 verification compares in
    /// constant time).
    pub fn verify(&self, name: &str, secret: &str) -> Option<bool> {
        let k = self.keys.get(name)?;
        let hash = PasswordHash::new(&k.hash).ok()?;
        Some(
            Argon2::default()
                .verify_password(secret.as_bytes(), &hash)
                .is_ok(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_verify_revoke_roundtrip_on_disk() {
        let dir = std::env::temp_dir().join(format!("ferrocast-keys-{}", std::process::id()));
        let p = path_in(&dir);
        let mut kf = KeyFile::load(&p).unwrap();
        let secret = kf.add("cam", None).unwrap();
        assert_eq!(secret.len(), 36);
        kf.add("other", Some("given".into())).unwrap();
        kf.save(&p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            !text.contains(&secret) && !text.contains("given"),
            "secret stored in clear"
        );
        let kf = KeyFile::load(&p).unwrap();
        assert_eq!(kf.verify("cam", &secret), Some(true));
        assert_eq!(kf.verify("cam", "wrong"), Some(false));
        assert_eq!(kf.verify("nope", &secret), None);
        let mut kf = kf;
        kf.revoke("cam").unwrap();
        assert!(matches!(kf.revoke("cam"), Err(KeysError::NoSuchKey(_))));
        assert!(matches!(kf.add("../x", None), Err(KeysError::BadName(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
