//! What the server's fetch closure hands to the edge: an origin response
//! with a whole body, or a body still arriving (an in-progress segment).

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::error::OriginError;
use crate::object::ObjectHead;

/// The future returned by [`ChunkSource::next_chunk`].
pub type ChunkFuture<'a> =
    Pin<Box<dyn Future<Output = Option<Result<Bytes, OriginError>>> + Send + 'a>>;

/// A streamed origin body (an in-progress segment sent with chunked
/// transfer): `None` at the end.
///
/// For hyper, wrap `Incoming` and return the data frames of
/// `BodyExt::frame()`; or feed an `mpsc` channel, which implements it.
pub trait ChunkSource: Send + 'static {
    /// The next chunk of the body.
    fn next_chunk(&mut self) -> ChunkFuture<'_>;
}

impl ChunkSource for mpsc::Receiver<Result<Bytes, OriginError>> {
    fn next_chunk(&mut self) -> ChunkFuture<'_> {
        Box::pin(self.recv())
    }
}

/// An origin response body.
pub enum OriginBody {
    /// The whole body (a finished segment, a manifest).
    Full(Bytes),
    /// A body still arriving; fanned out to the waiters chunk by chunk.
    Stream(Box<dyn ChunkSource>),
}

impl std::fmt::Debug for OriginBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OriginBody::Full(b) => f.debug_tuple("Full").field(&b.len()).finish(),
            OriginBody::Stream(_) => f.write_str("Stream(..)"),
        }
    }
}

/// What the server's fetch closure returns: the origin's status, the
/// headers the edge keeps, and the body.
#[derive(Debug)]
pub struct OriginResponse {
    /// Status and kept headers (`Cache-Control` decides storage).
    pub head: ObjectHead,
    /// The body.
    pub body: OriginBody,
}

impl OriginResponse {
    /// A response with its whole body.
    pub fn full(head: ObjectHead, body: impl Into<Bytes>) -> Self {
        OriginResponse {
            head,
            body: OriginBody::Full(body.into()),
        }
    }

    /// A response whose body streams from `source`.
    pub fn stream(head: ObjectHead, source: impl ChunkSource) -> Self {
        OriginResponse {
            head,
            body: OriginBody::Stream(Box::new(source)),
        }
    }
}
