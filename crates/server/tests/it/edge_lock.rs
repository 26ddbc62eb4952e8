//! Two cluster edges sharing a real Redis (redis-server on a free port): a burst of requests
//! for a segment neither has cached, split across both edges, makes exactly one origin fetch
//! (the lock holder fetches; the other edge gets the bytes from it), and a segment-ready event
//! on Redis pub/sub drops the stale manifest from both caches.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use crate::common::{free_port, get_bytes, get_with};
use axum::{extract::State, http::header, response::IntoResponse, routing, Router};
use ferrocast::{
    auth::cluster::ClusterSecret,
    backend::{
        coord::{ClusterEvent, EncoderInfo, EventBus, Registry},
        health::Health,
        redis::RedisBackend,
    },
    edge_http::{self, EdgeState},
};
use tokio::process::{Child, Command};

struct Origin {
    segment_fetches: AtomicUsize,
    manifest_fetches: AtomicUsize,
    manifest: std::sync::Mutex<String>,
}

async fn segment(State(o): State<Arc<Origin>>) -> impl IntoResponse {
    o.segment_fetches.fetch_add(1, Ordering::SeqCst);
    // Slow enough that the whole burst arrives while the fetch is in flight.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let body: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    (
        [
            (header::CONTENT_TYPE, "video/iso.segment"),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        body,
    )
}

async fn manifest(State(o): State<Arc<Origin>>) -> impl IntoResponse {
    o.manifest_fetches.fetch_add(1, Ordering::SeqCst);
    let m = o.manifest.lock().unwrap().clone();
    (
        [
            (header::CONTENT_TYPE, "application/dash+xml"),
            (header::CACHE_CONTROL, "public, max-age=60"),
        ],
        m,
    )
}

async fn redis_server() -> (Child, String) {
    let port = free_port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server not found: apt-get install redis-server (scripts/deps.sh test)");
    let url = format!("redis://127.0.0.1:{port}");
    for _ in 0..50 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (child, url)
}

async fn start_edge(redis: &Arc<RedisBackend>) -> (u16, EdgeState) {
    let l = ferrocast::listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = l.local_addr().unwrap().port();
    let st = EdgeState::cluster(
        redis.clone(),
        redis.clone(),
        redis.clone(),
        redis.clone(),
        format!("http://127.0.0.1:{port}"),
        ClusterSecret::new("edge-lock-test"),
        Health::default(),
    );
    tokio::spawn(edge_http::run(l, st.clone(), std::future::pending()));
    (port, st)
}

/// Status, X-Cache and body of a GET.
async fn get(port: u16, path: &str) -> (u16, String, Vec<u8>) {
    let (status, head, body) = get_bytes(port, path).await;
    let xcache = head
        .lines()
        .find_map(|l| l.strip_prefix("x-cache: "))
        .unwrap_or("")
        .trim()
        .to_uppercase();
    (status, xcache, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_edges_sharing_a_redis_lock_make_one_origin_fetch_and_invalidate_on_events() {
    let (_redis_proc, url) = redis_server().await;
    let redis = Arc::new(RedisBackend::connect(&url).await.unwrap());
    let origin = Arc::new(Origin {
        segment_fetches: AtomicUsize::new(0),
        manifest_fetches: AtomicUsize::new(0),
        manifest: std::sync::Mutex::new("<MPD v1/>".into()),
    });
    let app = Router::new()
        .route("/live/s/v720/{file}", routing::get(segment))
        .route("/live/s/manifest.mpd", routing::get(manifest))
        .with_state(origin.clone());
    let ol = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let oport = ol.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(ol, app).await });
    // The origin is an "encoder" in the registry, as `ferrocast encoder` registers itself.
    redis
        .register(
            &EncoderInfo {
                id: "enc-1".into(),
                rtmp: "127.0.0.1:1".into(),
                http: format!("http://127.0.0.1:{oport}"),
            },
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    let (a, sa) = start_edge(&redis).await;
    let (b, sb) = start_edge(&redis).await;
    let t0 = Instant::now();
    while sa.edge().origin_candidates("s").is_empty() || sb.edge().origin_candidates("s").is_empty()
    {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "edges did not learn the origin from the registry"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // 1,000 requests, alternating between the two edges, for a segment neither has.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..1000 {
        let port = if i % 2 == 0 { a } else { b };
        tasks.spawn(async move { get(port, "/live/s/v720/7.m4s").await });
    }
    let mut bodies = std::collections::HashSet::new();
    let mut phases = std::collections::HashMap::<String, usize>::new();
    while let Some(r) = tasks.join_next().await {
        let (status, xcache, body) = r.unwrap();
        assert_eq!(status, 200);
        assert_eq!(body.len(), 1_000_000);
        bodies.insert(body);
        *phases.entry(xcache).or_default() += 1;
    }
    assert_eq!(bodies.len(), 1, "edges served different bytes");
    assert_eq!(
        origin.segment_fetches.load(Ordering::SeqCst),
        1,
        "origin fetches for one segment across two edges (phases {phases:?})"
    );
    // A client that claims to be a peer edge (the bare header edges sent before the cluster
    // secret) gets no way around the lock: still one origin fetch across both edges.
    let before = origin.segment_fetches.load(Ordering::SeqCst);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let port = if i % 2 == 0 { a } else { b };
        tasks.spawn(async move {
            get_with(port, "/live/s/v720/9.m4s", &[("x-ferrocast-peer", "1")]).await
        });
    }
    while let Some(r) = tasks.join_next().await {
        let (status, _, body) = r.unwrap();
        assert_eq!((status, body.len()), (200, 1_000_000));
    }
    assert_eq!(
        origin.segment_fetches.load(Ordering::SeqCst) - before,
        1,
        "a forged peer header skipped the fetch lock"
    );
    // Both edges now answer from their own cache.
    assert_eq!(get(a, "/live/s/v720/7.m4s").await.1, "HIT");
    assert_eq!(get(b, "/live/s/v720/7.m4s").await.1, "HIT");

    // Manifests: cached by both; a segment-ready event on Redis makes both drop it.
    let (_, _, m1) = get(a, "/live/s/manifest.mpd").await;
    let (_, _, _) = get(b, "/live/s/manifest.mpd").await;
    assert_eq!(m1, b"<MPD v1/>");
    assert_eq!(get(a, "/live/s/manifest.mpd").await.1, "HIT");
    *origin.manifest.lock().unwrap() = "<MPD v2/>".into();
    redis
        .publish(&ClusterEvent::Segment {
            stream: "s".into(),
            rep: "v720".into(),
            number: 8,
        })
        .await
        .unwrap();
    let t0 = Instant::now();
    loop {
        let (_, _, ma) = get(a, "/live/s/manifest.mpd").await;
        let (_, _, mb) = get(b, "/live/s/manifest.mpd").await;
        if ma == b"<MPD v2/>" && mb == b"<MPD v2/>" {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the manifest was not invalidated on both edges"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
