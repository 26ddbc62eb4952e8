//! Deadlines that hyper does not keep by itself: a response write that makes no progress (a
//! reader with a zero window, or one reading a trickle) and a request body that takes too
//! long. [`WriteProgress`] is the rule, pure (`now` passed in); [`DeadlineIo`] applies it to
//! the socket under hyper, [`TimedBody`] bounds a request body.
//!
//! The rule: once a write would block, the client has `limit` to take [`MIN_PROGRESS`] bytes
//! (or everything we offered); if it does not, the connection is closed with a reset, which
//! frees the response it pinned at once (a close with unsent data would leave the kernel
//! probing the zero window for minutes).

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    time::{Instant, Sleep},
};

use super::conn::ConnShared;

/// Bytes a blocked reader must take within the write timeout to count as reading: 16 KiB in
/// 10 s is 13 kbit/s, far below any rendition, far above a trickle.
pub const MIN_PROGRESS: u64 = 16 << 10;

/// One stall of a response write: since when, how much the client took since, until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stall {
    taken: u64,
    deadline: Instant,
}

/// The minimum-progress rule for one connection's writes.
#[derive(Debug, Default)]
pub struct WriteProgress {
    stall: Option<Stall>,
}

impl WriteProgress {
    /// A write would block at `now`. Starts a stall with `limit()` to make progress if none
    /// is running, and returns its deadline.
    pub fn on_blocked(&mut self, now: Instant, limit: impl FnOnce() -> Duration) -> Instant {
        self.stall
            .get_or_insert_with(|| Stall {
                taken: 0,
                deadline: now + limit(),
            })
            .deadline
    }

    /// The client took `n` of the `offered` bytes. True when this ends a stall: it took
    /// [`MIN_PROGRESS`] since the stall began, or all it was offered.
    pub fn on_written(&mut self, n: usize, offered: usize) -> bool {
        let Some(s) = &mut self.stall else {
            return false;
        };
        s.taken += n as u64;
        if s.taken >= MIN_PROGRESS || n >= offered {
            self.stall = None;
            return true;
        }
        false
    }

    /// True when a stall has run past its deadline at `now`.
    pub fn expired(&self, now: Instant) -> bool {
        self.stall.is_some_and(|s| now >= s.deadline)
    }

    /// True while a stall runs.
    pub fn stalled(&self) -> bool {
        self.stall.is_some()
    }
}

/// The TCP socket under hyper, with the write rule applied.
pub struct DeadlineIo {
    tcp: TcpStream,
    progress: WriteProgress,
    sleep: Option<Pin<Box<Sleep>>>,
    conn: Arc<ConnShared>,
}

impl DeadlineIo {
    /// Wraps an accepted socket.
    pub(super) fn new(tcp: TcpStream, conn: Arc<ConnShared>) -> Self {
        Self {
            tcp,
            progress: WriteProgress::default(),
            sleep: None,
            conn,
        }
    }

    fn after_write(
        &mut self,
        cx: &mut Context<'_>,
        offered: usize,
        r: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match r {
            Poll::Ready(Ok(n)) => {
                if self.progress.on_written(n, offered) {
                    self.sleep = None;
                    self.conn.write_moving();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let now = Instant::now();
                if !self.progress.stalled() {
                    let conn = &self.conn;
                    let deadline = self.progress.on_blocked(now, || conn.write_stalled());
                    self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline)));
                }
                let fired = self
                    .sleep
                    .as_mut()
                    .is_some_and(|s| s.as_mut().poll(cx).is_ready());
                if fired || self.progress.expired(now) {
                    self.conn.closing("write");
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client stopped reading the response",
                    )));
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for DeadlineIo {
    fn drop(&mut self) {
        // Closed while its reader is stalled (by the write deadline or any other): a reset,
        // not a FIN behind the unsent bytes, so the kernel drops them now instead of probing
        // a zero window for minutes.
        if self.progress.stalled() {
            let _ = socket2::SockRef::from(&self.tcp).set_linger(Some(Duration::ZERO));
        }
    }
}

impl AsyncRead for DeadlineIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for DeadlineIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.tcp).poll_write(cx, buf);
        self.after_write(cx, buf.len(), r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let offered = bufs.iter().map(|b| b.len()).sum();
        let r = Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs);
        self.after_write(cx, offered, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// Why a request body failed: it did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimeout(Duration);

/// A request body that must be complete within a deadline, or (`rolling`: a stream pushed
/// in the body, which has no end to wait for) whose pieces must each arrive within it.
pub struct TimedBody<B> {
    inner: B,
    limit: Duration,
    rolling: bool,
    deadline: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
    conn: Arc<ConnShared>,
}

impl<B> TimedBody<B> {
    /// `inner`, due within `limit` from now (`rolling`: each piece within `limit` of the one
    /// before).
    pub(super) fn new(inner: B, limit: Duration, rolling: bool, conn: Arc<ConnShared>) -> Self {
        Self {
            inner,
            limit,
            rolling,
            deadline: Instant::now() + limit,
            sleep: None,
            conn,
        }
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(r) = Pin::new(&mut this.inner).poll_frame(cx) {
            if this.rolling {
                this.deadline = Instant::now() + this.limit;
                this.sleep = None;
            }
            return Poll::Ready(r.map(|f| f.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        ready!(sleep.as_mut().poll(cx));
        this.conn.closing("body");
        Poll::Ready(Some(Err(BodyTimeout(this.limit).into())))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(10);

    #[test]
    fn a_reader_that_keeps_taking_is_never_stalled_for_long() {
        let t0 = Instant::now();
        let mut p = WriteProgress::default();
        assert!(!p.on_written(100_000, 100_000), "no stall to end");
        assert_eq!(p.on_blocked(t0, || LIMIT), t0 + LIMIT);
        // A second block within the same stall keeps the first deadline.
        assert_eq!(
            p.on_blocked(t0 + Duration::from_secs(3), || Duration::ZERO),
            t0 + LIMIT
        );
        assert!(!p.on_written(8 << 10, 64 << 10));
        assert!(
            p.on_written(8 << 10, 64 << 10),
            "16 KiB taken ends the stall"
        );
        assert!(!p.stalled());
        assert!(!p.expired(t0 + LIMIT * 2));
    }

    #[test]
    fn a_trickle_reader_runs_out_of_time() {
        let t0 = Instant::now();
        let mut p = WriteProgress::default();
        p.on_blocked(t0, || LIMIT);
        for _ in 0..9 {
            assert!(!p.on_written(1024, 64 << 10));
        }
        assert!(!p.expired(t0 + LIMIT - Duration::from_millis(1)));
        assert!(p.expired(t0 + LIMIT));
    }

    #[test]
    fn taking_all_it_was_offered_ends_a_stall() {
        let t0 = Instant::now();
        let mut p = WriteProgress::default();
        p.on_blocked(t0, || LIMIT);
        assert!(p.on_written(300, 300));
        // A new stall gets a new deadline from its own start.
        let t1 = t0 + Duration::from_secs(30);
        assert_eq!(p.on_blocked(t1, || LIMIT), t1 + LIMIT);
    }
}
