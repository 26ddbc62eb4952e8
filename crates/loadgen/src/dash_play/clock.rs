//! The server's wall clock, as a DASH player finds it: from the MPD's HTTP `UTCTiming`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use url::{Origin, Url};

use super::mpd::{self, Mpd};
use crate::http::{self, HttpClient};

/// Server clock − local clock (ms) from the MPD's HTTP UTCTiming, if it has one on the same
/// host; 0 otherwise. Also the `X-Cache` of the MPD GET this makes.
pub(super) async fn clock_offset(
    mpd_url: &Url,
    origin: &Origin,
    client: &HttpClient,
) -> (f64, Option<String>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let Ok(uri) = http::parse_uri(mpd_url.as_str()) else {
        return (0.0, None);
    };
    let Ok(f) = http::get(client, &uri, true, mpd::MAX_MPD_BYTES as u64, deadline).await else {
        return (0.0, None);
    };
    let x_cache = Some(f.x_cache.clone().unwrap_or_else(|| "none".into()));
    (
        clock_offset_from(mpd_url, origin, client, f, deadline).await,
        x_cache,
    )
}

async fn clock_offset_from(
    mpd_url: &Url,
    origin: &Origin,
    client: &HttpClient,
    f: http::Fetched,
    deadline: Instant,
) -> f64 {
    let Some(m) = f
        .body
        .as_deref()
        .and_then(|b| std::str::from_utf8(b).ok())
        .and_then(|t| Mpd::parse(t, mpd_url).ok())
    else {
        return 0.0;
    };
    for (scheme, value) in &m.utc_timing {
        if !matches!(
            scheme.as_str(),
            "urn:mpeg:dash:utc:http-iso:2014" | "urn:mpeg:dash:utc:http-xsdate:2014"
        ) {
            continue;
        }
        let Ok(url) = mpd_url.join(value) else {
            continue;
        };
        if url.origin() != *origin {
            continue;
        }
        let Ok(u) = http::parse_uri(url.as_str()) else {
            continue;
        };
        let sent = SystemTime::now();
        let Ok(f) = http::get(client, &u, true, 4096, deadline).await else {
            continue;
        };
        let Some(server_ms) = f
            .body
            .as_deref()
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|t| mpd::parse_datetime_ms(t).ok())
        else {
            continue;
        };
        let rtt = sent.elapsed().unwrap_or_default();
        let local_mid =
            (sent.duration_since(UNIX_EPOCH).unwrap_or_default() + rtt / 2).as_secs_f64() * 1000.0;
        return server_ms as f64 - local_mid;
    }
    0.0
}
