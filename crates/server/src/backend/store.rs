//! Segment storage through `object_store`: a local directory by default (S3 in cluster mode).
//! Keys are built only from validated stream names, presentation ids, rendition ids and
//! numbers: `live/NAME/PRESENTATION/REP/FILE`, and `live/NAME/PRESENTATION/state.json` (the
//! timeline a standby restores) and `live/NAME/PRESENTATION/recording.json` (a recording's
//! whole timeline, `record`), so one presentation is one prefix.

use std::{path::Path, sync::Arc, time::Duration};

use super::redact::RedactedUrl;
use bytes::Bytes;
use object_store::{local::LocalFileSystem, path::Path as Key, ObjectStore, PutPayload};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed.
    #[error("object store: {0}")]
    Backend(#[from] object_store::Error),
    /// `--store` is neither `file:///DIR` nor `s3://BUCKET[/PREFIX]`.
    #[error("--store {0:?}: expected file:///DIR or s3://BUCKET[/PREFIX] (S3 endpoint and credentials from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)")]
    Url(String),
    /// A shared read failed: what every other request that waited for it gets.
    #[error("{0}")]
    Shared(String),
    /// The local directory could not be prepared.
    #[error("store directory {path}: {source}")]
    Dir {
        /// The directory.
        path: String,
        /// The IO error.
        source: std::io::Error,
    },
}

/// Where segments and manifests live.
#[derive(Clone, Debug)]
pub struct SegmentStore {
    inner: Arc<dyn ObjectStore>,
    /// The media objects being served: one `Bytes` per object however many clients read it
    /// at once (a slow reader pins the shared buffer, not a copy of its own).
    shared: moka::future::Cache<String, Bytes>,
}

/// Bytes of media objects kept in the shared copy.
const SHARED_BYTES: u64 = 32 << 20;
/// How long an object stays in the shared copy after it was read.
const SHARED_TTL: Duration = Duration::from_secs(30);

fn shared_cache() -> moka::future::Cache<String, Bytes> {
    moka::future::Cache::builder()
        .max_capacity(SHARED_BYTES)
        .weigher(|_: &String, v: &Bytes| u32::try_from(v.len()).unwrap_or(u32::MAX))
        .time_to_idle(SHARED_TTL)
        .build()
}

/// Why a shared read found nothing.
#[derive(Debug)]
enum Miss {
    NotFound,
    Failed(StoreError),
}

impl SegmentStore {
    /// A store in a local directory (created if missing).
    pub fn local(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
            path: dir.display().to_string(),
            source,
        })?;
        let fs = LocalFileSystem::new_with_prefix(dir)?.with_automatic_cleanup(true);
        Ok(Self::new(Arc::new(fs)))
    }

    /// A store from `--store`: `file:///DIR` (a local directory) or `s3://BUCKET[/PREFIX]` (S3 or
    /// any S3-compatible server; endpoint, region and credentials from the usual `AWS_*`
    /// environment, e.g. `AWS_ENDPOINT_URL=http://127.0.0.1:9000`; plain http is allowed when the
    /// endpoint says so).
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        if let Some(dir) = url.strip_prefix("file://") {
            return Self::local(Path::new(dir));
        }
        let Some(rest) = url.strip_prefix("s3://") else {
            return Err(StoreError::Url(RedactedUrl::new(url).to_string()));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(StoreError::Url(RedactedUrl::new(url).to_string()));
        }
        let mut b = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
        let endpoint = std::env::var("AWS_ENDPOINT_URL")
            .or_else(|_| std::env::var("AWS_ENDPOINT"))
            .ok();
        if let Some(e) = &endpoint {
            b = b
                .with_endpoint(e)
                .with_allow_http(e.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        {
            b = b.with_region("us-east-1");
        }
        let s3: Arc<dyn ObjectStore> = Arc::new(b.build()?);
        let inner = match prefix.trim_matches('/') {
            "" => s3,
            p => Arc::new(object_store::prefix::PrefixStore::new(s3, p.to_owned())),
        };
        Ok(Self::new(inner))
    }

    /// One cheap request, for health checks: fails when the backend is unreachable.
    pub async fn check(&self) -> Result<(), StoreError> {
        match self.inner.head(&Key::from("ferrocast-health-probe")).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// A store over any `object_store` backend (S3 in cluster mode, memory in tests).
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self {
            inner,
            shared: shared_cache(),
        }
    }

    /// Writes an object (atomically: readers see the old one or the whole new one).
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), StoreError> {
        self.inner
            .put(&Key::from(key), PutPayload::from_bytes(bytes))
            .await?;
        self.shared.invalidate(key).await;
        Ok(())
    }

    /// Reads a media object (a segment or an init segment, never rewritten) for a client:
    /// concurrent and repeated reads of one object share one read and one `Bytes`; `None` if
    /// it does not exist.
    pub async fn get_shared(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        let read = async {
            match self.get(key).await {
                Ok(Some(b)) => Ok(b),
                Ok(None) => Err(Miss::NotFound),
                Err(e) => Err(Miss::Failed(e)),
            }
        };
        match self.shared.try_get_with(key.to_owned(), read).await {
            Ok(b) => Ok(Some(b)),
            Err(e) => match Arc::try_unwrap(e) {
                Ok(Miss::NotFound) => Ok(None),
                Ok(Miss::Failed(e)) => Err(e),
                Err(shared) => match &*shared {
                    Miss::NotFound => Ok(None),
                    Miss::Failed(e) => Err(StoreError::Shared(e.to_string())),
                },
            },
        }
    }

    /// True when a [`Self::get_shared`] of `key` would cost no backend read.
    pub fn is_shared(&self, key: &str) -> bool {
        self.shared.contains_key(key)
    }

    /// Reads an object; `None` if it does not exist.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        match self.inner.get(&Key::from(key)).await {
            Ok(r) => Ok(Some(r.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads an object and when it was last written (Unix ms); `None` if it does not exist.
    pub async fn get_dated(&self, key: &str) -> Result<Option<(Bytes, u64)>, StoreError> {
        match self.inner.get(&Key::from(key)).await {
            Ok(r) => {
                let ms = u64::try_from(r.meta.last_modified.timestamp_millis()).unwrap_or(0);
                Ok(Some((r.bytes().await?, ms)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// True if the object exists.
    pub async fn exists(&self, key: &str) -> bool {
        self.inner.head(&Key::from(key)).await.is_ok()
    }

    /// Every object under `prefix` (`live/`, `live/NAME/PRES/`), with when it was last
    /// written (Unix ms).
    pub async fn list(&self, prefix: &str) -> Result<Vec<StoredObject>, StoreError> {
        use futures::TryStreamExt;
        let prefix = Key::from(prefix);
        let metas: Vec<object_store::ObjectMeta> =
            self.inner.list(Some(&prefix)).try_collect().await?;
        Ok(metas
            .into_iter()
            .map(|m| StoredObject {
                key: m.location.to_string(),
                modified_ms: u64::try_from(m.last_modified.timestamp_millis()).unwrap_or(0),
                size: m.size,
            })
            .collect())
    }

    /// Deletes every object under `prefix`; returns how many went. Stops at the first failure
    /// (the caller retries later: nothing half-deleted is served, see the origin's checks).
    pub async fn delete_prefix(&self, prefix: &str) -> Result<usize, StoreError> {
        let keys = self.list(prefix).await?;
        for o in &keys {
            self.delete(&o.key).await?;
        }
        Ok(keys.len())
    }

    /// Deletes an object; a missing one is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.shared.invalidate(key).await;
        match self.inner.delete(&Key::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// One object a [`SegmentStore::list`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// Its key (`live/NAME/PRES/REP/FILE`).
    pub key: String,
    /// When it was last written (Unix ms).
    pub modified_ms: u64,
    /// Its size in bytes.
    pub size: u64,
}

/// Store key of a file of a rendition of one presentation of a stream.
pub fn key(stream: &str, presentation: &str, rep: &str, file: &str) -> String {
    format!("live/{stream}/{presentation}/{rep}/{file}")
}

/// Everything of one presentation of a stream is under this prefix.
pub fn presentation_prefix(stream: &str, presentation: &str) -> String {
    format!("live/{stream}/{presentation}/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_get_delete_on_disk() {
        let dir = std::env::temp_dir().join(format!("ferrocast-store-{}", std::process::id()));
        let s = SegmentStore::local(&dir).unwrap();
        s.put("live/a/p0/v720/1.m4s", Bytes::from_static(b"seg"))
            .await
            .unwrap();
        assert!(dir.join("live/a/p0/v720/1.m4s").exists());
        assert_eq!(
            s.get("live/a/p0/v720/1.m4s").await.unwrap().as_deref(),
            Some(&b"seg"[..])
        );
        assert_eq!(s.get("live/a/p0/v720/2.m4s").await.unwrap(), None);
        // Shared reads hand out one buffer, and a delete drops it.
        let a = s.get_shared("live/a/p0/v720/1.m4s").await.unwrap().unwrap();
        let b = s.get_shared("live/a/p0/v720/1.m4s").await.unwrap().unwrap();
        assert_eq!(a.as_ptr(), b.as_ptr());
        assert!(s.is_shared("live/a/p0/v720/1.m4s"));
        assert_eq!(s.get_shared("live/a/p0/v720/9.m4s").await.unwrap(), None);
        s.delete("live/a/p0/v720/1.m4s").await.unwrap();
        assert!(!s.is_shared("live/a/p0/v720/1.m4s"));
        assert_eq!(s.get_shared("live/a/p0/v720/1.m4s").await.unwrap(), None);
        s.delete("live/a/p0/v720/1.m4s").await.unwrap();
        assert_eq!(s.get("live/a/p0/v720/1.m4s").await.unwrap(), None);
        // A presentation is one prefix: listed and deleted together, nothing else touched.
        for k in [
            key("a", "x1", "v720", "0.m4s"),
            key("a", "x1", "a64", "init-p0.mp4"),
            "live/a/x1/state.json".to_owned(),
            key("a", "x2", "v720", "0.m4s"),
        ] {
            s.put(&k, Bytes::from_static(b"o")).await.unwrap();
        }
        let mut listed: Vec<String> = s
            .list(&presentation_prefix("a", "x1"))
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        listed.sort();
        assert_eq!(
            listed,
            [
                "live/a/x1/a64/init-p0.mp4",
                "live/a/x1/state.json",
                "live/a/x1/v720/0.m4s"
            ]
        );
        assert!(s.list("live/").await.unwrap()[0].modified_ms > 1_600_000_000_000);
        assert_eq!(
            s.delete_prefix(&presentation_prefix("a", "x1"))
                .await
                .unwrap(),
            3
        );
        assert!(s.list("live/a/x1/").await.unwrap().is_empty());
        assert!(s.get("live/a/x2/v720/0.m4s").await.unwrap().is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
