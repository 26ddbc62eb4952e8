//! A body that grows chunk by chunk while any number of readers follow it:
//! a reader that joins late gets every chunk made so far at once, then each
//! new chunk as it is pushed, then the end (finished, failed or abandoned).
//!
//! ```text
//!  writer: Growing ── set_head ── push ── push ── finish | fail | abandon (or drop)
//!                         │         │       │       │
//!                         ▼         ▼       ▼       ▼      one tokio::sync::watch
//!  reader: GrowingReader ─ head() ─ next_chunk() … Ok(None) | Err(WaitError)
//!          (any number, any time; each wait bounded by its stall timeout)
//! ```
//!
//! The edge's coalesced fetches ([`Coalescer`](crate::Coalescer)) and the
//! server's low-latency segments in progress are both this: a fetch fans its
//! origin body out to every waiting request, a segment fans the transcoder's
//! CMAF chunks out to every player that asked for it early.
//!
//! The chunks stay in the watch value (they are `Bytes`, so readers share
//! them without copying), which makes `bytes()` and a late reader cheap and
//! bounds the memory by the body itself. The first end wins: a `finish`
//! after a `fail` changes nothing.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::watch;

/// Why a reader stopped before the end of a finished body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WaitError<E> {
    /// No progress from the writer within the stall timeout.
    #[error("no progress from the fetching request within the wait timeout")]
    Timeout,
    /// The writer went away without finishing (abandoned, or dropped):
    /// what was published is all there will be; retry from the source.
    #[error("the fetching request went away without finishing")]
    Dangling,
    /// The writer failed with this error.
    #[error("the shared fetch failed: {0}")]
    Failed(E),
}

#[derive(Debug, Clone)]
enum End<E> {
    Finished,
    Failed(E),
    Dangling,
}

/// What readers observe: the head once known, the chunks so far, the end.
#[derive(Debug)]
struct State<H, E> {
    head: Option<H>,
    chunks: Vec<Bytes>,
    end: Option<End<E>>,
}

/// The writing side of a growing body; share it (`Arc`) to let others
/// subscribe. Every method takes `&self`.
///
/// `H` is what readers need before the body (a response head; `()` when
/// there is none), `E` the error a failed body hands to every reader.
/// Dropping the last handle without an end reads as
/// [`WaitError::Dangling`].
#[derive(Debug)]
pub struct Growing<H, E> {
    tx: watch::Sender<State<H, E>>,
    /// The finished body in one buffer, made once: every request for a finished body
    /// shares it instead of copying the chunks again.
    whole: std::sync::OnceLock<Bytes>,
}

impl<H, E> Default for Growing<H, E> {
    fn default() -> Self {
        Growing::new()
    }
}

impl<H, E> Growing<H, E> {
    /// An empty body with no head and no end yet.
    pub fn new() -> Self {
        let (tx, _) = watch::channel(State {
            head: None,
            chunks: Vec::new(),
            end: None,
        });
        Growing {
            tx,
            whole: std::sync::OnceLock::new(),
        }
    }

    /// Publishes the head: readers waiting in [`GrowingReader::head`]
    /// proceed.
    pub fn set_head(&self, head: H) {
        self.tx.send_modify(|s| s.head = Some(head));
    }

    /// Appends the next chunk and wakes the readers (an empty chunk is
    /// ignored: it would read as nothing).
    pub fn push(&self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        self.tx.send_modify(|s| s.chunks.push(chunk));
    }

    /// The body is complete: readers end after the last chunk.
    pub fn finish(&self) {
        self.end(End::Finished);
    }

    /// The body failed: every reader gets `err` after the chunks so far.
    pub fn fail(&self, err: E) {
        self.end(End::Failed(err));
    }

    /// The writer gives up without an error of its own: readers get
    /// [`WaitError::Dangling`] after the chunks so far.
    pub fn abandon(&self) {
        self.end(End::Dangling);
    }

    fn end(&self, end: End<E>) {
        self.tx.send_if_modified(|s| {
            let first = s.end.is_none();
            if first {
                s.end = Some(end);
            }
            first
        });
    }

    /// A new reader, starting at the first chunk, that gives up after
    /// `stall` without progress.
    pub fn subscribe(&self, stall: Duration) -> GrowingReader<H, E> {
        GrowingReader {
            rx: self.tx.subscribe(),
            cursor: 0,
            stall,
        }
    }

    /// Readers following now.
    pub fn readers(&self) -> usize {
        self.tx.receiver_count()
    }

    /// True once finished, failed or abandoned.
    pub fn is_ended(&self) -> bool {
        self.tx.borrow().end.is_some()
    }

    /// True once finished (complete), not when failed or abandoned.
    pub fn is_finished(&self) -> bool {
        matches!(self.tx.borrow().end, Some(End::Finished))
    }

    /// Chunks pushed so far.
    pub fn chunk_count(&self) -> usize {
        self.tx.borrow().chunks.len()
    }

    /// Every chunk so far, as one buffer (no copy for a single chunk; once the body has
    /// ended, the same buffer for every caller).
    pub fn bytes(&self) -> Bytes {
        let s = self.tx.borrow();
        if s.end.is_some() {
            return self.whole.get_or_init(|| concat(&s.chunks)).clone();
        }
        concat(&s.chunks)
    }
}

/// One reader of a [`Growing`] body.
#[derive(Debug)]
pub struct GrowingReader<H, E> {
    rx: watch::Receiver<State<H, E>>,
    cursor: usize,
    stall: Duration,
}

impl<H: Clone, E: Clone> GrowingReader<H, E> {
    /// Waits for the head.
    pub async fn head(&mut self) -> Result<H, WaitError<E>> {
        loop {
            {
                let s = self.rx.borrow_and_update();
                if let Some(h) = &s.head {
                    return Ok(h.clone());
                }
                if let Some(end) = &s.end {
                    return Err(end_error(end).unwrap_or(WaitError::Dangling));
                }
            }
            self.changed().await?;
        }
    }

    /// The next chunk, `Ok(None)` at the end of a finished body.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, WaitError<E>> {
        loop {
            {
                let s = self.rx.borrow_and_update();
                if let Some(c) = s.chunks.get(self.cursor) {
                    self.cursor += 1;
                    return Ok(Some(c.clone()));
                }
                if let Some(end) = &s.end {
                    return match end_error(end) {
                        None => Ok(None),
                        Some(e) => Err(e),
                    };
                }
            }
            self.changed().await?;
        }
    }

    /// Waits for the whole body: the head and every chunk in one buffer.
    pub async fn collect(mut self) -> Result<(H, Bytes), WaitError<E>> {
        let head = self.head().await?;
        let mut chunks = Vec::new();
        while let Some(c) = self.next_chunk().await? {
            chunks.push(c);
        }
        Ok((head, concat(&chunks)))
    }

    async fn changed(&mut self) -> Result<(), WaitError<E>> {
        match tokio::time::timeout(self.stall, self.rx.changed()).await {
            Err(_) => Err(WaitError::Timeout),
            Ok(Ok(())) => Ok(()),
            // Writer gone after marking the end: the caller's loop sees it.
            Ok(Err(_)) if self.rx.borrow().end.is_some() => Ok(()),
            Ok(Err(_)) => Err(WaitError::Dangling),
        }
    }
}

fn end_error<E: Clone>(end: &End<E>) -> Option<WaitError<E>> {
    match end {
        End::Finished => None,
        End::Failed(e) => Some(WaitError::Failed(e.clone())),
        End::Dangling => Some(WaitError::Dangling),
    }
}

/// The chunks as one buffer; a single chunk (the common coalesced body) is
/// returned without a copy.
pub(crate) fn concat(chunks: &[Bytes]) -> Bytes {
    match chunks {
        [] => Bytes::new(),
        [one] => one.clone(),
        many => {
            let mut b = BytesMut::with_capacity(many.iter().map(Bytes::len).sum());
            for c in many {
                b.extend_from_slice(c);
            }
            b.freeze()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    type G = Growing<(), String>;

    fn b(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[tokio::test]
    async fn late_reader_gets_what_exists_then_what_follows() {
        let g = Arc::new(G::new());
        g.push(b("a"));
        let mut r = g.subscribe(Duration::from_secs(1));
        assert_eq!(r.next_chunk().await, Ok(Some(b("a"))));
        let follower = tokio::spawn({
            let mut r = g.subscribe(Duration::from_secs(5));
            async move {
                let mut got = Vec::new();
                while let Some(c) = r.next_chunk().await.unwrap() {
                    got.push(c);
                }
                got
            }
        });
        tokio::task::yield_now().await;
        g.push(Bytes::new()); // ignored
        g.push(b("b"));
        assert_eq!(g.readers(), 2);
        g.finish();
        g.fail("too late".into()); // the first end wins
        assert_eq!(follower.await.unwrap(), vec![b("a"), b("b")]);
        assert_eq!(r.next_chunk().await, Ok(Some(b("b"))));
        assert_eq!(r.next_chunk().await, Ok(None));
        assert_eq!(r.next_chunk().await, Ok(None));
        assert!(g.is_ended());
        assert_eq!((g.chunk_count(), g.bytes()), (2, b("ab")));
    }

    #[tokio::test]
    async fn ends_reach_readers_after_the_chunks() {
        let g = G::new();
        g.push(b("x"));
        let mut r = g.subscribe(Duration::from_secs(1));
        g.fail("502".into());
        assert_eq!(r.next_chunk().await, Ok(Some(b("x"))));
        assert_eq!(r.next_chunk().await, Err(WaitError::Failed("502".into())));

        let g = G::new();
        let mut r = g.subscribe(Duration::from_secs(1));
        g.abandon();
        assert_eq!(r.head().await, Err(WaitError::Dangling));

        // Dropped without an end: dangling, not a hang.
        let g = G::new();
        let mut r = g.subscribe(Duration::from_secs(1));
        drop(g);
        assert_eq!(r.next_chunk().await, Err(WaitError::Dangling));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_writer_times_its_readers_out() {
        let g = Growing::<u16, String>::new();
        let mut r = g.subscribe(Duration::from_secs(2));
        let t0 = tokio::time::Instant::now();
        assert_eq!(r.head().await, Err(WaitError::Timeout));
        assert_eq!(t0.elapsed(), Duration::from_secs(2));
        g.set_head(200);
        g.push(b("c"));
        g.finish();
        assert_eq!(r.collect().await, Ok((200, b("c"))));
    }

    #[test]
    fn a_finished_body_is_one_shared_buffer() {
        let g = G::new();
        g.push(b("a"));
        g.push(b("b"));
        assert_ne!(
            g.bytes().as_ptr(),
            g.bytes().as_ptr(),
            "in progress: a fresh copy"
        );
        g.finish();
        assert_eq!(g.bytes(), b("ab"));
        assert_eq!(g.bytes().as_ptr(), g.bytes().as_ptr());
    }

    #[test]
    fn concat_copies_only_several_chunks() {
        assert_eq!(concat(&[]), Bytes::new());
        let one = b("one");
        assert_eq!(concat(std::slice::from_ref(&one)).as_ptr(), one.as_ptr());
        assert_eq!(concat(&[b("a"), b("b"), b("c")]), b("abc"));
    }
}
