//! Tests of the [`Edge`] facade with in-memory "origins" (closures) and
//! paused tokio time where timing matters.

use super::*;
use crate::object::ObjectHead;
use crate::policy::timeout::TimeoutConfig;
use bytes::Bytes;
use std::sync::atomic::AtomicUsize;
use std::sync::Mutex;
use tokio::sync::{mpsc, Notify};

const SEG: &str = "live/cam/v720/12.m4s";
const SEG2: &str = "live/cam/v720/13.m4s";
const LIVE_SEG: &str = "live/cam/v720/14.m4s";
const MPD: &str = "live/cam/manifest.mpd";

fn head(status: u16, content_type: &str, cache_control: &str) -> ObjectHead {
    ObjectHead {
        status,
        content_type: Some(content_type.into()),
        cache_control: Some(cache_control.into()),
        ..ObjectHead::default()
    }
}

fn seg_head() -> ObjectHead {
    head(
        200,
        "video/iso.segment",
        "public, max-age=31536000, immutable",
    )
}

/// An in-progress low-latency segment: streamed, `no-cache`.
fn live_head() -> ObjectHead {
    head(200, "video/iso.segment", "no-cache")
}

fn mpd_head() -> ObjectHead {
    head(200, "application/dash+xml", "no-cache")
}

type OriginResult = Result<OriginResponse, OriginError>;

fn ok_full(h: ObjectHead, body: &'static str) -> impl Future<Output = OriginResult> {
    std::future::ready(Ok(OriginResponse::full(h, body)))
}

fn refused() -> impl Future<Output = OriginResult> {
    std::future::ready(Err(OriginError::Connect("connection refused".into())))
}

async fn no_fetch() -> OriginResult {
    panic!("this request must not reach the origin")
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[tokio::test(start_paused = true)]
async fn miss_then_hit_with_age_and_etag() {
    let edge = Edge::new(EdgeConfig::default());
    let r = edge
        .get(SEG, || ok_full(seg_head(), "segment-bytes"))
        .await
        .unwrap();
    assert_eq!(r.phase, CachePhase::Miss);
    assert_eq!(r.age, Duration::ZERO);
    assert_eq!(
        r.head.etag.as_deref(),
        Some(crate::etag_of(b"segment-bytes").as_str())
    );
    assert_eq!(r.head.content_length, Some(13));
    assert!(r.fill.is_none());
    assert_eq!(r.body.as_full().unwrap(), "segment-bytes");

    tokio::time::advance(secs(3)).await;
    let r = edge.get(SEG, no_fetch).await.unwrap();
    assert_eq!(r.phase, CachePhase::Hit);
    assert_eq!(r.age, secs(3));
    assert_eq!(
        r.head.cache_control.as_deref(),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(r.body.collect().await.unwrap(), "segment-bytes");

    let s = edge.stats();
    assert_eq!(
        (s.hits, s.misses, s.origin_fetches, s.origin_bytes),
        (1, 1, 1, 13)
    );
    assert!((s.hit_ratio() - 0.5).abs() < 1e-9);
}

#[tokio::test(start_paused = true)]
async fn manifests_are_micro_cached_for_a_second() {
    let edge = Edge::new(EdgeConfig::default());
    let r = edge
        .get(MPD, || ok_full(mpd_head(), "mpd-1"))
        .await
        .unwrap();
    assert_eq!(r.phase, CachePhase::Miss);
    tokio::time::advance(Duration::from_millis(500)).await;
    let r = edge.get(MPD, no_fetch).await.unwrap();
    assert_eq!(
        (r.phase, r.body.collect().await.unwrap()),
        (CachePhase::Hit, "mpd-1".into())
    );
    // The origin's no-cache is replayed to players.
    assert_eq!(r.head.cache_control.as_deref(), Some("no-cache"));
    tokio::time::advance(Duration::from_millis(600)).await;
    let r = edge
        .get(MPD, || ok_full(mpd_head(), "mpd-2"))
        .await
        .unwrap();
    assert_eq!(r.phase, CachePhase::Miss);
    assert_eq!(r.body.collect().await.unwrap(), "mpd-2");
}

/// Issue test, at the logic level: 1,000 concurrent requests for a segment
/// not yet cached → exactly one origin fetch, identical bytes for all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_requests_for_an_uncached_segment_make_one_fetch() {
    const N: usize = 1000;
    let edge = Edge::new(EdgeConfig::default());
    let fetches = Arc::new(AtomicUsize::new(0));
    let body = Bytes::from(
        (0..256 * 1024)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>(),
    );
    let mut tasks = Vec::new();
    for _ in 0..N {
        let (edge, fetches, body) = (edge.clone(), fetches.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let r = edge
                .get(SEG, || {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    async move {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok(OriginResponse::full(seg_head(), body))
                    }
                })
                .await
                .unwrap();
            (r.phase, r.body.collect().await.unwrap())
        }));
    }
    let mut phases = std::collections::HashMap::new();
    for t in tasks {
        let (phase, got) = t.await.unwrap();
        assert_eq!(got, body);
        *phases.entry(phase).or_insert(0) += 1;
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    assert_eq!(phases.get(&CachePhase::Miss), Some(&1));
    assert_eq!(
        phases.get(&CachePhase::Coalesced).unwrap_or(&0)
            + phases.get(&CachePhase::Hit).unwrap_or(&0),
        N - 1
    );
    assert_eq!(edge.stats().origin_fetches, 1);
    assert_eq!(edge.in_flight(), 0);
}

/// An in-progress low-latency segment is fanned out chunk by chunk: every
/// one of 1,000 waiters has the first chunk before the origin sends the
/// second, from a single fetch; nothing is stored (`no-cache`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_progress_segment_fans_out_chunk_by_chunk() {
    const N: usize = 1000;
    let edge = Edge::new(EdgeConfig::default());
    let fetches = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel::<Result<Bytes, OriginError>>(4);
    let rx = Arc::new(Mutex::new(Some(rx)));
    let have_first = Arc::new(AtomicUsize::new(0));
    let all_have_first = Arc::new(Notify::new());
    let mut tasks = Vec::new();
    for _ in 0..N {
        let (edge, fetches, rx) = (edge.clone(), fetches.clone(), rx.clone());
        let (have_first, all_have_first) = (have_first.clone(), all_have_first.clone());
        tasks.push(tokio::spawn(async move {
            let mut r = edge
                .get(LIVE_SEG, || {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    let rx = rx.lock().unwrap().take().expect("second fetch");
                    std::future::ready(Ok(OriginResponse::stream(live_head(), rx)))
                })
                .await
                .unwrap();
            if let Some(fill) = r.fill.take() {
                tokio::spawn(fill.run());
            }
            let first = r.body.next_chunk().await.unwrap().unwrap();
            if have_first.fetch_add(1, Ordering::SeqCst) + 1 == N {
                all_have_first.notify_one();
            }
            let rest = r.body.collect().await.unwrap();
            (r.phase, [first, rest].concat())
        }));
    }
    tx.send(Ok(Bytes::from_static(b"moof+mdat #1 ")))
        .await
        .unwrap();
    all_have_first.notified().await;
    tx.send(Ok(Bytes::from_static(b"moof+mdat #2")))
        .await
        .unwrap();
    drop(tx);
    let mut bypass = 0;
    for t in tasks {
        let (phase, got) = t.await.unwrap();
        assert_eq!(got, b"moof+mdat #1 moof+mdat #2");
        match phase {
            CachePhase::Bypass => bypass += 1,
            CachePhase::Coalesced => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(bypass, 1);
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    assert!(matches!(
        edge.cache().lookup(LIVE_SEG, now()).await,
        Lookup::Miss
    ));
}

#[tokio::test(start_paused = true)]
async fn streamed_cacheable_body_is_stored_when_complete() {
    let edge = Edge::new(EdgeConfig::default());
    let (tx, rx) = mpsc::channel(4);
    let mut r = edge
        .get(SEG, || {
            std::future::ready(Ok(OriginResponse::stream(seg_head(), rx)))
        })
        .await
        .unwrap();
    assert_eq!(r.phase, CachePhase::Miss);
    assert_eq!(r.head.etag, None); // unknown until the body is complete
    assert!(r.body.as_full().is_none());
    let fill = tokio::spawn(r.fill.take().unwrap().run());
    for part in ["a", "b", "c"] {
        tx.send(Ok(Bytes::from_static(part.as_bytes())))
            .await
            .unwrap();
    }
    drop(tx);
    assert_eq!(r.body.collect().await.unwrap(), "abc");
    fill.await.unwrap().unwrap();
    let hit = edge.get(SEG, no_fetch).await.unwrap();
    assert_eq!(hit.phase, CachePhase::Hit);
    assert_eq!(
        hit.head.etag.as_deref(),
        Some(crate::etag_of(b"abc").as_str())
    );
    assert_eq!(hit.body.collect().await.unwrap(), "abc");
}

#[tokio::test(start_paused = true)]
async fn stalled_stream_fails_its_readers_after_the_chunk_timeout() {
    let edge = Edge::new(EdgeConfig::default());
    let (tx, rx) = mpsc::channel(4);
    let mut r = edge
        .get(LIVE_SEG, || {
            std::future::ready(Ok(OriginResponse::stream(live_head(), rx)))
        })
        .await
        .unwrap();
    let fill = tokio::spawn(r.fill.take().unwrap().run());
    tx.send(Ok(Bytes::from_static(b"x"))).await.unwrap();
    assert_eq!(r.body.next_chunk().await.unwrap().unwrap(), "x");
    let t0 = tokio::time::Instant::now();
    assert_eq!(
        r.body.next_chunk().await,
        Some(Err(EdgeError::BodyTimeout(secs(10))))
    );
    assert_eq!(t0.elapsed(), secs(10));
    assert_eq!(r.body.next_chunk().await, None);
    assert_eq!(fill.await.unwrap(), Err(EdgeError::BodyTimeout(secs(10))));
    drop(tx);
    assert_eq!(edge.stats().origin_failures, 1);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_fill_fails_the_body_in_progress() {
    let edge = Edge::new(EdgeConfig::default());
    let (_tx, rx) = mpsc::channel(1);
    let mut r = edge
        .get(LIVE_SEG, || {
            std::future::ready(Ok(OriginResponse::stream(live_head(), rx)))
        })
        .await
        .unwrap();
    drop(r.fill.take());
    assert!(matches!(
        r.body.next_chunk().await,
        Some(Err(EdgeError::Abandoned(_)))
    ));
}

/// A writer that goes away before the origin answered (its client
/// disconnected) leaves the entry dangling: the waiter retries and fetches.
#[tokio::test(start_paused = true)]
async fn waiter_retries_when_the_writer_goes_away() {
    let edge = Edge::new(EdgeConfig::default());
    let t0 = tokio::time::Instant::now();
    let writer = tokio::spawn({
        let edge = edge.clone();
        async move {
            edge.get(SEG, std::future::pending::<OriginResult>)
                .await
                .map(|r| r.phase)
        }
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(edge.in_flight(), 1);
    let reader = tokio::spawn({
        let edge = edge.clone();
        async move {
            let r = edge
                .get(SEG, || ok_full(seg_head(), "second"))
                .await
                .unwrap();
            (r.phase, r.body.collect().await.unwrap())
        }
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    writer.abort();
    let (phase, body) = reader.await.unwrap();
    assert_eq!(
        (phase, body),
        (CachePhase::Miss, Bytes::from_static(b"second"))
    );
    // The retry waited for the object's token bucket (1 fetch/s).
    let waited = t0.elapsed();
    assert!(
        waited >= secs(1) && waited < Duration::from_millis(1010),
        "{waited:?}"
    );
    assert_eq!(edge.stats().origin_fetches, 2);
}

/// Issue test, at the logic level: origin errors → the breaker opens after
/// 3, requests fail fast without reaching the origin, and it recovers after
/// the cool-down through one probe.
#[tokio::test(start_paused = true)]
async fn breaker_opens_after_three_failures_fails_fast_and_recovers() {
    let edge = Edge::new(EdgeConfig::default());
    let fetches = Arc::new(AtomicUsize::new(0));
    let failing = || {
        fetches.fetch_add(1, Ordering::SeqCst);
        refused()
    };
    for i in 0..3 {
        assert_eq!(
            edge.breaker_state(BreakerScope::Object, SEG),
            BreakerState::Closed,
            "{i}"
        );
        let e = edge.get(SEG, failing).await.unwrap_err();
        assert_eq!(
            (e.status(), e.error_source()),
            (502, crate::ErrorSource::Upstream)
        );
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 3);
    assert_eq!(
        edge.breaker_state(BreakerScope::Object, SEG),
        BreakerState::Open
    );
    assert_eq!(
        edge.breaker_state(BreakerScope::Rendition, "live/cam/v720"),
        BreakerState::Open
    );

    // Fail fast: no origin call, 503 with Retry-After.
    let t_open = tokio::time::Instant::now();
    let e = edge.get(SEG, failing).await.unwrap_err();
    assert_eq!(fetches.load(Ordering::SeqCst), 3);
    assert_eq!(t_open.elapsed(), Duration::ZERO);
    assert_eq!(e.status(), 503);
    assert!(matches!(
        e,
        EdgeError::CircuitOpen {
            scope: BreakerScope::Object,
            ..
        }
    ));
    assert_eq!(e.retry_after(), Some(secs(5)));
    assert_eq!(e.fallback(), None);
    // Another segment of the broken rendition fails fast too.
    let e = edge.get(SEG2, no_fetch).await.unwrap_err();
    assert!(matches!(
        e,
        EdgeError::CircuitOpen {
            scope: BreakerScope::Rendition,
            ..
        }
    ));
    let open = edge.open_breakers();
    assert_eq!(open.len(), 2, "{open:?}");

    // After the cool-down one probe goes through; it succeeds: closed.
    tokio::time::advance(secs(5)).await;
    assert_eq!(
        edge.breaker_state(BreakerScope::Object, SEG),
        BreakerState::HalfOpen
    );
    let r = edge.get(SEG, || ok_full(seg_head(), "back")).await.unwrap();
    assert_eq!(r.phase, CachePhase::Miss);
    assert_eq!(
        edge.breaker_state(BreakerScope::Object, SEG),
        BreakerState::Closed
    );
    assert_eq!(
        edge.breaker_state(BreakerScope::Rendition, "live/cam/v720"),
        BreakerState::Closed
    );
    assert!(edge.open_breakers().is_empty());
    let r = edge.get(SEG2, || ok_full(seg_head(), "13")).await.unwrap();
    assert_eq!(r.phase, CachePhase::Miss);
    assert_eq!(edge.stats().origin_failures, 3);
}

#[tokio::test(start_paused = true)]
async fn server_errors_count_as_failures_and_are_not_stored() {
    let edge = Edge::new(EdgeConfig::default());
    for _ in 0..3 {
        let r = edge
            .get(SEG, || ok_full(head(503, "text/plain", "no-store"), "busy"))
            .await
            .unwrap();
        // Passed through to the client (and its waiters), not stored.
        assert_eq!((r.phase, r.head.status), (CachePhase::Bypass, 503));
    }
    assert_eq!(
        edge.breaker_state(BreakerScope::Object, SEG),
        BreakerState::Open
    );
    // A 404 (segment not there yet) is neither stored nor a failure.
    let other = "live/other/v720/1.m4s";
    for _ in 0..4 {
        let r = edge
            .get(other, || {
                ok_full(head(404, "text/plain", "no-cache"), "not yet")
            })
            .await
            .unwrap();
        assert_eq!((r.phase, r.head.status), (CachePhase::Bypass, 404));
    }
    assert_eq!(
        edge.breaker_state(BreakerScope::Object, other),
        BreakerState::Closed
    );
}

#[tokio::test(start_paused = true)]
async fn fallback_path_is_offered_only_when_enabled() {
    let mut cfg = EdgeConfig::default();
    cfg.fallback(FallbackMode::LowerRendition);
    let edge = Edge::new(cfg);
    for seg in [
        "live/cam/v720/1.m4s",
        "live/cam/v720/2.m4s",
        "live/cam/v720/3.m4s",
    ] {
        edge.get(seg, refused).await.unwrap_err();
    }
    let e = edge.get(SEG, no_fetch).await.unwrap_err();
    assert!(matches!(
        e,
        EdgeError::CircuitOpen {
            scope: BreakerScope::Rendition,
            ..
        }
    ));
    assert_eq!(e.fallback(), Some("live/cam/v400/12.m4s"));
    let r = edge
        .get(e.fallback().unwrap(), || ok_full(seg_head(), "low"))
        .await
        .unwrap();
    assert_eq!(r.phase, CachePhase::Miss);
    // The lowest rendition has no fallback.
    let low = Edge::new({
        let mut c = EdgeConfig::default();
        c.fallback(FallbackMode::LowerRendition);
        c
    });
    for n in 1..=3 {
        low.get(&format!("live/cam/v400/{n}.m4s"), refused)
            .await
            .unwrap_err();
    }
    let e = low.get("live/cam/v400/9.m4s", no_fetch).await.unwrap_err();
    assert_eq!(e.fallback(), None);
}

#[tokio::test(start_paused = true)]
async fn stale_copy_is_served_when_the_origin_fails() {
    let edge = Edge::new(EdgeConfig::default());
    edge.get(MPD, || ok_full(mpd_head(), "old")).await.unwrap();
    tokio::time::advance(secs(2)).await;
    let r = edge.get(MPD, refused).await.unwrap();
    assert_eq!(r.phase, CachePhase::Stale);
    assert_eq!(r.age, secs(2));
    assert_eq!(r.body.collect().await.unwrap(), "old");
    let r = edge
        .get(MPD, || ok_full(head(500, "text/plain", "no-store"), "oops"))
        .await
        .unwrap();
    assert_eq!(r.phase, CachePhase::Stale);
    // A working origin replaces it.
    let r = edge.get(MPD, || ok_full(mpd_head(), "new")).await.unwrap();
    assert_eq!(r.phase, CachePhase::Miss);
    assert_eq!(r.body.collect().await.unwrap(), "new");
    // Past the stale-if-error window (10 s) there is nothing to fall back on.
    tokio::time::advance(secs(12)).await;
    assert!(edge.get(MPD, refused).await.is_err());
}

/// Issue test, at the logic level: a slow origin → the timeout follows the
/// P95 rule.
#[tokio::test(start_paused = true)]
async fn slow_origin_times_out_per_the_p95_rule() {
    let mut tc = TimeoutConfig::default();
    tc.min_samples(5);
    let mut cfg = EdgeConfig::default();
    cfg.timeout(tc);
    let edge = Edge::new(cfg);
    let after = |d: Duration| async move {
        tokio::time::sleep(d).await;
        Ok(OriginResponse::full(seg_head(), "x"))
    };
    assert_eq!(edge.timeout_in_force(), secs(3));
    for n in 0..5 {
        let key = format!("live/cam/v720/{n}.m4s");
        edge.get(&key, || after(secs(1))).await.unwrap();
    }
    // P95 of five 1 s latencies, + 20 %.
    assert_eq!(edge.timeout_in_force(), Duration::from_millis(1200));
    let t0 = tokio::time::Instant::now();
    let e = edge
        .get("live/cam/v720/5.m4s", || after(secs(2)))
        .await
        .unwrap_err();
    assert_eq!(e, EdgeError::OriginTimeout(Duration::from_millis(1200)));
    assert_eq!(
        (e.status(), t0.elapsed()),
        (504, Duration::from_millis(1200))
    );
}

#[tokio::test(start_paused = true)]
async fn token_bucket_spaces_fetches_of_one_object() {
    let edge = Edge::new(EdgeConfig::default());
    let live = || ok_full(live_head(), "partial");
    let t0 = tokio::time::Instant::now();
    assert_eq!(
        edge.get(LIVE_SEG, live).await.unwrap().phase,
        CachePhase::Bypass
    );
    assert_eq!(
        edge.get(LIVE_SEG, live).await.unwrap().phase,
        CachePhase::Bypass
    );
    assert_eq!(t0.elapsed(), secs(1));
    assert_eq!(edge.stats().origin_fetches, 2);

    let mut cfg = EdgeConfig::default();
    cfg.max_bucket_wait(Duration::from_millis(500));
    let edge = Edge::new(cfg);
    edge.get(LIVE_SEG, live).await.unwrap();
    let e = edge.get(LIVE_SEG, live).await.unwrap_err();
    assert_eq!(e.status(), 503);
    assert_eq!(e.retry_after(), Some(secs(1)));
    // A rate-limited fetch is not an origin failure.
    assert_eq!(
        edge.breaker_state(BreakerScope::Object, LIVE_SEG),
        BreakerState::Closed
    );
}

#[tokio::test(start_paused = true)]
async fn invalidation_by_key_and_prefix() {
    let edge = Edge::new(EdgeConfig::default());
    edge.get(SEG, || ok_full(seg_head(), "v1")).await.unwrap();
    edge.get(MPD, || ok_full(mpd_head(), "m1")).await.unwrap();
    edge.invalidate(MPD).await;
    tokio::time::advance(secs(1)).await;
    assert_eq!(
        edge.get(MPD, || ok_full(mpd_head(), "m2"))
            .await
            .unwrap()
            .phase,
        CachePhase::Miss
    );
    assert_eq!(
        edge.get(SEG, no_fetch).await.unwrap().phase,
        CachePhase::Hit
    );
    edge.invalidate_prefix("live/cam/");
    let r = edge.get(SEG, || ok_full(seg_head(), "v2")).await.unwrap();
    assert_eq!(
        (r.phase, r.body.collect().await.unwrap()),
        (CachePhase::Miss, "v2".into())
    );
}

#[tokio::test(start_paused = true)]
async fn origin_candidates_follow_the_ring_and_skip_open_breakers() {
    let edge = Edge::new(EdgeConfig::default());
    assert!(edge.origin_candidates("cam").is_empty());
    let ring = Ring::uniform(["o1:8080", "o2:8080", "o3:8080"]);
    let order: Vec<String> = ring.get_n("cam", 3).into_iter().map(String::from).collect();
    edge.set_origins(ring);
    assert_eq!(edge.origin_candidates("cam"), order);
    for _ in 0..3 {
        edge.report_origin(&order[0], false);
    }
    assert_eq!(
        edge.breaker_state(BreakerScope::Origin, &order[0]),
        BreakerState::Open
    );
    assert_eq!(edge.origin_candidates("cam"), order[1..]);
    tokio::time::advance(secs(5)).await;
    assert_eq!(edge.origin_candidates("cam"), order);
    edge.report_origin(&order[0], true);
    assert_eq!(
        edge.breaker_state(BreakerScope::Origin, &order[0]),
        BreakerState::Closed
    );
}

#[tokio::test]
async fn invalid_keys_are_downstream_errors() {
    let edge = Edge::new(EdgeConfig::default());
    let e = edge.get("", no_fetch).await.unwrap_err();
    assert_eq!(
        (e.status(), e.error_source()),
        (400, crate::ErrorSource::Downstream)
    );
    let long = "a".repeat(MAX_KEY_LEN + 1);
    assert!(matches!(
        edge.get(&long, no_fetch).await,
        Err(EdgeError::InvalidKey(_))
    ));
    assert_eq!(edge.stats().errors, 2);
}

#[test]
fn handles_are_send_and_the_future_is_send() {
    fn send_static<T: Send + 'static>() {}
    fn sync<T: Sync>() {}
    fn send_val<T: Send>(_: &T) {}
    send_static::<Edge>();
    sync::<Edge>();
    send_static::<Fill>();
    send_static::<EdgeResponse>();
    let edge = Edge::new(EdgeConfig::default());
    let fut = edge.get(SEG, || ok_full(seg_head(), "x"));
    send_val(&fut);
}

/// A herd of blocking playlist reloads for the same part is one origin request, held longer
/// than the adaptive timeout would allow; neither its latency nor the origin's 503 after
/// three target durations counts against the origin.
#[tokio::test(start_paused = true)]
async fn blocking_reloads_coalesce_and_are_held_without_tripping_anything() {
    const KEY: &str = "live/cam/v720/index.m3u8?_HLS_msn=12&_HLS_part=3";
    let edge = Edge::new(EdgeConfig::default());
    assert_eq!(edge.timeout_in_force(), secs(3));
    let fetches = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (edge, fetches) = (edge.clone(), fetches.clone());
        tasks.push(tokio::spawn(async move {
            let r = edge
                .get(KEY, || {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    async {
                        // The part appears 8 s later (a stream catching up).
                        tokio::time::sleep(secs(8)).await;
                        Ok(OriginResponse::full(
                            head(200, "application/vnd.apple.mpegurl", "no-cache"),
                            "#EXTM3U\n",
                        ))
                    }
                })
                .await
                .unwrap();
            r.phase
        }));
    }
    let mut phases = std::collections::HashMap::new();
    for t in tasks {
        *phases.entry(t.await.unwrap()).or_insert(0) += 1;
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    assert_eq!(phases.get(&CachePhase::Miss), Some(&1));
    assert_eq!(phases.get(&CachePhase::Coalesced), Some(&99));
    assert_eq!(edge.timeout_in_force(), secs(3), "not a latency sample");
    // 503 (held three target durations) is relayed, never a failure.
    for n in 0..5 {
        let key = format!("live/cam/v720/index.m3u8?_HLS_msn={}", 20 + n);
        let r = edge
            .get(&key, || {
                ok_full(
                    head(503, "text/plain", "no-cache"),
                    "not within three target durations",
                )
            })
            .await
            .unwrap();
        assert_eq!(r.head.status, 503);
    }
    assert_eq!(edge.stats().origin_failures, 0);
    assert!(edge.open_breakers().is_empty());
    // Longer than the blocking timeout is an origin timeout after all.
    let t0 = tokio::time::Instant::now();
    let e = edge
        .get("live/cam/v720/index.m3u8?_HLS_msn=30", || async {
            tokio::time::sleep(secs(60)).await;
            ok_full(mpd_head(), "x").await
        })
        .await
        .unwrap_err();
    assert_eq!(e, EdgeError::OriginTimeout(secs(14)));
    assert_eq!(t0.elapsed(), secs(14));
}

#[tokio::test(start_paused = true)]
async fn a_client_over_its_miss_budget_is_refused_alone_and_hits_stay_free() {
    let edge = Edge::new(EdgeConfig::default());
    // Refused before any origin fetch, with the client's own retry time.
    let e = edge
        .get_admitted(SEG, || Err(secs(2)), no_fetch)
        .await
        .unwrap_err();
    assert_eq!(
        e,
        EdgeError::ClientRateLimited {
            retry_after: secs(2)
        }
    );
    assert_eq!(e.status(), 429);
    assert_eq!(e.retry_after(), Some(secs(2)));
    assert_eq!(edge.stats().origin_fetches, 0);
    assert_eq!(edge.in_flight(), 0, "the refused permit left the table");
    // The next client fetches it; after that, a client with no budget still gets the hit
    // (admission is asked only of a request that would fetch).
    let r = edge
        .get_admitted(SEG, || Ok(()), || ok_full(seg_head(), "seg"))
        .await
        .unwrap();
    assert_eq!(r.phase, CachePhase::Miss);
    let r = edge
        .get_admitted(SEG, || panic!("a hit needs no admission"), no_fetch)
        .await
        .unwrap();
    assert_eq!(r.phase, CachePhase::Hit);
}
