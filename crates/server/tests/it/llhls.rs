//! Low-latency HLS from a real server (`serve` with a live ffmpeg publisher): every playlist
//! a player would see passes the RFC 8216bis checker (`cmaf::hls::check_media`), blocking
//! reloads answer when the part exists (400 too far ahead), parts are byte ranges whose bytes
//! are the segment's, the preload hint's open range streams the segment in progress, and
//! through `ferrocast edge` a herd of blocking reloads is one origin request and part ranges
//! come from the edge's one object per segment. ffmpeg plays the HLS; the end of the stream
//! ends the playlists.

use std::time::{Duration, Instant};

use cmaf::hls::{check_master, check_media, CheckedSegment, MediaReport};

use crate::common::edge::{get_full, start_edge};
use crate::common::*;

const NAME: &str = "ll";
const REPS: [&str; 3] = ["v720", "v400", "a64"];

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// A media playlist through the checker; panics with the rules it breaks.
fn checked(what: &str, text: &str) -> MediaReport {
    let r = check_media(text);
    assert!(
        r.violations.is_empty(),
        "{what} breaks RFC 8216bis rules: {:#?}\n{text}",
        r.violations
    );
    r
}

/// The path of a URI that `rep`'s media playlist lists (relative to the playlist).
fn media_url(rep: &str, uri: &str) -> String {
    resolve(&format!("/live/{NAME}/{rep}/"), uri)
}

async fn playlist(port: u16, rep: &str, query: &str) -> (u16, String) {
    http_get(port, &format!("/live/{NAME}/{rep}/index.m3u8{query}")).await
}

/// The part after the last one a playlist lists: the next of the segment in progress, or
/// the first of the next segment.
fn next_part(r: &MediaReport) -> (u64, usize) {
    let (msn, part) = r.last_part().expect("a low-latency playlist lists parts");
    if r.open.as_ref().is_some_and(|o| o.msn == msn) {
        (msn, part + 1)
    } else {
        (msn + 1, 0)
    }
}

/// The segment (finished or in progress) with Media Sequence Number `msn`.
fn segment(r: &MediaReport, msn: u64) -> Option<&CheckedSegment> {
    r.segments.iter().chain(&r.open).find(|s| s.msn == msn)
}

/// `GET` of a part by its byte range; returns its bytes.
async fn get_part(port: u16, rep: &str, uri: &str, offset: u64, length: u64) -> Vec<u8> {
    let range = format!("bytes={offset}-{}", offset + length - 1);
    let (status, head, body) = get_with(port, &media_url(rep, uri), &[("Range", &range)]).await;
    assert_eq!(status, 206, "{rep}/{uri} {range}: {head}");
    let cr = header(&head, "content-range").unwrap_or_default();
    assert!(
        cr.starts_with(&format!("bytes {offset}-{}/", offset + length - 1)),
        "{cr}"
    );
    assert_eq!(body.len() as u64, length, "{rep}/{uri} {range}");
    body
}

/// A segment once it is complete (served as immutable).
async fn finished_segment(port: u16, path: &str) -> Vec<u8> {
    let t0 = Instant::now();
    loop {
        let (s, head, body) = get_bytes(port, path).await;
        if s == 200 && header(&head, "cache-control").is_some_and(|c| c.contains("immutable")) {
            return body;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "{path} did not finish: {s} {head}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ll_hls_playlists_blocking_reloads_and_parts_direct_and_through_the_edge() {
    let srv = TestServer::start(|c| c.limits.reconnect_grace_ms = 0).await;
    let mut publisher = ffmpeg_publish(&srv.rtmp_url(NAME), "320x240", 90);
    let port = srv.http;
    eventually(
        "every rendition's playlist lists a finished segment with parts",
        Duration::from_secs(60),
        || async {
            let mut all = true;
            for rep in REPS {
                let (s, text) = playlist(port, rep, "").await;
                all &= s == 200
                    && check_media(&text)
                        .segments
                        .iter()
                        .any(|s| !s.parts.is_empty());
            }
            all
        },
    )
    .await;

    // The master playlist: valid, both variants with codecs and sizes, the audio group.
    let (status, master) = srv.get(&format!("/live/{NAME}/master.m3u8")).await;
    assert_eq!(status, 200);
    assert_eq!(check_master(&master), vec![], "{master}");
    for want in [
        "RESOLUTION=720x720",
        "RESOLUTION=400x400",
        "v720/index.m3u8",
        "v400/index.m3u8",
        "URI=\"a64/index.m3u8\"",
    ] {
        assert!(master.contains(want), "{want}: {master}");
    }

    // Follow each rendition as an LL-HLS player does: a blocking reload for the next part,
    // then that part by its byte range. Every answer passes the checker and lists the part.
    let mut fetched: Vec<(&str, String, u64, Vec<u8>)> = Vec::new();
    for rep in REPS {
        let (_, text) = playlist(port, rep, "").await;
        let mut r = checked(rep, &text);
        let rounds = if rep == "v720" { 10 } else { 4 };
        for _ in 0..rounds {
            let (msn, part) = next_part(&r);
            let t0 = Instant::now();
            let (status, text) =
                playlist(port, rep, &format!("?_HLS_msn={msn}&_HLS_part={part}")).await;
            let waited = t0.elapsed();
            assert_eq!(status, 200, "{rep} msn {msn} part {part}: {text}");
            assert!(
                waited < Duration::from_secs(8),
                "{rep}: a part took {waited:?}"
            );
            r = checked(
                &format!("{rep} after _HLS_msn={msn}&_HLS_part={part}"),
                &text,
            );
            let (lm, lp) = r.last_part().unwrap();
            assert!(
                (lm, lp) >= (msn, part),
                "{rep}: asked {msn}.{part}, got up to {lm}.{lp}"
            );
            let others: Vec<String> = REPS
                .iter()
                .filter(|o| **o != rep)
                .map(|o| format!("../{o}/index.m3u8"))
                .collect();
            let reported: Vec<String> = r.reports.iter().map(|x| x.uri.clone()).collect();
            assert_eq!(reported, others, "{rep}: rendition reports");
            assert!(
                r.reports
                    .iter()
                    .all(|x| x.last_msn.is_some_and(|m| m + 1 >= lm)),
                "{rep}: {:?}",
                r.reports
            );
            // Nothing is listed before its bytes exist: the part just listed is there.
            let seg = segment(&r, lm).unwrap();
            let p = &seg.parts[lp];
            let length = p.length.expect("parts are byte ranges");
            let bytes = get_part(port, rep, &p.uri, p.offset, length).await;
            fetched.push((rep, p.uri.clone(), p.offset, bytes));
        }
    }
    // Each part's bytes are its segment's, and a finished segment's parts add up to it.
    for (rep, uri, offset, bytes) in &fetched {
        let path = media_url(rep, uri);
        let whole = finished_segment(port, &path).await;
        let at = *offset as usize;
        assert_eq!(
            &whole[at..at + bytes.len()],
            &bytes[..],
            "{path} at {offset}"
        );
    }
    for rep in REPS {
        let (_, text) = playlist(port, rep, "").await;
        let r = checked(rep, &text);
        for s in r.segments.iter().filter(|s| !s.parts.is_empty()) {
            let (status, _, whole) = get_bytes(port, &media_url(rep, &s.uri)).await;
            assert_eq!(status, 200);
            let sum: u64 = s.parts.iter().map(|p| p.length.unwrap()).sum();
            assert_eq!(sum, whole.len() as u64, "{rep}/{}: parts vs segment", s.uri);
        }
    }

    // Blocking reload at the rules' edges.
    let (_, text) = playlist(port, "v720", "").await;
    let r = checked("v720", &text);
    let (lm, lp) = r.last_part().unwrap();
    let t0 = Instant::now();
    let (status, _) = playlist(port, "v720", &format!("?_HLS_msn={lm}&_HLS_part={lp}")).await;
    assert_eq!(status, 200);
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "an existing part is answered at once"
    );
    let t0 = Instant::now();
    let (status, body) = playlist(port, "v720", &format!("?_HLS_msn={}", lm + 3)).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "too far ahead is refused at once"
    );
    for bad in ["?_HLS_part=1", "?_HLS_msn=x", "?_HLS_msn=1&_HLS_msn=2"] {
        assert_eq!(playlist(port, "v720", bad).await.0, 400, "{bad}");
    }

    // The preload hint: its open range streams the segment in progress from where its parts
    // end until the segment is complete: the segment's tail.
    let (_, text) = playlist(port, "v720", "").await;
    let hint = checked("v720", &text)
        .hint
        .expect("a live playlist has a hint");
    let (status, head, tail) = get_with(
        port,
        &media_url("v720", &hint.uri),
        &[("Range", &format!("bytes={}-", hint.start))],
    )
    .await;
    assert_eq!(status, 206, "{head}");
    let whole = finished_segment(port, &media_url("v720", &hint.uri)).await;
    assert!(
        !tail.is_empty() && whole.len() > hint.start as usize,
        "{hint:?}"
    );
    assert_eq!(
        &whole[hint.start as usize..],
        &tail[..],
        "the hinted range is the segment's tail"
    );

    // Through the edge: a herd of blocking reloads for the next part is one origin request;
    // the same directives in another order and with other parameters are the same object.
    let edge = start_edge(&[format!("http://127.0.0.1:{port}")]).await;
    let (_, text) = playlist(edge.port, "v720", "").await;
    let r = checked("v720 through the edge", &text);
    let (msn, part) = next_part(&r);
    let fetches = edge.state.edge().stats().origin_fetches;
    let herd: Vec<_> = (0..50)
        .map(|_| {
            let path = format!("/live/{NAME}/v720/index.m3u8?_HLS_msn={msn}&_HLS_part={part}");
            let p = edge.port;
            tokio::spawn(async move { get_full(p, &path).await })
        })
        .collect();
    let mut caches = std::collections::BTreeMap::<String, usize>::new();
    for h in herd {
        let (status, xcache, body) = h.await.unwrap();
        assert_eq!(status, 200);
        let r = checked(
            "a coalesced blocking reload",
            &String::from_utf8(body).unwrap(),
        );
        assert!(r.last_part().unwrap() >= (msn, part));
        *caches.entry(xcache).or_default() += 1;
    }
    assert_eq!(caches.get("MISS"), Some(&1), "{caches:?}");
    assert_eq!(caches.values().sum::<usize>(), 50);
    assert!(
        caches
            .keys()
            .all(|k| ["MISS", "COALESCED", "HIT"].contains(&k.as_str())),
        "{caches:?}"
    );
    let (status, xcache, _) = get_full(
        edge.port,
        &format!("/live/{NAME}/v720/index.m3u8?token=t&_HLS_part={part}&_HLS_msn={msn}"),
    )
    .await;
    assert_eq!((status, xcache.as_str()), (200, "HIT"));
    assert_eq!(edge.state.edge().stats().origin_fetches, fetches + 1);
    // Every part of a finished segment through the edge: one origin fetch, the rest hits,
    // the same bytes as at the origin.
    let (_, text) = playlist(edge.port, "v720", "").await;
    let r = checked("v720 through the edge", &text);
    let done = r
        .segments
        .iter()
        .rev()
        .find(|s| !s.parts.is_empty())
        .unwrap()
        .clone();
    let fetches = edge.state.edge().stats().origin_fetches;
    for p in &done.parts {
        let length = p.length.unwrap();
        let via_edge = get_part(edge.port, "v720", &p.uri, p.offset, length).await;
        assert_eq!(
            via_edge,
            get_part(port, "v720", &p.uri, p.offset, length).await
        );
    }
    assert!(
        edge.state.edge().stats().origin_fetches <= fetches + 1,
        "the parts of one segment are one object at the edge"
    );
    // The segment in progress: its parts are ranges of the one growing object.
    let (_, text) = playlist(edge.port, "v720", "").await;
    let r = checked("v720 through the edge", &text);
    if let Some(open) = &r.open {
        for p in &open.parts {
            get_part(edge.port, "v720", &p.uri, p.offset, p.length.unwrap()).await;
        }
    }

    // ffmpeg plays the HLS, directly and through the edge.
    for (via, p) in [("origin", port), ("edge", edge.port)] {
        let url = format!("http://127.0.0.1:{p}/live/{NAME}/master.m3u8");
        let (frames, err) = ffmpeg_decode_frames(&url, 5, &[]).await;
        assert!(
            frames >= 100,
            "ffmpeg decoded {frames} frames of HLS via the {via}: {err}"
        );
    }

    // The end: every playlist ends, with no hint; directives are ignored and answered at once.
    let _ = publisher.kill().await;
    eventually("the playlists to end", Duration::from_secs(30), || async {
        playlist(port, "v720", "")
            .await
            .1
            .contains("#EXT-X-ENDLIST")
    })
    .await;
    for rep in REPS {
        let (_, text) = playlist(port, rep, "").await;
        let r = checked(&format!("{rep} after the end"), &text);
        assert!(r.ended && r.hint.is_none() && r.open.is_none(), "{text}");
        let t0 = Instant::now();
        let (status, _) = playlist(port, rep, "?_HLS_msn=999999&_HLS_part=0").await;
        assert_eq!(status, 200);
        assert!(t0.elapsed() < Duration::from_secs(1));
    }
    drop(edge);
    srv.stop().await;
}
