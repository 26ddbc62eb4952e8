//! A keyed cluster (`scripts/cluster.sh up` with a publish key on both encoders) that nobody
//! can jam or bypass: a stranger's wrong keys through the edge are counted against the
//! stranger's address (carried to the encoder in a token signed with the cluster secret), so
//! a good broadcaster behind the same edge still gets in; a publish straight to an encoder or
//! the gateway, or one with a forged token, is refused.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::{
    cluster::{live_on, Cluster},
    eventually, ffmpeg_publish,
};
use ferrocast::auth::MAX_FAILURES;
use rtmp_io::{ConnectOptions, Connector};
use rtmp_proto::{ClientMode, RtmpUrl};

const KEY: &str = "good-key-0123";

/// Publishes `path` (`NAME?QUERY`) to `127.0.0.1:port` from the local address `src`; the
/// refusal's description, or `None` when the server started the publish.
async fn publish_from(src: &str, port: u16, path: &str) -> Option<String> {
    let url = RtmpUrl::parse(&format!("rtmp://127.0.0.1:{port}/live/{path}")).unwrap();
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(format!("{src}:0").parse().unwrap()).unwrap();
    let tcp = sock
        .connect(format!("127.0.0.1:{port}").parse().unwrap())
        .await
        .unwrap();
    let connector = Connector::new(ConnectOptions::default()).unwrap();
    let r = tokio::time::timeout(
        Duration::from_secs(20),
        connector.start(
            Box::new(tcp),
            &url,
            ClientMode::Publish,
            tokio::time::Instant::now(),
        ),
    )
    .await
    .expect("no answer to the publish within 20 s");
    match r {
        Ok(mut c) => {
            c.shutdown().await;
            None
        }
        Err(rtmp_io::Error::Refused { description, .. }) => Some(description),
        Err(e) => panic!("publish {path} to port {port}: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_keys_through_the_edge_lock_out_only_their_sender_and_encoders_take_only_peers() {
    let args = format!("--publish-key cam={KEY}");
    let c = Cluster::up_with(&[("CLUSTER_ENCODER_ARGS", &args)]);
    let edge = c.port("EDGE_RTMP");

    // A stranger at 127.0.0.2 guesses keys through the edge: refused by the encoder, and after
    // MAX_FAILURES blocked — by its own address, which the encoder learnt from the relay's
    // token (before, the encoder saw only the gateway's 127.0.0.1 and blocked everyone).
    for i in 0..MAX_FAILURES + 2 {
        let refusal = publish_from("127.0.0.2", edge, &format!("cam?key=guess{i}"))
            .await
            .expect("a wrong key was accepted");
        if i < MAX_FAILURES {
            assert!(refusal.contains("does not match"), "attempt {i}: {refusal}");
        } else {
            assert!(
                refusal.contains("too many failed publish attempts from 127.0.0.2"),
                "attempt {i} was not blocked by the stranger's own address: {refusal}"
            );
        }
    }

    // The good broadcaster (127.0.0.1) publishes through the same edge and gets in.
    let _good = ffmpeg_publish(
        &format!("rtmp://127.0.0.1:{edge}/live/cam?key={KEY}"),
        "320x240",
        60,
    );
    let (e1, e2) = (c.port("ENC1_HTTP"), c.port("ENC2_HTTP"));
    eventually(
        "the good broadcaster live on an encoder despite the stranger's lockout",
        Duration::from_secs(30),
        || async {
            live_on(e1).await.contains(&"cam".to_owned())
                || live_on(e2).await.contains(&"cam".to_owned())
        },
    )
    .await;

    // Straight to an encoder or the gateway, even with the right key: refused, they take
    // publishes only from peers that prove the cluster secret.
    for (what, port) in [
        ("encoder 1", c.port("ENC1_RTMP")),
        ("encoder 2", c.port("ENC2_RTMP")),
        ("the gateway", c.port("GW_RTMP")),
    ] {
        let refusal = publish_from("127.0.0.1", port, &format!("cam?key={KEY}"))
            .await
            .unwrap_or_else(|| panic!("a direct publish to {what} was accepted"));
        assert!(
            refusal.contains("takes publishes only from its cluster"),
            "{what}: {refusal}"
        );
    }

    // A forged token (a made-up signature naming another client) is refused too.
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 30;
    let forged = format!(
        "cam?key={KEY}&fc_client=127.0.0.9&fc_exp={exp}&fc_sig={}",
        "0".repeat(64)
    );
    let refusal = publish_from("127.0.0.1", c.port("ENC1_RTMP"), &forged)
        .await
        .expect("a forged peer token was accepted");
    assert!(refusal.contains("does not verify"), "{refusal}");
}
