//! The gateway's routing: each published stream goes to one encoder, picked by Ketama
//! consistent hashing of the stream name over the encoders registered in Redis — unless the
//! session map says an encoder already holds the stream (a reconnecting broadcaster), in which
//! case it goes back there even if the ring changed meanwhile.

use std::sync::Arc;

use ketama::Ring;
use metrics::counter;
use tracing::{debug, warn};

use crate::{
    backend::coord::{EncoderInfo, Registry, SessionMap, SESSION_LEASE},
    cluster::relay::{RelayError, Resolver, Route},
};
use futures::future::BoxFuture;

/// Routes publishes over the live encoders.
pub struct RingResolver {
    registry: Arc<dyn Registry>,
    sessions: Arc<dyn SessionMap>,
}

impl RingResolver {
    /// A resolver over these backends.
    pub fn new(registry: Arc<dyn Registry>, sessions: Arc<dyn SessionMap>) -> Self {
        Self { registry, sessions }
    }
}

/// The encoder for `stream`: the session map's if that encoder is alive, else the ring's.
/// Returns the choice and whether it came from the session map.
pub fn choose<'a>(
    encoders: &'a [EncoderInfo],
    pinned: Option<&str>,
    stream: &str,
) -> Option<(&'a EncoderInfo, bool)> {
    if let Some(e) = pinned.and_then(|id| encoders.iter().find(|e| e.id == id)) {
        return Some((e, true));
    }
    let ring = Ring::uniform(encoders.iter().map(|e| e.id.clone()));
    let id = ring.get(stream)?;
    encoders.iter().find(|e| e.id == id).map(|e| (e, false))
}

impl Resolver for RingResolver {
    fn resolve<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, Result<Route, RelayError>> {
        Box::pin(async move {
            let encoders = self.registry.encoders().await.map_err(|e| {
                warn!(%stream, "cannot list encoders: {e}");
                RelayError::NoRoute(stream.to_owned())
            })?;
            let pinned = match self.sessions.get(stream).await {
                Ok(p) => p,
                Err(e) => {
                    // Without the session map, the ring still gives a stable answer.
                    warn!(%stream, "session map unavailable, routing by the ring alone: {e}");
                    None
                }
            };
            let (enc, sticky) = choose(&encoders, pinned.as_deref(), stream)
                .ok_or_else(|| RelayError::NoRoute(stream.to_owned()))?;
            counter!("ferrocast_gateway_routes_total", "by" => if sticky { "session" } else { "ring" }).increment(1);
            debug!(%stream, encoder = %enc.id, sticky, "routed");
            Ok(Route {
                addr: enc.rtmp.clone(),
                encoder: Some(enc.id.clone()),
            })
        })
    }

    fn standby<'a>(&'a self, stream: &'a str, primary: &'a Route) -> BoxFuture<'a, Option<Route>> {
        Box::pin(async move {
            let encoders = self.registry.encoders().await.ok()?;
            let ring = Ring::uniform(encoders.iter().map(|e| e.id.clone()));
            let id = ring
                .get_n(stream, encoders.len())
                .into_iter()
                .find(|id| Some(*id) != primary.encoder.as_deref())?
                .to_owned();
            encoders.into_iter().find(|e| e.id == id).map(|e| Route {
                addr: e.rtmp,
                encoder: Some(e.id),
            })
        })
    }

    fn hold<'a>(&'a self, stream: &'a str, route: &'a Route) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let Some(id) = &route.encoder else { return };
            if let Err(e) = self.sessions.set(stream, id, SESSION_LEASE).await {
                warn!(%stream, "session map not updated: {e}");
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encs(n: usize) -> Vec<EncoderInfo> {
        (0..n)
            .map(|i| EncoderInfo {
                id: format!("enc-{i}"),
                rtmp: format!("127.0.0.1:{}", 2000 + i),
                http: format!("http://127.0.0.1:{}", 3000 + i),
            })
            .collect()
    }

    #[test]
    fn the_session_map_wins_while_its_encoder_lives() {
        let e = encs(3);
        let by_ring = choose(&e, None, "cam").unwrap().0.id.clone();
        let other = e.iter().find(|x| x.id != by_ring).unwrap().id.clone();
        assert_eq!(
            choose(&e, Some(&other), "cam").unwrap(),
            (e.iter().find(|x| x.id == other).unwrap(), true)
        );
        // A pinned encoder that left: back to the ring.
        assert_eq!(choose(&e, Some("enc-9"), "cam").unwrap().0.id, by_ring);
        assert!(choose(&[], None, "cam").is_none());
    }

    #[test]
    fn adding_an_encoder_moves_about_one_in_n_plus_one_streams() {
        let (four, five) = (encs(4), encs(5));
        let names: Vec<String> = (0..4000).map(|i| format!("stream-{i}")).collect();
        let moved = names
            .iter()
            .filter(|n| {
                choose(&four, None, n).unwrap().0.id != choose(&five, None, n).unwrap().0.id
            })
            .count();
        let share = moved as f64 / names.len() as f64;
        assert!(
            (0.12..0.28).contains(&share),
            "moved {share:.3}, expected ≈ 0.2"
        );
    }
}
