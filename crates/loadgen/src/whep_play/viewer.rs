//! One WHEP viewer: a str0m `Rtc` as a browser's RTCPeerConnection would be — recvonly video
//! and audio in one offer with its one host candidate, ICE controlling against the server's
//! ICE-lite, DTLS-SRTP, NACKs for lost packets and a PLI after a frame it could not complete —
//! driven on its own UDP socket with the clock it is fed, like the server's session task.
//!
//! ```text
//!  Rtc offer ─▶ signal POST ─▶ answer ─▶ Rtc ◀── recv_from (datagrams) / timeouts
//!                                          │
//!                                          └─▶ poll_output: Transmit → send_to
//!                                                           Event → tally (frames, feedback)
//!  the run's stop ─▶ signal DELETE
//! ```

use std::{
    net::{IpAddr, SocketAddr},
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed},
        Arc,
    },
    time::{Duration, Instant},
};

use http::Uri;
use str0m::{
    change::SdpAnswer,
    media::{Direction, Frequency, KeyframeRequestKind, MediaData, MediaKind, Mid},
    net::{Protocol, Receive},
    Candidate, Event, IceConnectionState, Input, Output, Rtc,
};
use tokio::{net::UdpSocket, time::sleep_until};

use super::{
    report::ViewerResult,
    signal::Signal,
    tally::{Frame, Tally, Track},
};
use crate::{
    stats::{KeptUpRule, Window},
    Error,
};

/// The POST (and its answer) must be done within this.
const SIGNAL_TIMEOUT: Duration = Duration::from_secs(10);
/// The DELETE at the end must be answered within this.
const DELETE_TIMEOUT: Duration = Duration::from_secs(3);
/// A new viewer's GOP-cache burst is hundreds of datagrams at once (the server's socket has
/// the same); the kernel caps it at net.core.rmem_max.
const SOCKET_BUFFER: usize = 4 << 20;
/// Largest datagram read (WebRTC keeps under ~1200 bytes).
const MAX_DATAGRAM: usize = 2048;
/// Datagrams taken per wake-up before str0m's output is drained again.
const BATCH: usize = 64;

/// What all viewers of a run share.
pub(super) struct Ctx {
    pub(super) signal: Signal,
    /// The address our candidate is on (the one that routes to the server).
    pub(super) local_ip: IpAddr,
    pub(super) window: Window,
    pub(super) rule: KeptUpRule,
    /// From the answer until DTLS-SRTP is up.
    pub(super) connect_timeout: Duration,
    /// Viewers stop (and DELETE) at this time.
    pub(super) stop_at: tokio::time::Instant,
    pub(super) shared: Shared,
}

/// Live counts for the progress line.
#[derive(Default)]
pub(super) struct Shared {
    pub(super) answered: AtomicUsize,
    pub(super) connected: AtomicUsize,
    pub(super) playing: AtomicUsize,
    pub(super) failed: AtomicUsize,
    pub(super) bytes: AtomicU64,
    /// Ctrl-C: stop now.
    pub(super) stop: AtomicBool,
}

/// Viewer `index`: starts at `start_at`, plays until the run's stop, DELETEs its session.
pub(super) async fn viewer(
    ctx: Arc<Ctx>,
    index: usize,
    start_at: tokio::time::Instant,
) -> ViewerResult {
    sleep_until(start_at).await;
    let mut v = Viewer {
        result: ViewerResult::new(index, &ctx.rule),
        tally: Tally::new(ctx.rule.max_gap_ms),
        session: None,
        begin: Instant::now(),
        ctx: ctx.clone(),
    };
    let outcome = tokio::time::timeout_at(ctx.stop_at, v.play()).await;
    let error = match outcome {
        Err(_elapsed) if v.tally.first_keyframe.is_none() => {
            Some(Error::Timeout("no keyframe before the end of the run"))
        }
        Err(_) | Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
    };
    if let Some(session) = v.session.take() {
        let deadline = tokio::time::Instant::now() + DELETE_TIMEOUT;
        v.result.delete_status = match ctx.signal.delete(&session, deadline).await {
            Ok(s) => Some(s),
            Err(e) => {
                v.result.delete_error = Some(e.to_string());
                None
            }
        };
    }
    v.finish(error)
}

struct Viewer {
    ctx: Arc<Ctx>,
    result: ViewerResult,
    tally: Tally,
    /// The session's URL, once the POST succeeded (DELETE goes there).
    session: Option<Uri>,
    /// The POST was sent: zero of the viewer's `*_s` times.
    begin: Instant,
}

impl Viewer {
    fn since_begin(&self, t: Instant) -> f64 {
        t.saturating_duration_since(self.begin).as_secs_f64()
    }

    async fn play(&mut self) -> Result<(), Error> {
        let sock = bind(self.ctx.local_ip)?;
        let local = sock.local_addr()?;
        let mut rtc = Rtc::builder()
            // NACK and PLI counts come in str0m's ingress stats.
            .set_stats_interval(Some(Duration::from_secs(1)))
            .build(Instant::now());
        rtc.add_local_candidate(
            Candidate::host(local, "udp").map_err(|e| Error::Webrtc(format!("candidate: {e}")))?,
        );
        let mut api = rtc.sdp_api();
        let video = api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let audio = api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        let (offer, pending) = api
            .apply()
            .ok_or_else(|| Error::Webrtc("no offer to make".into()))?;

        self.begin = Instant::now();
        let deadline = tokio::time::Instant::from_std(self.begin + SIGNAL_TIMEOUT);
        let accepted = self
            .ctx
            .signal
            .offer(offer.to_sdp_string(), deadline)
            .await?;
        self.session = Some(accepted.session);
        self.result.answer_s = Some(self.since_begin(Instant::now()));
        self.ctx.shared.answered.fetch_add(1, Relaxed);
        let answer = SdpAnswer::from_sdp_string(&accepted.answer)
            .map_err(|e| Error::Webrtc(format!("the answer is not SDP: {e}")))?;
        rtc.sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| Error::Webrtc(format!("answer refused: {e}")))?;
        let connect_by = Instant::now() + self.ctx.connect_timeout;
        self.drive(rtc, sock, local, (video, audio), connect_by)
            .await
    }

    /// Runs the client until the run stops it (the caller's deadline), Ctrl-C, or a failure.
    async fn drive(
        &mut self,
        mut rtc: Rtc,
        sock: UdpSocket,
        local: SocketAddr,
        mids: (Mid, Mid),
        connect_by: Instant,
    ) -> Result<(), Error> {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut ice_up = false;
        loop {
            let wake = self.drain(&mut rtc, &sock, mids, &mut ice_up).await?;
            let now = Instant::now();
            self.ctx.window.observe(
                &mut self.tally.timeline,
                self.tally.first_keyframe,
                now,
                self.tally.bytes,
            );
            if self.ctx.shared.stop.load(Relaxed) {
                return Ok(());
            }
            let connected = self.result.connected_s.is_some();
            if !connected && now >= connect_by {
                return Err(Error::Timeout(if ice_up {
                    "DTLS-SRTP not up within the connect timeout"
                } else {
                    "ICE not connected within the connect timeout"
                }));
            }
            let wake = if connected {
                wake
            } else {
                wake.min(connect_by)
            };
            tokio::select! {
                r = sock.recv_from(&mut buf) => {
                    let (n, from) = r?;
                    self.receive(&mut rtc, local, from, &buf[..n])?;
                    // What is already queued, each datagram followed by str0m's output: the
                    // SRTP keys of a finished DTLS handshake are installed while polling, so
                    // media fed in before that poll would be dropped (the first keyframe).
                    for _ in 0..BATCH {
                        let Ok((n, from)) = sock.try_recv_from(&mut buf) else {
                            break;
                        };
                        self.drain(&mut rtc, &sock, mids, &mut ice_up).await?;
                        self.receive(&mut rtc, local, from, &buf[..n])?;
                    }
                }
                _ = sleep_until(tokio::time::Instant::from_std(wake)) => {
                    rtc.handle_input(Input::Timeout(Instant::now()))
                        .map_err(|e| Error::Webrtc(e.to_string()))?;
                }
            }
        }
    }

    /// Sends and counts everything str0m has for us; its next deadline.
    async fn drain(
        &mut self,
        rtc: &mut Rtc,
        sock: &UdpSocket,
        (video, audio): (Mid, Mid),
        ice_up: &mut bool,
    ) -> Result<Instant, Error> {
        loop {
            match rtc.poll_output() {
                Ok(Output::Transmit(t)) => {
                    // UDP: a lost send is the network's; ICE and NACK retry.
                    let _ = sock.send_to(&t.contents, t.destination).await;
                }
                Ok(Output::Event(e)) => {
                    if let Some(pli) = self.on_event(e, video, audio, ice_up) {
                        if let Some(mut w) = rtc.writer(pli) {
                            let _ = w.request_keyframe(None, KeyframeRequestKind::Pli);
                        }
                    }
                }
                Ok(Output::Timeout(t)) => {
                    if !rtc.is_alive() {
                        return Err(Error::Closed);
                    }
                    return Ok(t);
                }
                Err(e) => return Err(Error::Webrtc(e.to_string())),
            }
        }
    }

    fn receive(
        &mut self,
        rtc: &mut Rtc,
        local: SocketAddr,
        from: SocketAddr,
        data: &[u8],
    ) -> Result<(), Error> {
        self.tally.on_datagram(data.len());
        self.ctx.shared.bytes.fetch_add(data.len() as u64, Relaxed);
        let Ok(contents) = data.try_into() else {
            return Ok(()); // not STUN, DTLS or (S)RTP: str0m would not take it
        };
        let input = Input::Receive(
            Instant::now(),
            Receive {
                proto: Protocol::Udp,
                source: from,
                destination: local,
                contents,
            },
        );
        rtc.handle_input(input)
            .map_err(|e| Error::Webrtc(e.to_string()))
    }

    /// Counts an event; the mid to send a PLI on, if the picture broke.
    fn on_event(&mut self, e: Event, video: Mid, audio: Mid, ice_up: &mut bool) -> Option<Mid> {
        let now = Instant::now();
        match e {
            Event::IceConnectionStateChange(
                IceConnectionState::Connected | IceConnectionState::Completed,
            ) if !*ice_up => {
                *ice_up = true;
                self.result.ice_s = Some(self.since_begin(now));
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                // str0m's "disconnected" may recover; it is counted, the verdict tells.
                self.result.ice_disconnects += 1;
            }
            Event::Connected => {
                self.result.connected_s = Some(self.since_begin(now));
                self.ctx.shared.connected.fetch_add(1, Relaxed);
            }
            Event::MediaData(d) => return self.on_media(now, d, video, audio),
            Event::MediaIngressStats(s) => {
                let track = if s.mid == video {
                    Track::Video
                } else if s.mid == audio {
                    Track::Audio
                } else {
                    return None;
                };
                self.tally.on_feedback(track, s.nacks, s.plis);
            }
            _ => {}
        }
        None
    }

    fn on_media(&mut self, now: Instant, d: MediaData, video: Mid, audio: Mid) -> Option<Mid> {
        let track = if d.mid == video {
            Track::Video
        } else if d.mid == audio {
            Track::Audio
        } else {
            return None;
        };
        let had_keyframe = self.tally.first_keyframe.is_some();
        let frame = Frame {
            track,
            media_ms: d.time.rebase(Frequency::MILLIS).numer(),
            seq: (**d.seq_range.start(), **d.seq_range.end()),
            contiguous: d.contiguous,
            keyframe: d.is_keyframe(),
        };
        self.tally.on_frame(now, frame);
        if self.result.first_media_s.is_none() {
            self.result.first_media_s = Some(self.since_begin(now));
        }
        if !had_keyframe && self.tally.first_keyframe.is_some() {
            self.result.first_keyframe_s = Some(self.since_begin(now));
            self.ctx.shared.playing.fetch_add(1, Relaxed);
        }
        // A browser asks for a new picture when a frame could not be completed.
        (track == Track::Video && !d.contiguous && had_keyframe).then_some(video)
    }

    /// The result, judged up to now or the window's close.
    fn finish(mut self, error: Option<Error>) -> ViewerResult {
        let end_s = self.ctx.window.end_s(Instant::now());
        if let Some(e) = &error {
            self.ctx.shared.failed.fetch_add(1, Relaxed);
            self.result.error = Some(e.to_string());
            self.result.error_kind = Some(e.kind());
        }
        let t = &self.tally;
        let r = &mut self.result;
        r.verdict = t.timeline.verdict(end_s, t.bytes, &self.ctx.rule);
        r.kept_up = error.is_none() && r.verdict.kept_up;
        r.frames = t.frames;
        r.packets = t.packets;
        r.lost = t.lost;
        r.discontinuities = t.discontinuities;
        r.nacks = t.nacks();
        r.plis = t.plis();
        r.datagrams = t.datagrams;
        r.bytes = t.bytes;
        self.result
    }
}

/// A UDP socket on `ip` (port from the OS) with a receive buffer for GOP bursts.
fn bind(ip: IpAddr) -> Result<UdpSocket, Error> {
    let addr = SocketAddr::new(ip, 0);
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    // Best effort: the kernel caps it.
    let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(UdpSocket::from_std(s.into())?)
}

/// The local address that routes to `server` (a UDP "connect" sends nothing).
pub(super) fn local_ip_towards(server: IpAddr) -> Result<IpAddr, Error> {
    let any: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let s = std::net::UdpSocket::bind(any)?;
    s.connect((server, 9))?;
    Ok(s.local_addr()?.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_routes_from_loopback() {
        let ip = local_ip_towards([127, 0, 0, 1].into()).unwrap();
        assert_eq!(ip, IpAddr::from([127, 0, 0, 1]));
    }
}
