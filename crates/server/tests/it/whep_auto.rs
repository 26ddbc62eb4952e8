//! `POST /whep/NAME?rendition=auto` against the real server and its transcoder: a str0m
//! client starts on the 720 rendition; behind a slow link (a bottleneck with a short queue in
//! front of the client, so the server's TWCC-based estimate falls) it is moved to 400, at a
//! keyframe that carries the 400's SPS; when the link is fast again it is moved back up. The
//! rendition is read from the SPS of each keyframe received (720×720 or 400×400).

use std::time::{Duration, Instant};

use str0m::Event;

use crate::{
    common::{ffmpeg_publish, TestServer},
    webrtc::{metric, post_offer, Client, Link},
};

/// The widths of the SPSs in an access unit (Annex B: NAL units after 00 00 01, which the
/// 4-byte start code ends with too).
fn sps_widths(au: &[u8]) -> Vec<u32> {
    let starts: Vec<usize> = (0..au.len().saturating_sub(2))
        .filter(|&i| au[i..i + 3] == [0, 0, 1])
        .map(|i| i + 3)
        .collect();
    starts
        .iter()
        .enumerate()
        .filter_map(|(k, &start)| {
            let end = starts.get(k + 1).map_or(au.len(), |&n| n - 3);
            let nal = au.get(start..end)?;
            (nal.first()? & 0x1f == 7).then(|| media::h264::parse_sps(nal).ok().map(|s| s.width))?
        })
        .collect()
}

/// Plays until a keyframe of `width` arrives or `within` passes; the widths seen on the way.
async fn until_width(client: &mut Client, width: u32, within: Duration) -> (bool, Vec<u32>) {
    let mut seen = vec![];
    let got = client
        .run(within, |e| {
            if let Event::MediaData(m) = e {
                for w in sps_widths(&m.data) {
                    if seen.last() != Some(&w) {
                        seen.push(w);
                    }
                }
            }
            seen.last() == Some(&width)
        })
        .await;
    (got, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_starts_on_720_steps_down_behind_a_slow_link_and_back_up() {
    let srv = TestServer::start(|_| {}).await;
    let mut ff = ffmpeg_publish(&srv.rtmp_url("wa"), "640x360", 120);
    srv.wait_live("wa", Duration::from_secs(15)).await;
    // The renditions exist once the transcoder has produced its first chunk: until then the
    // offer gets a 404 that says so.
    let (mut client, offer) = Client::new(false).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let answer = loop {
        let (s, _, body) = post_offer(srv.http, "/whep/wa?rendition=auto", &offer).await;
        if s == 201 {
            break body;
        }
        assert!(
            s == 404 && Instant::now() < deadline,
            "no automatic WHEP session: {s} {body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    client.accept(&answer);
    // The recorder is the process's: counted as differences.
    let switches = |dir: &'static str| {
        let port = srv.http;
        async move {
            metric(
                port,
                &format!("ferrocast_webrtc_rendition_switches_total{{direction=\"{dir}\"}}"),
            )
            .await
        }
    };

    let (down0, up0) = (switches("down").await, switches("up").await);
    // A fast path: 720 from the start, and it stays there.
    let (got, seen) = until_width(&mut client, 720, Duration::from_secs(10)).await;
    assert!(got, "no 720 keyframe: {seen:?}");
    assert_eq!(seen, [720], "starts on 720");
    let (moved, seen) = until_width(&mut client, 400, Duration::from_secs(6)).await;
    assert!(!moved, "stepped down on a fast path: {seen:?}");
    assert_eq!(switches("down").await - down0, 0.0);

    // An 800 kbit/s link with 150 ms of queue: the 720 (1500 kbit/s) does not fit, the 400
    // (500 kbit/s) does.
    client.link = Some(Link::new(800_000, Duration::from_millis(150)));
    eprintln!(
        "TRACE-SLOW {}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            % 1_000_000
    );
    let t0 = Instant::now();
    let (got, seen) = until_width(&mut client, 400, Duration::from_secs(25)).await;
    let dropped = client.link.as_ref().map_or(0, |l| l.dropped);
    assert!(
        got,
        "still on 720 behind the slow link: {seen:?}, {dropped} datagrams dropped"
    );
    eprintln!(
        "stepped down {:.1} s after the link slowed ({dropped} datagrams dropped)",
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(switches("down").await - down0, 1.0);

    // The link is fast again: back on 720 after the calm period.
    client.link = None;
    eprintln!(
        "TRACE-FAST {}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            % 1_000_000
    );
    let t0 = Instant::now();
    let (got, seen) = until_width(&mut client, 720, Duration::from_secs(40)).await;
    assert!(got, "not back on 720 after the link recovered: {seen:?}");
    eprintln!(
        "stepped up {:.1} s after the link recovered",
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(switches("up").await - up0, 1.0);
    let _ = ff.kill().await;
    srv.stop().await;
}
