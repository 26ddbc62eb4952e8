//! Byte-range answers for segments, the origin's and the edge's alike: an LL-HLS part is a
//! byte range of its segment, so one object (cached, stored, or still growing) answers every
//! part of it. The range rules are `edge::ByteRange` / `edge::RangeSlicer`; this is the HTTP
//! around them.
//!
//! - A whole body: `206` with `Content-Range: bytes first-last/len`, or `416` with
//!   `bytes */len` when no byte of the range exists.
//! - A body still growing (the segment in progress): `206` streaming the range as the chunks
//!   arrive; `Content-Range: bytes first-last/*` when the range is bounded. An open range (a
//!   preload hint's `bytes=N-`) streams to the segment's end, whose length is not known when
//!   the head goes out: RFC 9110 has no `Content-Range` for that (RFC 8673's two-step dance
//!   does not fit a hint), so it has none and no `Content-Length`.
//! - No `Range`, or one we do not serve (several ranges, a suffix of a growing body): the
//!   whole body, as RFC 9110 §14.2 allows.

use axum::{
    body::Body,
    http::{header, response::Builder, HeaderMap, StatusCode},
    response::Response,
};
use bytes::Bytes;
use edge::{ByteRange, RangeSlicer};
use futures::{Stream, StreamExt};

/// The request's single byte range, if it has one we serve.
pub(crate) fn requested(headers: &HeaderMap) -> Option<ByteRange> {
    headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(ByteRange::parse)
}

/// Answers `range` (or the whole body) from a complete body; `b` holds the other headers.
pub(crate) fn full(
    range: Option<ByteRange>,
    body: Bytes,
    b: Builder,
) -> Result<Response, axum::http::Error> {
    let b = b.header(header::ACCEPT_RANGES, "bytes");
    let Some(range) = range else {
        return b.body(Body::from(body));
    };
    let len = body.len() as u64;
    match range.within(len) {
        Some((first, last)) => b
            .status(StatusCode::PARTIAL_CONTENT)
            .header(header::CONTENT_RANGE, format!("bytes {first}-{last}/{len}"))
            .body(Body::from(body.slice(first as usize..=last as usize))),
        None => b
            .status(StatusCode::RANGE_NOT_SATISFIABLE)
            .header(header::CONTENT_RANGE, format!("bytes */{len}"))
            .body(Body::empty()),
    }
}

/// Answers `range` (or the whole body) from a body still arriving in chunks; `b` holds the
/// other headers.
pub(crate) fn growing<S, E>(
    range: Option<ByteRange>,
    chunks: S,
    b: Builder,
) -> Result<Response, axum::http::Error>
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
{
    let b = b.header(header::ACCEPT_RANGES, "bytes");
    let Some((first, last)) = range.and_then(|r| r.open_bounds()) else {
        return b.body(Body::from_stream(chunks));
    };
    let mut b = b.status(StatusCode::PARTIAL_CONTENT);
    if let Some(last) = last {
        b = b
            .header(header::CONTENT_RANGE, format!("bytes {first}-{last}/*"))
            .header(header::CONTENT_LENGTH, last - first + 1);
    }
    b.body(Body::from_stream(sliced(
        chunks,
        RangeSlicer::new(first, last),
    )))
}

/// The pieces of `chunks` inside the slicer's range, ending as soon as the range is complete.
fn sliced<S, E>(chunks: S, slicer: RangeSlicer) -> impl Stream<Item = Result<Bytes, E>> + Send
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: 'static,
{
    let chunks = Box::pin(chunks);
    futures::stream::unfold((chunks, slicer), |(mut chunks, mut slicer)| async move {
        loop {
            if slicer.is_done() {
                return None;
            }
            match chunks.next().await? {
                Err(e) => return Some((Err(e), (chunks, slicer))),
                Ok(c) => {
                    if let Some(piece) = slicer.cut(&c) {
                        return Some((Ok(piece), (chunks, slicer)));
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn range(v: &str) -> Option<ByteRange> {
        ByteRange::parse(v)
    }

    async fn read(r: Response) -> (u16, Option<String>, Option<String>, Bytes) {
        let h = |n| {
            r.headers()
                .get(n)
                .map(|v: &axum::http::HeaderValue| v.to_str().unwrap().to_owned())
        };
        let (status, cr, cl) = (
            r.status().as_u16(),
            h(header::CONTENT_RANGE),
            h(header::CONTENT_LENGTH),
        );
        (
            status,
            cr,
            cl,
            r.into_body().collect().await.unwrap().to_bytes(),
        )
    }

    #[tokio::test]
    async fn whole_bodies() {
        let body = Bytes::from_static(b"0123456789");
        let r = full(range("bytes=2-5"), body.clone(), Response::builder()).unwrap();
        assert_eq!(
            read(r).await,
            // (hyper writes Content-Length from the body's size)
            (
                206,
                Some("bytes 2-5/10".into()),
                None,
                Bytes::from_static(b"2345")
            )
        );
        let r = full(range("bytes=10-"), body.clone(), Response::builder()).unwrap();
        let (status, content_range, _, _) = read(r).await;
        assert_eq!((status, content_range), (416, Some("bytes */10".into())));
        let r = full(None, body.clone(), Response::builder()).unwrap();
        assert_eq!(read(r).await.0, 200);
        let r = full(range("bytes=0-1,4-5"), body.clone(), Response::builder()).unwrap();
        assert_eq!(read(r).await.3, body);
    }

    #[tokio::test]
    async fn growing_bodies() {
        let chunks = || {
            futures::stream::iter(
                [&b"abcd"[..], b"efgh", b"ijkl"]
                    .map(|c| Ok::<_, std::io::Error>(Bytes::from_static(c))),
            )
        };
        let r = growing(range("bytes=4-"), chunks(), Response::builder()).unwrap();
        assert_eq!(
            read(r).await,
            (206, None, None, Bytes::from_static(b"efghijkl"))
        );
        let r = growing(range("bytes=3-5"), chunks(), Response::builder()).unwrap();
        assert_eq!(
            read(r).await,
            (
                206,
                Some("bytes 3-5/*".into()),
                Some("3".into()),
                Bytes::from_static(b"def")
            )
        );
        // A suffix needs the length: the whole body.
        let r = growing(range("bytes=-2"), chunks(), Response::builder()).unwrap();
        assert_eq!(read(r).await.0, 200);
    }
}
