//! Backend credentials never leave the process (issue 15, item 4): a cluster edge and an
//! encoder run against a Redis that requires a password (`redis://ferro:PASS@…`, an ACL
//! user); Redis is then killed. Every HTTP answer (public `/healthz`, the loopback-only
//! `/internal/healthz`, `/metrics`, the API, playback paths) and every log line, at debug
//! level, must be free of the password, while still saying that Redis is down. An encoder
//! that cannot reach that Redis at start fails with the URL shown as `ferro:***@`.

use std::{process::Stdio, time::Duration};

use crate::common::*;
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_ferrocast");
const PASS: &str = "Pw-8d2f-hush-4471";

fn role(args: &[&str], log: &std::path::Path) -> Child {
    Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(log).unwrap()))
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_password_is_in_no_response_and_no_log_line() {
    let dir = std::env::temp_dir().join(format!("ferrocast-secrets-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("store")).unwrap();
    let acl = dir.join("users.acl");
    std::fs::write(
        &acl,
        format!("user ferro on >{PASS} ~* &* +@all\nuser default off\n"),
    )
    .unwrap();
    let redis_port = free_port();
    let mut redis = Command::new("redis-server")
        .args([
            "--port",
            &redis_port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--aclfile")
        .arg(&acl)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server not found: apt-get install redis-server (scripts/deps.sh test)");
    let url = format!("redis://ferro:{PASS}@127.0.0.1:{redis_port}");
    let (edge_http, enc_http) = (free_port(), free_port());
    let addr = |p: u16| format!("127.0.0.1:{p}");
    let store = format!("file://{}", dir.join("store").display());
    let (edge_log, enc_log) = (dir.join("edge.log"), dir.join("encoder.log"));
    let mut started = None;
    for _ in 0..50 {
        // Until redis-server listens.
        let enc = role(
            &[
                "encoder",
                "--redis",
                &url,
                "--store",
                &store,
                "--data-dir",
                dir.join("enc").to_str().unwrap(),
                "--rtmp-addr",
                &addr(free_port()),
                "--http-addr",
                &addr(enc_http),
            ],
            &enc_log,
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        if http_get(enc_http, "/healthz").await.0 == 200 {
            started = Some(enc);
            break;
        }
    }
    let mut encoder = started.expect("the encoder did not start against the password Redis");
    let mut edge = role(
        &[
            "edge",
            "--redis",
            &url,
            "--data-dir",
            dir.join("edge").to_str().unwrap(),
            "--rtmp-addr",
            &addr(free_port()),
            "--rtmps-addr",
            &addr(free_port()),
            "--http-addr",
            &addr(edge_http),
        ],
        &edge_log,
    );
    eventually("the edge is healthy", Duration::from_secs(15), || async {
        http_get(edge_http, "/healthz").await.0 == 200
    })
    .await;

    let _ = redis.kill().await;
    let mut answers = Vec::new();
    for port in [edge_http, enc_http] {
        eventually(
            "/healthz reports Redis down",
            Duration::from_secs(15),
            || async {
                let (s, body) = http_get(port, "/healthz").await;
                s == 503 && body.contains("redis: DOWN")
            },
        )
        .await;
        // Public: which backend, not why.
        let (_, body) = http_get(port, "/healthz").await;
        assert!(
            !body.contains("DOWN:"),
            "a reason on the public /healthz: {body}"
        );
        // Loopback: the reason, with the URL redacted.
        let (s, detail) = http_get(port, "/internal/healthz").await;
        assert_eq!(s, 503, "{detail}");
        assert!(detail.contains("redis: DOWN: "), "{detail}");
        assert!(detail.contains("ferro:***@"), "{detail}");
        answers.push(body);
        answers.push(detail);
        for path in [
            "/metrics",
            "/api/streams",
            "/live/x/manifest.mpd",
            "/live/x/18f0000000-000000/v720/1.m4s",
        ] {
            answers.push(http_get(port, path).await.1);
        }
    }
    // Let the lease renewals, the pub/sub listener and the edge's refresh fail a few times.
    tokio::time::sleep(Duration::from_secs(3)).await;
    // An encoder that cannot reach the password Redis at all.
    let (ok, _, failed) = run(
        Command::new(BIN).args([
            "encoder",
            "--redis",
            &url,
            "--store",
            &store,
            "--data-dir",
            dir.join("enc2").to_str().unwrap(),
            "--rtmp-addr",
            &addr(free_port()),
            "--http-addr",
            &addr(free_port()),
        ]),
        Duration::from_secs(30),
    )
    .await;
    assert!(!ok);
    assert!(failed.contains("ferro:***@"), "{failed}");
    answers.push(failed);
    let _ = edge.kill().await;
    let _ = encoder.kill().await;
    let logs = [
        std::fs::read_to_string(&edge_log).unwrap(),
        std::fs::read_to_string(&enc_log).unwrap(),
    ];
    assert!(
        logs.iter().all(|l| l.contains("redis")),
        "the logs say nothing about Redis: {logs:?}"
    );
    for text in answers.iter().chain(&logs) {
        assert!(!text.contains(PASS), "the password leaked: {text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
