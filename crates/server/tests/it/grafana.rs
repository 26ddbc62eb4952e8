//! The shipped Grafana dashboards query what the roles really export: each role runs for real
//! as its own process — `serve`, and the local cluster's encoders, gateway and edge
//! (`scripts/cluster.sh up`), plus a standalone `edge --origin` in front of `serve` — a short
//! stream is published and played through both edges and a player beacon is sent, then every
//! role's live `/metrics` is scraped and every dashboard query is checked against the roles
//! its panel is about.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{
    cluster::{publish, Cluster},
    count_segments, eventually, ffmpeg_publish, free_port, get_bytes, http_get, segment_path,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    Serve,
    Encoder,
    Gateway,
    StandaloneEdge,
    ClusterEdge,
}
use Role::*;

/// The roles each panel is about (by panel title, so a new panel has to be placed here).
fn about(title: &str) -> &'static [Role] {
    const PANELS: &[(&str, &[Role])] = &[
        // The web player's beacons are recorded by the server the page reports to.
        ("End-to-end latency", &[Serve]),
        ("First frame", &[Serve]),
        ("Stutter ratio", &[Serve]),
        ("Encoder CPU", &[Serve, Encoder]),
        ("Edge cache hit ratio", &[StandaloneEdge, ClusterEdge]),
        (
            "Streams, viewers, segment production lag",
            &[Serve, Encoder],
        ),
    ];
    PANELS
        .iter()
        .find(|(p, _)| title.starts_with(p))
        .map(|(_, r)| *r)
        .unwrap_or_else(|| panic!("panel {title:?}: say which roles it is about in `about`"))
}

/// The series of a Prometheus text exposition: metric name → the label sets seen.
fn series(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let end = l.find(['{', ' ']).unwrap_or(l.len());
        let labels = l[end..]
            .strip_prefix('{')
            .and_then(|r| r.split_once('}'))
            .map_or("", |(x, _)| x);
        out.entry(l[..end].to_owned())
            .or_default()
            .push(labels.to_owned());
    }
    out
}

/// `(metric, label matchers)` of every `ferrocast_` selector in a PromQL expression.
fn selectors(expr: &str) -> Vec<(String, Vec<String>)> {
    let mut out = vec![];
    let mut rest = expr;
    while let Some(i) = rest.find("ferrocast_") {
        let name: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[i + name.len()..];
        let matchers = rest
            .strip_prefix('{')
            .and_then(|r| r.split_once('}'))
            .map_or(vec![], |(m, _)| {
                m.split(',').map(|s| s.trim().to_owned()).collect()
            });
        out.push((name, matchers));
    }
    out
}

async fn http_post(port: u16, path: &str, body: &str) -> u16 {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let req = format!("POST {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    s.write_all(req.as_bytes()).await.unwrap();
    let mut resp = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut resp))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&resp)
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Plays `name` through the HTTP server on `port` a little: the MPD, then each rendition's
/// init segment and newest listed segment.
async fn play(port: u16, name: &str) {
    let (status, mpd) = http_get(port, &format!("/live/{name}/manifest.mpd")).await;
    assert_eq!(status, 200, "MPD of {name} on :{port}: {mpd}");
    let doc = roxmltree::Document::parse(&mpd).unwrap();
    let period = doc
        .descendants()
        .rfind(|n| n.has_tag_name("Period"))
        .unwrap();
    let pid = period.attribute("id").unwrap();
    for set in period
        .children()
        .filter(|n| n.has_tag_name("AdaptationSet"))
    {
        let tmpl = set
            .children()
            .find(|n| n.has_tag_name("SegmentTemplate"))
            .unwrap();
        let first: u64 = tmpl.attribute("startNumber").unwrap().parse().unwrap();
        for rep in set.children().filter(|n| n.has_tag_name("Representation")) {
            let id = rep.attribute("id").unwrap();
            let init = segment_path(&mpd, name, id, &format!("init-{pid}.mp4"));
            let (s, h, _) = get_bytes(port, &init).await;
            assert_eq!(s, 200, "{id} init of {name} on :{port}: {h}");
            let seg = segment_path(&mpd, name, id, &format!("{first}.m4s"));
            let (s, h, _) = get_bytes(port, &seg).await;
            assert_eq!(s, 200, "{id}/{first}.m4s of {name} on :{port}: {h}");
        }
    }
}

/// A finished segment exists (its numbers are recorded): the MPD lists segments from the
/// clock, the HLS media playlist only those that are whole.
async fn has_segments(port: u16, name: &str) -> bool {
    let (s, body) = http_get(port, &format!("/live/{name}/manifest.mpd")).await;
    let (h, playlist) = http_get(port, &format!("/live/{name}/v720/index.m3u8")).await;
    s == 200 && count_segments(&body, "video") >= 2 && h == 200 && playlist.contains("#EXTINF")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_query_what_each_role_exports() {
    let c = Cluster::up();
    let bin = env!("CARGO_BIN_EXE_ferrocast");
    // `serve`, and a standalone edge in front of it.
    let (rtmp, rtmps, serve) = (free_port(), free_port(), free_port());
    let data = c.dir.join("serve");
    c.spawn(
        "serve",
        &[
            bin,
            "serve",
            "--data-dir",
            data.to_str().unwrap(),
            "--rtmp-addr",
            &format!("127.0.0.1:{rtmp}"),
            "--rtmps-addr",
            &format!("127.0.0.1:{rtmps}"),
            "--http-addr",
            &format!("127.0.0.1:{serve}"),
            "--webrtc-addr",
            "127.0.0.1:0",
        ],
    );
    let edge = free_port();
    let edge_data = c.dir.join("standalone-edge");
    c.spawn(
        "standalone-edge",
        &[
            bin,
            "edge",
            "--origin",
            &format!("http://127.0.0.1:{serve}"),
            "--http-addr",
            &format!("127.0.0.1:{edge}"),
            "--data-dir",
            edge_data.to_str().unwrap(),
        ],
    );
    for (what, port) in [("serve", serve), ("the standalone edge", edge)] {
        eventually(&format!("{what} up"), Duration::from_secs(20), || async {
            http_get(port, "/healthz").await.0 == 200
        })
        .await;
    }

    // A short stream into each: `serve` directly, the cluster through its edge.
    let _to_serve = ffmpeg_publish(&format!("rtmp://127.0.0.1:{rtmp}/live/graf"), "320x240", 60);
    let _to_cluster = publish(&c, "grafc");
    let cluster_edge = c.port("EDGE_HTTP");
    eventually("DASH on serve", Duration::from_secs(40), || {
        has_segments(serve, "graf")
    })
    .await;
    eventually("DASH at the cluster edge", Duration::from_secs(40), || {
        has_segments(cluster_edge, "grafc")
    })
    .await;
    play(edge, "graf").await;
    play(edge, "graf").await; // the second time from the cache
    play(cluster_edge, "grafc").await;
    play(cluster_edge, "grafc").await;
    // What a page playing `graf` reports.
    let beacon = r#"{"stream":"graf","first_frame_s":0.8,"latency_s":[2.1,2.4],"stalls":0,"stall_s":0.0,"played_s":10.0}"#;
    assert_eq!(http_post(serve, "/api/beacon", beacon).await, 204);

    let ports = [
        (Serve, serve),
        (Encoder, c.port("ENC1_HTTP")),
        (Encoder, c.port("ENC2_HTTP")),
        (Gateway, c.port("GW_HTTP")),
        (StandaloneEdge, edge),
        (ClusterEdge, cluster_edge),
    ];
    // Each role's series (the two encoders together: a stream is on one of them).
    let scrape = || async {
        let mut by_role: BTreeMap<Role, BTreeMap<String, Vec<String>>> = BTreeMap::new();
        for (role, port) in ports {
            let (status, text) = http_get(port, "/metrics").await;
            assert_eq!(status, 200, "{role:?} /metrics: {text}");
            for (k, v) in series(&text) {
                by_role
                    .entry(role)
                    .or_default()
                    .entry(k)
                    .or_default()
                    .extend(v);
            }
        }
        by_role
    };
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let mut dashboards: Vec<_> = std::fs::read_dir(format!("{root}/grafana"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    dashboards.sort();
    assert!(!dashboards.is_empty());
    let missing = |by_role: &BTreeMap<Role, BTreeMap<String, Vec<String>>>| {
        let mut missing = BTreeSet::new();
        let mut checked = 0;
        for path in &dashboards {
            let v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            for p in v["panels"].as_array().unwrap() {
                let title = p["title"].as_str().unwrap();
                for t in p["targets"].as_array().unwrap() {
                    for (name, matchers) in selectors(t["expr"].as_str().unwrap()) {
                        for role in about(title) {
                            checked += 1;
                            let found =
                                by_role
                                    .get(role)
                                    .and_then(|s| s.get(&name))
                                    .is_some_and(|sets| {
                                        sets.iter().any(|labels| {
                                            matchers
                                                .iter()
                                                .all(|m| labels.split(',').any(|l| l.trim() == m))
                                        })
                                    });
                            if !found {
                                missing.insert(format!("{}: panel {title:?} queries {name}{{{}}}, which {role:?} does not export", path.file_name().unwrap().to_string_lossy(), matchers.join(",")));
                            }
                        }
                    }
                }
            }
        }
        assert!(checked >= 12, "only {checked} queries checked");
        missing
    };
    // (Segments are listed and played by now, so every counter and summary a panel needs
    // has been recorded: one scrape.)
    let by_role = scrape().await;
    let missing = missing(&by_role);
    assert!(
        missing.is_empty(),
        "{}",
        missing.into_iter().collect::<Vec<_>>().join("\n")
    );

    // Every role exports its own counters through the recorder, not only what a panel shows.
    for (role, name) in [
        (Gateway, "ferrocast_gateway_routes_total"),
        (Gateway, "ferrocast_rtmp_connections_total"),
        (Encoder, "ferrocast_segments_total"),
        (StandaloneEdge, "ferrocast_edge_bytes_served_total"),
        (ClusterEdge, "ferrocast_edge_bytes_served_total"),
        (ClusterEdge, "ferrocast_edge_invalidations_total"),
        (ClusterEdge, "ferrocast_edge_fetch_lock_total"),
        (ClusterEdge, "ferrocast_rtmp_connections_total"),
    ] {
        assert!(
            by_role[&role].contains_key(name),
            "{role:?} does not export {name}"
        );
    }
}
