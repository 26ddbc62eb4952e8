//! [`Driver`]: one session, one byte stream, one clock.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    time::{sleep_until, timeout, Instant},
};

use crate::{Error, Session};

/// A byte stream a session can run over: TCP, TLS, an in-memory pipe.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Bytes asked of the socket at once at first. A player's peer sends only acknowledgements, so
/// its input buffer stays this small (resident memory per player is what fan-out costs);
/// a publisher's reads fill it, and it doubles up to [`MAX_READ`].
const MIN_READ: usize = 4 * 1024;
/// The most bytes asked of the socket at once (a publisher at tens of Mbit/s).
const MAX_READ: usize = 64 * 1024;
/// Bytes of output buffer kept between writes (a burst can be megabytes; do not keep that
/// for the connection's lifetime).
const OUT_KEEP: usize = 16 * 1024;

/// Settings of a [`Driver`]: `Default` plus setters.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    write_timeout: Duration,
}

impl Default for DriverConfig {
    fn default() -> Self {
        Self {
            write_timeout: Duration::from_secs(10),
        }
    }
}

impl DriverConfig {
    /// A write that blocks this long fails with [`Error::WriteTimeout`] (default 10 s).
    pub fn write_timeout(&mut self, d: Duration) -> &mut Self {
        self.write_timeout = d;
        self
    }
}

/// Drives a session over `io`: input into the session with the time, its output to the
/// socket within the write deadline, its deadlines on tokio's timer.
///
/// Getters; `wait` (input: one read or one deadline, cancel-safe); `flush` and `write_raw`
/// (output, never to be raced); `poll_event`; `next_event` does all of it in a loop.
pub struct Driver<IO, S> {
    io: IO,
    session: S,
    buf: BytesMut,
    out: Vec<u8>,
    write_timeout: Duration,
    /// Input arrived while the session awaited a decision; it is fed again once decided.
    held: bool,
    /// Bytes read from the peer so far.
    received: u64,
    /// Bytes asked of the socket per read: grows while reads fill it.
    read_chunk: usize,
}

/// Buffers handed to one vectored write at most.
const MAX_IOVECS: usize = 64;

/// `write_all` over several buffers, with vectored writes.
async fn write_all_parts<IO: Io>(io: &mut IO, parts: &[Bytes]) -> std::io::Result<()> {
    let (mut i, mut off) = (0, 0);
    loop {
        // Skip what is done (and empty parts).
        while i < parts.len() && off == parts[i].len() {
            i += 1;
            off = 0;
        }
        if i == parts.len() {
            return Ok(());
        }
        let slices: Vec<std::io::IoSlice<'_>> = std::iter::once(&parts[i][off..])
            .chain(parts[i + 1..].iter().map(|p| &p[..]))
            .take(MAX_IOVECS)
            .map(std::io::IoSlice::new)
            .collect();
        let mut n = io.write_vectored(&slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while n > 0 {
            let left = parts[i].len() - off;
            if n < left {
                off += n;
                n = 0;
            } else {
                n -= left;
                i += 1;
                off = 0;
            }
        }
    }
}

/// The time in the session's terms, on tokio's clock (so paused-time tests move it).
fn now() -> std::time::Instant {
    Instant::now().into_std()
}

impl<IO: Io, S: Session> Driver<IO, S> {
    /// Drives `session` over `io`.
    pub fn new(io: IO, session: S, config: &DriverConfig) -> Self {
        Self {
            io,
            session,
            buf: BytesMut::with_capacity(MIN_READ),
            out: Vec::new(),
            write_timeout: config.write_timeout,
            held: false,
            received: 0,
            read_chunk: MIN_READ,
        }
    }

    /// The session.
    pub fn session(&self) -> &S {
        &self.session
    }

    /// The session, for commands (their output goes out with the next [`flush`](Self::flush)).
    pub fn session_mut(&mut self) -> &mut S {
        &mut self.session
    }

    /// The byte stream, e.g. to send a file region on a plain socket. Call
    /// [`flush`](Self::flush) first so the session's output goes before it.
    pub fn io(&self) -> &IO {
        &self.io
    }

    /// Bytes read from the peer so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Bytes asked of the socket per read: 4 KiB at first, doubled (to 64 KiB) each time a
    /// read fills it.
    pub fn read_size(&self) -> usize {
        self.read_chunk
    }

    /// The write deadline.
    pub fn write_timeout(&self) -> Duration {
        self.write_timeout
    }

    /// The next event of the session, if any.
    pub fn poll_event(&mut self) -> Option<S::Event> {
        self.session.poll_event()
    }

    /// Writes what the session has for the peer within the write deadline; returns the bytes
    /// written.
    pub async fn flush(&mut self) -> Result<usize, Error> {
        self.session.poll_transmit(&mut self.out, now());
        let n = self.out.len();
        if n == 0 {
            return Ok(0);
        }
        let w = async {
            self.io.write_all(&self.out).await?;
            self.io.flush().await
        };
        timeout(self.write_timeout, w)
            .await
            .map_err(|_| Error::WriteTimeout(self.write_timeout))??;
        self.out.clear();
        if self.out.capacity() > OUT_KEEP {
            self.out.shrink_to(OUT_KEEP);
        }
        Ok(n)
    }

    /// Writes bytes made outside the session (media encoded once for many players) after
    /// the session's own output, within the write deadline; returns the bytes written.
    pub async fn write_raw(&mut self, bytes: &[u8]) -> Result<usize, Error> {
        let n = self.flush().await?;
        let w = async {
            self.io.write_all(bytes).await?;
            self.io.flush().await
        };
        timeout(self.write_timeout, w)
            .await
            .map_err(|_| Error::WriteTimeout(self.write_timeout))??;
        Ok(n + bytes.len())
    }

    /// Writes shared buffers made outside the session (a new player's metadata and GOP, each
    /// frame encoded once for every player) after the session's own output, within the
    /// write deadline, without copying them into one; returns the bytes written.
    pub async fn write_raw_parts(&mut self, parts: &[Bytes]) -> Result<usize, Error> {
        let n = self.flush().await?;
        let w = async {
            write_all_parts(&mut self.io, parts).await?;
            self.io.flush().await
        };
        timeout(self.write_timeout, w)
            .await
            .map_err(|_| Error::WriteTimeout(self.write_timeout))??;
        Ok(n + parts.iter().map(Bytes::len).sum::<usize>())
    }

    /// Feeds input that waited behind a decision, or reads once (or sleeps until the
    /// session's next deadline, then lets it check). Returns the bytes read (0 when it woke
    /// for a deadline or fed held input). Cancel-safe: a cancelled call loses nothing.
    pub async fn wait(&mut self) -> Result<usize, Error> {
        if self.session.is_awaiting_decision() {
            return Err(Error::DecisionPending);
        }
        if std::mem::take(&mut self.held) {
            self.session.handle_input(&mut self.buf, now())?;
            self.held = self.session.is_awaiting_decision();
            return Ok(0);
        }
        if self.buf.capacity() - self.buf.len() < self.read_chunk / 2 {
            // Reclaims the same allocation once the last message's payload is dropped.
            self.buf.reserve(self.read_chunk);
        }
        let spare = self.buf.capacity() - self.buf.len();
        let deadline = self.session.poll_timeout();
        let n = tokio::select! {
            r = self.io.read_buf(&mut self.buf) => r?,
            _ = async { sleep_until(deadline.expect("guarded").into()).await }, if deadline.is_some() => {
                self.session.handle_timeout(now())?;
                return Ok(0);
            }
        };
        if n == 0 {
            return Err(Error::Closed);
        }
        if n == spare && self.read_chunk < MAX_READ {
            // The read filled the buffer: the peer sends faster than we ask.
            self.read_chunk *= 2;
        }
        self.received += n as u64;
        self.session.handle_input(&mut self.buf, now())?;
        self.held = self.session.is_awaiting_decision();
        Ok(n)
    }

    /// Flushes, then returns the next event, reading (and keeping the deadlines) as needed.
    /// Not cancel-safe (it writes); use [`wait`](Self::wait) inside `select!`.
    pub async fn next_event(&mut self) -> Result<S::Event, Error> {
        loop {
            self.flush().await?;
            if let Some(e) = self.session.poll_event() {
                return Ok(e);
            }
            self.wait().await?;
        }
    }

    /// After a refusal: reads (and drops) what the peer still sends for up to `grace`, so a
    /// peer that reads only between its own writes sees the refusal instead of a reset; then
    /// shuts the stream down.
    pub async fn linger(&mut self, grace: Duration) {
        let _ = timeout(grace, async {
            while matches!(self.io.read_buf(&mut self.buf).await, Ok(n) if n > 0) {
                self.buf.clear();
            }
        })
        .await;
        self.shutdown().await;
    }

    /// Flushes what the session still has (a last unpublish), then shuts the stream down,
    /// each within the write deadline; errors are ignored (the connection is over).
    pub async fn shutdown(&mut self) {
        let _ = self.flush().await;
        let _ = timeout(self.write_timeout, self.io.shutdown()).await;
    }

    /// The byte stream and the session, e.g. to hand the stream on.
    pub fn into_parts(self) -> (IO, S) {
        (self.io, self.session)
    }
}
