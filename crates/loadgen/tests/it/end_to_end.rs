//! The load tool against the real server, in-process: publishers loop a real FLV file, players
//! (plain RTMP and RTMPS with the server's self-signed certificate) must all keep up.

use std::time::Duration;

use loadgen::{Clip, KeptUpRule, PlayConfig, PublishConfig, RtmpUrl};

use crate::server::Server;

const FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../media/tests/assets/avc_aac_720p30.flv"
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn players_keep_up_with_a_looping_publisher() {
    // A pure RTMP server: no ffmpeg ladder for the test streams.
    let server = Server::start("e2e", false).await;
    let (rtmp, rtmps) = (server.rtmp, server.rtmps);

    let clip = Clip::parse(&std::fs::read(FILE).unwrap()).unwrap();
    let publishers = tokio::spawn(loadgen::rtmp_publish(
        PublishConfig {
            url: RtmpUrl::parse(&format!("rtmp://127.0.0.1:{rtmp}/live/e2e")).unwrap(),
            clients: 2,
            looping: true,
            duration: Some(Duration::from_secs(7)),
            ramp: Duration::from_millis(10),
            progress: false,
        },
        clip,
    ));
    // Let the first loop fill the GOP cache.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let play = |url: String, clients| {
        loadgen::rtmp_play(PlayConfig {
            url: RtmpUrl::parse(&url).unwrap(),
            clients,
            duration: Duration::from_secs(3),
            ramp: Duration::from_millis(20),
            settle: Duration::from_millis(1200),
            rule: KeptUpRule {
                min_window_s: 1.0,
                ..Default::default()
            },
            server_pid: Some(std::process::id()),
            server_self_only: false,
            progress: false,
        })
    };
    let (plain, tls, missing) = tokio::join!(
        play(format!("rtmp://127.0.0.1:{rtmp}/live/e2e-1"), 5),
        play(format!("rtmps://127.0.0.1:{rtmps}/live/e2e-2"), 2),
        play(format!("rtmp://127.0.0.1:{rtmp}/live/nobody"), 1),
    );
    // Bounds are loose where a busy shared machine can stall everything for a moment.
    for r in [plain.unwrap(), tls.unwrap()] {
        let summary = r.summary();
        assert_eq!(
            (r.errors, r.started),
            (0, r.clients),
            "{summary}\n{:#?}",
            r.players
        );
        assert_eq!(r.kept_up_vs_edge, r.clients, "{summary}");
        let fk = r.first_keyframe_s.unwrap();
        assert!(fk.max < 2.0, "{summary}");
        // The file is ~300 kbit/s of video plus audio.
        let br = r.bitrate_kbps.unwrap();
        assert!(br.min > 150.0 && br.max < 1500.0, "{summary}");
        assert!(
            r.server.is_some_and(|s| s.rss_end_kib > 0) && r.server_cpu_pct_per_100.is_some(),
            "{summary}"
        );
        for p in &r.players {
            assert!(
                p.verdict.ratio.unwrap() > 0.8 && p.verdict.gaps == 0,
                "{p:?}"
            );
        }
    }
    let missing = missing.unwrap();
    assert_eq!((missing.errors, missing.kept_up), (1, 0));
    assert_eq!(
        missing.error_kinds.keys().next().map(String::as_str),
        Some("NetStream.Play.StreamNotFound")
    );

    let p = publishers.await.unwrap().unwrap();
    assert_eq!(p.errors, 0, "{}", p.summary());
    assert!(
        p.publishers
            .iter()
            .all(|x| x.laps >= 6 && x.max_late_ms < 1000.0),
        "{:?}",
        p.publishers
    );
    server.stop().await;
}
