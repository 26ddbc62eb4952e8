//! The one HTTP listener of every role (serve, encoder, gateway, edge): accept, the
//! connection caps ([`crate::net::ConnTable`]: global, per IP, idle), then each connection on
//! hyper's HTTP/1.1 server with a timer and our deadlines:
//!
//! ```text
//!  accept ─▶ admit (total / per-IP cap: refused = closed at once)
//!    └▶ task: hyper http1 (header read timeout) over DeadlineIo (write progress)
//!         driver: select { connection, idle deadline (keep-alive | pressure), shutdown }
//! ```
//!
//! | deadline | from | closes |
//! |---|---|---|
//! | header | accept (first request: ours), the end of the previous response (hyper's timer) | silent and trickling sockets |
//! | keep-alive | the end of a response | idle keep-alive connections |
//! | pressure | going idle beyond the idle caps (`http_max_idle_per_ip`, `http_max_idle`) | the crowd of idle sockets of one address (or of all) |
//! | write | a write that blocks | readers that take < 16 KiB in it (zero window, trickle); closed with a reset |
//! | body | the request head | request bodies that do not arrive |
//!
//! Every refusal and every deadline that closes a connection is counted in `/metrics`:
//! `ferrocast_http_connections_refused_total{reason}` and `ferrocast_http_timeouts_total{reason}`.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics::{counter, gauge};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{debug, info, warn};

use super::{
    conn::{ConnService, ConnShared, Deadlines},
    deadline::DeadlineIo,
};
use crate::{
    config::Limits,
    net::{fds, AddrGroup, CapConfig, ConnTable, Refused},
};

/// Largest request head we buffer: our routes need a path and a few headers.
const MAX_HEAD_BYTES: usize = 32 << 10;
/// Kernel send buffer per connection (Linux doubles it): a few segments' worth of a rendition
/// in flight. Unbounded autotuning would let each reader that stops reading park megabytes
/// in the kernel, out of reach of the write deadline's accounting.
const SEND_BUFFER: usize = 256 << 10;

/// The listener's settings, from `[limits]` and the descriptor budget.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// The deadlines.
    pub deadlines: Deadlines,
    /// The caps (`max_total` already within the descriptor budget).
    pub caps: CapConfig,
}

impl HttpLimits {
    /// From `[limits]`, with the total cap lowered to fit `nofile` descriptors less the
    /// reserve (see [`fds::http_budget`]).
    pub fn new(l: &Limits, nofile: Option<u64>) -> Self {
        let (max_total, lowered) = fds::http_budget(nofile, l.fd_reserve, l.http_max_connections);
        if lowered {
            warn!(
                configured = l.http_max_connections,
                nofile = ?nofile,
                reserve = l.fd_reserve,
                "HTTP: at most {max_total} connections fit in the open file limit"
            );
        }
        Self {
            deadlines: Deadlines {
                header: Duration::from_secs(l.http_header_timeout_secs),
                keepalive: Duration::from_secs(l.http_keepalive_timeout_secs),
                body: Duration::from_secs(l.http_body_timeout_secs),
                write: Duration::from_secs(l.http_write_timeout_secs),
                pressure: Duration::from_millis(l.http_pressure_timeout_ms),
            },
            caps: CapConfig {
                max_total,
                max_per_group: l.http_max_connections_per_ip,
                max_idle_total: l.http_max_idle,
                max_idle_per_group: l.http_max_idle_per_ip,
            },
        }
    }

    /// From `[limits]`, raising the process's descriptor limit first.
    pub fn from_limits(l: &Limits) -> Self {
        Self::new(l, fds::raise_nofile_limit())
    }
}

/// Logs refusals at most once a second (an attack would otherwise write a line per socket);
/// the metrics count every one.
struct RefusalLog {
    last: Option<Instant>,
    quiet: u64,
}

impl RefusalLog {
    fn note(&mut self, peer: SocketAddr, why: Refused, caps: &CapConfig) {
        if self
            .last
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            self.quiet += 1;
            return;
        }
        let (what, limit) = match why {
            Refused::Total => ("http_max_connections", caps.max_total),
            Refused::PerGroup => ("http_max_connections_per_ip", caps.max_per_group),
        };
        warn!(%peer, limit, also_refused = self.quiet, "http: connection refused: {what} reached");
        self.last = Some(Instant::now());
        self.quiet = 0;
    }
}

/// Serves `app` on `listener` until `stop`, then lets the requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    stop: CancellationToken,
) {
    let table = ConnTable::new(limits.caps);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.deadlines.header)
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(true);
    let conns = TaskTracker::new();
    let mut log = RefusalLog {
        last: None,
        quiet: 0,
    };
    if let Ok(a) = listener.local_addr() {
        debug!(%a, ?limits, "http: serving");
    }
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of descriptors and similar: back off instead of spinning.
                    counter!("ferrocast_http_accept_errors_total").increment(1);
                    warn!(%e, "http: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        let (slot, pressured) = match table.admit(AddrGroup::of(peer.ip())) {
            Ok(x) => x,
            Err(why) => {
                counter!("ferrocast_http_connections_refused_total", "reason" => why.label())
                    .increment(1);
                log.note(peer, why, &limits.caps);
                continue;
            }
        };
        counter!("ferrocast_http_connections_total").increment(1);
        let conn = ConnShared::new(slot, pressured, limits.deadlines);
        conns.spawn(drive(
            tcp,
            peer,
            conn,
            app.clone(),
            http.clone(),
            stop.clone(),
        ));
    }
    conns.close();
    conns.wait().await;
}

/// Runs one connection to its end.
async fn drive(
    tcp: TcpStream,
    peer: SocketAddr,
    conn: Arc<ConnShared>,
    app: Router,
    http: hyper::server::conn::http1::Builder,
    stop: CancellationToken,
) {
    gauge!("ferrocast_http_connections_active").increment(1.0);
    let r = serve_conn(tcp, peer, &conn, app, http, stop).await;
    gauge!("ferrocast_http_connections_active").decrement(1.0);
    let reason = match (&r, conn.closed_by()) {
        (_, Some(why)) => Some(why),
        (Err(e), None) if e.is_timeout() => Some("header"),
        _ => None,
    };
    match (reason, r) {
        (Some(why), _) => {
            counter!("ferrocast_http_timeouts_total", "reason" => why).increment(1);
            debug!(%peer, "http: connection closed: {why} deadline");
        }
        (None, Err(e)) if !e.is_incomplete_message() => {
            debug!(%peer, "http: connection error: {e}")
        }
        _ => {}
    }
}

async fn serve_conn(
    tcp: TcpStream,
    peer: SocketAddr,
    conn: &Arc<ConnShared>,
    app: Router,
    http: hyper::server::conn::http1::Builder,
    stop: CancellationToken,
) -> Result<(), hyper::Error> {
    // Nothing is allocated for a connection (hyper's buffers, its state) until the client
    // sends a byte: a silent socket costs its task and its descriptor, until its deadline.
    let (first, why) = conn
        .idle_deadline()
        .expect("a new connection is idle: it has a deadline");
    tokio::select! {
        // A request already waiting is served even if this task ran late.
        biased;
        r = tcp.readable() => if r.is_err() { return Ok(()) },
        _ = tokio::time::sleep_until(first) => {
            conn.closing(why);
            return Ok(());
        }
        _ = stop.cancelled() => return Ok(()),
    }
    // On the heap, so that the task of a silent socket stays small.
    Box::pin(serve_http(tcp, peer, conn, app, http, stop)).await
}

async fn serve_http(
    tcp: TcpStream,
    peer: SocketAddr,
    conn: &Arc<ConnShared>,
    app: Router,
    http: hyper::server::conn::http1::Builder,
    stop: CancellationToken,
) -> Result<(), hyper::Error> {
    let _ = tcp.set_nodelay(true);
    let _ = socket2::SockRef::from(&tcp).set_send_buffer_size(SEND_BUFFER);
    let service = ConnService {
        app,
        peer,
        conn: conn.clone(),
    };
    let io = TokioIo::new(DeadlineIo::new(tcp, conn.clone()));
    let served = http.serve_connection(io, service);
    tokio::pin!(served);
    let mut stopping = false;
    loop {
        let deadline = conn.idle_deadline();
        tokio::select! {
            // Progress first: a request that arrived wins over a deadline that ran out.
            biased;
            r = served.as_mut() => break r,
            _ = stop.cancelled(), if !stopping => {
                // Idle connections close now; one with a request in flight after its response.
                served.as_mut().graceful_shutdown();
                stopping = true;
            }
            _ = sleep_until(deadline), if deadline.is_some() => {
                // Still idle (polling the connection above may have started a request)? Then
                // no request is in flight: dropping the connection loses nothing.
                if let Some((at, why)) = conn.idle_deadline() {
                    if at <= tokio::time::Instant::now() {
                        conn.closing(why);
                        break Ok(());
                    }
                }
            }
            _ = conn.changed() => {}
        }
    }
}

async fn sleep_until(deadline: Option<(tokio::time::Instant, &'static str)>) {
    match deadline {
        Some((at, _)) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Serves `app` until `stop` with the limits of `l`, logging where: what every role calls.
pub async fn run(listener: TcpListener, app: Router, l: &Limits, stop: CancellationToken) {
    let limits = HttpLimits::from_limits(l);
    if let Ok(a) = listener.local_addr() {
        info!(
            max_connections = limits.caps.max_total,
            "HTTP listening on http://{a}/"
        );
    }
    serve(listener, app, limits, stop).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn limits(f: impl FnOnce(&mut HttpLimits)) -> HttpLimits {
        let mut l = HttpLimits {
            deadlines: Deadlines {
                header: Duration::from_millis(1500),
                keepalive: Duration::from_millis(700),
                body: Duration::from_secs(1),
                write: Duration::from_secs(1),
                pressure: Duration::from_millis(200),
            },
            caps: CapConfig {
                max_total: 100,
                max_per_group: 100,
                max_idle_total: 100,
                max_idle_per_group: 100,
            },
        };
        f(&mut l);
        l
    }

    async fn start(l: HttpLimits) -> (SocketAddr, CancellationToken) {
        let big = bytes::Bytes::from(vec![7u8; 8 << 20]);
        let app = Router::new()
            .route("/small", get(|| async { "ok" }))
            .route("/big", get(move || async move { big.clone() }));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        tokio::spawn(serve(listener, app, l, stop.clone()));
        (addr, stop)
    }

    /// How long until the server closes `s` (EOF or reset), reading whatever comes.
    async fn closed_after(s: &mut TcpStream, limit: Duration) -> Duration {
        let t0 = Instant::now();
        let mut buf = [0u8; 4096];
        loop {
            match tokio::time::timeout(limit, s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return t0.elapsed(),
                Ok(Ok(_)) => {}
                Err(_) => panic!("still open after {limit:?}"),
            }
        }
    }

    #[tokio::test]
    async fn silent_and_trickling_sockets_meet_the_header_timeout() {
        let (addr, stop) = start(limits(|_| {})).await;
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let mut trickle = TcpStream::connect(addr).await.unwrap();
        let t = tokio::spawn(async move {
            for b in b"GET /small HTTP/1.1\r\n" {
                if trickle.write_all(&[*b]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            closed_after(&mut trickle, Duration::from_secs(5)).await
        });
        let d = closed_after(&mut silent, Duration::from_secs(5)).await;
        assert!(
            d >= Duration::from_millis(1400) && d < Duration::from_millis(2500),
            "{d:?}"
        );
        let d = t.await.unwrap();
        assert!(
            d < Duration::from_millis(2500),
            "trickle closed {d:?} after its last byte"
        );
        stop.cancel();
    }

    #[tokio::test]
    async fn a_keep_alive_connection_is_closed_after_the_keepalive_timeout() {
        let (addr, stop) = start(limits(|_| {})).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 1024];
        let n = s.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        let d = closed_after(&mut s, Duration::from_secs(5)).await;
        assert!(
            d >= Duration::from_millis(600) && d < Duration::from_millis(1400),
            "{d:?}"
        );
        stop.cancel();
    }

    #[tokio::test]
    async fn per_ip_cap_refuses_and_idle_beyond_the_idle_cap_gets_the_pressure_deadline() {
        let (addr, stop) = start(limits(|l| {
            l.caps.max_per_group = 3;
            l.caps.max_idle_per_group = 1;
        }))
        .await;
        let mut first = TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut second = TcpStream::connect(addr).await.unwrap();
        let d = closed_after(&mut second, Duration::from_secs(5)).await;
        assert!(
            d < Duration::from_millis(600),
            "second idle socket lasted {d:?}"
        );
        // A client that sends its request at once is served even under pressure.
        let mut quick = TcpStream::connect(addr).await.unwrap();
        quick
            .write_all(b"GET /small HTTP/1.0\r\n\r\n")
            .await
            .unwrap();
        let mut resp = Vec::new();
        quick.read_to_end(&mut resp).await.unwrap();
        assert!(
            resp.starts_with(b"HTTP/1.0 200"),
            "{:?}",
            String::from_utf8_lossy(&resp)
        );
        // Three held: the fourth is refused (closed at once).
        let _b = TcpStream::connect(addr).await.unwrap();
        let _c = TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut refused = TcpStream::connect(addr).await.unwrap();
        let d = closed_after(&mut refused, Duration::from_secs(5)).await;
        assert!(d < Duration::from_millis(100), "{d:?}");
        // The first one still had the full header timeout.
        let d = closed_after(&mut first, Duration::from_secs(5)).await;
        assert!(d > Duration::from_millis(500), "{d:?}");
        stop.cancel();
    }

    #[tokio::test]
    async fn keep_alive_connections_of_one_address_are_not_pressed_between_requests() {
        // One idle slot per address, yet three served keep-alive connections of one address
        // each wait the full keep-alive timeout (700 ms), not the pressure deadline (200 ms),
        // and a fourth connection that has sent nothing still gets the full header timeout
        // (1.5 s: the served ones hold no idle slot). Each is timed from its own start.
        let (addr, stop) = start(limits(|l| l.caps.max_idle_per_group = 1)).await;
        let mut conns = vec![];
        for _ in 0..3 {
            let mut c = TcpStream::connect(addr).await.unwrap();
            c.write_all(b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            let mut buf = [0u8; 512];
            let n = c.read(&mut buf).await.unwrap();
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
            conns.push((c, Instant::now(), "served"));
        }
        let silent = TcpStream::connect(addr).await.unwrap();
        conns.push((silent, Instant::now(), "silent"));
        let mut waits = tokio::task::JoinSet::new();
        for (mut c, since, what) in conns {
            waits.spawn(async move {
                closed_after(&mut c, Duration::from_secs(5)).await;
                (since.elapsed(), what)
            });
        }
        while let Some(r) = waits.join_next().await {
            let (d, what) = r.unwrap();
            let min = if what == "silent" { 1200 } else { 500 };
            assert!(
                d > Duration::from_millis(min),
                "a {what} connection lasted {d:?}"
            );
        }
        stop.cancel();
    }

    #[tokio::test]
    async fn a_reader_with_a_zero_window_is_reset_after_the_write_timeout() {
        let (addr, stop) = start(limits(|_| {})).await;
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.set_recv_buffer_size(4096).unwrap();
        let mut s = sock.connect(addr).await.unwrap();
        s.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let t0 = Instant::now();
        // Never read: wait for the reset to arrive.
        let err = loop {
            if let Some(e) = socket2::SockRef::from(&s).take_error().unwrap() {
                break e;
            }
            assert!(t0.elapsed() < Duration::from_secs(5), "not reset");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
        assert!(
            t0.elapsed() >= Duration::from_millis(900),
            "{:?}",
            t0.elapsed()
        );
        // A reader that keeps up gets all 8 MiB.
        let mut ok = TcpStream::connect(addr).await.unwrap();
        ok.write_all(b"GET /big HTTP/1.0\r\n\r\n").await.unwrap();
        let mut resp = Vec::new();
        ok.read_to_end(&mut resp).await.unwrap();
        assert!(resp.len() > 8 << 20);
        stop.cancel();
    }
}
