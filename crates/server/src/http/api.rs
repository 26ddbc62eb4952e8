//! The stream API (`GET /api/streams`), Prometheus metrics (`GET /metrics`) and the stream
//! list page (`GET /`).

use std::{fmt::Write as _, net::SocketAddr, time::UNIX_EPOCH};

use axum::{
    extract::{ConnectInfo, State},
    http::header,
    response::{Html, IntoResponse, Response},
    Extension, Json,
};
use serde::Serialize;

use super::state::HttpState;
use media::probe::StreamInfo;

use crate::{encode::presentation::DashRegistry, stream::Hub};

/// One entry of `GET /api/streams`.
#[derive(Debug, Serialize)]
pub struct StreamEntry {
    /// Stream name.
    pub name: String,
    /// `live`, `standby` (a hot-standby copy on an encoder, cluster) or `rejected`.
    pub state: &'static str,
    /// The broadcaster's address: shown to the operator (a client on this host's loopback
    /// interface) only, `null` for everyone else — viewers need not learn where a
    /// broadcaster sits.
    pub publisher: Option<String>,
    /// How it is published: `rtmp` (RTMP or RTMPS) or `whip` (WebRTC).
    pub protocol: &'static str,
    /// Unix time publishing started.
    pub started_unix: u64,
    /// Seconds since publishing started.
    pub uptime_secs: f64,
    /// RTMP players attached.
    pub viewers: usize,
    /// Bytes of media received.
    pub bytes_in: u64,
    /// Codec, resolution, rates.
    #[serde(flatten)]
    pub info: StreamInfo,
    /// Renditions available besides the source (the transcoder adds them).
    pub renditions: Vec<String>,
    /// Path of the DASH manifest, once the transcoder produced its first segment.
    pub dash: Option<String>,
    /// The transcoder's CPU use, % of one core.
    pub transcoder_cpu_percent: Option<f64>,
    /// How many times the transcoder was restarted.
    pub transcoder_restarts: Option<u64>,
}

fn entries(hub: &Hub, dash: &DashRegistry) -> Vec<StreamEntry> {
    hub.list()
        .into_iter()
        .map(|s| {
            let d = dash.get(&s.name);
            let d = d.as_ref().map(|d| d.read());
            let ready = d.as_ref().is_some_and(|d| {
                d.periods
                    .iter()
                    .any(|p| p.reps.iter().any(|r| !r.segments.is_empty()))
            });
            StreamEntry {
                name: s.name.clone(),
                state: if s.is_standby() { "standby" } else { "live" },
                publisher: Some(s.publisher.to_string()),
                protocol: s.protocol(),
                started_unix: s
                    .started
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0),
                uptime_secs: (s.uptime_secs() * 10.0).round() / 10.0,
                viewers: s.players(),
                bytes_in: s.bytes_in(),
                info: s.info(),
                renditions: d.as_ref().map(|d| d.ladder()).unwrap_or_default(),
                dash: ready.then(|| format!("/live/{}/manifest.mpd", s.name)),
                transcoder_cpu_percent: d.as_ref().map(|d| d.stats.cpu_percent()),
                transcoder_restarts: d.as_ref().map(|d| d.stats.restarts()),
            }
        })
        .collect()
}

pub(super) async fn streams(
    State(st): State<HttpState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
) -> Json<Vec<StreamEntry>> {
    Json(public_view(
        stream_list(&st),
        crate::net::is_local(peer.as_ref().map(|Extension(ConnectInfo(p))| p)),
    ))
}

/// The list as `requester_is_local` may see it.
fn public_view(mut list: Vec<StreamEntry>, requester_is_local: bool) -> Vec<StreamEntry> {
    if !requester_is_local {
        for e in &mut list {
            e.publisher = None;
        }
    }
    list
}

fn stream_list(st: &HttpState) -> Vec<StreamEntry> {
    let mut list = entries(&st.hub, &st.dash);
    // Refused publishes stay visible for a while, with the reason.
    list.extend(st.hub.rejections().into_iter().map(|r| {
        StreamEntry {
            name: r.name,
            state: "rejected",
            publisher: Some(r.publisher.to_string()),
            protocol: r.protocol,
            started_unix: r
                .at
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            uptime_secs: 0.0,
            viewers: 0,
            bytes_in: 0,
            info: StreamInfo {
                problem: Some(r.reason),
                ..Default::default()
            },
            renditions: vec![],
            dash: None,
            transcoder_cpu_percent: None,
            transcoder_restarts: None,
        }
    }));
    list
}

pub(super) async fn metrics(State(st): State<HttpState>) -> Response {
    let mut text = st.metrics.render();
    // Per-stream values are read from the hub at scrape time, so an ended stream simply
    // disappears instead of leaving a stale gauge behind.
    let list = entries(&st.hub, &st.dash);
    let _ = writeln!(
        text,
        "# TYPE ferrocast_streams_live gauge\nferrocast_streams_live {}",
        list.len()
    );
    // A metric family: its name and how to read it off an entry.
    type Family = (&'static str, fn(&StreamEntry) -> Option<f64>);
    let families: [Family; 6] = [
        ("ferrocast_transcoder_cpu_percent", |e| {
            e.transcoder_cpu_percent
        }),
        ("ferrocast_transcoder_restarts", |e| {
            e.transcoder_restarts.map(|r| r as f64)
        }),
        ("ferrocast_stream_viewers", |e| Some(e.viewers as f64)),
        ("ferrocast_stream_ingest_bitrate_kbps", |e| {
            e.info.bitrate_kbps
        }),
        ("ferrocast_stream_ingest_fps", |e| e.info.measured_fps),
        ("ferrocast_stream_ingest_bytes_total", |e| {
            Some(e.bytes_in as f64)
        }),
    ];
    for (name, f) in families {
        let kind = if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        let _ = writeln!(text, "# TYPE {name} {kind}");
        for e in &list {
            if let Some(v) = f(e) {
                let _ = writeln!(text, "{name}{{stream=\"{}\"}} {v}", e.name);
            }
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

pub(super) async fn index(State(st): State<HttpState>) -> Html<String> {
    let mut rows = String::new();
    for e in entries(&st.hub, &st.dash) {
        // Names are validated to [A-Za-z0-9_-], so they are safe to put in HTML as is.
        let res = match (e.info.width, e.info.height) {
            (Some(w), Some(h)) => format!("{w}×{h}"),
            _ => "?".into(),
        };
        let _ = write!(
            rows,
            "<tr><td>{n}</td><td>{c}</td><td>{res}</td><td>{fps}</td><td>{br}</td><td>{v}</td><td><code>rtmp://HOST:1935/live/{n}</code></td><td><a href=\"/watch/{n}\">watch</a></td></tr>",
            n = e.name,
            c = e.info.video_codec.as_deref().unwrap_or("-"),
            fps = e.info.fps.map(|f| format!("{f:.2}")).unwrap_or_else(|| "-".into()),
            br = e.info.bitrate_kbps.map(|b| format!("{b:.0} kb/s")).unwrap_or_else(|| "-".into()),
            v = e.viewers,
        );
    }
    if rows.is_empty() {
        rows = "<tr><td colspan=8>No live streams. Publish with <code>ffmpeg -re -i INPUT -c:v libx264 -c:a aac -f flv rtmp://HOST:1935/live/NAME</code></td></tr>".into();
    }
    Html(format!(
        "<!doctype html><html><head><meta charset=utf-8><title>ferrocast</title>\
         <meta http-equiv=refresh content=5><style>body{{font-family:sans-serif;margin:2em}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3em .6em}}</style></head>\
         <body><h1>ferrocast — live streams</h1><table><tr><th>name</th><th>codec</th><th>size</th>\
         <th>fps</th><th>bitrate</th><th>viewers</th><th>play</th><th>watch</th></tr>{rows}</table></body></html>"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> StreamEntry {
        StreamEntry {
            name: "cam".into(),
            state: "live",
            publisher: Some("192.0.2.1:50000".into()),
            protocol: "rtmp",
            started_unix: 0,
            uptime_secs: 0.0,
            viewers: 0,
            bytes_in: 0,
            info: StreamInfo::default(),
            renditions: vec![],
            dash: None,
            transcoder_cpu_percent: None,
            transcoder_restarts: None,
        }
    }

    #[test]
    fn broadcaster_addresses_are_for_the_operator_only() {
        let local = public_view(vec![entry()], true);
        assert_eq!(local[0].publisher.as_deref(), Some("192.0.2.1:50000"));
        let public = serde_json::to_value(public_view(vec![entry()], false)).unwrap();
        assert!(public[0]["publisher"].is_null());
        assert!(!public.to_string().contains("192.0.2.1"), "{public}");
        let is_local = |a: &str| crate::net::is_local(Some(&a.parse().unwrap()));
        assert!(is_local("127.0.0.1:1") && is_local("127.0.0.2:1") && is_local("[::1]:1"));
        assert!(!is_local("192.0.2.1:1") && !is_local("[2001:db8::1]:1"));
        assert!(!crate::net::is_local(None));
    }
}
