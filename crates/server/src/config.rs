//! Configuration: `ferrocast.toml` merged with command-line flags, validated once at start-up.

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, time::Duration};

use serde::Deserialize;

/// Everything `ferrocast serve` needs to run.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Plain RTMP listener; `None` disables it.
    pub rtmp_addr: Option<SocketAddr>,
    /// RTMPS listener; `None` disables it.
    pub rtmps_addr: Option<SocketAddr>,
    /// HTTP listener (API, metrics, DASH).
    pub http_addr: SocketAddr,
    /// Where the self-signed certificate and stream data live.
    pub data_dir: PathBuf,
    /// PEM certificate chain for RTMPS (self-signed into `data_dir` when absent).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for RTMPS.
    pub tls_key: Option<PathBuf>,
    /// Publish authorization.
    pub auth: AuthConfig,
    /// Per-connection bounds.
    pub limits: Limits,
    /// Transcode and package every accepted stream (DASH/HLS, renditions). Off: a pure RTMP
    /// server (validation, GOP cache and RTMP(S) playback of the source only).
    pub transcode: bool,
    /// `[webrtc]`: WHEP playback on one UDP port.
    pub webrtc: WebrtcConfig,
    /// `[record]`: keep streams as recordings for replay (`--record`).
    pub record: RecordConfig,
}

/// `[record]`: recording streams for replay. With recording on, every segment of a recorded
/// stream's presentation stays in the store beyond the live window, its timeline is kept next
/// to them (`live/NAME/PRES/recording.json`), and once the stream ends it is listed at
/// `/api/recordings` and replayed from `/recordings/NAME/PRES/`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordConfig {
    /// Record (also `--record`).
    pub enabled: bool,
    /// Which streams: names, each `*` matching any run of characters (`"show-*"`); a leading
    /// `live/` is allowed (`"live/*"`), as in the publish URL. Default: every stream.
    pub streams: Vec<String>,
    /// Recordings that ended longer ago than this many days are deleted (store objects and
    /// listing). Absent: kept until deleted by hand. Applies to what the store holds, even with
    /// recording off.
    pub retention_days: Option<u64>,
    /// The same in seconds, for tests and short-lived setups; at most one of the two.
    pub retention_secs: Option<u64>,
}

impl Default for RecordConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            streams: vec!["*".into()],
            retention_days: None,
            retention_secs: None,
        }
    }
}

impl RecordConfig {
    /// How long an ended recording is kept, if not forever.
    pub fn retention(&self) -> Option<Duration> {
        match (self.retention_secs, self.retention_days) {
            (Some(s), _) => Some(Duration::from_secs(s)),
            (None, Some(d)) => Some(Duration::from_secs(d.saturating_mul(86_400))),
            (None, None) => None,
        }
    }
}

/// `[webrtc]`: WHEP playback (`POST /whep/NAME`), media on one UDP port (ICE-lite).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebrtcConfig {
    /// WHEP on (`enabled = false` in the file, or `--no-webrtc`, turns it off).
    pub enabled: bool,
    /// The UDP socket every WebRTC session uses; `None` turns WebRTC off.
    pub addr: Option<SocketAddr>,
    /// The address put in answers as our candidate (behind NAT or a 1:1 mapping, the public
    /// one). Default: `addr`'s IP if it is a specific one, else the IP the viewer's HTTP
    /// request was sent to (its Host header), else 127.0.0.1.
    pub candidate: Option<std::net::IpAddr>,
    /// Most WebRTC sessions at once.
    pub max_sessions: usize,
    /// Most WebRTC sessions from one IP address.
    pub max_sessions_per_ip: usize,
    /// Seconds a new session has to complete ICE.
    pub ice_timeout_secs: u64,
    /// Seconds from ICE connected until DTLS must be done.
    pub dtls_timeout_secs: u64,
}

impl Default for WebrtcConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            addr: Some(([0, 0, 0, 0], 8189).into()),
            candidate: None,
            max_sessions: 1000,
            max_sessions_per_ip: 50,
            ice_timeout_secs: 10,
            dtls_timeout_secs: 10,
        }
    }
}

/// `[auth]`: stream name → secret. Empty means open mode.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Publish keys by stream name.
    pub keys: BTreeMap<String, String>,
    /// The cluster roles' shared secret (see `--cluster-secret`).
    pub cluster_secret: Option<String>,
}

/// `[limits]`: what one client may cost us.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Seconds a client has to finish the RTMP (and TLS) handshake.
    pub handshake_timeout_secs: u64,
    /// Seconds without any byte from a publisher (or non-playing client) before it is closed.
    pub idle_timeout_secs: u64,
    /// Seconds a write to a player may block before the player is dropped.
    pub write_timeout_secs: u64,
    /// Most simultaneous RTMP(S) connections.
    pub max_connections: usize,
    /// Most simultaneous RTMP(S) connections from one IP address.
    pub max_connections_per_ip: usize,
    /// Seconds an RTMP(S) client has from its accept until its publish or play is accepted
    /// (TLS, handshake, connect and createStream included; the time our decision takes is
    /// not counted), however steadily it sends: a socket trickling a byte every 25 s, which
    /// the idle timeout never closes, is closed after it.
    pub start_timeout_secs: u64,
    /// Least average bytes per second an RTMP(S) client must send from its accept until its
    /// publish or play is accepted (after a 5 s grace: a silent socket is closed then; the
    /// handshake alone covers 12 s more at the default). 0: no rate check.
    pub start_min_bytes_per_sec: u32,
    /// Most RTMP(S) connections from one IP address (IPv6: one /64) between accept and an
    /// accepted publish or play at once; more wait (holding only their socket) until one of
    /// those finishes, and are closed if that takes longer than `start_timeout_secs`.
    /// Established players and publishers count only against `max_connections_per_ip`.
    pub max_pending_per_ip: usize,
    /// Bytes all RTMP(S) connections together may hold in read buffers and unfinished
    /// messages, beyond 8 KiB each; connections that are not accepted publishers share half
    /// of it. A connection that would need more is closed (only that one).
    pub rtmp_memory_budget_bytes: usize,
    /// Most streams published at once (each costs a transcoder).
    pub max_publishers: usize,
    /// Longest RTMP audio or video message accepted from a publisher, in bytes (before a
    /// publish is accepted, and for commands and metadata always, 64 KiB).
    pub max_message_size: usize,
    /// Frames a player may fall behind before it skips to the next keyframe.
    pub player_queue_frames: usize,
    /// Frames for an RTMP player are merged into one write per this many milliseconds (0:
    /// write each frame at once). Costs at most this much latency, saves most of the CPU per
    /// player.
    pub player_batch_ms: u64,
    /// Plain-RTMP players are sent each batch with `sendfile` from one in-memory file per
    /// stream (the kernel shares the pages instead of copying the bytes per player). Linux.
    pub player_zero_copy: bool,
    /// Most bytes of one GOP kept for late joiners; a longer GOP is not cached.
    pub max_gop_bytes: usize,
    /// When a publisher's connection drops without a clean unpublish, its stream stays live
    /// this long (ms); a publish of the same name within it continues the same stream
    /// (transcoder, DASH Period, players). 0: the stream ends at once.
    pub reconnect_grace_ms: u64,
    /// HTTP: seconds a client has to send a request's whole head, counted from the accept
    /// (or from the end of the previous response on a keep-alive connection): silent and
    /// trickling sockets are closed after it.
    pub http_header_timeout_secs: u64,
    /// HTTP: seconds an idle keep-alive connection (a response done, no new request begun)
    /// is kept; at most `http_header_timeout_secs`, which bounds the same wait.
    pub http_keepalive_timeout_secs: u64,
    /// HTTP: seconds a request body may take to arrive.
    pub http_body_timeout_secs: u64,
    /// HTTP: seconds a response write may stay blocked without the client taking 16 KiB of
    /// it (a reader with a zero window, or one reading a trickle) before it is closed.
    pub http_write_timeout_secs: u64,
    /// HTTP: milliseconds an idle connection (no request in flight) is kept when it is one
    /// too many (beyond `http_max_idle_per_ip` of its address, or `http_max_idle` in all).
    pub http_pressure_timeout_ms: u64,
    /// HTTP: most connections at once (lowered to the descriptor limit minus `fd_reserve`).
    pub http_max_connections: usize,
    /// HTTP: most connections at once from one IP address (IPv6: one /64), idle or not —
    /// generous, since many viewers share an address behind NAT.
    pub http_max_connections_per_ip: usize,
    /// HTTP: idle connections (waiting for a request) beyond this many in all get only
    /// `http_pressure_timeout_ms`.
    pub http_max_idle: usize,
    /// HTTP: idle connections of one IP address (IPv6: one /64) beyond this many get only
    /// `http_pressure_timeout_ms`.
    pub http_max_idle_per_ip: usize,
    /// HTTP: misses per second per IP address (IPv6: /64) — requests that cost an origin
    /// fetch (edge) or a store read (origin); beyond it 429 with `Retry-After`. 0: no limit.
    pub http_miss_rate_per_ip: u32,
    /// HTTP: misses one IP address may make back to back.
    pub http_miss_burst_per_ip: u32,
    /// Descriptors HTTP connections never take: RTMP ingest, ffmpeg's pipes, store files,
    /// Redis and S3 clients.
    pub fd_reserve: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            handshake_timeout_secs: 10,
            idle_timeout_secs: 30,
            write_timeout_secs: 10,
            max_connections: 10_000,
            max_connections_per_ip: 1_000,
            start_timeout_secs: 10,
            start_min_bytes_per_sec: 256,
            max_pending_per_ip: 16,
            rtmp_memory_budget_bytes: 256 << 20,
            max_publishers: 16,
            max_message_size: 8 << 20,
            player_queue_frames: 1024,
            player_batch_ms: 100,
            player_zero_copy: true,
            max_gop_bytes: 32 << 20,
            reconnect_grace_ms: 5000,
            http_header_timeout_secs: 10,
            http_keepalive_timeout_secs: 5,
            http_body_timeout_secs: 10,
            http_write_timeout_secs: 10,
            http_pressure_timeout_ms: 2000,
            http_max_connections: 10_000,
            http_max_connections_per_ip: 4_000,
            http_max_idle: 2_000,
            http_max_idle_per_ip: 64,
            http_miss_rate_per_ip: 20,
            http_miss_burst_per_ip: 200,
            fd_reserve: 1_024,
        }
    }
}

impl Limits {
    /// Handshake timeout as a duration.
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.handshake_timeout_secs)
    }
    /// Idle timeout as a duration.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }
    /// Start timeout as a duration.
    pub fn start_timeout(&self) -> Duration {
        Duration::from_secs(self.start_timeout_secs)
    }
    /// Reconnect grace as a duration.
    pub fn reconnect_grace(&self) -> Duration {
        Duration::from_millis(self.reconnect_grace_ms)
    }
    /// Write timeout as a duration.
    pub fn write_timeout(&self) -> Duration {
        Duration::from_secs(self.write_timeout_secs)
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            rtmp_addr: Some(([0, 0, 0, 0], 1935).into()),
            rtmps_addr: Some(([0, 0, 0, 0], 1936).into()),
            http_addr: ([0, 0, 0, 0], 8080).into(),
            data_dir: PathBuf::from("data"),
            tls_cert: None,
            tls_key: None,
            auth: AuthConfig::default(),
            limits: Limits::default(),
            transcode: true,
            webrtc: WebrtcConfig::default(),
            record: RecordConfig::default(),
        }
    }
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The config file is not valid TOML for this schema.
    #[error("invalid config {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What toml said.
        source: toml::de::Error,
    },
    /// A value that cannot work.
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Reads a TOML config file.
    pub fn from_file(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.into(),
            source,
        })
    }

    /// `base` (a role's own defaults: its ports, its data directory) with every top-level key
    /// that the file at `path` sets taken from the file instead, so every role reads the same
    /// file and `[limits]` / `[auth]` apply wherever they are given. Flags go on top of this.
    pub fn layered(base: Config, path: Option<&std::path::Path>) -> Result<Self, ConfigError> {
        let Some(path) = path else { return Ok(base) };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        let file: Config = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.into(),
            source,
        })?;
        // Which keys the file sets (its parse above already refused unknown ones).
        let set: toml::Table = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.into(),
            source,
        })?;
        let has = |k: &str| set.contains_key(k);
        let mut c = base;
        if has("rtmp_addr") {
            c.rtmp_addr = file.rtmp_addr;
        }
        if has("rtmps_addr") {
            c.rtmps_addr = file.rtmps_addr;
        }
        if has("http_addr") {
            c.http_addr = file.http_addr;
        }
        if has("data_dir") {
            c.data_dir = file.data_dir;
        }
        if has("tls_cert") || has("tls_key") {
            c.tls_cert = file.tls_cert;
            c.tls_key = file.tls_key;
        }
        if has("auth") {
            c.auth = file.auth;
        }
        if has("limits") {
            c.limits = file.limits;
        }
        if has("transcode") {
            c.transcode = file.transcode;
        }
        if has("webrtc") {
            c.webrtc = file.webrtc;
        }
        if has("record") {
            c.record = file.record;
        }
        Ok(c)
    }

    /// Adds `NAME=SECRET` publish keys from the command line.
    pub fn add_publish_keys(&mut self, specs: &[String]) -> Result<(), ConfigError> {
        for spec in specs {
            let (name, secret) = spec.split_once('=').ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "--publish-key {spec:?}: expected NAME=SECRET, e.g. --publish-key demo=s3cret"
                ))
            })?;
            self.auth.keys.insert(name.to_string(), secret.to_string());
        }
        Ok(())
    }

    /// Checks everything that can be checked before binding sockets.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, secret) in &self.auth.keys {
            if !crate::stream::name::is_valid_stream_name(name) {
                return Err(ConfigError::Invalid(format!(
                    "publish key for {name:?}: stream names are 1-64 characters of A-Z a-z 0-9 _ -"
                )));
            }
            if secret.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "publish key for {name:?} is empty"
                )));
            }
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(ConfigError::Invalid(
                "--tls-cert and --tls-key must be given together".into(),
            ));
        }
        let l = &self.limits;
        if l.handshake_timeout_secs == 0
            || l.idle_timeout_secs == 0
            || l.write_timeout_secs == 0
            || l.start_timeout_secs == 0
        {
            return Err(ConfigError::Invalid(
                "[limits] timeouts must be at least 1 second".into(),
            ));
        }
        if l.max_message_size < 64 << 10 {
            return Err(ConfigError::Invalid(
                "[limits] max_message_size must be at least 65536".into(),
            ));
        }
        if l.max_connections == 0
            || l.max_connections_per_ip == 0
            || l.max_publishers == 0
            || l.max_pending_per_ip == 0
        {
            return Err(ConfigError::Invalid("[limits] max_connections, max_connections_per_ip, max_pending_per_ip and max_publishers must be at least 1".into()));
        }
        if l.rtmp_memory_budget_bytes < 2 * l.max_message_size {
            return Err(ConfigError::Invalid(format!(
                "[limits] rtmp_memory_budget_bytes ({}) must be at least twice max_message_size ({}): a publisher's largest message has to fit in it",
                l.rtmp_memory_budget_bytes, l.max_message_size
            )));
        }
        if l.player_batch_ms > 1000 {
            return Err(ConfigError::Invalid(
                "[limits] player_batch_ms must be at most 1000".into(),
            ));
        }
        if l.reconnect_grace_ms > 600_000 {
            return Err(ConfigError::Invalid(
                "[limits] reconnect_grace_ms must be at most 600000 (10 minutes)".into(),
            ));
        }
        if [
            l.http_header_timeout_secs,
            l.http_keepalive_timeout_secs,
            l.http_body_timeout_secs,
            l.http_write_timeout_secs,
        ]
        .contains(&0)
            || l.http_pressure_timeout_ms == 0
        {
            return Err(ConfigError::Invalid(
                "[limits] HTTP timeouts must be at least 1 second (http_pressure_timeout_ms at least 1)".into(),
            ));
        }
        if l.http_keepalive_timeout_secs > l.http_header_timeout_secs {
            return Err(ConfigError::Invalid(
                "[limits] http_keepalive_timeout_secs must be at most http_header_timeout_secs (an idle keep-alive connection is waiting for a request head, which the header timeout already bounds)".into(),
            ));
        }
        if l.http_max_connections == 0
            || l.http_max_connections_per_ip == 0
            || l.http_max_idle == 0
            || l.http_max_idle_per_ip == 0
        {
            return Err(ConfigError::Invalid("[limits] http_max_connections, http_max_connections_per_ip, http_max_idle and http_max_idle_per_ip must be at least 1".into()));
        }
        let w = &self.webrtc;
        if w.max_sessions == 0 || w.max_sessions_per_ip == 0 {
            return Err(ConfigError::Invalid(
                "[webrtc] max_sessions and max_sessions_per_ip must be at least 1".into(),
            ));
        }
        if w.ice_timeout_secs == 0 || w.dtls_timeout_secs == 0 {
            return Err(ConfigError::Invalid(
                "[webrtc] timeouts must be at least 1 second".into(),
            ));
        }
        let r = &self.record;
        if r.retention_days.is_some() && r.retention_secs.is_some() {
            return Err(ConfigError::Invalid(
                "[record] give retention_days or retention_secs, not both".into(),
            ));
        }
        if r.retention() == Some(Duration::ZERO) {
            return Err(ConfigError::Invalid(
                "[record] a retention of 0 would delete every recording as it ends; leave it out to keep recordings".into(),
            ));
        }
        if let Err(e) = crate::record::NamePatterns::new(&r.streams) {
            return Err(ConfigError::Invalid(format!("[record] streams: {e}")));
        }
        if l.player_queue_frames < 16 {
            return Err(ConfigError::Invalid(
                "[limits] player_queue_frames must be at least 16".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_toml_and_keys() {
        let c: Config = toml::from_str(
            "http_addr = \"127.0.0.1:9000\"\n[auth.keys]\ndemo = \"s3cret\"\n[limits]\nidle_timeout_secs = 5\n",
        )
        .unwrap();
        assert_eq!(c.http_addr.port(), 9000);
        assert_eq!(c.auth.keys["demo"], "s3cret");
        assert_eq!(c.limits.idle_timeout_secs, 5);
        assert_eq!(c.limits.handshake_timeout_secs, 10);
        c.validate().unwrap();
    }

    #[test]
    fn a_role_takes_what_the_file_sets_and_keeps_its_own_defaults_for_the_rest() {
        let dir = std::env::temp_dir().join(format!("ferrocast-layered-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ferrocast.toml");
        std::fs::write(
            &path,
            "data_dir = \"/srv/x\"\n[limits]\nmax_publishers = 3\n",
        )
        .unwrap();
        let base = Config {
            rtmp_addr: Some(([0, 0, 0, 0], 1938).into()),
            rtmps_addr: None,
            http_addr: ([0, 0, 0, 0], 8083).into(),
            ..Config::default()
        };
        let c = Config::layered(base, Some(&path)).unwrap();
        assert_eq!(c.limits.max_publishers, 3);
        assert_eq!(
            c.limits.idle_timeout_secs, 30,
            "unset limits keep their defaults"
        );
        assert_eq!(c.data_dir, PathBuf::from("/srv/x"));
        assert_eq!(
            c.rtmp_addr.map(|a| a.port()),
            Some(1938),
            "the role's own port stays"
        );
        assert_eq!(c.rtmps_addr, None);
        assert_eq!(c.http_addr.port(), 8083);
        std::fs::write(&path, "bogus = 1\n").unwrap();
        assert!(matches!(
            Config::layered(Config::default(), Some(&path)),
            Err(ConfigError::Parse { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn webrtc_section_and_its_bounds() {
        let c: Config = toml::from_str(
            "[webrtc]\naddr = \"127.0.0.1:9189\"\ncandidate = \"203.0.113.7\"\nmax_sessions_per_ip = 3\n",
        )
        .unwrap();
        assert_eq!(c.webrtc.addr.map(|a| a.port()), Some(9189));
        assert_eq!(c.webrtc.candidate, Some([203, 0, 113, 7].into()));
        assert_eq!(
            (c.webrtc.max_sessions_per_ip, c.webrtc.max_sessions),
            (3, 1000)
        );
        assert!(c.webrtc.enabled);
        c.validate().unwrap();
        let off: Config = toml::from_str("[webrtc]\nenabled = false\n").unwrap();
        assert!(!off.webrtc.enabled);
        let bad: Config = toml::from_str("[webrtc]\nice_timeout_secs = 0\n").unwrap();
        assert!(bad.validate().unwrap_err().to_string().contains("[webrtc]"));
    }

    #[test]
    fn rtmp_start_limits_and_budget_parse_and_are_checked() {
        let c: Config = toml::from_str(
            "[limits]\nstart_timeout_secs = 5\nmax_pending_per_ip = 4\nrtmp_memory_budget_bytes = 67108864\n",
        )
        .unwrap();
        assert_eq!(
            (c.limits.start_timeout_secs, c.limits.max_pending_per_ip),
            (5, 4)
        );
        assert_eq!(c.limits.start_min_bytes_per_sec, 256);
        c.validate().unwrap();
        for bad in [
            "start_timeout_secs = 0",
            "max_pending_per_ip = 0",
            "rtmp_memory_budget_bytes = 1048576",
        ] {
            let c: Config = toml::from_str(&format!("[limits]\n{bad}\n")).unwrap();
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains("[limits]"), "{bad}: {e}");
        }
    }

    #[test]
    fn record_section_and_its_bounds() {
        let c: Config = toml::from_str(
            "[record]\nenabled = true\nstreams = [\"live/show-*\", \"demo\"]\nretention_days = 30\n",
        )
        .unwrap();
        assert!(c.record.enabled);
        assert_eq!(c.record.retention(), Some(Duration::from_secs(30 * 86_400)));
        c.validate().unwrap();
        let d = Config::default();
        assert!(!d.record.enabled);
        assert_eq!(
            (d.record.streams.as_slice(), d.record.retention()),
            (&["*".to_string()][..], None)
        );
        for bad in [
            "retention_days = 1\nretention_secs = 5",
            "retention_secs = 0",
            "streams = [\"a/b\"]",
        ] {
            let c: Config = toml::from_str(&format!("[record]\n{bad}\n")).unwrap();
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains("[record]"), "{bad}: {e}");
        }
    }

    #[test]
    fn rejects_bad_values() {
        let mut c = Config::default();
        assert!(c.add_publish_keys(&["nokey".into()]).is_err());
        c.add_publish_keys(&["../x=y".into()]).unwrap();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("stream names"));
        assert!(toml::from_str::<Config>("bogus = 1").is_err());
    }
}
