//! `/healthz`: the process is up, and so are the backends it depends on (Redis, the object
//! store). Each check also sets `ferrocast_backend_up{backend=…}` so a dashboard shows which
//! backend failed.

use std::{sync::Arc, time::Duration};

use axum::{http::StatusCode, response::IntoResponse};
use metrics::gauge;

use futures::future::BoxFuture;

/// Why a backend is down, as its own error says.
pub type CheckError = Box<dyn std::error::Error + Send + Sync>;

/// One named check.
pub type Check = Arc<dyn Fn() -> BoxFuture<'static, Result<(), CheckError>> + Send + Sync>;

/// The outcome of every check: whether all passed, and a line per backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Every check passed.
    pub healthy: bool,
    /// `ok` or `unhealthy`, then `NAME: ok` / `NAME: DOWN: reason` per backend.
    pub text: String,
}

/// The backends to check, empty for `ferrocast serve` (everything in-process).
#[derive(Clone, Default)]
pub struct Health {
    checks: Vec<(&'static str, Check)>,
}

/// A check that takes longer than this counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

impl Health {
    /// Adds a check named `backend`.
    pub fn with(mut self, backend: &'static str, check: Check) -> Self {
        self.checks.push((backend, check));
        self
    }

    /// Runs every check.
    pub async fn run(&self) -> Report {
        let mut report = String::from("ok\n");
        let mut failed = false;
        for (name, check) in &self.checks {
            let r = tokio::time::timeout(CHECK_TIMEOUT, check())
                .await
                .unwrap_or_else(|_| Err("no answer within 3 s".into()));
            gauge!("ferrocast_backend_up", "backend" => *name).set(if r.is_ok() {
                1.0
            } else {
                0.0
            });
            match r {
                Ok(()) => report.push_str(&format!("{name}: ok\n")),
                Err(e) => {
                    failed = true;
                    report.push_str(&format!("{name}: DOWN: {e}\n"));
                }
            }
        }
        if failed {
            report = report.replacen("ok\n", "unhealthy\n", 1);
        }
        Report {
            healthy: !failed,
            text: report,
        }
    }

    /// The `/healthz` response.
    pub async fn respond(&self) -> axum::response::Response {
        let r = self.run().await;
        let status = if r.healthy {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        (status, r.text).into_response()
    }
}
