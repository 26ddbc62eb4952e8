//! One HTTP connection's state as the listener's driver sees it: idle (waiting for a request
//! head) or busy (a request in flight), whether a write is stalled on its reader, and which
//! deadline closes it. The service wrapper marks requests in flight, the socket wrapper
//! ([`super::deadline::DeadlineIo`]) marks stalled writes, and the driver sleeps until the
//! deadline this state gives.

use std::{
    convert::Infallible,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::{body::Body as AxumBody, extract::ConnectInfo, Router};
use bytes::Bytes;
use futures::future::BoxFuture;
use hyper::{
    body::{Body, Frame, Incoming, SizeHint},
    Request, Response,
};
use parking_lot::Mutex;
use tokio::{sync::Notify, time::Instant};
use tower::ServiceExt;

use super::deadline::TimedBody;
use crate::net::ConnSlot;

/// The HTTP deadlines (from `[limits]`).
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// A request head must arrive within this (hyper's header read timeout).
    pub header: Duration,
    /// An idle keep-alive connection is closed after this.
    pub keepalive: Duration,
    /// A request body must arrive within this.
    pub body: Duration,
    /// A blocked write must make progress within this.
    pub write: Duration,
    /// What idle connections beyond the idle caps get instead.
    pub pressure: Duration,
}

#[derive(Debug)]
struct Inner {
    slot: ConnSlot,
    /// A request is in flight (from its head to the end of its response body).
    busy: bool,
    /// At least one response was sent: an idle wait is a keep-alive wait.
    served: bool,
    idle_since: Instant,
    /// This idle spell got the short deadline.
    pressured: bool,
    /// A response write is blocked on the reader: the write deadline governs, not the idle
    /// ones (hyper may be done with the body while its tail still waits for the reader).
    stalled: bool,
    /// Why the connection is being closed, for the metrics.
    closing: Option<&'static str>,
}

/// Shared by the driver, the service and the socket of one connection.
#[derive(Debug)]
pub struct ConnShared {
    inner: Mutex<Inner>,
    deadlines: Deadlines,
    changed: Notify,
}

impl ConnShared {
    pub(super) fn new(slot: ConnSlot, pressured: bool, deadlines: Deadlines) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Inner {
                slot,
                busy: false,
                served: false,
                idle_since: Instant::now(),
                pressured,
                stalled: false,
                closing: None,
            }),
            deadlines,
            changed: Notify::new(),
        })
    }

    /// When the driver closes the connection, and why; `None` while a request is in flight
    /// or a write stalls (the write deadline governs). Idle: the pressure deadline if it is
    /// one idle connection too many before its first request, else keep-alive after a
    /// response, else (the first request) the header timeout from the accept. Later request heads are hyper's to time.
    pub(super) fn idle_deadline(&self) -> Option<(Instant, &'static str)> {
        let i = self.inner.lock();
        if i.busy || i.stalled {
            None
        } else if i.pressured {
            Some((i.idle_since + self.deadlines.pressure, "pressure"))
        } else if i.served {
            Some((i.idle_since + self.deadlines.keepalive, "keepalive"))
        } else {
            Some((i.idle_since + self.deadlines.header, "header"))
        }
    }

    /// Resolves when the deadline may have moved.
    pub(super) async fn changed(&self) {
        self.changed.notified().await
    }

    fn request_started(&self) {
        let mut i = self.inner.lock();
        i.busy = true;
        i.pressured = false;
        i.slot.busy();
        drop(i);
        self.changed.notify_one();
    }

    fn request_done(&self) {
        let mut i = self.inner.lock();
        i.busy = false;
        i.served = true;
        i.idle_since = Instant::now();
        // A connection that was served is a client's keep-alive connection: the keep-alive
        // timeout bounds its wait, and it takes no idle slot. Pressing it closed players
        // between their requests (50 DASH players behind one address hold ~100 such
        // connections, each idle ~2 s between MPD refreshes: the short deadline raced their
        // next request). The idle caps are for sockets that never sent a request.
        i.pressured = false;
        drop(i);
        self.changed.notify_one();
    }

    /// A response write blocked. Returns how long the reader has to take enough of it: the
    /// full write timeout, whatever the pressure — every large response blocks now and then
    /// (a herd of honest readers on one address would otherwise be cut), and a reader that
    /// does not keep up is closed by the minimum-progress rule anyway.
    pub(super) fn write_stalled(&self) -> Duration {
        self.inner.lock().stalled = true;
        self.deadlines.write
    }

    /// The reader took enough: if the response is done, the connection is idle from now.
    pub(super) fn write_moving(&self) {
        let mut i = self.inner.lock();
        i.stalled = false;
        if !i.busy {
            i.idle_since = Instant::now();
        }
        drop(i);
        self.changed.notify_one();
    }

    /// Records why the connection is being closed (the first reason wins).
    pub(super) fn closing(&self, reason: &'static str) {
        self.inner.lock().closing.get_or_insert(reason);
    }

    /// Why the connection was closed, if one of our deadlines closed it.
    pub(super) fn closed_by(&self) -> Option<&'static str> {
        self.inner.lock().closing
    }
}

/// Marks a request in flight until dropped (with the response body, or with the handler's
/// future if the client went away first).
struct InFlight(Arc<ConnShared>);

impl InFlight {
    fn start(conn: &Arc<ConnShared>) -> Self {
        conn.request_started();
        Self(conn.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_done();
    }
}

/// A response body that keeps its request in flight until hyper is done with it.
pub struct ObservedBody {
    inner: AxumBody,
    _in_flight: InFlight,
}

impl Body for ObservedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The router as hyper's service for one connection: the peer address for handlers
/// (axum's `ConnectInfo`), the body deadline, and in-flight marking.
#[derive(Clone)]
pub(super) struct ConnService {
    pub(super) app: Router,
    pub(super) peer: SocketAddr,
    pub(super) conn: Arc<ConnShared>,
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<ObservedBody>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let in_flight = InFlight::start(&self.conn);
        let limit = self.conn.deadlines.body;
        let conn = self.conn.clone();
        // A push (`/ingest/…`) streams for as long as the broadcast lasts.
        let rolling = req.uri().path().starts_with("/ingest/");
        let mut req = req.map(|b| AxumBody::new(TimedBody::new(b, limit, rolling, conn)));
        req.extensions_mut().insert(ConnectInfo(self.peer));
        let app = self.app.clone();
        Box::pin(async move {
            let Ok(resp) = app.oneshot(req).await;
            Ok(resp.map(|inner| ObservedBody {
                inner,
                _in_flight: in_flight,
            }))
        })
    }
}
