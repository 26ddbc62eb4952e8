//! The cluster's coordination on Redis: the encoder registry (keys with `PX` leases plus an
//! index set), the session map, locks (`SET NX PX`, released by a compare-and-delete script),
//! events on pub/sub, and stream metadata. One `ConnectionManager` reconnects by itself after
//! a Redis restart; the pub/sub listener resubscribes.

use std::time::Duration;

use redis::{aio::ConnectionManager, AsyncCommands};
use tokio::sync::broadcast;
use tracing::{info, warn};

use crate::{
    backend::coord::{
        holder_of, new_token, ClusterEvent, CoordError, DistLock, EncoderInfo, EventBus, LockToken,
        Locked, Ownership, Registry, SessionMap,
    },
    backend::meta::{MetaStore, StreamRecord},
    backend::redact::RedactedUrl,
};
use futures::future::BoxFuture;

const PREFIX: &str = "ferrocast";
const EVENTS: &str = "ferrocast:events";
/// Any one Redis call: past this, the caller treats Redis as down rather than waiting.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Releases a lock only if the caller's token still holds it.
const UNLOCK: &str = r#"if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"#;

/// Takes a free stream: KEYS owner, epoch; ARGV encoder, lease ms. Returns the new epoch or nil.
const CLAIM_IF_FREE: &str = r#"if redis.call('exists', KEYS[1]) == 1 then return false end
local e = redis.call('incr', KEYS[2])
redis.call('set', KEYS[1], ARGV[1] .. '|' .. e, 'PX', ARGV[2])
return e"#;
/// Renews only the caller's own lease: KEYS owner, epoch; ARGV "encoder|epoch", lease ms,
/// epoch. A missing owner key with no newer epoch (Redis restarted without its data) is
/// re-created, so a Redis restart does not fail every stream over.
const RENEW: &str = r#"local v = redis.call('get', KEYS[1])
if v == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
if not v and tonumber(redis.call('get', KEYS[2]) or '0') <= tonumber(ARGV[3]) then
  redis.call('set', KEYS[2], ARGV[3])
  redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0"#;

/// All cluster backends on one Redis.
#[derive(Clone)]
pub struct RedisBackend {
    url: RedactedUrl,
    conn: ConnectionManager,
    events: broadcast::Sender<ClusterEvent>,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("url", &self.url)
            .finish()
    }
}

impl RedisBackend {
    /// Connects to `url` (`redis://HOST:PORT[/DB]`) and starts the event listener.
    pub async fn connect(url: &str) -> Result<Self, CoordError> {
        let url = RedactedUrl::new(url);
        let err = |e: redis::RedisError| CoordError::Redis {
            url: url.clone(),
            msg: url.scrub(&e.to_string()),
        };
        let client = redis::Client::open(url.expose()).map_err(err)?;
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CALL_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_number_of_retries(2);
        let conn = tokio::time::timeout(
            CALL_TIMEOUT * 3,
            ConnectionManager::new_with_config(client.clone(), cfg),
        )
        .await
        .map_err(|_| CoordError::Redis {
            url: url.clone(),
            msg: "no answer".into(),
        })?
        .map_err(err)?;
        let (events, _) = broadcast::channel(4096);
        tokio::spawn(listen(client, url.clone(), events.clone()));
        Ok(Self { url, conn, events })
    }

    fn err(&self, e: impl std::fmt::Display) -> CoordError {
        CoordError::Redis {
            url: self.url.clone(),
            msg: self.url.scrub(&e.to_string()),
        }
    }

    async fn call<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, CoordError> {
        let mut c = self.conn.clone();
        match tokio::time::timeout(CALL_TIMEOUT, cmd.query_async::<T>(&mut c)).await {
            Ok(r) => r.map_err(|e| self.err(e)),
            Err(_) => Err(self.err("timed out")),
        }
    }

    /// One round trip, for health checks.
    pub async fn ping(&self) -> Result<(), CoordError> {
        self.call::<String>(&redis::cmd("PING")).await.map(|_| ())
    }

    /// The cluster's shared secret: the one stored here, or `candidate` if there is none yet
    /// (the first node to ask makes it). Never logged.
    pub async fn shared_secret(&self, candidate: &str) -> Result<String, CoordError> {
        let k = key("cluster", "secret");
        let mut set = redis::cmd("SET");
        set.arg(&k).arg(candidate).arg("NX");
        self.call::<Option<String>>(&set).await?;
        let got: Option<String> = self.call(redis::cmd("GET").arg(&k)).await?;
        Ok(got.unwrap_or_else(|| candidate.to_owned()))
    }
}

/// Subscribes to the event channel and forwards to `tx`, resubscribing after any failure.
async fn listen(client: redis::Client, url: RedactedUrl, tx: broadcast::Sender<ClusterEvent>) {
    use futures::StreamExt;
    let mut failures = 0u32;
    loop {
        let r: Result<(), redis::RedisError> = async {
            let mut ps = client.get_async_pubsub().await?;
            ps.subscribe(EVENTS).await?;
            if failures > 0 {
                info!(%url, "redis pub/sub: subscribed again");
            }
            failures = 0;
            let mut msgs = ps.on_message();
            while let Some(m) = msgs.next().await {
                let Ok(payload) = m.get_payload::<String>() else {
                    continue;
                };
                match serde_json::from_str::<ClusterEvent>(&payload) {
                    Ok(ev) => {
                        let _ = tx.send(ev);
                    }
                    Err(e) => warn!("redis pub/sub: ignoring a malformed event: {e}"),
                }
            }
            Err(redis::RedisError::from(std::io::Error::from(
                std::io::ErrorKind::ConnectionAborted,
            )))
        }
        .await;
        if let Err(e) = r {
            if failures == 0 {
                let e = url.scrub(&e.to_string());
                warn!(%url, "redis pub/sub lost: {e}; retrying every second (edges fall back to cache TTLs meanwhile)");
            }
            failures += 1;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn key(kind: &str, name: &str) -> String {
    format!("{PREFIX}:{kind}:{name}")
}

impl Registry for RedisBackend {
    fn register<'a>(
        &'a self,
        info: &'a EncoderInfo,
        lease: Duration,
    ) -> BoxFuture<'a, Result<(), CoordError>> {
        Box::pin(async move {
            let json = serde_json::to_string(info).map_err(|e| self.err(e))?;
            let mut p = redis::pipe();
            p.cmd("SET")
                .arg(key("encoder", &info.id))
                .arg(json)
                .arg("PX")
                .arg(lease.as_millis() as u64)
                .ignore();
            p.cmd("SADD")
                .arg(key("encoders", "all"))
                .arg(&info.id)
                .ignore();
            let mut c = self.conn.clone();
            tokio::time::timeout(CALL_TIMEOUT, p.query_async::<()>(&mut c))
                .await
                .map_err(|_| self.err("timed out"))?
                .map_err(|e| self.err(e))
        })
    }
    fn deregister<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), CoordError>> {
        Box::pin(async move {
            self.call::<()>(redis::cmd("DEL").arg(key("encoder", id)))
                .await?;
            self.call::<()>(redis::cmd("SREM").arg(key("encoders", "all")).arg(id))
                .await
        })
    }
    fn encoders(&self) -> BoxFuture<'_, Result<Vec<EncoderInfo>, CoordError>> {
        Box::pin(async move {
            let mut ids: Vec<String> = self
                .call(redis::cmd("SMEMBERS").arg(key("encoders", "all")))
                .await?;
            ids.sort();
            if ids.is_empty() {
                return Ok(vec![]);
            }
            let keys: Vec<String> = ids.iter().map(|i| key("encoder", i)).collect();
            let vals: Vec<Option<String>> = self.call(redis::cmd("MGET").arg(&keys)).await?;
            let mut out = vec![];
            for (id, v) in ids.iter().zip(vals) {
                match v.and_then(|v| serde_json::from_str::<EncoderInfo>(&v).ok()) {
                    Some(info) => out.push(info),
                    // Lease lapsed: drop it from the index too.
                    None => {
                        let _ = self
                            .call::<()>(redis::cmd("SREM").arg(key("encoders", "all")).arg(id))
                            .await;
                    }
                }
            }
            Ok(out)
        })
    }
}

impl SessionMap for RedisBackend {
    fn get<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, Result<Option<String>, CoordError>> {
        Box::pin(async move {
            self.call(redis::cmd("GET").arg(key("session", stream)))
                .await
        })
    }
    fn set<'a>(
        &'a self,
        stream: &'a str,
        encoder: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<(), CoordError>> {
        Box::pin(async move {
            self.call(
                redis::cmd("SET")
                    .arg(key("session", stream))
                    .arg(encoder)
                    .arg("PX")
                    .arg(lease.as_millis() as u64),
            )
            .await
        })
    }
}

impl DistLock for RedisBackend {
    fn try_lock<'a>(
        &'a self,
        k: &'a str,
        holder: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Locked, CoordError>> {
        Box::pin(async move {
            let token = new_token(holder);
            let lk = key("lock", k);
            let set: Option<String> = self
                .call(
                    redis::cmd("SET")
                        .arg(&lk)
                        .arg(&token)
                        .arg("NX")
                        .arg("PX")
                        .arg(ttl.as_millis().max(1) as u64),
                )
                .await?;
            if set.is_some() {
                return Ok(Locked::Acquired(LockToken(token)));
            }
            let cur: Option<String> = self.call(redis::cmd("GET").arg(&lk)).await?;
            Ok(Locked::HeldBy(
                cur.as_deref().map(holder_of).unwrap_or_default().to_owned(),
            ))
        })
    }
    fn unlock<'a>(
        &'a self,
        k: &'a str,
        token: &'a LockToken,
    ) -> BoxFuture<'a, Result<(), CoordError>> {
        Box::pin(async move {
            let mut c = self.conn.clone();
            let script = redis::Script::new(UNLOCK);
            let mut inv = script.key(key("lock", k));
            inv.arg(&token.0);
            tokio::time::timeout(CALL_TIMEOUT, inv.invoke_async::<i64>(&mut c))
                .await
                .map_err(|_| self.err("timed out"))?
                .map_err(|e| self.err(e))?;
            Ok(())
        })
    }
}

impl RedisBackend {
    async fn script<T: redis::FromRedisValue>(
        &self,
        src: &str,
        keys: &[String],
        args: &[String],
    ) -> Result<T, CoordError> {
        let script = redis::Script::new(src);
        let mut inv = script.prepare_invoke();
        for k in keys {
            inv.key(k);
        }
        for a in args {
            inv.arg(a);
        }
        let mut c = self.conn.clone();
        tokio::time::timeout(CALL_TIMEOUT, inv.invoke_async::<T>(&mut c))
            .await
            .map_err(|_| self.err("timed out"))?
            .map_err(|e| self.err(e))
    }
}

fn owner_value(encoder: &str, epoch: u64) -> String {
    format!("{encoder}|{epoch}")
}

impl Ownership for RedisBackend {
    fn claim<'a>(
        &'a self,
        stream: &'a str,
        encoder: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<u64, CoordError>> {
        Box::pin(async move {
            let epoch: u64 = self
                .call(redis::cmd("INCR").arg(key("epoch", stream)))
                .await?;
            self.call::<()>(
                redis::cmd("SET")
                    .arg(key("owner", stream))
                    .arg(owner_value(encoder, epoch))
                    .arg("PX")
                    .arg(lease.as_millis() as u64),
            )
            .await?;
            Ok(epoch)
        })
    }
    fn claim_if_free<'a>(
        &'a self,
        stream: &'a str,
        encoder: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Option<u64>, CoordError>> {
        Box::pin(async move {
            self.script(
                CLAIM_IF_FREE,
                &[key("owner", stream), key("epoch", stream)],
                &[encoder.to_owned(), lease.as_millis().to_string()],
            )
            .await
        })
    }
    fn renew<'a>(
        &'a self,
        stream: &'a str,
        encoder: &'a str,
        epoch: u64,
        lease: Duration,
    ) -> BoxFuture<'a, Result<bool, CoordError>> {
        Box::pin(async move {
            let n: i64 = self
                .script(
                    RENEW,
                    &[key("owner", stream), key("epoch", stream)],
                    &[
                        owner_value(encoder, epoch),
                        lease.as_millis().to_string(),
                        epoch.to_string(),
                    ],
                )
                .await?;
            Ok(n == 1)
        })
    }
    fn check<'a>(
        &'a self,
        stream: &'a str,
        encoder: &'a str,
        epoch: u64,
    ) -> BoxFuture<'a, Result<bool, CoordError>> {
        Box::pin(async move {
            let cur: Option<String> = self
                .call(redis::cmd("GET").arg(key("owner", stream)))
                .await?;
            Ok(cur.as_deref() == Some(owner_value(encoder, epoch).as_str()))
        })
    }
    fn owner<'a>(
        &'a self,
        stream: &'a str,
    ) -> BoxFuture<'a, Result<Option<(String, u64)>, CoordError>> {
        Box::pin(async move {
            let cur: Option<String> = self
                .call(redis::cmd("GET").arg(key("owner", stream)))
                .await?;
            Ok(cur.and_then(|v| {
                v.rsplit_once('|')
                    .and_then(|(e, n)| Some((e.to_owned(), n.parse().ok()?)))
            }))
        })
    }
}

impl EventBus for RedisBackend {
    fn publish<'a>(&'a self, ev: &'a ClusterEvent) -> BoxFuture<'a, Result<(), CoordError>> {
        Box::pin(async move {
            let json = serde_json::to_string(ev).map_err(|e| self.err(e))?;
            let mut c = self.conn.clone();
            tokio::time::timeout(CALL_TIMEOUT, c.publish::<_, _, i64>(EVENTS, json))
                .await
                .map_err(|_| self.err("timed out"))?
                .map_err(|e| self.err(e))?;
            Ok(())
        })
    }
    fn subscribe(&self) -> broadcast::Receiver<ClusterEvent> {
        self.events.subscribe()
    }
}

impl MetaStore for RedisBackend {
    fn put(&self, rec: StreamRecord) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let Ok(json) = serde_json::to_string(&rec) else {
                return;
            };
            let r = async {
                self.call::<()>(redis::cmd("SET").arg(key("stream", &rec.name)).arg(json))
                    .await?;
                self.call::<()>(redis::cmd("SADD").arg(key("streams", "all")).arg(&rec.name))
                    .await
            }
            .await;
            if let Err(e) = r {
                warn!(stream = %rec.name, "stream metadata not saved: {e}");
            }
        })
    }
    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Option<StreamRecord>> {
        Box::pin(async move {
            match self
                .call::<Option<String>>(redis::cmd("GET").arg(key("stream", name)))
                .await
            {
                Ok(v) => v.and_then(|v| serde_json::from_str(&v).ok()),
                Err(e) => {
                    warn!(stream = %name, "stream metadata unavailable: {e}");
                    None
                }
            }
        })
    }
    fn list(&self) -> BoxFuture<'_, Vec<StreamRecord>> {
        Box::pin(async move {
            let names: Vec<String> = match self
                .call(redis::cmd("SMEMBERS").arg(key("streams", "all")))
                .await
            {
                Ok(n) => n,
                Err(e) => {
                    warn!("stream list unavailable: {e}");
                    return vec![];
                }
            };
            let mut out = vec![];
            for n in names {
                if let Some(r) = MetaStore::get(self, &n).await {
                    out.push(r);
                }
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
            out
        })
    }
}
