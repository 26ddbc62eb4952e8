//! `http-burst`: many requests for one URL at the same moment — the thundering herd a cache
//! meets when a fresh live segment appears.
//!
//! `connections` HTTP/1.1 connections are opened first (at most [`CONNECT_PARALLEL`] connects
//! at a time) and then, at one instant, each sends its share of the `requests` one after the
//! other on its connection, so the first `connections` requests arrive together. Per request
//! the time to the response head and to the end of the body is measured, the `X-Cache` value
//! and status counted, and the body hashed: all bodies should be the same bytes. With
//! `metrics` (a ferrocast edge's `/metrics`) the `ferrocast_edge_*_total` counters are read
//! before and after, so the origin fetches the burst caused are known.

use std::{
    collections::{BTreeMap, HashMap},
    hash::{DefaultHasher, Hasher},
    sync::Arc,
    time::Duration,
};

use ::http::{header, Request};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::{
    net::TcpStream,
    sync::{watch, Semaphore},
    time::{timeout_at, Instant},
};

use super::report::BurstReport;
use crate::{
    http::{self, error_chain},
    stats::Dist,
    Error,
};

/// Connects in flight at once while opening the connections.
pub const CONNECT_PARALLEL: usize = 256;
/// Largest body accepted per response.
const MAX_BODY: u64 = 64 << 20;

/// What to run.
#[derive(Debug, Clone)]
pub struct BurstConfig {
    /// `http://HOST:PORT/PATH`.
    pub url: String,
    /// Requests in all.
    pub requests: usize,
    /// Connections they are spread over (each sends its share back to back).
    pub connections: usize,
    /// The whole burst (connecting included) must end within this.
    pub timeout: Duration,
    /// A ferrocast edge `/metrics` URL to read counters from before and after.
    pub metrics: Option<String>,
}

struct One {
    status: Result<u16, Error>,
    x_cache: Option<String>,
    body: Option<(u64, u64)>,
    ttfb: Duration,
    total: Duration,
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn open(addr: String, deadline: Instant) -> Result<Sender, Error> {
    let tcp = timeout_at(deadline, TcpStream::connect(&addr))
        .await
        .map_err(|_| Error::Timeout("connect"))??;
    tcp.set_nodelay(true)?;
    let (sender, conn) = timeout_at(
        deadline,
        hyper::client::conn::http1::handshake(TokioIo::new(tcp)),
    )
    .await
    .map_err(|_| Error::Timeout("handshake"))?
    .map_err(|e| Error::Http(error_chain(&e)))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn one(sender: &mut Sender, uri: &::http::Uri, deadline: Instant) -> One {
    let begin = Instant::now();
    let fail = |e: Error, ttfb| One {
        status: Err(e),
        x_cache: None,
        body: None,
        ttfb,
        total: begin.elapsed(),
    };
    let host = uri.authority().map(|a| a.as_str()).unwrap_or("127.0.0.1");
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let req = match Request::get(path)
        .header(header::HOST, host)
        .header(header::USER_AGENT, "ferrocast-bench")
        .body(Empty::new())
    {
        Ok(r) => r,
        Err(e) => return fail(Error::Http(e.to_string()), Duration::ZERO),
    };
    if timeout_at(deadline, sender.ready())
        .await
        .map_err(|_| ())
        .and_then(|r| r.map_err(|_| ()))
        .is_err()
    {
        return fail(Error::Http("connection closed".into()), Duration::ZERO);
    }
    let resp = match timeout_at(deadline, sender.send_request(req)).await {
        Err(_) => return fail(Error::Timeout("response head"), Duration::ZERO),
        Ok(Err(e)) => return fail(Error::Http(error_chain(&e)), Duration::ZERO),
        Ok(Ok(r)) => r,
    };
    let ttfb = begin.elapsed();
    let status = resp.status().as_u16();
    let x_cache = crate::http::x_cache(resp.headers());
    let mut body = resp.into_body();
    let mut h = DefaultHasher::new();
    let mut len = 0u64;
    loop {
        match timeout_at(deadline, body.frame()).await {
            Err(_) => return fail(Error::Timeout("response body"), ttfb),
            Ok(None) => break,
            Ok(Some(Err(e))) => return fail(Error::Http(error_chain(&e)), ttfb),
            Ok(Some(Ok(f))) => {
                if let Ok(d) = f.into_data() {
                    len += d.len() as u64;
                    if len > MAX_BODY {
                        return fail(
                            Error::Http(format!("body larger than {MAX_BODY} bytes")),
                            ttfb,
                        );
                    }
                    h.write(&d);
                }
            }
        }
    }
    One {
        status: Ok(status),
        x_cache,
        body: Some((h.finish(), len)),
        ttfb,
        total: begin.elapsed(),
    }
}

/// Runs the burst.
pub async fn run(cfg: BurstConfig) -> Result<BurstReport, Error> {
    if cfg.requests == 0 || cfg.connections == 0 {
        return Err(Error::Input(
            "--requests and --connections must be at least 1".into(),
        ));
    }
    let connections = cfg.connections.min(cfg.requests);
    let uri = Arc::new(http::parse_uri(&cfg.url)?);
    let addr = format!(
        "{}:{}",
        uri.host().unwrap_or("127.0.0.1"),
        uri.port_u16().unwrap_or(80)
    );
    let deadline = Instant::now() + cfg.timeout;
    let mclient = http::client(1);
    let before = match &cfg.metrics {
        Some(m) => Some(http::scrape(&mclient, m, deadline).await?),
        None => None,
    };

    // Open the connections.
    let t_connect = Instant::now();
    let permits = Arc::new(Semaphore::new(CONNECT_PARALLEL));
    let mut opening = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let (addr, permits) = (addr.clone(), permits.clone());
        opening.spawn(async move {
            let _p = permits.acquire_owned().await;
            open(addr, deadline).await
        });
    }
    let mut senders = Vec::with_capacity(connections);
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    while let Some(r) = opening.join_next().await {
        match r {
            Ok(Ok(s)) => senders.push(s),
            Ok(Err(e)) => *errors.entry(format!("open: {}", e.kind())).or_default() += 1,
            Err(_) => *errors.entry("open: task".into()).or_default() += 1,
        }
    }
    let connect_s = t_connect.elapsed().as_secs_f64();
    let connected = senders.len();
    if connected == 0 {
        return Err(Error::Http(format!(
            "no connection to {addr} opened: {errors:?}"
        )));
    }

    // Everyone waits for the same go.
    let (go_tx, go_rx) = watch::channel(false);
    let base = cfg.requests / connected;
    let extra = cfg.requests % connected;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, mut s) in senders.into_iter().enumerate() {
        let n = base + usize::from(i < extra);
        let (uri, mut go) = (uri.clone(), go_rx.clone());
        tasks.spawn(async move {
            let _ = go.wait_for(|g| *g).await;
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                out.push(one(&mut s, &uri, deadline).await);
            }
            out
        });
    }
    tokio::task::yield_now().await;
    let t_go = Instant::now();
    let _ = go_tx.send(true);
    let mut results = Vec::with_capacity(cfg.requests);
    let mut last = t_go;
    while let Some(r) = tasks.join_next().await {
        if let Ok(v) = r {
            results.extend(v);
        }
        last = Instant::now();
    }
    let elapsed_s = (last - t_go).as_secs_f64();
    let lost = cfg.requests.saturating_sub(results.len());
    if lost > 0 {
        *errors
            .entry("not sent (connection task failed)".into())
            .or_default() += lost;
    }

    let mut statuses = BTreeMap::new();
    let mut x_cache = BTreeMap::new();
    let mut bodies: HashMap<(u64, u64), usize> = HashMap::new();
    let mut ok = 0;
    for r in &results {
        match &r.status {
            Ok(s) => {
                *statuses.entry(*s).or_default() += 1;
                *x_cache
                    .entry(r.x_cache.clone().unwrap_or_else(|| "none".into()))
                    .or_default() += 1;
                if *s == 200 {
                    ok += 1;
                    if let Some(b) = r.body {
                        *bodies.entry(b).or_default() += 1;
                    }
                }
            }
            Err(e) => *errors.entry(e.kind()).or_default() += 1,
        }
    }
    let after = match &cfg.metrics {
        Some(m) => Some(http::scrape(&mclient, m, Instant::now() + Duration::from_secs(10)).await?),
        None => None,
    };
    let metrics_delta = match (before, after) {
        (Some(b), Some(a)) => a
            .iter()
            .filter(|(k, _)| k.starts_with("ferrocast_edge_") && k.ends_with("_total"))
            .map(|(k, v)| (k.clone(), v - b.get(k).copied().unwrap_or(0.0)))
            .collect(),
        _ => BTreeMap::new(),
    };
    let done: Vec<&One> = results.iter().filter(|r| r.status.is_ok()).collect();
    Ok(BurstReport {
        url: cfg.url.clone(),
        requests: cfg.requests,
        connections,
        connected,
        connect_s,
        ok,
        statuses,
        errors,
        x_cache,
        distinct_bodies: bodies.len(),
        body_bytes: bodies
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|((_, len), _)| *len),
        ttfb_ms: Dist::of(done.iter().map(|r| r.ttfb.as_secs_f64() * 1000.0)),
        total_ms: Dist::of(done.iter().map(|r| r.total.as_secs_f64() * 1000.0)),
        elapsed_s,
        req_per_s: if elapsed_s > 0.0 {
            done.len() as f64 / elapsed_s
        } else {
            0.0
        },
        metrics_delta,
    })
}
