//! A local cluster started by `scripts/cluster.sh up` (Redis, s3s-fs, two encoders, a gateway,
//! an edge as separate processes), and helpers to drive it.

use std::{
    collections::HashMap,
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use tokio::process::Child;

use super::{ffmpeg_publish, http_get};

pub struct Cluster {
    pub dir: PathBuf,
    pub env: HashMap<String, String>,
    /// One cluster at a time per test process: two would share two cores and the timing
    /// assertions would measure each other.
    _one_at_a_time: std::sync::MutexGuard<'static, ()>,
}

static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Cluster {
    pub fn up() -> Self {
        Self::up_with(&[])
    }

    /// A cluster whose `scripts/cluster.sh up` gets these extra environment variables
    /// (`CLUSTER_ENCODER_ARGS`).
    pub fn up_with(env: &[(&str, &str)]) -> Self {
        let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("ferrocast-cluster-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let out = std::process::Command::new(root.join("scripts/cluster.sh"))
            .args(["up", "--dir"])
            .arg(&dir)
            .env("CLUSTER_DETACH", "1")
            .env("FERROCAST_BIN", env!("CARGO_BIN_EXE_ferrocast"))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .expect("scripts/cluster.sh");
        let mut c = Self {
            env: HashMap::new(),
            dir,
            _one_at_a_time: guard,
        };
        assert!(
            out.status.success(),
            "cluster did not start:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let env = std::fs::read_to_string(c.dir.join("cluster.env")).unwrap();
        c.env = env
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        c
    }

    pub fn port(&self, k: &str) -> u16 {
        self.env[k].parse().unwrap()
    }

    /// Starts one more process of the cluster (recorded so `down` stops it).
    pub fn spawn(&self, name: &str, args: &[&str]) -> u32 {
        let log = std::fs::File::create(self.dir.join(format!("{name}.log"))).unwrap();
        let mut cmd = std::process::Command::new(args[0]);
        cmd.args(&args[1..])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for k in [
            "AWS_ENDPOINT_URL",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_REGION",
        ] {
            cmd.env(k, &self.env[k]);
        }
        // Detached on purpose: the fault tests stop and kill it by pid (`kill`), and a zombie
        // left until the test process exits frees its ports all the same.
        #[allow(clippy::zombie_processes)]
        let child = cmd.spawn().unwrap();
        std::fs::write(self.dir.join(format!("{name}.pid")), child.id().to_string()).unwrap();
        child.id()
    }

    pub fn kill(&self, name: &str, signal: &str) {
        let pid = std::fs::read_to_string(self.dir.join(format!("{name}.pid"))).unwrap();
        let _ = std::process::Command::new("kill")
            .args([signal, pid.trim()])
            .status();
        // Wait for it to be gone so its ports are free again.
        let t0 = Instant::now();
        // Gone, or a zombie (a process this test spawned and has not reaped): its ports are free.
        while std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
            .is_ok_and(|s| !s.contains(") Z "))
            && t0.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let _ = std::process::Command::new(root.join("scripts/cluster.sh"))
            .args(["down", "--dir"])
            .arg(&self.dir)
            .output();
        // Logs stay for a failed run.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("cluster logs kept in {}", self.dir.display());
        }
    }
}

/// Names of the streams live on the encoder with HTTP port `port`.
pub async fn live_on(port: u16) -> Vec<String> {
    let (status, body) = http_get(port, "/api/streams").await;
    if status != 200 {
        return vec![];
    }
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v.as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["state"] == "live")
        .filter_map(|s| s["name"].as_str().map(str::to_owned))
        .collect()
}

pub fn publish(c: &Cluster, name: &str) -> Child {
    ffmpeg_publish(
        &format!("rtmps://127.0.0.1:{}/live/{name}", c.port("EDGE_RTMPS")),
        "320x240",
        180,
    )
}
