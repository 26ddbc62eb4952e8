//! Request coalescing, in the shape of pingora's cache lock: the first
//! request for a key gets a [`WritePermit`] and fetches; every concurrent
//! request for the same key gets a [`ReadLock`] and receives the same bytes,
//! chunk by chunk, as the writer publishes them — so one in-progress
//! low-latency segment fans out to every waiter while it is being made.
//!
//! ```text
//!  lock(key) ─┬─ first ──▶ Lock::Write(permit) ─ set_head ─ push ─ push ─ finish | fail
//!             │                                      │       │      │
//!             └─ others ─▶ Lock::Read(reader) ◀──────┴───────┴──────┘  (watch channel)
//!                           head() / next_chunk() / collect(), each wait bounded by a timeout
//! ```
//!
//! The entry leaves the table when the writer finishes, fails or is
//! dropped, so the next `lock` of the key starts a new fetch: the caller
//! must make the result visible elsewhere (the cache) *before* finishing,
//! and look there again after getting a permit. A permit dropped without
//! `finish`/`fail` marks the entry [`WaitError::Dangling`](crate::WaitError::Dangling): its readers retry
//! instead of hanging. A reader that sees no progress for the wait timeout
//! gets [`WaitError::Timeout`](crate::WaitError::Timeout).
//!
//! Each entry is a [`Growing`] body with the response head; this module adds
//! the table (who fetches, who follows) around it. The table is sharded by
//! key hash to keep the mutexes uncontended; they are only held for a map
//! operation, never across an await.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;

use super::growing::{Growing, GrowingReader};

/// Default number of shards.
const SHARDS: usize = 16;

type Slot<H, E> = Arc<Growing<H, E>>;
type Shard<H, E> = Mutex<HashMap<String, Slot<H, E>>>;

#[derive(Debug)]
struct Table<H, E> {
    shards: Box<[Shard<H, E>]>,
    hasher: RandomState,
}

impl<H, E> Table<H, E> {
    fn shard(&self, key: &str) -> &Shard<H, E> {
        let i = self.hasher.hash_one(key) as usize % self.shards.len();
        &self.shards[i]
    }

    /// Removes `key` only if it still maps to `slot`.
    fn remove(&self, key: &str, slot: &Slot<H, E>) {
        let mut map = self.shard(key).lock();
        if map.get(key).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            map.remove(key);
        }
    }
}

/// The result of [`Coalescer::lock`].
#[derive(Debug)]
pub enum Lock<H, E> {
    /// This request fetches and publishes.
    Write(WritePermit<H, E>),
    /// Another request is fetching: follow it.
    Read(ReadLock<H, E>),
}

/// A follower of another request's fetch: a reader of its growing body
/// (`head()`, `next_chunk()`, `collect()`, each wait bounded by the
/// coalescer's wait timeout).
pub type ReadLock<H, E> = GrowingReader<H, E>;

/// A sharded table of in-flight fetches.
///
/// `H` is the response head (status and headers) readers need before the
/// body; `E` the error a failed fetch hands to every reader.
#[derive(Debug)]
pub struct Coalescer<H, E> {
    table: Arc<Table<H, E>>,
    wait_timeout: Duration,
}

impl<H, E> Clone for Coalescer<H, E> {
    fn clone(&self) -> Self {
        Coalescer {
            table: self.table.clone(),
            wait_timeout: self.wait_timeout,
        }
    }
}

impl<H: Clone, E: Clone> Coalescer<H, E> {
    /// A table whose readers give up after `wait_timeout` without progress.
    pub fn new(wait_timeout: Duration) -> Self {
        Coalescer::with_shards(wait_timeout, SHARDS)
    }

    /// Same, with `shards` shards (>= 1).
    pub fn with_shards(wait_timeout: Duration, shards: usize) -> Self {
        let shards = (0..shards.max(1))
            .map(|_| Mutex::new(HashMap::new()))
            .collect();
        Coalescer {
            table: Arc::new(Table {
                shards,
                hasher: RandomState::new(),
            }),
            wait_timeout,
        }
    }

    /// The first caller for `key` (with no fetch in flight) gets the write
    /// permit; the others follow it.
    pub fn lock(&self, key: &str) -> Lock<H, E> {
        let mut map = self.table.shard(key).lock();
        if let Some(slot) = map.get(key) {
            return Lock::Read(slot.subscribe(self.wait_timeout));
        }
        let slot = Arc::new(Growing::new());
        map.insert(key.to_owned(), slot.clone());
        Lock::Write(WritePermit {
            table: self.table.clone(),
            key: key.to_owned(),
            slot,
            done: false,
        })
    }

    /// Number of fetches in flight.
    pub fn in_flight(&self) -> usize {
        self.table.shards.iter().map(|s| s.lock().len()).sum()
    }
}

/// The right (and duty) to fetch one key and publish it to its readers.
#[derive(Debug)]
#[must_use = "dropping the permit without finish() or fail() makes its readers retry"]
pub struct WritePermit<H, E> {
    table: Arc<Table<H, E>>,
    key: String,
    slot: Slot<H, E>,
    done: bool,
}

impl<H: Clone, E: Clone> WritePermit<H, E> {
    /// The key this permit fetches.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Publishes the response head (status, headers): readers waiting in
    /// [`ReadLock::head`] proceed.
    pub fn set_head(&self, head: H) {
        self.slot.set_head(head);
    }

    /// Publishes the next body chunk to every reader.
    pub fn push(&self, chunk: Bytes) {
        self.slot.push(chunk);
    }

    /// A reader of this permit's own entry (for the writer's own client,
    /// so that the fetch can run in a task of its own), giving up after
    /// `timeout` without progress.
    pub fn subscribe(&self, timeout: Duration) -> ReadLock<H, E> {
        self.slot.subscribe(timeout)
    }

    /// Number of readers following now.
    pub fn readers(&self) -> usize {
        self.slot.readers()
    }

    /// The body is complete: readers get the end of stream, and the key
    /// leaves the table (store the object in the cache before this).
    pub fn finish(mut self) {
        self.slot.finish();
        self.release();
    }

    /// The fetch failed: every reader gets `err`.
    pub fn fail(mut self, err: E) {
        self.slot.fail(err);
        self.release();
    }

    fn release(&mut self) {
        self.done = true;
        self.table.remove(&self.key, &self.slot);
    }
}

impl<H, E> Drop for WritePermit<H, E> {
    fn drop(&mut self) {
        if !self.done {
            self.slot.abandon();
            self.table.remove(&self.key, &self.slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::growing::WaitError;
    use std::sync::atomic::{AtomicUsize, Ordering};

    type C = Coalescer<u16, String>;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn thousand_lockers_one_writer_identical_bytes() {
        const N: usize = 1000;
        let c = C::new(Duration::from_secs(10));
        let locked = Arc::new(AtomicUsize::new(0));
        let all_locked = Arc::new(tokio::sync::Notify::new());
        let writers = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..N {
            let (c, locked, all_locked, writers) = (
                c.clone(),
                locked.clone(),
                all_locked.clone(),
                writers.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let lock = c.lock("live/s/v720/7.m4s");
                let n = locked.fetch_add(1, Ordering::SeqCst) + 1;
                if n == N {
                    all_locked.notify_one();
                }
                match lock {
                    Lock::Write(w) => {
                        writers.fetch_add(1, Ordering::SeqCst);
                        // Publish only once everyone holds a lock, so nobody
                        // can arrive after the entry left the table.
                        all_locked.notified().await;
                        w.set_head(200);
                        for i in 0..8u8 {
                            w.push(Bytes::from(vec![i; 1000]));
                            tokio::task::yield_now().await;
                        }
                        w.finish();
                        None
                    }
                    Lock::Read(r) => Some(r.collect().await.unwrap()),
                }
            }));
        }
        let mut bodies = Vec::new();
        for t in tasks {
            if let Some(got) = t.await.unwrap() {
                bodies.push(got);
            }
        }
        assert_eq!(writers.load(Ordering::SeqCst), 1);
        assert_eq!(bodies.len(), N - 1);
        let expect: Vec<u8> = (0..8u8).flat_map(|i| vec![i; 1000]).collect();
        for (status, body) in bodies {
            assert_eq!(status, 200);
            assert_eq!(body, expect);
        }
        assert_eq!(c.in_flight(), 0);
    }

    #[tokio::test]
    async fn readers_get_chunks_as_they_arrive() {
        let c = C::new(Duration::from_secs(1));
        let Lock::Write(w) = c.lock("k") else {
            panic!()
        };
        let Lock::Read(mut early) = c.lock("k") else {
            panic!()
        };
        assert_eq!(w.readers(), 1);
        w.set_head(200);
        assert_eq!(early.head().await, Ok(200));
        w.push(Bytes::from_static(b"a"));
        assert_eq!(early.next_chunk().await, Ok(Some(Bytes::from_static(b"a"))));
        w.push(Bytes::new()); // ignored
        w.push(Bytes::from_static(b"b"));
        // A late joiner still gets everything from the start.
        let Lock::Read(late) = c.lock("k") else {
            panic!()
        };
        assert_eq!(early.next_chunk().await, Ok(Some(Bytes::from_static(b"b"))));
        w.finish();
        assert_eq!(early.next_chunk().await, Ok(None));
        assert_eq!(early.next_chunk().await, Ok(None));
        assert_eq!(late.collect().await, Ok((200, Bytes::from_static(b"ab"))));
        // Finished: the next locker writes again.
        assert!(matches!(c.lock("k"), Lock::Write(_)));
    }

    #[tokio::test]
    async fn dropped_permit_makes_readers_retry() {
        let c = C::new(Duration::from_secs(1));
        let Lock::Write(w) = c.lock("k") else {
            panic!()
        };
        let Lock::Read(mut before_head) = c.lock("k") else {
            panic!()
        };
        let Lock::Read(mut mid_body) = c.lock("k") else {
            panic!()
        };
        w.set_head(200);
        w.push(Bytes::from_static(b"x"));
        assert_eq!(mid_body.head().await, Ok(200));
        assert_eq!(
            mid_body.next_chunk().await,
            Ok(Some(Bytes::from_static(b"x")))
        );
        let waiter = tokio::spawn(async move { mid_body.next_chunk().await });
        tokio::task::yield_now().await;
        drop(w);
        assert_eq!(waiter.await.unwrap(), Err(WaitError::Dangling));
        // The head had been published: a reader still gets it, then the body
        // reports the dangling end.
        assert_eq!(before_head.head().await, Ok(200));
        assert_eq!(
            before_head.next_chunk().await,
            Ok(Some(Bytes::from_static(b"x")))
        );
        assert_eq!(before_head.next_chunk().await, Err(WaitError::Dangling));
        // The key is free again: a retry becomes the writer.
        assert!(matches!(c.lock("k"), Lock::Write(_)));
    }

    #[tokio::test]
    async fn dropped_permit_before_head() {
        let c = C::new(Duration::from_secs(1));
        let Lock::Write(w) = c.lock("k") else {
            panic!()
        };
        let Lock::Read(mut r) = c.lock("k") else {
            panic!()
        };
        drop(w);
        assert_eq!(r.head().await, Err(WaitError::Dangling));
    }

    #[tokio::test]
    async fn failure_reaches_every_reader() {
        let c = C::new(Duration::from_secs(1));
        let Lock::Write(w) = c.lock("k") else {
            panic!()
        };
        let readers: Vec<_> = (0..3)
            .map(|_| match c.lock("k") {
                Lock::Read(r) => r,
                Lock::Write(_) => panic!(),
            })
            .collect();
        w.fail("origin 502".to_string());
        for r in readers {
            assert_eq!(
                r.collect().await,
                Err(WaitError::Failed("origin 502".to_string()))
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn readers_time_out_without_progress() {
        let c = C::new(Duration::from_secs(2));
        let Lock::Write(w) = c.lock("k") else {
            panic!()
        };
        let Lock::Read(mut r) = c.lock("k") else {
            panic!()
        };
        let t0 = tokio::time::Instant::now();
        assert_eq!(r.head().await, Err(WaitError::Timeout));
        assert_eq!(t0.elapsed(), Duration::from_secs(2));
        // Progress resets the wait: chunks every 1.5 s never time out.
        let Lock::Read(r2) = c.lock("k") else {
            panic!()
        };
        let writer = tokio::spawn(async move {
            w.set_head(200);
            for _ in 0..4 {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                w.push(Bytes::from_static(b"c"));
            }
            w.finish();
        });
        assert_eq!(r2.collect().await, Ok((200, Bytes::from_static(b"cccc"))));
        writer.await.unwrap();
    }

    #[tokio::test]
    async fn keys_are_independent_across_shards() {
        let c = Coalescer::<u16, String>::with_shards(Duration::from_secs(1), 4);
        let permits: Vec<_> = (0..100)
            .map(|i| match c.lock(&format!("k{i}")) {
                Lock::Write(w) => w,
                Lock::Read(_) => panic!("k{i}"),
            })
            .collect();
        assert_eq!(c.in_flight(), 100);
        for w in permits {
            assert!(!w.key().is_empty());
            w.finish();
        }
        assert_eq!(c.in_flight(), 0);
    }
}
