//! A real local cluster on 127.0.0.1, started by `scripts/cluster.sh up`: Redis
//! (redis-server), an S3 server (s3s-fs), two encoders, a gateway and an edge, all separate
//! processes of the `ferrocast` binary. ffmpeg publishes over RTMPS to the edge.

use std::{collections::HashMap, time::Duration};

use crate::common::{
    cluster::{live_on, publish, Cluster},
    count_segments, eventually, ffmpeg_decode_frames, ffprobe, get_bytes, http_get, segment_path,
};
use ferrocast::{
    backend::{
        coord::{EncoderInfo, Registry},
        redis::RedisBackend,
        store::SegmentStore,
    },
    cluster::gateway::choose,
};
use tokio::process::Child;

/// A name the ring puts on `on_two` with the cluster's two encoders and on `on_three` once
/// `enc-3` joins.
fn name_moving(
    encoders: &[EncoderInfo],
    with3: &[EncoderInfo],
    prefix: &str,
    on_two: Option<&str>,
    on_three: &str,
) -> String {
    (0..10_000)
        .map(|i| format!("{prefix}{i}"))
        .find(|n| {
            on_two.is_none_or(|e| choose(encoders, None, n).unwrap().0.id == e)
                && choose(with3, None, n).unwrap().0.id == on_three
        })
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_cluster_routes_by_the_ring_serves_dash_from_s3_and_keeps_sessions() {
    let c = Cluster::up();
    for k in [
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REGION",
    ] {
        std::env::set_var(k, &c.env[k]);
    }
    let redis = RedisBackend::connect(&c.env["REDIS_URL"]).await.unwrap();
    let mut encoders = vec![];
    for _ in 0..40 {
        encoders = redis.encoders().await.unwrap();
        if encoders.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        encoders.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["enc-1", "enc-2"]
    );
    let http_of = |id: &str| match id {
        "enc-1" => c.port("ENC1_HTTP"),
        "enc-2" => c.port("ENC2_HTTP"),
        _ => unreachable!(),
    };
    let mut with3 = encoders.clone();
    with3.push(EncoderInfo {
        id: "enc-3".into(),
        rtmp: String::new(),
        http: String::new(),
    });

    // Four streams, one of which (`moving`) the ring will give to enc-3 once it joins.
    let moving = name_moving(&encoders, &with3, "mov", None, "enc-3");
    let names = vec![
        moving.clone(),
        "cam-a".to_string(),
        "cam-b".to_string(),
        "cam-c".to_string(),
    ];
    let mut pubs: HashMap<String, Child> =
        names.iter().map(|n| (n.clone(), publish(&c, n))).collect();
    let edge = c.port("EDGE_HTTP");
    for n in &names {
        let expected = choose(&encoders, None, n).unwrap().0.id.clone();
        let other = if expected == "enc-1" {
            "enc-2"
        } else {
            "enc-1"
        };
        eventually(
            &format!("{n} live on {expected}"),
            Duration::from_secs(30),
            || async { live_on(http_of(&expected)).await.contains(n) },
        )
        .await;
        assert!(
            !live_on(http_of(other)).await.contains(n),
            "{n} also on {other}"
        );
        eventually(
            &format!("{n}: manifest through the edge"),
            Duration::from_secs(40),
            || async {
                let (s, body) = http_get(edge, &format!("/live/{n}/manifest.mpd")).await;
                s == 200 && body.contains("v720") && count_segments(&body, "video") >= 1
            },
        )
        .await;
    }
    // A real player reads the DASH through the edge: both renditions and the audio.
    let probe = ffprobe(
        &format!("http://127.0.0.1:{edge}/live/{}/manifest.mpd", names[1]),
        &[],
    )
    .await;
    let mut seen: Vec<String> = probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{}:{}x{}",
                s["codec_name"].as_str().unwrap_or(""),
                s["width"].as_u64().unwrap_or(0),
                s["height"].as_u64().unwrap_or(0)
            )
        })
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen, ["aac:0x0", "h264:400x400", "h264:720x720"], "{probe}");

    // Segments are in S3: the edge's bytes are the stored object's, and the second request
    // is a cache hit.
    let store = SegmentStore::from_url("s3://ferrocast").unwrap();
    // The store key is the URL's path: /live/NAME/PRES/REP/FILE, PRES from the MPD.
    let store_key = |mpd: &str, n: &str, file: &str| {
        segment_path(mpd, n, "v720", file)
            .trim_start_matches('/')
            .to_owned()
    };
    for n in &names {
        let mpd = http_get(edge, &format!("/live/{n}/manifest.mpd")).await.1;
        let init = store_key(&mpd, n, "init-p0.mp4");
        let stored = store
            .get(&init)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{init} not in S3"));
        let (s1, h1, b1) = get_bytes(edge, &format!("/{init}")).await;
        let (s2, h2, b2) = get_bytes(edge, &format!("/{init}")).await;
        assert_eq!((s1, s2), (200, 200));
        assert_eq!(b1, stored);
        assert_eq!(b2, stored);
        // (ffprobe above may have brought one of them into the cache already.)
        assert!(
            ["miss", "coalesced", "hit"]
                .iter()
                .any(|x| h1.contains(&format!("x-cache: {x}"))),
            "{h1}"
        );
        assert!(h2.contains("x-cache: hit"), "{h2}");
    }
    let mpd = http_get(edge, &format!("/live/{}/manifest.mpd", names[1]))
        .await
        .1;
    let first_seg = store_key(&mpd, &names[1], "0.m4s");
    eventually(
        "a finished segment in S3",
        Duration::from_secs(20),
        || async { store.get(&first_seg).await.ok().flatten().is_some() },
    )
    .await;

    // RTMP play at the edge: the source it relays, and a rendition it pulls from the encoder
    // (one upstream play shared by the edge's players).
    let edge_rtmp = c.port("EDGE_RTMP");
    let (frames, err) = ffmpeg_decode_frames(
        &format!(
            "rtmp://127.0.0.1:{edge_rtmp}/live/{}?rendition=400",
            names[2]
        ),
        3,
        &[],
    )
    .await;
    assert!(
        frames >= 30,
        "rendition 400 via the edge: {frames} frames; {err}"
    );
    let probe = ffprobe(
        &format!(
            "rtmp://127.0.0.1:{edge_rtmp}/live/{}?rendition=400",
            names[2]
        ),
        &[],
    )
    .await;
    assert_eq!(
        probe["streams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["codec_type"] == "video")
            .unwrap()["width"],
        400,
        "{probe}"
    );

    // A third encoder joins: new streams follow the new ring, but a broadcaster of a stream
    // that already lives on enc-1/enc-2 goes back to its encoder when it reconnects.
    let holder = choose(&encoders, None, &moving).unwrap().0.id.clone();
    let bin = env!("CARGO_BIN_EXE_ferrocast");
    let d3 = c.dir.join("encoder-3");
    let d3 = d3.to_str().unwrap();
    let enc3 = [
        bin,
        "encoder",
        "--redis",
        &c.env["REDIS_URL"],
        "--store",
        "s3://ferrocast",
        "--id",
        "enc-3",
        "--rtmp-addr",
        "127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
        "--data-dir",
        d3,
    ];
    c.spawn("encoder-3", &enc3);
    eventually("enc-3 registered", Duration::from_secs(20), || async {
        redis.encoders().await.unwrap().len() == 3
    })
    .await;
    let enc3_http: u16 = redis
        .encoders()
        .await
        .unwrap()
        .iter()
        .find(|e| e.id == "enc-3")
        .unwrap()
        .http
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();

    let reconnect = |name: String, pubs: &mut HashMap<String, Child>| {
        drop(pubs.remove(&name));
        let p = publish(&c, &name);
        pubs.insert(name, p);
    };
    eventually(
        &format!("{moving} still live before the reconnect"),
        Duration::from_secs(5),
        || async { live_on(http_of(&holder)).await.contains(&moving) },
    )
    .await;
    drop(pubs.remove(&moving));
    eventually(
        &format!("{moving} gone from {holder}"),
        Duration::from_secs(15),
        || async { !live_on(http_of(&holder)).await.contains(&moving) },
    )
    .await;
    reconnect(moving.clone(), &mut pubs);
    eventually(
        &format!("{moving} back on {holder} (session map)"),
        Duration::from_secs(30),
        || async { live_on(http_of(&holder)).await.contains(&moving) },
    )
    .await;
    assert!(
        !live_on(enc3_http).await.contains(&moving),
        "the reconnecting broadcaster moved to enc-3"
    );
    let fresh = name_moving(&encoders, &with3, "new", None, "enc-3");
    let _fresh_pub = publish(&c, &fresh);
    eventually(
        &format!("new stream {fresh} on enc-3 (the ring changed)"),
        Duration::from_secs(30),
        || async { live_on(enc3_http).await.contains(&fresh) },
    )
    .await;

    // The session map lives in Redis: a restarted gateway still sends the broadcaster home.
    c.kill("gateway", "-TERM");
    let gw_rtmp = format!("127.0.0.1:{}", c.port("GW_RTMP"));
    let gw_http = format!("127.0.0.1:{}", c.port("GW_HTTP"));
    let gdir = c.dir.join("gateway");
    c.spawn(
        "gateway",
        &[
            bin,
            "gateway",
            "--redis",
            &c.env["REDIS_URL"],
            "--rtmp-addr",
            &gw_rtmp,
            "--http-addr",
            &gw_http,
            "--data-dir",
            gdir.to_str().unwrap(),
        ],
    );
    eventually("gateway back", Duration::from_secs(20), || async {
        http_get(c.port("GW_HTTP"), "/healthz").await.0 == 200
    })
    .await;
    drop(pubs.remove(&moving));
    eventually(
        &format!("{moving} gone from {holder}"),
        Duration::from_secs(15),
        || async { !live_on(http_of(&holder)).await.contains(&moving) },
    )
    .await;
    reconnect(moving.clone(), &mut pubs);
    eventually(
        &format!("{moving} on {holder} after the gateway restart"),
        Duration::from_secs(30),
        || async { live_on(http_of(&holder)).await.contains(&moving) },
    )
    .await;
    assert!(!live_on(enc3_http).await.contains(&moving));

    // Redis down: reported by /healthz (and the metric), while the edge keeps serving what it
    // has cached. Back up: everything recovers by itself (encoders re-register).
    // (Cached just before: the gateway restart above ended and restarted the encoders'
    // presentations, whose end events dropped the edge's earlier entries.)
    let cached = std::sync::Mutex::new(String::new());
    eventually(
        "an object cached at the edge",
        Duration::from_secs(20),
        || async {
            let mpd = http_get(edge, &format!("/live/{}/manifest.mpd", names[2]))
                .await
                .1;
            if !mpd.contains("media=\"") {
                return false;
            }
            let path = segment_path(&mpd, &names[2], "v720", "init-p0.mp4");
            *cached.lock().unwrap() = path.clone();
            get_bytes(edge, &path).await.1.contains("x-cache: hit")
        },
    )
    .await;
    let cached = cached.into_inner().unwrap();
    c.kill("redis", "-KILL");
    eventually(
        "edge /healthz reports Redis down",
        Duration::from_secs(15),
        || async {
            let (s, body) = http_get(edge, "/healthz").await;
            s == 503 && body.contains("redis: DOWN")
        },
    )
    .await;
    let (s, h, _) = get_bytes(edge, &cached).await;
    assert_eq!(s, 200, "cached object not served while Redis is down: {h}");
    assert!(h.contains("x-cache: hit"), "{h}");
    let redis_port = c.env["REDIS_PORT"].clone();
    c.spawn(
        "redis",
        &[
            "redis-server",
            "--port",
            &redis_port,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
    );
    eventually("edge healthy again", Duration::from_secs(20), || async {
        http_get(edge, "/healthz").await.0 == 200
    })
    .await;
    eventually(
        "encoders registered again",
        Duration::from_secs(20),
        || async { redis.encoders().await.map(|e| e.len()).unwrap_or(0) == 3 },
    )
    .await;

    // The S3 server down: the encoders' /healthz names it; back up: healthy again.
    let enc1 = c.port("ENC1_HTTP");
    c.kill("s3", "-KILL");
    eventually(
        "encoder /healthz reports the store down",
        Duration::from_secs(15),
        || async {
            let (s, body) = http_get(enc1, "/healthz").await;
            s == 503 && body.contains("store: DOWN")
        },
    )
    .await;
    let s3_root = c.dir.join("s3");
    c.spawn(
        "s3",
        &[
            &c.env["S3S_BIN"],
            "--host",
            "127.0.0.1",
            "--port",
            &c.env["S3_PORT"],
            "--access-key",
            &c.env["AWS_ACCESS_KEY_ID"],
            "--secret-key",
            &c.env["AWS_SECRET_ACCESS_KEY"],
            s3_root.to_str().unwrap(),
        ],
    );
    eventually("encoder healthy again", Duration::from_secs(20), || async {
        http_get(enc1, "/healthz").await.0 == 200
    })
    .await;
    drop(pubs);
}
