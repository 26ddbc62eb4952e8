//! A plain-HTTP/1.1 GET for the DASH players and the burst: hyper-util's pooled client, a
//! deadline on the whole exchange, a cap on the body size, and the `X-Cache` header.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{header, Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use tokio::time::{timeout_at, Instant};

use crate::Error;

/// A pooled HTTP/1.1 client (plain TCP only).
pub type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// A client that keeps up to `idle` connections per host open between requests.
pub fn client(idle: usize) -> HttpClient {
    client_for(idle)
}

/// [`client`] for requests with bodies of type `B` (WHEP's POSTed offers).
pub fn client_for<B>(idle: usize) -> Client<HttpConnector, B>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
{
    let mut c = HttpConnector::new();
    c.set_nodelay(true);
    c.set_connect_timeout(Some(Duration::from_secs(5)));
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(idle)
        .pool_idle_timeout(Duration::from_secs(30))
        .build(c)
}

/// Parses an `http://` URL (https is not supported: the servers measured here speak plain
/// HTTP on loopback).
pub fn parse_uri(url: &str) -> Result<Uri, Error> {
    let uri: Uri = url.parse().map_err(|e| Error::Url(format!("{url}: {e}")))?;
    if uri.scheme_str() != Some("http") || uri.host().is_none() {
        return Err(Error::Url(format!("{url}: expected http://HOST[:PORT]/…")));
    }
    Ok(uri)
}

/// One response.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Status code.
    pub status: u16,
    /// The `X-Cache` header, upper-cased.
    pub x_cache: Option<String>,
    /// The body, when asked to keep it.
    pub body: Option<Bytes>,
    /// Body bytes received.
    pub bytes: u64,
    /// Request sent → response head received.
    pub ttfb: Duration,
    /// Request sent → body complete.
    pub elapsed: Duration,
}

/// GETs `uri` before `deadline`; reads the whole body (kept when `keep_body`), failing past
/// `max_bytes`. Any status is a success here: the caller decides.
pub async fn get(
    client: &HttpClient,
    uri: &Uri,
    keep_body: bool,
    max_bytes: u64,
    deadline: Instant,
) -> Result<Fetched, Error> {
    get_with(client, uri, keep_body, max_bytes, deadline, &mut |_| {}).await
}

/// [`get`], calling `on_data(bytes so far)` as body data arrives.
pub async fn get_with(
    client: &HttpClient,
    uri: &Uri,
    keep_body: bool,
    max_bytes: u64,
    deadline: Instant,
    on_data: &mut (dyn FnMut(u64) + Send),
) -> Result<Fetched, Error> {
    let begin = Instant::now();
    let req = Request::get(uri.clone())
        .header(header::USER_AGENT, "ferrocast-bench")
        .body(Empty::<Bytes>::new())
        .map_err(|e| Error::Http(e.to_string()))?;
    let resp = timeout_at(deadline, client.request(req))
        .await
        .map_err(|_| Error::Timeout("response head"))?
        .map_err(|e| Error::Http(error_chain(&e)))?;
    let ttfb = begin.elapsed();
    let status = resp.status().as_u16();
    let x_cache = x_cache(resp.headers());
    let mut body = resp.into_body();
    let mut kept = BytesMut::new();
    let mut bytes = 0u64;
    loop {
        let frame = match timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(Error::Timeout("response body")),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(Error::Http(error_chain(&e))),
            Ok(Some(Ok(f))) => f,
        };
        if let Ok(data) = frame.into_data() {
            bytes += data.len() as u64;
            if bytes > max_bytes {
                return Err(Error::Http(format!("body larger than {max_bytes} bytes")));
            }
            if keep_body {
                kept.extend_from_slice(&data);
            }
            on_data(bytes);
        }
    }
    Ok(Fetched {
        status,
        x_cache,
        body: keep_body.then(|| kept.freeze()),
        bytes,
        ttfb,
        elapsed: begin.elapsed(),
    })
}

/// The `X-Cache` header (HIT, MISS, COALESCED, …), upper-cased.
pub fn x_cache(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get("x-cache")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_uppercase())
}

/// An error with its sources, on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

/// The samples of a Prometheus text exposition: `name value` lines (labels kept as part of
/// the name), comments and unparsable lines skipped.
pub fn parse_metrics(text: &str) -> std::collections::BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.trim().rsplit_once(' ')?;
            Some((name.trim().to_owned(), value.trim().parse::<f64>().ok()?))
        })
        .collect()
}

/// GETs and parses a `/metrics` page.
pub async fn scrape(
    client: &HttpClient,
    url: &str,
    deadline: Instant,
) -> Result<std::collections::BTreeMap<String, f64>, Error> {
    let f = get(client, &parse_uri(url)?, true, 16 << 20, deadline).await?;
    if f.status != 200 {
        return Err(Error::Status(f.status));
    }
    let body = f.body.unwrap_or_default();
    Ok(parse_metrics(&String::from_utf8_lossy(&body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_text() {
        let m = parse_metrics("# TYPE a counter\na 3\nb{x=\"1\"} 2.5\nbad\nc NaN\nd 1e3\n");
        assert_eq!(m.get("a"), Some(&3.0));
        assert_eq!(m.get("b{x=\"1\"}"), Some(&2.5));
        assert_eq!(m.get("d"), Some(&1000.0));
        assert!(!m.contains_key("bad"));
        assert!(m.get("c").is_some_and(|v| v.is_nan()));
    }

    #[test]
    fn uris() {
        assert!(parse_uri("http://127.0.0.1:8080/live/x/manifest.mpd").is_ok());
        assert!(parse_uri("https://127.0.0.1/x").is_err());
        assert!(parse_uri("rtmp://127.0.0.1/x").is_err());
        assert!(parse_uri("not a url").is_err());
    }
}
