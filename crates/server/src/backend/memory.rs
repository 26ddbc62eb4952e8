//! The in-process coordination backend of `ferrocast serve` and the tests: registry, session
//! map, locks, ownership and events in one process, leases on the monotonic clock.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use futures::future::BoxFuture;
use parking_lot::Mutex;
use tokio::sync::broadcast;

use super::coord::{
    holder_of, new_token, ClusterEvent, CoordError, DistLock, EncoderInfo, EventBus, LockToken,
    Locked, Ownership, Registry, SessionMap,
};

/// The in-process backends of `ferrocast serve`: leases on the monotonic clock.
#[derive(Debug)]
pub struct MemoryCoord {
    encoders: Mutex<HashMap<String, (EncoderInfo, Instant)>>,
    sessions: Mutex<HashMap<String, (String, Instant)>>,
    locks: Mutex<HashMap<String, (String, Instant)>>,
    owners: Mutex<HashMap<String, (String, u64, Instant)>>,
    epochs: Mutex<HashMap<String, u64>>,
    events: broadcast::Sender<ClusterEvent>,
}

impl Default for MemoryCoord {
    fn default() -> Self {
        Self {
            encoders: Default::default(),
            sessions: Default::default(),
            locks: Default::default(),
            owners: Default::default(),
            epochs: Default::default(),
            events: broadcast::channel(1024).0,
        }
    }
}

fn ready<'a, T: Send + 'a>(v: T) -> BoxFuture<'a, T> {
    Box::pin(async move { v })
}

impl Registry for MemoryCoord {
    fn register<'a>(
        &'a self,
        info: &'a EncoderInfo,
        lease: Duration,
    ) -> BoxFuture<'a, Result<(), CoordError>> {
        self.encoders
            .lock()
            .insert(info.id.clone(), (info.clone(), Instant::now() + lease));
        ready(Ok(()))
    }
    fn deregister<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), CoordError>> {
        self.encoders.lock().remove(id);
        ready(Ok(()))
    }
    fn encoders(&self) -> BoxFuture<'_, Result<Vec<EncoderInfo>, CoordError>> {
        let now = Instant::now();
        let mut m = self.encoders.lock();
        m.retain(|_, (_, until)| *until > now);
        let mut v: Vec<EncoderInfo> = m.values().map(|(i, _)| i.clone()).collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        ready(Ok(v))
    }
}

impl SessionMap for MemoryCoord {
    fn get<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, Result<Option<String>, CoordError>> {
        let now = Instant::now();
        let r = self
            .sessions
            .lock()
            .get(stream)
            .filter(|(_, until)| *until > now)
            .map(|(e, _)| e.clone());
        ready(Ok(r))
    }
    fn set<'a>(
        &'a self,
        stream: &'a str,
        encoder: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<(), CoordError>> {
        self.sessions.lock().insert(
            stream.to_owned(),
            (encoder.to_owned(), Instant::now() + lease),
        );
        ready(Ok(()))
    }
}

impl DistLock for MemoryCoord {
    fn try_lock<'a>(
        &'a self,
        key: &'a str,
        holder: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Locked, CoordError>> {
        let now = Instant::now();
        let mut m = self.locks.lock();
        let r = match m.get(key) {
            Some((token, until)) if *until > now => Locked::HeldBy(holder_of(token).to_owned()),
            _ => {
                let token = new_token(holder);
                m.insert(key.to_owned(), (token.clone(), now + ttl));
                Locked::Acquired(LockToken(token))
            }
        };
        ready(Ok(r))
    }
    fn unlock<'a>(
        &'a self,
        key: &'a str,
        token: &'a LockToken,
    ) -> BoxFuture<'a, Result<(), CoordError>> {
        let mut m = self.locks.lock();
        if m.get(key).is_some_and(|(t, _)| *t == token.0) {
            m.remove(key);
        }
        ready(Ok(()))
    }
}

impl MemoryCoord {
    fn next_epoch(&self, stream: &str) -> u64 {
        let mut e = self.epochs.lock();
        let n = e.entry(stream.to_owned()).or_insert(0);
        *n += 1;
        *n
    }
}

impl Ownership for MemoryCoord {
    fn claim<'a>(
        &'a self,
        stream: &'a str,
        encoder: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<u64, CoordError>> {
        let epoch = self.next_epoch(stream);
        self.owners.lock().insert(
            stream.to_owned(),
            (encoder.to_owned(), epoch, Instant::now() + lease),
        );
        ready(Ok(epoch))
    }
    fn claim_if_free<'a>(
        &'a self,
        stream: &'a str,
        encoder: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Option<u64>, CoordError>> {
        let now = Instant::now();
        let mut o = self.owners.lock();
        if o.get(stream).is_some_and(|(_, _, until)| *until > now) {
            return ready(Ok(None));
        }
        let epoch = self.next_epoch(stream);
        o.insert(stream.to_owned(), (encoder.to_owned(), epoch, now + lease));
        ready(Ok(Some(epoch)))
    }
    fn renew<'a>(
        &'a self,
        stream: &'a str,
        encoder: &'a str,
        epoch: u64,
        lease: Duration,
    ) -> BoxFuture<'a, Result<bool, CoordError>> {
        let now = Instant::now();
        let mut o = self.owners.lock();
        let r = match o.get_mut(stream) {
            Some((e, n, until)) if e == encoder && *n == epoch && *until > now => {
                *until = now + lease;
                true
            }
            _ => false,
        };
        ready(Ok(r))
    }
    fn check<'a>(
        &'a self,
        stream: &'a str,
        encoder: &'a str,
        epoch: u64,
    ) -> BoxFuture<'a, Result<bool, CoordError>> {
        let now = Instant::now();
        let r = self
            .owners
            .lock()
            .get(stream)
            .is_some_and(|(e, n, until)| e == encoder && *n == epoch && *until > now);
        ready(Ok(r))
    }
    fn owner<'a>(
        &'a self,
        stream: &'a str,
    ) -> BoxFuture<'a, Result<Option<(String, u64)>, CoordError>> {
        let now = Instant::now();
        let r = self
            .owners
            .lock()
            .get(stream)
            .filter(|(_, _, until)| *until > now)
            .map(|(e, n, _)| (e.clone(), *n));
        ready(Ok(r))
    }
}

impl EventBus for MemoryCoord {
    fn publish<'a>(&'a self, ev: &'a ClusterEvent) -> BoxFuture<'a, Result<(), CoordError>> {
        let _ = self.events.send(ev.clone());
        ready(Ok(()))
    }
    fn subscribe(&self) -> broadcast::Receiver<ClusterEvent> {
        self.events.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(id: &str) -> EncoderInfo {
        EncoderInfo {
            id: id.into(),
            rtmp: format!("{id}:1935"),
            http: format!("http://{id}:8080"),
        }
    }

    #[tokio::test]
    async fn registry_leases_lapse_and_list_is_sorted() {
        let c = MemoryCoord::default();
        c.register(&enc("b"), Duration::from_secs(10))
            .await
            .unwrap();
        c.register(&enc("a"), Duration::from_secs(10))
            .await
            .unwrap();
        c.register(&enc("gone"), Duration::from_millis(1))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let ids: Vec<_> = c
            .encoders()
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(ids, ["a", "b"]);
        c.deregister("a").await.unwrap();
        assert_eq!(c.encoders().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn lock_excludes_until_released_or_expired_and_only_the_holder_releases() {
        let c = MemoryCoord::default();
        let t = c
            .try_lock("k", "http://e1", Duration::from_secs(10))
            .await
            .unwrap()
            .token()
            .unwrap();
        assert_eq!(holder_of(&t.0), "http://e1");
        assert_eq!(
            c.try_lock("k", "http://e2", Duration::from_secs(10))
                .await
                .unwrap(),
            Locked::HeldBy("http://e1".into())
        );
        // A stale token (someone who held it before) cannot release the current holder.
        c.unlock("k", &LockToken("http://e2|0".into()))
            .await
            .unwrap();
        assert!(c
            .try_lock("k", "http://e2", Duration::from_secs(10))
            .await
            .unwrap()
            .token()
            .is_none());
        c.unlock("k", &t).await.unwrap();
        let t2 = c
            .try_lock("k", "http://e2", Duration::from_millis(1))
            .await
            .unwrap()
            .token()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(c
            .try_lock("k", "http://e3", Duration::from_secs(1))
            .await
            .unwrap()
            .token()
            .is_some());
        c.unlock("k", &t2).await.unwrap();
        assert!(
            c.try_lock("k", "http://e4", Duration::from_secs(1))
                .await
                .unwrap()
                .token()
                .is_none(),
            "expired token released a new holder's lock"
        );
    }

    #[tokio::test]
    async fn ownership_fences_a_stale_owner() {
        let c = MemoryCoord::default();
        let e1 = c
            .claim("s", "enc-1", Duration::from_millis(20))
            .await
            .unwrap();
        assert_eq!(
            c.claim_if_free("s", "enc-2", Duration::from_secs(5))
                .await
                .unwrap(),
            None
        );
        assert!(c
            .renew("s", "enc-1", e1, Duration::from_millis(20))
            .await
            .unwrap());
        tokio::time::sleep(Duration::from_millis(30)).await;
        // The primary's lease lapsed: the standby takes over with a higher epoch.
        let e2 = c
            .claim_if_free("s", "enc-2", Duration::from_secs(5))
            .await
            .unwrap()
            .unwrap();
        assert!(e2 > e1);
        assert!(
            !c.check("s", "enc-1", e1).await.unwrap(),
            "a stale owner passed the fence"
        );
        assert!(!c
            .renew("s", "enc-1", e1, Duration::from_secs(5))
            .await
            .unwrap());
        assert!(c.check("s", "enc-2", e2).await.unwrap());
        assert_eq!(c.owner("s").await.unwrap(), Some(("enc-2".into(), e2)));
    }

    #[tokio::test]
    async fn sessions_and_events() {
        let c = MemoryCoord::default();
        assert_eq!(SessionMap::get(&c, "s").await.unwrap(), None);
        c.set("s", "enc-1", Duration::from_secs(5)).await.unwrap();
        assert_eq!(
            SessionMap::get(&c, "s").await.unwrap().as_deref(),
            Some("enc-1")
        );
        let mut rx = c.subscribe();
        let ev = ClusterEvent::Ended { stream: "s".into() };
        c.publish(&ev).await.unwrap();
        assert_eq!(rx.recv().await.unwrap(), ev);
        assert_eq!(
            serde_json::to_string(&ev).unwrap(),
            r#"{"kind":"ended","stream":"s"}"#
        );
    }
}
