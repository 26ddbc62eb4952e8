//! The caching edge in front of a real origin (`serve` with a live ffmpeg publisher): DASH
//! plays through it, 1,000 concurrent requests for an uncached segment make exactly one origin
//! fetch and all get identical bytes, and a dead origin trips the breaker, which fails fast and
//! recovers.

use std::time::{Duration, Instant};

use crate::common::edge::{get_full, start_edge};
use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_serves_dash_and_coalesces_a_thundering_herd() {
    let srv = TestServer::start(|_| {}).await;
    let _p = ffmpeg_publish(&srv.rtmp_url("herd"), "320x240", 40);
    let edge = start_edge(&[format!("http://127.0.0.1:{}", srv.http)]).await;
    // Wait for DASH at the origin, then play it through the edge with ffmpeg.
    let t0 = Instant::now();
    while srv.get("/live/herd/manifest.mpd").await.0 != 200 {
        assert!(t0.elapsed() < Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (frames, err) = ffmpeg_decode_frames(
        &format!("http://127.0.0.1:{}/live/herd/manifest.mpd", edge.port),
        2,
        &[],
    )
    .await;
    assert!(
        frames >= 40,
        "ffmpeg through the edge decoded {frames}: {err}"
    );

    // The next segment that is not yet at the origin: ask 1,000 times at once.
    let (_, _, mpd) = get_full(srv.http, "/live/herd/manifest.mpd").await;
    let mpd = String::from_utf8(mpd).unwrap();
    let (start, listed) = video_numbers(&mpd);
    let path = segment_path(&mpd, "herd", "v400", &format!("{}.m4s", start + listed)); // not started yet
    let fetches_before = edge.state.edge().stats().origin_fetches;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let (port, path) = (edge.port, path.clone());
        tasks.spawn(async move { get_full(port, &path).await });
    }
    let mut bodies = std::collections::HashSet::new();
    let mut phases = std::collections::HashMap::<String, usize>::new();
    while let Some(r) = tasks.join_next().await {
        let (status, xcache, body) = r.unwrap();
        assert_eq!(status, 200, "{xcache}");
        *phases.entry(xcache).or_default() += 1;
        bodies.insert(body);
    }
    let fetches = edge.state.edge().stats().origin_fetches - fetches_before;
    assert_eq!(bodies.len(), 1, "all 1,000 got the same bytes");
    assert!(bodies.iter().next().unwrap().len() > 1000);
    assert_eq!(
        fetches, 1,
        "one origin fetch for 1,000 requests: {phases:?}"
    );
    // The herd streamed the segment while it was being made (not cacheable then); once it is
    // complete, one more fetch stores it and from then on it is a hit.
    let (_, first, _) = get_full(edge.port, &path).await;
    let (_, xcache, body) = get_full(edge.port, &path).await;
    assert_eq!(xcache, "HIT", "after {first}");
    assert!(
        bodies.contains(&body),
        "the cached copy equals what the herd got"
    );
    let (_, _, metrics) = get_full(edge.port, "/metrics").await;
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(metrics.contains("ferrocast_edge_hit_ratio"), "{metrics}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_origin_opens_the_breaker_which_fails_fast_then_recovers() {
    // An origin that answers 500 until told otherwise.
    let healthy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let app = {
        let (healthy, hits) = (healthy.clone(), hits.clone());
        axum::Router::new().route(
            "/live/{*p}",
            axum::routing::get(move || {
                let (healthy, hits) = (healthy.clone(), hits.clone());
                async move {
                    hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if healthy.load(std::sync::atomic::Ordering::SeqCst) {
                        (
                            axum::http::StatusCode::OK,
                            [("cache-control", "public, max-age=60")],
                            "segment",
                        )
                            .into_response()
                    } else {
                        (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "broken").into_response()
                    }
                }
            }),
        )
    };
    use axum::response::IntoResponse;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    let edge = start_edge(&[origin]).await;
    // Three failures open the breaker for this object...
    for _ in 0..3 {
        let (status, _, _) = get_full(edge.port, "/live/x/v720/1.m4s").await;
        assert!(status >= 500, "{status}");
        // (the token bucket allows one origin fetch per object per second)
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let before = hits.load(std::sync::atomic::Ordering::SeqCst);
    let t0 = Instant::now();
    let (status, xcache, _) = get_full(edge.port, "/live/x/v720/1.m4s").await;
    assert_eq!((status, xcache.as_str()), (503, "ERROR"));
    assert!(
        t0.elapsed() < Duration::from_millis(200),
        "open breaker must fail fast"
    );
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        before,
        "no origin request while open"
    );
    // The origin recovers; after the cool-down a probe goes through and the breaker closes.
    healthy.store(true, std::sync::atomic::Ordering::SeqCst);
    let t0 = Instant::now();
    loop {
        let (status, _, body) = get_full(edge.port, "/live/x/v720/1.m4s").await;
        if status == 200 {
            assert_eq!(body, b"segment");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(40),
            "breaker never recovered ({status})"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
