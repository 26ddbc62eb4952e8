//! WHEP viewers against the real server, in-process: an ffmpeg RTMP publisher (x264
//! zerolatency, no B-frames, so the source itself is sent), five `loadgen::whep_play` viewers
//! — real str0m clients on their own UDP sockets — for ~8 s. Every viewer must be answered,
//! connect (ICE + DTLS-SRTP), get a keyframe well within a second, keep up by rtmp-play's
//! rule, lose nothing on loopback, and be DELETEd at the end.

use std::{process::Stdio, time::Duration};

use loadgen::{KeptUpRule, WhepConfig};
use tokio::process::Command;

use crate::server::Server;

const VIEWERS: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_whep_viewers_connect_and_keep_up() {
    let server = Server::start("whep-load", false).await;
    // Longer than the test needs; killed on drop.
    let _publisher = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", "60", "-c:v", "libx264", "-preset", "ultrafast"])
        .args([
            "-tune",
            "zerolatency",
            "-bf",
            "0",
            "-g",
            "30",
            "-b:v",
            "800k",
        ])
        .args(["-c:a", "aac", "-b:a", "64k", "-f", "flv"])
        .arg(format!("rtmp://127.0.0.1:{}/live/wl", server.rtmp))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("ffmpeg not found: install it with apt-get install ffmpeg");
    server.wait_live("wl", Duration::from_secs(20)).await;

    let r = loadgen::whep_play(WhepConfig {
        url: format!("http://127.0.0.1:{}/whep/wl", server.http),
        rendition: None,
        clients: VIEWERS,
        duration: Duration::from_secs(5),
        ramp: Duration::from_millis(50),
        settle: Duration::from_millis(1500),
        connect_timeout: Duration::from_secs(10),
        rule: KeptUpRule {
            min_window_s: 3.0,
            ..Default::default()
        },
        // The server runs in this process: its CPU and RSS are read like an outside one's.
        server_pid: Some(std::process::id()),
        server_self_only: false,
        progress: false,
    })
    .await
    .unwrap();
    let summary = r.summary();
    assert_eq!(
        (r.errors, r.answered, r.connected),
        (0, VIEWERS, VIEWERS),
        "{summary}\n{:#?}",
        r.viewers
    );
    assert_eq!(r.kept_up, VIEWERS, "{summary}\n{:#?}", r.viewers);
    for v in &r.viewers {
        // From the GOP cache: a keyframe at once, not at the next one of the publisher.
        let kf = v.first_keyframe_s.unwrap();
        assert!(
            kf < 1.0,
            "viewer {}: first keyframe after {kf} s\n{summary}",
            v.index
        );
        assert!(v.frames[0] > 100, "{v:?}");
        assert_eq!(
            (v.lost, v.discontinuities),
            (0, 0),
            "loss on loopback: {v:?}"
        );
        assert_eq!(v.delete_status, Some(200), "{v:?}");
        // ~800 kbit/s of video over SRTP.
        let kbps = v.verdict.kbps.unwrap();
        assert!(kbps > 300.0 && kbps < 3000.0, "{v:?}");
    }
    assert!(r.window_s >= 4.9, "{summary}");
    assert!(
        r.server.is_some_and(|s| s.rss_end_kib > 0) && r.server_cpu_pct_per_100.is_some(),
        "{summary}"
    );
    // All sessions ended by the DELETEs: the server's gauge is back to zero.
    let client = loadgen::http_client(1);
    let uri = loadgen::parse_uri(&format!("http://127.0.0.1:{}/metrics", server.http)).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let m = loadgen::scrape_metrics(&client, &uri.to_string(), deadline)
            .await
            .unwrap();
        if m.get("ferrocast_webrtc_sessions").copied() == Some(0.0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "sessions still open after the DELETEs: {:?}",
            m.get("ferrocast_webrtc_sessions")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await;
}
