//! The real server, in-process, on loopback ports the OS picks; one per test.

use std::{path::PathBuf, time::Duration};

use ferrocast::config::Config;
use tokio::{sync::oneshot, task::JoinHandle};

/// A running `ferrocast serve`.
pub struct Server {
    /// RTMP port.
    pub rtmp: u16,
    /// RTMPS port (the server's self-signed certificate).
    pub rtmps: u16,
    /// HTTP port (DASH, /metrics).
    pub http: u16,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
    data_dir: PathBuf,
}

impl Server {
    /// Starts a server whose data lives in a fresh temporary folder named after `test`;
    /// `transcode` runs the ffmpeg ladder for published streams.
    pub async fn start(test: &str, transcode: bool) -> Self {
        let data_dir = std::env::temp_dir().join(format!("loadgen-{test}-{}", std::process::id()));
        let c = Config {
            rtmp_addr: Some("127.0.0.1:0".parse().unwrap()),
            rtmps_addr: Some("127.0.0.1:0".parse().unwrap()),
            http_addr: "127.0.0.1:0".parse().unwrap(),
            data_dir: data_dir.clone(),
            transcode,
            // Not the fixed default UDP port: two of these servers at once would collide.
            webrtc: ferrocast::config::WebrtcConfig {
                addr: Some("127.0.0.1:0".parse().unwrap()),
                ..Default::default()
            },
            ..Config::default()
        };
        let l = ferrocast::bind(&c).await.unwrap();
        let rtmp = l.rtmp.as_ref().unwrap().local_addr().unwrap().port();
        let rtmps = l.rtmps.as_ref().unwrap().local_addr().unwrap().port();
        let http = l.http.local_addr().unwrap().port();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = ferrocast::run(c, l, async {
                let _ = stopped.await;
            })
            .await;
        });
        Self {
            rtmp,
            rtmps,
            http,
            stop,
            task,
            data_dir,
        }
    }

    /// Waits until `/api/streams` shows `name` with its video probed (size and bitrate known,
    /// so a GOP is in the cache), at most `within`.
    pub async fn wait_live(&self, name: &str, within: Duration) {
        let client = loadgen::http_client(1);
        let uri =
            loadgen::parse_uri(&format!("http://127.0.0.1:{}/api/streams", self.http)).unwrap();
        let deadline = tokio::time::Instant::now() + within;
        let mut last = String::new();
        while tokio::time::Instant::now() < deadline {
            let step = tokio::time::Instant::now() + Duration::from_millis(100);
            if let Ok(f) = loadgen::http_get(&client, &uri, true, 1 << 20, deadline).await {
                last = String::from_utf8_lossy(&f.body.unwrap_or_default()).into_owned();
                let v: serde_json::Value = serde_json::from_str(&last).unwrap_or_default();
                let live = v.as_array().into_iter().flatten().any(|s| {
                    s["name"] == name && !s["width"].is_null() && !s["bitrate_kbps"].is_null()
                });
                if live {
                    return;
                }
            }
            tokio::time::sleep_until(step.min(deadline)).await;
        }
        panic!("stream {name} not live within {within:?}: {last}");
    }

    /// Stops it (waiting up to 10 s) and removes its data.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}
