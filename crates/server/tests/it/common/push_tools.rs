//! `ferrocast push` as a child process, a test FLV, and a TCP proxy that cuts connections.

use std::{
    path::PathBuf,
    process::Stdio,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::{
    net::{TcpListener, TcpStream},
    process::{Child, Command},
    sync::watch,
};

use super::run;

pub const BIN: &str = env!("CARGO_BIN_EXE_ferrocast");

/// An FLV file (H.264 640×360 30 fps, keyframe every 2 s, AAC) made by ffmpeg, once per process.
pub async fn test_flv(seconds: u32) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "ferrocast-push-{}-{seconds}s.flv",
        std::process::id()
    ));
    if path.exists() {
        return path;
    }
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &seconds.to_string()])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "60",
            "-b:v",
            "800k",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-c:a", "aac", "-b:a", "64k", "-f", "flv"])
        .arg(&path);
    let (ok, _, err) = run(&mut cmd, Duration::from_secs(60)).await;
    assert!(ok, "ffmpeg could not make the test file: {err}");
    path
}

pub fn push(input: &std::path::Path, url: &str, extra: &[&str]) -> Child {
    Command::new(BIN)
        .arg("push")
        .arg(input)
        .arg(url)
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("ferrocast binary")
}

/// Ctrl-C for a child (push ends cleanly and prints its summary).
pub fn interrupt(child: &Child) {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status();
    }
}

/// A TCP proxy that can cut every connection and refuse new ones for a while.
pub struct Proxy {
    pub port: u16,
    cut: watch::Sender<u64>,
    refusing: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: u16) -> Self {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let (cut, cut_rx) = watch::channel(0u64);
        let refusing = Arc::new(AtomicBool::new(false));
        let r = refusing.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut down, _)) = l.accept().await else {
                    continue;
                };
                if r.load(Ordering::SeqCst) {
                    drop(down);
                    continue;
                }
                let mut cut_rx = cut_rx.clone();
                cut_rx.mark_unchanged();
                tokio::spawn(async move {
                    let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut down, &mut up) => {}
                        _ = cut_rx.changed() => {}
                    }
                    // Dropping both sockets resets both sides.
                });
            }
        });
        Self {
            port,
            cut,
            refusing,
            task,
        }
    }

    /// Drops every connection and refuses new ones for `d`.
    pub async fn outage(&self, d: Duration) {
        self.refusing.store(true, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
        tokio::time::sleep(d).await;
        self.refusing.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
