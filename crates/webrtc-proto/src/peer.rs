//! One WebRTC session: str0m's [`Rtc`] as an ICE-lite answerer with one host candidate —
//! send-only for a WHEP viewer ([`Peer::answer`]), receive-only for a WHIP publisher
//! ([`Peer::answer_ingest`]: str0m depacketizes, the peer hands out [`Sample`]s) — plus the
//! deadlines str0m leaves to its caller: ICE must complete, and then DTLS, within a bound, or
//! the session ends and its resources go.
//!
//! A viewer's peer can estimate the bandwidth to it ([`PeerConfig::bandwidth`]: str0m's
//! send-side estimator, GoogCC over the receiver's transport-wide congestion control (TWCC)
//! feedback; or the receiver's own REMB when it sends no TWCC) and reports each
//! estimate as [`PeerEvent::BandwidthEstimate`] — what the automatic rendition mode decides on.
//!
//! The polling order is quinn's: feed input (`handle_datagram`, `handle_timeout`, writes),
//! then drain [`Peer::poll`] until it yields [`Poll::Timeout`]. After [`PeerEvent::Ended`]
//! the peer yields nothing more and can be dropped.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use str0m::{
    bwe::{Bitrate, BweKind},
    format::Codec,
    media::{KeyframeRequestKind, MediaTime, Mid, Pt},
    net::{Protocol, Receive, Transmit},
    Candidate, Event, IceConnectionState, IceCreds, Input, Output, Rtc, RtcConfig,
};

use crate::{EndReason, OfferError, OfferSummary};

/// How a peer is set up.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// The address (our UDP socket's port, the advertised host) put in the answer as the one
    /// candidate.
    pub candidate: SocketAddr,
    /// From the answer until ICE has a working pair.
    pub ice_timeout: Duration,
    /// From ICE connected until DTLS-SRTP is up.
    pub dtls_timeout: Duration,
    /// Estimate the bandwidth to a viewer (`None`: off — str0m then sends without pacing).
    pub bandwidth: Option<Estimation>,
}

/// How a viewer's bandwidth is estimated. While it is on, str0m paces what is sent at about
/// the estimate (and drains a queue older than 2 s faster), so `initial_bps` should be at
/// least what the viewer is sent at first, or its first GOP arrives late.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimation {
    /// The estimate to start from, bit/s.
    pub initial_bps: u64,
    /// The bitrate the estimator probes for (it tries to find out whether the path carries
    /// this much even while less is sent), bit/s.
    pub desired_bps: u64,
}

/// What a peer tells its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEvent {
    /// DTLS-SRTP is up: media written from now on reaches the viewer.
    Connected,
    /// The viewer lost the picture (PLI/FIR): send it a keyframe.
    KeyframeRequest,
    /// The bandwidth to the viewer is estimated at this many bit/s (with
    /// [`PeerConfig::bandwidth`] only): str0m's TWCC estimate when the viewer sends TWCC
    /// feedback, else the viewer's REMB.
    BandwidthEstimate(u64),
    /// A publisher's media arrived (WHIP).
    Media(Sample),
    /// The session is over.
    Ended(EndReason),
}

/// Which track a [`Sample`] is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    /// H.264.
    Video,
    /// Opus.
    Audio,
}

/// One depacketized frame from a publisher: for video an H.264 access unit in Annex B (as
/// str0m's depacketizer gives it), for audio one Opus packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// The track.
    pub track: Track,
    /// RTP time (extended past wrap-around) at `rate` Hz.
    pub rtp: u64,
    /// The track's RTP clock rate.
    pub rate: u32,
    /// When its first packet arrived.
    pub arrived: Instant,
    /// Nothing was lost since the previous sample of this track.
    pub contiguous: bool,
    /// An H.264 IDR picture (str0m's reading of the NAL units).
    pub keyframe: bool,
    /// The bytes.
    pub data: Arc<[u8]>,
}

/// What a session does with its media.
enum Role {
    /// Sends to a viewer: the (mid, payload type) of each track.
    Play {
        video: (Mid, Pt),
        audio: Option<(Mid, Pt)>,
    },
    /// Receives from a publisher: the mid of each track.
    Ingest { video: Mid, audio: Option<Mid> },
}

/// One output of [`Peer::poll`].
#[derive(Debug)]
pub enum Poll {
    /// A datagram to send.
    Transmit(Transmit),
    /// Something happened.
    Event(PeerEvent),
    /// Nothing more until this time (or new input).
    Timeout(Instant),
}

/// One viewer or publisher.
pub struct Peer {
    rtc: Rtc,
    ufrag: String,
    role: Role,
    cfg: PeerConfig,
    created: Instant,
    /// The time of the latest input (str0m reports state changes from the input that caused
    /// them).
    now: Instant,
    ice_at: Option<Instant>,
    connected: bool,
    /// Set when the session ends; reported once, then the peer is silent.
    end: Option<EndReason>,
    end_reported: bool,
    /// The send-side (TWCC) estimate is working: REMB, if any, is not reported.
    twcc: bool,
}

/// H.264 profiles in the order we prefer to label the stream with. The bytes are what they
/// are (our sources are High or Main profile); a receiver that negotiated Main or
/// Constrained Baseline decodes them with the same software decoder, while a label it did not
/// offer would fail negotiation.
const PROFILE_PREFERENCE: [u32; 4] = [0x64001f, 0x4d001f, 0x42e01f, 0x42001f];

/// How long a viewer's sent video packets are kept for NACK resends. str0m's default keeps 3 s
/// (up to 1000 packets): at 2.5 Mbit/s ~850 packets, most of the ~1.7 MiB of RSS a WHEP viewer
/// cost (`bench/whep-fanout.sh`, BENCHMARKS.md "WebRTC fan-out"), every copy the viewer's own.
/// A resend helps only within a few round trips of the loss; libwebrtc's own sender keeps
/// max(1 s, 3 × RTT), and 1 s covers NACK retries up to a ~300 ms RTT. The count stays at
/// str0m's 1000, so a catch-up burst from the GOP cache (sent at once) stays resendable whole.
const RTX_HISTORY: Duration = Duration::from_secs(1);
/// str0m's defaults for the rest of the resend cache.
const RTX_PACKETS: usize = 1000;
const RTX_RATIO_CAP: Option<f32> = Some(0.15);

impl Peer {
    /// Answers a checked offer: the peer and the answer SDP.
    pub fn answer(
        offer: OfferSummary,
        cfg: &PeerConfig,
        now: Instant,
    ) -> Result<(Self, String), OfferError> {
        let (mut rtc, ufrag, answer) = Self::accept(offer.sdp, cfg, now)?;
        let video_mid = Mid::from(offer.video_mid.as_str());
        let video_pt = pick(&mut rtc, video_mid, Codec::H264).ok_or_else(|| {
            OfferError::NoSupportedCodec {
                offered: "no H.264 profile we can label our stream with (we send High, Main or Constrained Baseline)".into(),
            }
        })?;
        let audio = offer.audio_mid.as_deref().and_then(|m| {
            let mid = Mid::from(m);
            pick(&mut rtc, mid, Codec::Opus).map(|pt| (mid, pt))
        });
        if let Some(tx) = rtc.direct_api().stream_tx_by_mid(video_mid, None) {
            tx.set_rtx_cache(RTX_PACKETS, RTX_HISTORY, RTX_RATIO_CAP);
        }
        let role = Role::Play {
            video: (video_mid, video_pt),
            audio,
        };
        Ok((Self::new(rtc, ufrag, role, cfg, now), answer))
    }

    /// Answers a checked WHIP offer ([`crate::check_whip_offer`]): a peer that receives, and
    /// the answer SDP.
    pub fn answer_ingest(
        offer: OfferSummary,
        cfg: &PeerConfig,
        now: Instant,
    ) -> Result<(Self, String), OfferError> {
        let (rtc, ufrag, answer) = Self::accept(offer.sdp, cfg, now)?;
        let role = Role::Ingest {
            video: Mid::from(offer.video_mid.as_str()),
            audio: offer.audio_mid.as_deref().map(Mid::from),
        };
        Ok((Self::new(rtc, ufrag, role, cfg, now), answer))
    }

    /// An ICE-lite `Rtc` with our one candidate that has accepted `offer`: it, our ufrag and
    /// the answer.
    fn accept(
        offer: str0m::change::SdpOffer,
        cfg: &PeerConfig,
        now: Instant,
    ) -> Result<(Rtc, String, String), OfferError> {
        crate::init_crypto();
        let creds = IceCreds::new();
        let ufrag = creds.ufrag.clone();
        let mut rtc = RtcConfig::new()
            .set_ice_lite(true)
            .set_local_ice_credentials(creds)
            .clear_codecs()
            .enable_h264(true)
            .enable_opus(true, false)
            .enable_bwe(cfg.bandwidth.map(|b| Bitrate::bps(b.initial_bps)))
            .build(now);
        if let Some(b) = cfg.bandwidth {
            rtc.bwe()
                .set_bitrate(Bitrate::ZERO, Bitrate::bps(b.desired_bps));
        }
        let candidate = Candidate::host(cfg.candidate, "udp")
            .map_err(|e| OfferError::Malformed(format!("our candidate: {e}")))?;
        rtc.add_local_candidate(candidate);
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| OfferError::Malformed(e.to_string()))?;
        Ok((rtc, ufrag, answer.to_sdp_string()))
    }

    fn new(rtc: Rtc, ufrag: String, role: Role, cfg: &PeerConfig, now: Instant) -> Self {
        Self {
            rtc,
            ufrag,
            role,
            cfg: cfg.clone(),
            created: now,
            now,
            ice_at: None,
            connected: false,
            end: None,
            end_reported: false,
            twcc: false,
        }
    }

    /// Our ICE username fragment: STUN checks for this peer carry it (see [`crate::stun`]).
    pub fn ufrag(&self) -> &str {
        &self.ufrag
    }

    /// The viewer can receive audio, or the publisher sends it (Opus was negotiated).
    pub fn has_audio(&self) -> bool {
        match &self.role {
            Role::Play { audio, .. } => audio.is_some(),
            Role::Ingest { audio, .. } => audio.is_some(),
        }
    }

    /// Asks a publisher for a keyframe (RTCP PLI). Nothing for a viewer, or before DTLS is up.
    pub fn request_keyframe(&mut self) {
        let Role::Ingest { video, .. } = self.role else {
            return;
        };
        if !self.connected || self.end.is_some() {
            return;
        }
        if let Some(mut w) = self.rtc.writer(video) {
            // Refused only when the section does not receive, which the offer check excludes.
            let _ = w.request_keyframe(None, KeyframeRequestKind::Pli);
        }
    }

    /// Asks the bandwidth estimator to find out whether the path carries `bps` (with
    /// [`PeerConfig::bandwidth`] only). Raising it above the current estimate makes str0m send
    /// a probe (a short burst of padding at up to twice the estimate), and the feedback on it
    /// moves the estimate: sending less than the path carries, the estimate cannot otherwise
    /// grow past about 1.5 × what is sent. Lowering or repeating it sends no probe.
    pub fn set_desired_bitrate(&mut self, bps: u64) {
        if self.cfg.bandwidth.is_some() && self.end.is_none() {
            self.rtc.bwe().set_bitrate(Bitrate::ZERO, Bitrate::bps(bps));
        }
    }

    /// DTLS-SRTP is up.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// A datagram from `source` that arrived on our socket at `local`.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        local: SocketAddr,
        data: &[u8],
    ) {
        if self.end.is_some() {
            return;
        }
        self.now = self.now.max(now);
        let Ok(contents) = data.try_into() else {
            return;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination: local,
                contents,
            },
        );
        if let Err(e) = self.rtc.handle_input(input) {
            self.end(EndReason::Protocol(e.to_string()));
        }
    }

    /// Time passed (a timeout from [`Poll::Timeout`] fired, or any time).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.end.is_some() {
            return;
        }
        self.now = self.now.max(now);
        if self.ice_at.is_none() && now >= self.created + self.cfg.ice_timeout {
            return self.end(EndReason::IceTimeout(self.cfg.ice_timeout));
        }
        if let Some(at) = self.ice_at {
            if !self.connected && now >= at + self.cfg.dtls_timeout {
                return self.end(EndReason::DtlsTimeout(self.cfg.dtls_timeout));
            }
        }
        if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
            self.end(EndReason::Protocol(e.to_string()));
        }
    }

    /// Sends one H.264 access unit (Annex B) with RTP time `rtp` (90 kHz). Dropped before
    /// [`PeerEvent::Connected`].
    pub fn write_video(&mut self, now: Instant, rtp: u64, annex_b: &[u8]) {
        if let Role::Play {
            video: (mid, pt), ..
        } = self.role
        {
            self.write(mid, pt, now, MediaTime::from_90khz(rtp), annex_b);
        }
    }

    /// Sends one Opus packet with RTP time `rtp` (48 kHz), if audio was negotiated.
    pub fn write_audio(&mut self, now: Instant, rtp: u64, opus: &[u8]) {
        if let Role::Play {
            audio: Some((mid, pt)),
            ..
        } = self.role
        {
            self.write(
                mid,
                pt,
                now,
                MediaTime::new(rtp, str0m::media::Frequency::FORTY_EIGHT_KHZ),
                opus,
            );
        }
    }

    fn write(&mut self, mid: Mid, pt: Pt, now: Instant, t: MediaTime, data: &[u8]) {
        if !self.connected || self.end.is_some() {
            return;
        }
        let Some(w) = self.rtc.writer(mid) else {
            return;
        };
        if let Err(e) = w.write(pt, now, t, data.to_vec()) {
            self.end(EndReason::Protocol(format!("write: {e}")));
        }
    }

    /// Ends the session (DELETE, the stream ended): DTLS close_notify goes out on the next
    /// polls, then [`PeerEvent::Ended`]`(Closed)`.
    pub fn close(&mut self) {
        if self.end.is_none() {
            let _ = self.rtc.close();
            self.end = Some(EndReason::Closed);
        }
    }

    fn end(&mut self, why: EndReason) {
        if self.end.is_none() {
            self.rtc.disconnect();
            self.end = Some(why);
        }
    }

    /// The next output. Drain until [`Poll::Timeout`].
    pub fn poll(&mut self) -> Poll {
        loop {
            if let Some(why) = &self.end {
                // Let a close drain its close_notify; a failure sends nothing more.
                if matches!(why, EndReason::Closed) && self.rtc.is_alive() {
                    if let Ok(Output::Transmit(t)) = self.rtc.poll_output() {
                        return Poll::Transmit(t);
                    }
                }
                if !self.end_reported {
                    self.end_reported = true;
                    return Poll::Event(PeerEvent::Ended(why.clone()));
                }
                return Poll::Timeout(self.created + Duration::from_secs(86_400 * 365));
            }
            let out = match self.rtc.poll_output() {
                Ok(o) => o,
                Err(e) => {
                    self.end(EndReason::Protocol(e.to_string()));
                    continue;
                }
            };
            match out {
                Output::Transmit(t) => return Poll::Transmit(t),
                Output::Timeout(at) => {
                    return Poll::Timeout(self.deadline().map_or(at, |d| d.min(at)))
                }
                Output::Event(e) => match e {
                    Event::IceConnectionStateChange(s) => match s {
                        IceConnectionState::Connected | IceConnectionState::Completed => {
                            self.ice_at.get_or_insert(self.now);
                        }
                        IceConnectionState::Disconnected => self.end(EndReason::Disconnected),
                        _ => {}
                    },
                    Event::Connected => {
                        self.connected = true;
                        return Poll::Event(PeerEvent::Connected);
                    }
                    Event::KeyframeRequest(r)
                        if matches!(self.role, Role::Play { video: (m, _), .. } if m == r.mid)
                            && matches!(
                                r.kind,
                                KeyframeRequestKind::Pli | KeyframeRequestKind::Fir
                            ) =>
                    {
                        return Poll::Event(PeerEvent::KeyframeRequest);
                    }
                    Event::MediaData(d) => {
                        if let Some(s) = self.sample(d) {
                            return Poll::Event(PeerEvent::Media(s));
                        }
                    }
                    Event::EgressBitrateEstimate(b) if self.cfg.bandwidth.is_some() => {
                        if let Some(bps) = self.estimate(b) {
                            return Poll::Event(PeerEvent::BandwidthEstimate(bps));
                        }
                    }
                    Event::Closed => self.end = Some(EndReason::Closed),
                    _ => {}
                },
            }
        }
    }

    /// An estimate worth reporting: TWCC while it can probe (before that it only repeats the
    /// configured start), REMB of the video section while TWCC is not working.
    fn estimate(&mut self, b: BweKind) -> Option<u64> {
        match b {
            BweKind::Twcc {
                estimate,
                can_probe,
            } => {
                self.twcc = can_probe;
                can_probe.then(|| estimate.as_u64())
            }
            BweKind::Remb { estimate, mid } => {
                let video = matches!(self.role, Role::Play { video: (m, _), .. } if m == mid);
                (video && !self.twcc).then(|| estimate.as_u64())
            }
            _ => None,
        }
    }

    /// A publisher's depacketized frame as a [`Sample`], if it is of one of its tracks.
    fn sample(&self, d: str0m::media::MediaData) -> Option<Sample> {
        let Role::Ingest { video, audio } = self.role else {
            return None;
        };
        let track = if d.mid == video {
            Track::Video
        } else if Some(d.mid) == audio {
            Track::Audio
        } else {
            return None;
        };
        let rate = d.time.frequency().get();
        Some(Sample {
            track,
            rtp: d.time.numer(),
            rate,
            arrived: d.network_time,
            contiguous: d.contiguous,
            keyframe: d.is_keyframe(),
            data: d.data,
        })
    }

    /// The mid of the video section (tests).
    #[cfg(test)]
    pub(crate) fn video_mid(&self) -> Mid {
        match self.role {
            Role::Play { video: (m, _), .. } | Role::Ingest { video: m, .. } => m,
        }
    }

    /// Our own next deadline (ICE, then DTLS), if one is pending.
    fn deadline(&self) -> Option<Instant> {
        match self.ice_at {
            None => Some(self.created + self.cfg.ice_timeout),
            Some(at) if !self.connected => Some(at + self.cfg.dtls_timeout),
            Some(_) => None,
        }
    }
}

/// The payload type to send `codec` with on `mid`: the first negotiated one, H.264 with
/// packetization-mode 1 in [`PROFILE_PREFERENCE`] order.
fn pick(rtc: &mut Rtc, mid: Mid, codec: Codec) -> Option<Pt> {
    let w = rtc.writer(mid)?;
    let params: Vec<_> = w
        .payload_params()
        .filter(|p| p.spec().codec == codec)
        .map(|p| (p.pt(), p.spec().format))
        .collect();
    if codec != Codec::H264 {
        return params.first().map(|(pt, _)| *pt);
    }
    PROFILE_PREFERENCE.iter().find_map(|want| {
        params.iter().find_map(|(pt, f)| {
            (f.packetization_mode == Some(1) && f.profile_level_id == Some(*want)).then_some(*pt)
        })
    })
}

#[cfg(test)]
#[path = "peer_tests.rs"]
mod tests;
