//! Cluster peers prove who they are with a shared secret, so that nobody outside the cluster
//! can publish to an encoder or a gateway directly, fake the client address a relayed publish
//! carries, or pass for an edge that may skip the fetch lock.
//!
//! A relayed publish carries the broadcaster's address (`fc_client`), an expiry (`fc_exp`) and
//! an HMAC-SHA256 over both, the stream name and the standby flag (`fc_sig`) in its query.
//! The encoder checks the key and counts failed attempts against that address — the
//! broadcaster's, not the gateway's, so a stranger's wrong keys through an edge never lock out
//! everyone behind that edge. A peer HTTP fetch carries `x-ferrocast-peer: EXP.MAC`.
//!
//! Tokens live a minute (plus the same again of clock skew between hosts): a captured one
//! replays only that long, and only for its stream name. The secret is `--cluster-secret`
//! (or the environment), else one generated at random by the first node of the cluster and
//! shared through its Redis — which every node trusts anyway.

use std::{
    net::IpAddr,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use hmac::{Hmac, Mac};
use parking_lot::RwLock;
use sha2::Sha256;

/// How long a token is valid after it is made.
pub const TOKEN_TTL: Duration = Duration::from_secs(60);
/// Clock difference between cluster hosts that is tolerated.
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);
/// Query parameters a relay adds (and strips from what a broadcaster sent).
pub const CLIENT_PARAM: &str = "fc_client";
/// The token's expiry, Unix seconds.
pub const EXPIRY_PARAM: &str = "fc_exp";
/// The MAC, hex.
pub const SIG_PARAM: &str = "fc_sig";
/// The standby flag a gateway's second copy of a stream carries.
pub const STANDBY_PARAM: &str = "standby";
/// The HTTP header an edge's fetch from a peer edge carries (the lock holder serves it from
/// its cache or its fetch in flight, never by locking again).
pub const PEER_HEADER: &str = "x-ferrocast-peer";

/// Why a cluster token was refused. The text goes to the peer's log, so it says what to check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// Fields missing or not parseable.
    #[error("malformed cluster peer token ({0})")]
    Malformed(&'static str),
    /// Expired or from too far in the future.
    #[error(
        "cluster peer token expired or from the future: check that the hosts' clocks agree (NTP)"
    )]
    Expired,
    /// The MAC does not match.
    #[error("cluster peer token does not verify: every node of the cluster needs the same --cluster-secret (or none, to share one through Redis)")]
    BadSignature,
    /// A publish straight to an encoder or gateway, not relayed by a peer.
    #[error("this node takes publishes only from its cluster (relays that prove the cluster secret): publish to an edge instead, rtmp://EDGE:1935/live/NAME?key=KEY")]
    NotAPeer,
}

impl PeerError {
    /// Short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            PeerError::Malformed(_) => "peer_token_malformed",
            PeerError::Expired => "peer_token_expired",
            PeerError::BadSignature => "peer_token_invalid",
            PeerError::NotAPeer => "not_a_peer",
        }
    }
}

/// How a node's RTMP listener treats publishes in a cluster.
#[derive(Debug, Clone)]
pub struct PeerPolicy {
    /// The cluster's secret (relays sign with it, listeners verify with it).
    pub secret: ClusterSecret,
    /// Encoders and gateways: only publishes relayed by a peer; edges take broadcasters.
    pub peers_only: bool,
}

impl PeerPolicy {
    /// The publish's broadcaster and standby flag: the relayed token's for a peer's publish,
    /// the connection's own address for a broadcaster (where this node takes them).
    pub fn publisher(
        &self,
        name: &str,
        query: Option<&str>,
        peer: IpAddr,
        now: SystemTime,
    ) -> Result<RelayedPublish, PeerError> {
        match self.secret.verify_publish(name, query, now)? {
            Some(r) => Ok(r),
            None if self.peers_only => Err(PeerError::NotAPeer),
            None => Ok(RelayedPublish {
                client: peer,
                standby: false,
            }),
        }
    }
}

/// A verified relayed publish: who the broadcaster is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayedPublish {
    /// The broadcaster's address as the first node saw it.
    pub client: IpAddr,
    /// The gateway's hot-standby copy.
    pub standby: bool,
}

/// The shared secret of a cluster: a handle, so the tasks that sign and verify see a new
/// value at once when the one shared through Redis changes (a Redis that lost its data).
#[derive(Clone)]
pub struct ClusterSecret(Arc<RwLock<Vec<u8>>>);

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(***)")
    }
}

/// Unix seconds of `t`.
fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl ClusterSecret {
    /// A secret from its text (a flag, the environment, Redis).
    pub fn new(secret: &str) -> Self {
        Self(Arc::new(RwLock::new(secret.as_bytes().to_vec())))
    }

    /// Takes `secret` as the value from now on; true if it changed.
    pub fn replace(&self, secret: &str) -> bool {
        let mut s = self.0.write();
        let changed = s.as_slice() != secret.as_bytes();
        if changed {
            *s = secret.as_bytes().to_vec();
        }
        changed
    }

    /// A fresh random secret (hex of 32 bytes), for the first node of a cluster to share.
    pub fn generate() -> String {
        let mut b = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut b);
        hex::encode(b)
    }

    fn mac(&self, parts: &[&str]) -> Hmac<Sha256> {
        let mut m =
            Hmac::<Sha256>::new_from_slice(&self.0.read()).expect("HMAC takes any key length");
        for p in parts {
            // Length-prefixed, so no two field lists give the same input.
            m.update(&(p.len() as u32).to_be_bytes());
            m.update(p.as_bytes());
        }
        m
    }

    fn check_expiry(exp: &str, now: SystemTime) -> Result<(), PeerError> {
        let exp: u64 = exp.parse().map_err(|_| PeerError::Malformed("expiry"))?;
        let now = unix(now);
        let max_ahead = (TOKEN_TTL + CLOCK_SKEW).as_secs();
        if exp + CLOCK_SKEW.as_secs() < now || exp > now + max_ahead {
            return Err(PeerError::Expired);
        }
        Ok(())
    }

    fn verify_mac(&self, parts: &[&str], sig: &str) -> Result<(), PeerError> {
        let sig = hex::decode(sig).map_err(|_| PeerError::Malformed("signature"))?;
        // `verify_slice` compares in constant time.
        self.mac(parts)
            .verify_slice(&sig)
            .map_err(|_| PeerError::BadSignature)
    }

    /// The query parameters a relay appends when it publishes `name` for `client` upstream.
    pub fn sign_publish(
        &self,
        name: &str,
        client: IpAddr,
        standby: bool,
        now: SystemTime,
    ) -> String {
        let exp = (unix(now) + TOKEN_TTL.as_secs()).to_string();
        let client = client.to_string();
        let standby = if standby { "1" } else { "0" };
        let sig = hex::encode(
            self.mac(&["publish", name, &client, standby, &exp])
                .finalize()
                .into_bytes(),
        );
        let mut q = format!("{CLIENT_PARAM}={client}&{EXPIRY_PARAM}={exp}&{SIG_PARAM}={sig}");
        if standby == "1" {
            q.push_str(&format!("&{STANDBY_PARAM}=1"));
        }
        q
    }

    /// Checks a publish's query: `Ok(None)` when it carries no token (a broadcaster),
    /// `Ok(Some(..))` for a valid relayed publish, an error for a bad or stale token.
    pub fn verify_publish(
        &self,
        name: &str,
        query: Option<&str>,
        now: SystemTime,
    ) -> Result<Option<RelayedPublish>, PeerError> {
        let get = |k| crate::stream::name::query_param(query, k);
        let Some(sig) = get(SIG_PARAM) else {
            return Ok(None);
        };
        let client_text = get(CLIENT_PARAM).ok_or(PeerError::Malformed("client"))?;
        let client: IpAddr = client_text
            .parse()
            .map_err(|_| PeerError::Malformed("client"))?;
        let exp = get(EXPIRY_PARAM).ok_or(PeerError::Malformed("expiry"))?;
        let standby = get(STANDBY_PARAM) == Some("1");
        Self::check_expiry(exp, now)?;
        let flag = if standby { "1" } else { "0" };
        self.verify_mac(&["publish", name, client_text, flag, exp], sig)?;
        Ok(Some(RelayedPublish { client, standby }))
    }

    /// The value of [`PEER_HEADER`] for a fetch from a peer edge.
    pub fn sign_fetch(&self, now: SystemTime) -> String {
        let exp = (unix(now) + TOKEN_TTL.as_secs()).to_string();
        let sig = hex::encode(self.mac(&["fetch", &exp]).finalize().into_bytes());
        format!("{exp}.{sig}")
    }

    /// Checks a [`PEER_HEADER`] value.
    pub fn verify_fetch(&self, value: &str, now: SystemTime) -> Result<(), PeerError> {
        let (exp, sig) = value
            .split_once('.')
            .ok_or(PeerError::Malformed("header"))?;
        Self::check_expiry(exp, now)?;
        self.verify_mac(&["fetch", exp], sig)
    }
}

/// A broadcaster's query with every cluster parameter removed (it may not pass for a peer by
/// sending them itself, and the relay adds its own).
pub fn strip_peer_params(query: Option<&str>) -> Option<String> {
    let q: Vec<&str> = query?
        .split('&')
        .filter(|kv| {
            let k = kv.split_once('=').map_or(*kv, |(k, _)| k);
            ![CLIENT_PARAM, EXPIRY_PARAM, SIG_PARAM, STANDBY_PARAM].contains(&k)
        })
        .filter(|kv| !kv.is_empty())
        .collect();
    (!q.is_empty()).then(|| q.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip() -> IpAddr {
        "203.0.113.9".parse().unwrap()
    }

    #[test]
    fn a_signed_publish_verifies_and_carries_the_client() {
        let s = ClusterSecret::new("s3cret");
        let now = SystemTime::now();
        for standby in [false, true] {
            let q = format!("key=k&{}", s.sign_publish("cam", ip(), standby, now));
            assert_eq!(
                s.verify_publish("cam", Some(&q), now),
                Ok(Some(RelayedPublish {
                    client: ip(),
                    standby
                }))
            );
        }
        assert_eq!(s.verify_publish("cam", Some("key=k"), now), Ok(None));
        assert_eq!(s.verify_publish("cam", None, now), Ok(None));
    }

    #[test]
    fn tampering_a_wrong_secret_and_age_are_refused() {
        let s = ClusterSecret::new("s3cret");
        let now = SystemTime::now();
        let q = s.sign_publish("cam", ip(), false, now);
        // Another name, another client, the standby flag added, another secret.
        assert_eq!(
            s.verify_publish("other", Some(&q), now),
            Err(PeerError::BadSignature)
        );
        let forged = q.replace("203.0.113.9", "203.0.113.10");
        assert_eq!(
            s.verify_publish("cam", Some(&forged), now),
            Err(PeerError::BadSignature)
        );
        assert_eq!(
            s.verify_publish("cam", Some(&format!("{q}&standby=1")), now),
            Err(PeerError::BadSignature)
        );
        assert_eq!(
            ClusterSecret::new("other").verify_publish("cam", Some(&q), now),
            Err(PeerError::BadSignature)
        );
        let late = now + TOKEN_TTL + CLOCK_SKEW + Duration::from_secs(2);
        assert_eq!(
            s.verify_publish("cam", Some(&q), late),
            Err(PeerError::Expired)
        );
        let early = now - CLOCK_SKEW - Duration::from_secs(2);
        assert_eq!(
            s.verify_publish("cam", Some(&q), early),
            Err(PeerError::Expired)
        );
        assert_eq!(
            s.verify_publish("cam", Some("fc_sig=zz&fc_client=1.2.3.4&fc_exp=1"), now),
            Err(PeerError::Expired)
        );
        assert!(matches!(
            s.verify_publish("cam", Some("fc_sig=00"), now),
            Err(PeerError::Malformed(_))
        ));
    }

    #[test]
    fn fetch_headers_verify_only_with_the_secret() {
        let s = ClusterSecret::new("s3cret");
        let now = SystemTime::now();
        let h = s.sign_fetch(now);
        assert_eq!(s.verify_fetch(&h, now), Ok(()));
        assert_eq!(
            ClusterSecret::new("x").verify_fetch(&h, now),
            Err(PeerError::BadSignature)
        );
        // What the edges sent before: a bare "1".
        assert!(s.verify_fetch("1", now).is_err());
        // A replaced secret takes effect for every holder of the handle.
        let held = s.clone();
        assert!(s.replace("rotated") && !s.replace("rotated"));
        assert_eq!(held.verify_fetch(&h, now), Err(PeerError::BadSignature));
        assert_eq!(
            s.verify_fetch(&h, now + TOKEN_TTL + CLOCK_SKEW + Duration::from_secs(2)),
            Err(PeerError::Expired)
        );
    }

    #[test]
    fn a_broadcaster_cannot_smuggle_peer_parameters() {
        assert_eq!(
            strip_peer_params(Some(
                "key=a&fc_client=1.2.3.4&fc_sig=00&fc_exp=9&standby=1&x=y"
            )),
            Some("key=a&x=y".into())
        );
        assert_eq!(strip_peer_params(Some("fc_sig=00")), None);
        assert_eq!(strip_peer_params(None), None);
        assert!(!format!("{:?}", ClusterSecret::new("s3cret")).contains("s3cret"));
    }
}
