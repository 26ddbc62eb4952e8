//! The `ferrocast` binary as a user runs it: `keys add/list/revoke`, then `serve` honouring
//! the keys file (a revoked key stops working without a restart), `--help`, and start-up
//! errors that say what to do.

use std::{process::Stdio, time::Duration};

use crate::common::*;
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_ferrocast");

/// `ferrocast serve` on free loopback ports with the data dir and environment given, once it
/// answers; its stderr is piped (for the log assertions). Returns it, its RTMP and HTTP ports.
async fn serve(data_dir: &str, env: &[(&str, &str)]) -> (tokio::process::Child, u16, u16) {
    let (rtmp, rtmps, http) = (free_port(), free_port(), free_port());
    let server = Command::new(BIN)
        .args(["serve", "--data-dir", data_dir])
        .args([
            "--rtmp-addr",
            &format!("127.0.0.1:{rtmp}"),
            "--rtmps-addr",
            &format!("127.0.0.1:{rtmps}"),
        ])
        .args(["--http-addr", &format!("127.0.0.1:{http}")])
        .args(["--webrtc-addr", "127.0.0.1:0"])
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    eventually("the server started", Duration::from_secs(10), || async {
        http_get_opt(http, "/healthz").await.is_some()
    })
    .await;
    (server, rtmp, http)
}

async fn ferrocast(args: &[&str]) -> (bool, String, String) {
    let (ok, out, err) = run(Command::new(BIN).args(args), Duration::from_secs(30)).await;
    (ok, String::from_utf8_lossy(&out).to_string(), err)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_cli_and_serve_with_revocation() {
    let dir = std::env::temp_dir().join(format!("ferrocast-cli-{}", std::process::id()));
    let d = dir.to_str().unwrap();
    let (ok, out, err) = ferrocast(&["keys", "add", "cam", "--data-dir", d]).await;
    assert!(ok, "{err}");
    let secret = out
        .split("?key=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let (_, out, _) = ferrocast(&["keys", "list", "--data-dir", d]).await;
    assert!(out.starts_with("cam\t"), "{out}");
    assert!(!std::fs::read_to_string(dir.join("keys.toml"))
        .unwrap()
        .contains(&secret));

    let (mut server, rtmp, _) = serve(d, &[]).await;
    let url = |k: &str| format!("rtmp://127.0.0.1:{rtmp}/live/cam?key={k}");
    let (code, err) = finish(
        ffmpeg_publish(&url("wrong"), "160x120", 3),
        Duration::from_secs(20),
    )
    .await;
    assert_ne!(code, Some(0));
    assert!(err.contains("stream key rejected"), "{err}");

    let good = ffmpeg_publish(&url(&secret), "160x120", 3);
    let (code, err) = finish(good, Duration::from_secs(20)).await;
    assert_eq!(code, Some(0), "publish with the key failed: {err}");

    let (ok, _, err) = ferrocast(&["keys", "revoke", "cam", "--data-dir", d]).await;
    assert!(ok, "{err}");
    let (code, err) = finish(
        ffmpeg_publish(&url(&secret), "160x120", 3),
        Duration::from_secs(20),
    )
    .await;
    assert_ne!(code, Some(0), "a revoked key still works");
    assert!(
        err.contains("no publish key is configured for \"cam\""),
        "{err}"
    );

    let _ = server.start_kill();
    let out = server.wait_with_output().await.unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("publish refused"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Keys from `FERROCAST_PUBLISH_KEYS` (kept off the command line `ps` shows), for a stream
/// name of the full 64 characters, which is transcoded although its name no longer fits in
/// a Unix socket path under the data dir (the sockets' directory used to carry the name);
/// the transcoder's ffmpeg gets none of the server's environment (its S3 secret) and its
/// resource limits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_from_the_environment_and_a_64_character_name_is_transcoded() {
    let dir = std::env::temp_dir().join(format!("ferrocast-cli-env-{}", std::process::id()));
    let name = "n".repeat(64);
    let keys = format!("other=x {name}=envs3cret");
    let env = [
        ("FERROCAST_PUBLISH_KEYS", keys.as_str()),
        ("AWS_SECRET_ACCESS_KEY", "sekrit-of-the-server"),
    ];
    let (mut server, rtmp, http) = serve(dir.to_str().unwrap(), &env).await;
    let url = |k: &str| format!("rtmp://127.0.0.1:{rtmp}/live/{name}?key={k}");
    let (code, err) = finish(
        ffmpeg_publish(&url("wrong"), "160x120", 3),
        Duration::from_secs(20),
    )
    .await;
    assert_ne!(code, Some(0));
    assert!(err.contains("stream key rejected"), "{err}");
    let publisher = ffmpeg_publish(&url("envs3cret"), "160x120", 10);
    let mpd = format!("/live/{name}/manifest.mpd");
    eventually(
        "the 64-character stream's first segment",
        Duration::from_secs(30),
        || async {
            let (status, body) = http_get(http, &mpd).await;
            status == 200 && count_segments(&body, "video") >= 1
        },
    )
    .await;
    let ffmpeg = children(server.id().unwrap())
        .into_iter()
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("ffmpeg"))
        })
        .expect("the transcoder's ffmpeg is a child of the server");
    let env = std::fs::read(format!("/proc/{ffmpeg}/environ")).unwrap();
    let env = String::from_utf8_lossy(&env);
    assert!(
        !env.contains("sekrit"),
        "ffmpeg inherited the server's secrets: {env}"
    );
    assert!(env.contains("PATH="), "{env}");
    let limits = std::fs::read_to_string(format!("/proc/{ffmpeg}/limits")).unwrap();
    for (what, value) in [
        ("Max core file size", "0"),
        ("Max file size", "0"),
        ("Max open files", "256"),
    ] {
        let line = limits.lines().find(|l| l.starts_with(what)).unwrap();
        let soft = line[what.len()..].split_whitespace().next().unwrap();
        assert_eq!(soft, value, "{line}");
    }
    let (code, err) = finish(publisher, Duration::from_secs(30)).await;
    assert_eq!(
        code,
        Some(0),
        "publish with the environment's key failed: {err}"
    );
    let _ = server.start_kill();
    let out = server.wait_with_output().await.unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!log.contains("envs3cret"), "the key was logged: {log}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The child processes of `pid` (every thread's).
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

#[tokio::test]
async fn help_and_startup_errors_say_what_to_do() {
    let (ok, out, _) = ferrocast(&["serve", "--help"]).await;
    assert!(ok);
    for flag in [
        "--rtmp-addr",
        "--rtmps-addr",
        "--http-addr",
        "--data-dir",
        "--tls-cert",
        "--publish-key",
        "--config",
    ] {
        assert!(out.contains(flag), "--help lacks {flag}");
    }
    // A port in use names the flag to change.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let dir = std::env::temp_dir().join(format!("ferrocast-cli-busy-{}", std::process::id()));
    let (ok, _, err) = ferrocast(&[
        "serve",
        "--data-dir",
        dir.to_str().unwrap(),
        "--rtmp-addr",
        &format!("127.0.0.1:{port}"),
        "--rtmps-addr",
        "127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
        "--webrtc-addr",
        "127.0.0.1:0",
    ])
    .await;
    assert!(!ok);
    assert!(err.contains("--rtmp-addr"), "{err}");
    let (ok, _, err) = ferrocast(&["serve", "--publish-key", "nokey"]).await;
    assert!(!ok);
    assert!(err.contains("NAME=SECRET"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

async fn http_get_opt(port: u16, path: &str) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut v = vec![];
    s.read_to_end(&mut v).await.ok()?;
    String::from_utf8_lossy(&v).split(' ').nth(1)?.parse().ok()
}

fn fingerprint_of_file(cert: &std::path::Path) -> String {
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(cert)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn served_fingerprint(port: u16) -> String {
    let s_client = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            "localhost",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let mut x509 = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    x509.stdin
        .take()
        .unwrap()
        .write_all(&s_client.stdout)
        .unwrap();
    String::from_utf8_lossy(&x509.wait_with_output().unwrap().stdout)
        .trim()
        .to_string()
}

fn make_cert(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let (c, k) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let ok = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
        ])
        .arg(&k)
        .arg("-out")
        .arg(&c)
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok);
    (c, k)
}

/// SIGHUP swaps the RTMPS certificate without dropping the RTMPS publisher; SIGTERM then ends
/// the stream's MPD, leaves no ffmpeg behind and exits 0 within the bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_and_sigterm_ends_cleanly() {
    let dir = std::env::temp_dir().join(format!("ferrocast-cli-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ca, ka) = make_cert(&dir, "a");
    let (cb, kb) = make_cert(&dir, "b");
    let (cert, key) = (dir.join("live.crt"), dir.join("live.key"));
    std::fs::copy(&ca, &cert).unwrap();
    std::fs::copy(&ka, &key).unwrap();
    let (rtmp, rtmps, http) = (free_port(), free_port(), free_port());
    let server = Command::new(BIN)
        .args(["serve", "--data-dir", dir.join("data").to_str().unwrap()])
        .args([
            "--rtmp-addr",
            &format!("127.0.0.1:{rtmp}"),
            "--rtmps-addr",
            &format!("127.0.0.1:{rtmps}"),
        ])
        .args(["--http-addr", &format!("127.0.0.1:{http}")])
        .args(["--webrtc-addr", "127.0.0.1:0"])
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = server.id().unwrap().to_string();
    eventually("the server started", Duration::from_secs(10), || async {
        http_get_opt(http, "/healthz").await.is_some()
    })
    .await;
    assert_eq!(served_fingerprint(rtmps), fingerprint_of_file(&ca));
    let _publisher = ffmpeg_publish(
        &format!("rtmps://127.0.0.1:{rtmps}/live/tls"),
        "160x120",
        30,
    );
    eventually(
        "DASH of the RTMPS publish",
        Duration::from_secs(30),
        || async { http_get(http, "/live/tls/manifest.mpd").await.0 == 200 },
    )
    .await;

    std::fs::copy(&cb, &cert).unwrap();
    std::fs::copy(&kb, &key).unwrap();
    std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    let new_fingerprint = fingerprint_of_file(&cb);
    eventually(
        "SIGHUP switched the certificate",
        Duration::from_secs(5),
        || async { served_fingerprint(rtmps) == new_fingerprint },
    )
    .await;
    let (_, streams) = http_get(http, "/api/streams").await;
    assert!(
        streams.contains("\"name\":\"tls\""),
        "the RTMPS publisher was dropped by the reload: {streams}"
    );

    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(20), server.wait_with_output())
        .await
        .expect("exit within 20 s")
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("reloaded the RTMPS certificate")
            && log.contains("shutting down")
            && log.contains("DASH presentation ended"),
        "{log}"
    );
    let leftover = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .filter(|c| {
            String::from_utf8_lossy(c).contains(dir.to_str().unwrap()) && c.starts_with(b"ffmpeg")
        })
        .count();
    assert_eq!(leftover, 0, "ffmpeg left running after shutdown");
    let _ = std::fs::remove_dir_all(&dir);
}
