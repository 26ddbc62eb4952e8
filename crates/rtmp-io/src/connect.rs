//! The client side: `rtmp[s]://` URL → TCP → TLS → a started publishing or playing session.

use rand::RngCore;
use rtmp_proto::{
    handshake::HANDSHAKE_SIZE, ClientConfig, ClientEvent, ClientMode, ClientSession, RtmpUrl,
};
use rustls::pki_types::ServerName;
use tokio::{net::TcpStream, time::timeout_at};
use tokio_rustls::TlsConnector;

use crate::{tls_connector, Driver, DriverConfig, Error, Io, TlsError, Verify};

/// A started client connection (Publish.Start or Play.Start received).
pub type Client = Driver<Box<dyn Io>, ClientSession>;

/// How to connect: `Default` plus setters.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    verify: Option<Verify>,
    session: ClientConfig,
    driver: DriverConfig,
}

impl ConnectOptions {
    /// `rtmps` verification; `None` (the default) allows plain `rtmp` only.
    pub fn verify(&mut self, v: Option<Verify>) -> &mut Self {
        self.verify = v;
        self
    }
    /// The session's settings. Its start timeout bounds everything: TCP, TLS, the RTMP
    /// handshake and the server's answer.
    pub fn session(&mut self, c: ClientConfig) -> &mut Self {
        self.session = c;
        self
    }
    /// The session's settings, to change in place.
    pub fn session_mut(&mut self) -> &mut ClientConfig {
        &mut self.session
    }
    /// The driver's settings (write deadline).
    pub fn driver(&mut self, c: DriverConfig) -> &mut Self {
        self.driver = c;
        self
    }
}

/// Opens client connections; holds the TLS client, built once.
#[derive(Clone)]
pub struct Connector {
    options: ConnectOptions,
    tls: Option<TlsConnector>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("options", &self.options)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Connector {
    /// A connector; builds the TLS client when `options` has a verification mode (reading
    /// the CA file or the system roots now, so a bad setup fails before any connect).
    pub fn new(options: ConnectOptions) -> Result<Self, Error> {
        let tls = options.verify.as_ref().map(tls_connector).transpose()?;
        Ok(Self { options, tls })
    }

    /// Connects to `url`, publishes or plays its stream, and returns once the server said
    /// Publish.Start / Play.Start; a refusal is [`Error::Refused`] with the server's code and
    /// description. Events after the start (metadata, first media) stay queued in the client.
    pub async fn connect(&self, url: &RtmpUrl, mode: ClientMode) -> Result<Client, Error> {
        let begin = tokio::time::Instant::now();
        let deadline = begin + self.options.session.get_start_timeout();
        let addr = format!("{}:{}", url.host, url.port);
        let io = timeout_at(deadline, self.open(url))
            .await
            .map_err(|_| Error::ConnectTimeout(addr))??;
        self.start(io, url, mode, begin).await
    }

    /// The first half of [`connect`](Self::connect): TCP (with `TCP_NODELAY`), then TLS for
    /// `rtmps`; no deadline of its own.
    pub async fn open(&self, url: &RtmpUrl) -> Result<Box<dyn Io>, Error> {
        let addr = format!("{}:{}", url.host, url.port);
        self.open_at(url, &addr).await
    }

    /// The second half of [`connect`](Self::connect): the RTMP session over `io` until the
    /// server started the publish or play; the start timeout counts from `begin`.
    pub async fn start(
        &self,
        io: Box<dyn Io>,
        url: &RtmpUrl,
        mode: ClientMode,
        begin: tokio::time::Instant,
    ) -> Result<Client, Error> {
        let mut random = [0u8; HANDSHAKE_SIZE];
        rand::thread_rng().fill_bytes(&mut random);
        let session = ClientSession::new(
            &self.options.session,
            random,
            0,
            &url.tc_url(),
            &url.name,
            mode,
            begin.into_std(),
        );
        start(Driver::new(io, session, &self.options.driver)).await
    }

    async fn open_at(&self, url: &RtmpUrl, addr: &str) -> Result<Box<dyn Io>, Error> {
        let tcp = TcpStream::connect((url.host.as_str(), url.port))
            .await
            .map_err(|source| Error::Connect {
                addr: addr.to_owned(),
                source,
            })?;
        // Small control messages and frames go out at once.
        let _ = tcp.set_nodelay(true);
        if !url.tls {
            return Ok(Box::new(tcp));
        }
        let Some(c) = &self.tls else {
            return Err(TlsError::Config("rtmps:// needs a TLS verification mode".into()).into());
        };
        let name = ServerName::try_from(url.host.clone())
            .map_err(|e| TlsError::Config(format!("server name {:?}: {e}", url.host)))?;
        let s = c.connect(name, tcp).await.map_err(|e| {
            match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                Some(r @ rustls::Error::InvalidCertificate(_)) => TlsError::Untrusted(r.clone()),
                _ => TlsError::Handshake(e),
            }
        })?;
        Ok(Box::new(s))
    }
}

/// Runs a client session until the server started the publish or play (or refused it).
pub async fn start<IO: Io>(
    mut d: Driver<IO, ClientSession>,
) -> Result<Driver<IO, ClientSession>, Error> {
    loop {
        d.flush().await?;
        while let Some(ev) = d.poll_event() {
            if let Some((code, description)) = ev.refusal() {
                return Err(Error::Refused {
                    code: code.to_owned(),
                    description: description.to_owned(),
                });
            }
            if ev == ClientEvent::Started {
                return Ok(d);
            }
        }
        d.wait().await?;
    }
}
