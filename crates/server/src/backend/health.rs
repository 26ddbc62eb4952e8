//! `/healthz`: the process is up, and so are the backends it depends on (Redis, the object
//! store). Each check also sets `ferrocast_backend_up{backend=…}` so a dashboard shows which
//! backend failed.
//!
//! The public answer is terse — `ok`, or `unhealthy` and `NAME: DOWN` per failed backend —
//! because a backend's own error names hosts and, before redaction, carried a password. The
//! reasons go to the log when a backend goes down (once, not per request) and to
//! `/internal/healthz`, which answers only clients on the loopback interface. The checks run
//! at most once a second however often they are asked (each is a Redis PING or an S3 HEAD),
//! and concurrent callers share one run.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{extract::ConnectInfo, http::StatusCode, response::IntoResponse, Extension};
use futures::future::BoxFuture;
use metrics::gauge;
use tracing::{info, warn};

/// Why a backend is down, as its own error says.
pub type CheckError = Box<dyn std::error::Error + Send + Sync>;

/// One named check.
pub type Check = Arc<dyn Fn() -> BoxFuture<'static, Result<(), CheckError>> + Send + Sync>;

/// The outcome of every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Every check passed.
    pub healthy: bool,
    /// Per backend: `None` when up, else why it is down.
    pub backends: Vec<(&'static str, Option<String>)>,
}

impl Report {
    /// What anyone may see: `ok` or `unhealthy`, then `NAME: ok` / `NAME: DOWN` per backend.
    pub fn terse(&self) -> String {
        self.render(false)
    }

    /// For operators: the same with each failure's reason (`NAME: DOWN: reason`).
    pub fn detail(&self) -> String {
        self.render(true)
    }

    fn render(&self, detail: bool) -> String {
        let mut s = String::from(if self.healthy { "ok\n" } else { "unhealthy\n" });
        for (name, down) in &self.backends {
            match down {
                None => s.push_str(&format!("{name}: ok\n")),
                Some(why) if detail => s.push_str(&format!("{name}: DOWN: {why}\n")),
                Some(_) => s.push_str(&format!("{name}: DOWN\n")),
            }
        }
        s
    }

    fn status(&self) -> StatusCode {
        if self.healthy {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

#[derive(Default)]
struct Memo {
    last: Option<(Instant, Report)>,
    /// Which backends were down at the last run, to log changes only.
    down: HashMap<&'static str, bool>,
}

/// The backends to check, empty for `ferrocast serve` (everything in-process).
#[derive(Clone, Default)]
pub struct Health {
    checks: Vec<(&'static str, Check)>,
    memo: Arc<tokio::sync::Mutex<Memo>>,
}

/// A check that takes longer than this counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one run's answer is reused.
const FRESH: Duration = Duration::from_secs(1);

impl Health {
    /// Adds a check named `backend`.
    pub fn with(mut self, backend: &'static str, check: Check) -> Self {
        self.checks.push((backend, check));
        self
    }

    /// The checks' outcome, at most [`FRESH`] old.
    pub async fn run(&self) -> Report {
        let mut memo = self.memo.lock().await;
        if let Some((at, r)) = &memo.last {
            if at.elapsed() < FRESH {
                return r.clone();
            }
        }
        let mut backends = Vec::with_capacity(self.checks.len());
        for (name, check) in &self.checks {
            let r = tokio::time::timeout(CHECK_TIMEOUT, check())
                .await
                .unwrap_or_else(|_| Err("no answer within 3 s".into()));
            gauge!("ferrocast_backend_up", "backend" => *name).set(if r.is_ok() {
                1.0
            } else {
                0.0
            });
            let down = r.err().map(|e| e.to_string());
            let was_down = memo.down.insert(name, down.is_some()).unwrap_or(false);
            match (&down, was_down) {
                (Some(why), false) => warn!(backend = name, "backend DOWN: {why}"),
                (None, true) => info!(backend = name, "backend up again"),
                _ => {}
            }
            backends.push((*name, down));
        }
        let report = Report {
            healthy: backends.iter().all(|(_, d)| d.is_none()),
            backends,
        };
        memo.last = Some((Instant::now(), report.clone()));
        report
    }

    /// The public `/healthz` response (terse).
    pub async fn respond(&self) -> axum::response::Response {
        let r = self.run().await;
        (r.status(), r.terse()).into_response()
    }

    /// `/internal/healthz`: the reasons, for clients on the loopback interface only (a 404
    /// for everyone else, as if it did not exist).
    pub async fn respond_detail(
        &self,
        peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    ) -> axum::response::Response {
        if crate::net::is_local(peer.as_ref().map(|Extension(ConnectInfo(p))| p)) {
            let r = self.run().await;
            (r.status(), r.detail()).into_response()
        } else {
            (StatusCode::NOT_FOUND, "not found\n").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn terse_in_public_detailed_inside_and_checked_at_most_once_a_second() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let h = Health::default().with(
            "redis",
            Arc::new(move || {
                c.fetch_add(1, Ordering::SeqCst);
                Box::pin(async { Err("redis redis://u:***@h:1: refused".into()) })
            }),
        );
        let r = h.run().await;
        assert!(!r.healthy);
        assert_eq!(r.terse(), "unhealthy\nredis: DOWN\n");
        assert_eq!(
            r.detail(),
            "unhealthy\nredis: DOWN: redis redis://u:***@h:1: refused\n"
        );
        // Ten more asks within the second: still one check.
        for _ in 0..10 {
            h.run().await;
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let outside: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        let inside: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let body = |r: axum::response::Response| async move {
            let s = r.status();
            let b = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
            (s, String::from_utf8(b.to_vec()).unwrap())
        };
        let (s, b) = body(h.respond().await).await;
        assert_eq!(
            (s, b.as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "unhealthy\nredis: DOWN\n")
        );
        let (s, _) = body(
            h.respond_detail(Some(Extension(ConnectInfo(outside))))
                .await,
        )
        .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, _) = body(h.respond_detail(None).await).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (_, b) = body(h.respond_detail(Some(Extension(ConnectInfo(inside)))).await).await;
        assert!(b.contains("refused"), "{b}");
        tokio::time::sleep(FRESH).await;
        h.run().await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn no_backend_is_healthy() {
        let r = Health::default().run().await;
        assert!(r.healthy);
        assert_eq!(r.terse(), "ok\n");
    }
}
