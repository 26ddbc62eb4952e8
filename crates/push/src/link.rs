//! The connection to the server, on the rtmp-io driver: the [`connector`] for a URL, one
//! connection attempt ([`open`]), what the server says while we publish ([`absorb`]), why a
//! connection ended ([`LinkError`]) and the reconnect back-off ([`next_backoff`]).

use std::{future::Future, path::Path, pin::Pin, time::Duration};

use rtmp_io::{Client, ConnectOptions, Connector, DriverConfig, TlsError, Verify};
use rtmp_proto::{ClientConfig, ClientMode};

use crate::PushError;

/// A write to the server that blocks this long counts as a dropped connection.
pub const WRITE_STALL: Duration = Duration::from_secs(3);
/// Connect, handshake and publish must finish within this.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// First reconnect delay.
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest reconnect delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// A parsed publish URL (the parser is shared with the load tool).
pub type PushUrl = rtmp_proto::url::RtmpUrl;

/// The connector for `url`: `rtmps` verified against the system's roots, `ca_file`, or not at
/// all (`insecure`).
pub fn connector(
    url: &PushUrl,
    insecure: bool,
    ca_file: Option<&Path>,
) -> Result<Connector, PushError> {
    let verify = url.tls.then(|| match (insecure, ca_file) {
        (true, _) => Verify::Insecure,
        (false, Some(p)) => Verify::CaFile(p.to_owned()),
        (false, None) => Verify::System,
    });
    let mut session = ClientConfig::default();
    session.start_timeout(START_TIMEOUT);
    let mut options = ConnectOptions::default();
    options
        .verify(verify)
        .session(session)
        .driver(DriverConfig::default().write_timeout(WRITE_STALL).clone());
    Connector::new(options).map_err(|e| match e {
        rtmp_io::Error::Tls(TlsError::Config(s)) => PushError::Tls(s),
        e => PushError::Tls(e.to_string()),
    })
}

/// Why a connection attempt failed or a connection ended; the run decides whether to retry.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LinkError {
    /// The server said no (the publish is not allowed): final, except on a reconnect race.
    #[error("refused: {code}: {description}")]
    Refused { code: String, description: String },
    /// The server's certificate is not trusted, or our TLS setup is wrong.
    #[error("TLS: {0}")]
    Tls(String),
    /// The network or the server dropped us: worth another attempt.
    #[error("{0}")]
    Other(String),
}

impl From<rtmp_io::Error> for LinkError {
    fn from(e: rtmp_io::Error) -> Self {
        match e {
            rtmp_io::Error::Refused { code, description } => LinkError::Refused { code, description },
            rtmp_io::Error::Tls(TlsError::Untrusted(e)) => LinkError::Tls(format!(
                "{e} — the server's certificate is not trusted: pass --ca-file CERT.pem, or --insecure for a self-signed test server"
            )),
            rtmp_io::Error::Tls(TlsError::Config(s)) => LinkError::Tls(s),
            rtmp_io::Error::Tls(TlsError::Handshake(e)) => LinkError::Other(format!("TLS handshake: {e}")),
            e => LinkError::Other(e.to_string()),
        }
    }
}

/// One connection attempt in flight.
pub(crate) type Connecting = Pin<Box<dyn Future<Output = Result<Client, LinkError>> + Send>>;

/// Opens one connection to `url` and starts publishing.
pub(crate) async fn open(connector: Connector, url: PushUrl) -> Result<Client, LinkError> {
    Ok(connector.connect(&url, ClientMode::Publish).await?)
}

/// Handles what the server sent (acks, pings, a late refusal); `Err` when the connection is
/// over.
pub(crate) fn absorb(link: &mut Client) -> Result<(), LinkError> {
    while let Some(ev) = link.poll_event() {
        if let Some((code, description)) = ev.refusal() {
            return Err(LinkError::Refused {
                code: code.to_owned(),
                description: description.to_owned(),
            });
        }
    }
    Ok(())
}

/// The next reconnect delay after `d`.
pub fn next_backoff(d: Duration) -> Duration {
    (d * 3 / 2).min(BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap() {
        let mut d = BACKOFF_MIN;
        let mut total = Duration::ZERO;
        let mut steps = vec![];
        for _ in 0..12 {
            steps.push(d);
            total += d;
            d = next_backoff(d);
        }
        assert_eq!(steps[0], Duration::from_millis(100));
        assert_eq!(steps[1], Duration::from_millis(150));
        assert_eq!(*steps.last().unwrap(), BACKOFF_MAX);
        assert!(steps.windows(2).all(|w| w[1] >= w[0]));
        // A 2 s outage is bridged by an attempt within ~0.8 s after it ends.
        let mut t = Duration::ZERO;
        let mut d = BACKOFF_MIN;
        while t < Duration::from_secs(2) {
            t += d;
            d = next_backoff(d);
        }
        assert!(t < Duration::from_millis(2800), "{t:?}");
    }

    #[test]
    fn urls() {
        let u = PushUrl::parse("rtmps://example.org/live/cam?key=s3").unwrap();
        assert_eq!((u.tls, u.port, u.bare_name()), (true, 443, "cam"));
        assert_eq!(u.display(), "rtmps://example.org:443/live/cam");
        let u = PushUrl::parse("rtmp://[::1]:1940/live/x").unwrap();
        assert_eq!(u.tc_url(), "rtmp://[::1]:1940/live");
        for s in [
            "http://h/live/x",
            "rtmp://h/live",
            "rtmp://h/live/",
            "rtmp://h:99999/live/x",
            "rtmp://:1/live/x",
        ] {
            assert!(PushUrl::parse(s).is_err(), "{s}");
        }
    }
}
