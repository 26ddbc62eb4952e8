//! The command line: `ferrocast serve | edge | encoder | gateway | push | keys`.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use crate::config::Config;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ferrocast",
    version,
    about = "Live streaming server: RTMP/RTMPS ingest and playback"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything (RTMP, RTMPS, HTTP) in one process with embedded defaults.
    Serve(ServeArgs),
    /// A DASH/HLS caching edge in front of origins (`ferrocast serve` instances or encoders):
    /// request coalescing, byte-bounded LRU/TTL cache, per-object token buckets, circuit
    /// breakers, adaptive origin timeouts, Ketama origin choice with failover.
    ///
    /// In a cluster (`--redis`), the origins are the encoders registered in Redis, edges share
    /// a fetch lock and invalidate on the encoders' events, and with `--gateway` the edge also
    /// takes RTMP/RTMPS publishes and relays them to the gateway.
    Edge(crate::app::roles::EdgeArgs),
    /// Cluster: transcodes and packages the streams the gateway sends it; segments to the
    /// store (S3), metadata and events to Redis; serves its streams' DASH to the edges.
    Encoder(crate::app::roles::EncoderArgs),
    /// Cluster: routes each publish to an encoder (Ketama ring over the registered encoders,
    /// session map for reconnecting broadcasters).
    Gateway(crate::app::roles::GatewayArgs),
    /// Publish a file or any ffmpeg input to an RTMP(S) server, surviving network trouble:
    /// reconnects with back-off and re-sends the last keyframe-GOP (a ferrocast server
    /// continues the same stream).
    ///
    /// An FLV file is read directly, paced by its timestamps; anything else goes through an
    /// ffmpeg child (`-c copy`, or H.264/AAC with --transcode).
    Push(push::PushArgs),
    /// Manage publish keys (stored hashed in DATA_DIR/keys.toml; a running server picks up
    /// changes at the next publish).
    Keys {
        /// Data directory of the server [default: ./data].
        #[arg(long, global = true, default_value = "data")]
        data_dir: PathBuf,
        #[command(subcommand)]
        action: KeysAction,
    },
}

#[derive(Subcommand)]
enum KeysAction {
    /// Create or replace the key for NAME and print the secret (shown only this once).
    Add {
        /// Stream name.
        name: String,
        /// Use this secret instead of a random one.
        #[arg(long)]
        secret: Option<String>,
    },
    /// List the stream names that have a key.
    List,
    /// Remove the key for NAME: its publishers are refused from the next attempt on.
    Revoke {
        /// Stream name.
        name: String,
    },
}

fn keys(
    data_dir: &std::path::Path,
    action: KeysAction,
) -> Result<(), crate::auth::keys::KeysError> {
    use crate::auth::keys::{path_in, KeyFile};
    let path = path_in(data_dir);
    let mut kf = KeyFile::load(&path)?;
    match action {
        KeysAction::Add { name, secret } => {
            let secret = kf.add(&name, secret)?;
            kf.save(&path)?;
            println!("key for {name:?} saved in {}", path.display());
            println!("publish to rtmp[s]://HOST:PORT/live/{name}?key={secret}");
            println!("(OBS: server rtmps://HOST:1936/live, stream key {name}?key={secret})");
        }
        KeysAction::List => {
            if kf.keys.is_empty() {
                println!(
                    "no keys in {} (open mode unless --publish-key is given)",
                    path.display()
                );
            }
            for (name, k) in &kf.keys {
                println!("{name}\tadded {}", k.created);
            }
        }
        KeysAction::Revoke { name } => {
            kf.revoke(&name)?;
            kf.save(&path)?;
            println!("key for {name:?} revoked");
        }
    }
    Ok(())
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML config file; flags override its values.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Directory for the self-signed certificate and stream data [default: ./data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// RTMP listener [default: 0.0.0.0:1935].
    #[arg(long)]
    rtmp_addr: Option<SocketAddr>,
    /// RTMPS listener [default: 0.0.0.0:1936].
    #[arg(long)]
    rtmps_addr: Option<SocketAddr>,
    /// HTTP listener for the API, metrics and playback [default: 0.0.0.0:8080].
    #[arg(long)]
    http_addr: Option<SocketAddr>,
    /// PEM certificate chain for RTMPS (default: self-signed, made in the data dir).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for RTMPS.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require a key to publish NAME: `--publish-key NAME=SECRET` (repeatable). The
    /// broadcaster then publishes to rtmp[s]://HOST/live/NAME?key=SECRET. Without any key,
    /// anyone may publish (open mode). Every user of the machine sees a command line (`ps`):
    /// prefer `ferrocast keys add` (hashed, in the keys file) or the environment,
    /// `FERROCAST_PUBLISH_KEYS="NAME=SECRET NAME2=SECRET2"`.
    #[arg(long = "publish-key", value_name = "NAME=SECRET")]
    publish_keys: Vec<String>,
    /// Do not transcode or package (no DASH/HLS, no renditions): a pure RTMP(S) server.
    #[arg(long)]
    no_transcode: bool,
    /// UDP socket for WebRTC (WHEP) media, ICE-lite [default: 0.0.0.0:8189].
    #[arg(long)]
    webrtc_addr: Option<SocketAddr>,
    /// The IP put in WebRTC answers as our candidate (the public address behind NAT)
    /// [default: the --webrtc-addr IP, else the IP the viewer's request was sent to].
    #[arg(long, value_name = "HOST")]
    webrtc_candidate: Option<std::net::IpAddr>,
    /// Turn WebRTC (WHEP) off.
    #[arg(long, conflicts_with = "webrtc_addr")]
    no_webrtc: bool,
    /// Record streams for replay (`[record]` in the config chooses which and for how long):
    /// their segments stay in the store, and each ended stream is listed at /api/recordings
    /// with a static MPD and an HLS VOD playlist under /recordings/NAME/ID/.
    #[arg(long)]
    record: bool,
}

impl ServeArgs {
    fn into_config(self) -> Result<Config, crate::config::ConfigError> {
        let mut c = match &self.config {
            Some(p) => Config::from_file(p)?,
            None => Config::default(),
        };
        if let Some(v) = self.data_dir {
            c.data_dir = v;
        }
        if let Some(v) = self.rtmp_addr {
            c.rtmp_addr = Some(v);
        }
        if let Some(v) = self.rtmps_addr {
            c.rtmps_addr = Some(v);
        }
        if let Some(v) = self.http_addr {
            c.http_addr = v;
        }
        if self.tls_cert.is_some() {
            c.tls_cert = self.tls_cert;
            c.tls_key = self.tls_key;
        }
        if !self.publish_keys.is_empty() {
            tracing::warn!("--publish-key puts the key on the command line, where every user of this machine can read it (ps): prefer ferrocast keys add, or FERROCAST_PUBLISH_KEYS in the environment");
        }
        c.add_publish_keys(&self.publish_keys)?;
        c.add_publish_keys(&env_publish_keys(
            std::env::var("FERROCAST_PUBLISH_KEYS").ok(),
        ))?;
        if self.no_transcode {
            c.transcode = false;
        }
        if let Some(v) = self.webrtc_addr {
            c.webrtc.addr = Some(v);
        }
        if self.webrtc_candidate.is_some() {
            c.webrtc.candidate = self.webrtc_candidate;
        }
        if self.no_webrtc {
            c.webrtc.addr = None;
        }
        if self.record {
            c.record.enabled = true;
        }
        c.validate()?;
        Ok(c)
    }
}

/// What a command can fail with; printed as `ferrocast: …` and exit status 1.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Serve(#[from] crate::ServeError),
    #[error(transparent)]
    Role(#[from] crate::app::roles::RoleError),
    #[error("push: {0}")]
    Push(#[from] push::PushError),
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Parses the command line and runs the command; what `main` returns.
pub fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    // For HTTPS to S3 (the RTMPS listener picks its provider explicitly).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    if let Command::Keys { data_dir, action } = cli.command {
        return match keys(&data_dir, action) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ferrocast keys: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let r: Result<(), CliError> = rt.block_on(async {
        match cli.command {
            Command::Serve(args) => {
                let config = args.into_config()?;
                let listeners = crate::bind(&config).await?;
                Ok(crate::run(config, listeners, shutdown_signal()).await?)
            }
            Command::Keys { .. } => unreachable!("handled above"),
            Command::Push(args) => {
                let s = push::run(args, shutdown_signal()).await?;
                eprintln!(
                    "ferrocast push: done after {:.1} s: reconnects={} bytes={} tags={} longest_outage_secs={:.2}",
                    s.secs, s.reconnects, s.bytes, s.tags, s.longest_outage_secs
                );
                Ok(())
            }
            Command::Encoder(a) => Ok(crate::app::roles::encoder(a, shutdown_signal()).await?),
            Command::Gateway(a) => Ok(crate::app::roles::gateway(a, shutdown_signal()).await?),
            Command::Edge(a) => Ok(crate::app::roles::edge(a, shutdown_signal()).await?),
        }
    });
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrocast: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `NAME=SECRET` entries of `FERROCAST_PUBLISH_KEYS`, separated by white space (keys from the
/// environment stay out of the command line that `ps` shows everyone).
fn env_publish_keys(value: Option<String>) -> Vec<String> {
    value
        .map(|v| v.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod env_key_tests {
    use super::env_publish_keys;

    #[test]
    fn environment_keys_are_split_on_white_space() {
        assert!(env_publish_keys(None).is_empty());
        assert!(env_publish_keys(Some("  ".into())).is_empty());
        assert_eq!(
            env_publish_keys(Some("demo=s3cret\nother=x=y  ".into())),
            ["demo=s3cret", "other=x=y"]
        );
    }
}
