//! A real str0m client (as a browser would be) against our peer, datagrams passed in memory on
//! a simulated clock (quinn's `Pair`): connect, media, keyframe requests, and the deadlines.

use std::net::SocketAddr;

use str0m::{
    change::SdpAnswer,
    media::{Direction, MediaKind},
    Event, Input, Output, Rtc,
};

use super::*;
use crate::{check_offer, stun};

const CLIENT: &str = "127.0.0.1:40000";
const SERVER: &str = "127.0.0.1:8189";

struct Pair {
    client: Rtc,
    peer: Peer,
    now: Instant,
    /// Client → server datagrams for which this says true are lost.
    lose: fn(&[u8]) -> bool,
    /// Server → client SRTP datagrams sent so far, and the ordinal of one to lose.
    down_rtp: usize,
    lose_down: Option<usize>,
    media: Vec<(MediaKind, Vec<u8>)>,
    events: Vec<PeerEvent>,
    /// Keyframe requests the client got.
    client_plis: usize,
    /// The client's sections.
    client_mids: Vec<(MediaKind, Mid)>,
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn cfg() -> PeerConfig {
    PeerConfig {
        candidate: addr(SERVER),
        ice_timeout: Duration::from_secs(5),
        dtls_timeout: Duration::from_secs(5),
        bandwidth: None,
    }
}

impl Pair {
    fn new(audio: bool) -> Self {
        Self::with(audio, false)
    }

    /// `ingest`: the client publishes (WHIP) instead of playing (WHEP).
    fn with(audio: bool, ingest: bool) -> Self {
        Self::with_cfg(audio, ingest, cfg())
    }

    fn with_cfg(audio: bool, ingest: bool, cfg: PeerConfig) -> Self {
        crate::init_crypto();
        let now = Instant::now();
        let mut client = Rtc::builder().build(now);
        client.add_local_candidate(Candidate::host(addr(CLIENT), "udp").unwrap());
        let mut api = client.sdp_api();
        let dir = if ingest {
            Direction::SendOnly
        } else {
            Direction::RecvOnly
        };
        let mut client_mids = vec![(
            MediaKind::Video,
            api.add_media(MediaKind::Video, dir, None, None, None),
        )];
        if audio {
            client_mids.push((
                MediaKind::Audio,
                api.add_media(MediaKind::Audio, dir, None, None, None),
            ));
        }
        let (offer, pending) = api.apply().unwrap();
        let (peer, answer) = if ingest {
            let summary = crate::check_whip_offer(&offer.to_sdp_string()).unwrap();
            Peer::answer_ingest(summary, &cfg, now).unwrap()
        } else {
            let summary = check_offer(&offer.to_sdp_string()).unwrap();
            assert_eq!(summary.opus(), audio);
            Peer::answer(summary, &cfg, now).unwrap()
        };
        assert!(answer.contains("a=ice-lite"), "{answer}");
        assert!(answer.contains(&format!("a=ice-ufrag:{}", peer.ufrag())));
        assert!(answer.contains("127.0.0.1 8189 typ host"), "{answer}");
        client
            .sdp_api()
            .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap())
            .unwrap();
        Self {
            client,
            peer,
            now,
            lose: |_| false,
            down_rtp: 0,
            lose_down: None,
            media: vec![],
            events: vec![],
            client_plis: 0,
            client_mids,
        }
    }

    /// One round: drain both sides, deliver what they sent, or move the clock to the next
    /// timeout when nothing was in flight.
    fn step(&mut self) {
        let mut to_client = vec![];
        let peer_at = loop {
            match self.peer.poll() {
                Poll::Transmit(t) => to_client.push(t.contents.to_vec()),
                Poll::Event(e) => self.events.push(e),
                Poll::Timeout(t) => break t,
            }
        };
        let mut to_server = vec![];
        let client_at = loop {
            match self.client.poll_output().unwrap() {
                Output::Transmit(t) => to_server.push(t.contents.to_vec()),
                Output::Event(Event::MediaData(m)) => {
                    let kind = self.client.media(m.mid).unwrap().kind();
                    self.media.push((kind, m.data.to_vec()));
                }
                Output::Event(Event::KeyframeRequest(_)) => self.client_plis += 1,
                Output::Event(_) => {}
                Output::Timeout(t) => break t,
            }
        };
        let idle = to_client.is_empty() && to_server.is_empty();
        for d in to_server {
            if !(self.lose)(&d) {
                if let Some(u) = stun::local_ufrag(&d) {
                    assert_eq!(u, self.peer.ufrag(), "checks carry our ufrag first");
                }
                self.peer
                    .handle_datagram(self.now, addr(CLIENT), addr(SERVER), &d);
            }
        }
        for d in to_client {
            if stun::kind(&d) == stun::Kind::Rtp {
                self.down_rtp += 1;
                if self.lose_down == Some(self.down_rtp) {
                    continue;
                }
            }
            let input = Input::Receive(
                self.now,
                Receive {
                    proto: Protocol::Udp,
                    source: addr(SERVER),
                    destination: addr(CLIENT),
                    contents: d.as_slice().try_into().unwrap(),
                },
            );
            self.client.handle_input(input).unwrap();
        }
        if idle {
            self.now = peer_at
                .min(client_at)
                .max(self.now + Duration::from_millis(1));
        } else {
            self.now += Duration::from_millis(1);
        }
        self.peer.handle_timeout(self.now);
        self.client.handle_input(Input::Timeout(self.now)).unwrap();
    }

    /// Steps until `done` or `within` of simulated time passed.
    fn until(&mut self, within: Duration, done: impl Fn(&Self) -> bool) -> bool {
        let end = self.now + within;
        while self.now < end {
            if done(self) {
                return true;
            }
            self.step();
        }
        done(self)
    }
}

fn keyframe() -> Vec<u8> {
    let mut v = vec![
        0, 0, 0, 1, 0x67, 0x42, 0xe0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xe8,
    ];
    v.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80]);
    v.extend_from_slice(&[0, 0, 0, 1, 0x65]);
    // Larger than one packet: FU-A fragments.
    v.extend((0..3000u32).map(|i| (i % 251) as u8 | 1));
    v
}

#[test]
fn connects_and_delivers_video_and_audio() {
    let mut p = Pair::new(true);
    assert!(p.peer.has_audio());
    assert!(
        p.until(Duration::from_secs(2), |p| p
            .events
            .contains(&PeerEvent::Connected)),
        "not connected: {:?}",
        p.events
    );
    assert!(p.peer.is_connected());
    let t = p.now;
    p.peer.write_video(t, 0, &keyframe());
    p.peer.write_audio(t, 0, &[0xfc, 1, 2, 3]);
    p.peer.write_video(t, 3000, &[0, 0, 0, 1, 0x41, 7, 7, 7]);
    assert!(
        p.until(Duration::from_secs(1), |p| p
            .media
            .iter()
            .filter(|m| m.0 == MediaKind::Video)
            .count()
            >= 2
            && p.media.iter().any(|m| m.0 == MediaKind::Audio)),
        "media: {:?}",
        p.media.iter().map(|m| (m.0, m.1.len())).collect::<Vec<_>>()
    );
    let video: Vec<_> = p.media.iter().filter(|m| m.0 == MediaKind::Video).collect();
    assert!(video[0].1.len() >= 3000, "the keyframe arrived whole");
    assert_eq!(
        p.media.iter().find(|m| m.0 == MediaKind::Audio).unwrap().1,
        vec![0xfc, 1, 2, 3]
    );
}

#[test]
fn a_packet_lost_on_the_way_to_the_viewer_is_resent_on_its_nack() {
    let mut p = Pair::new(false);
    assert!(p.until(Duration::from_secs(2), |p| p
        .events
        .contains(&PeerEvent::Connected)));
    // The keyframe is three packets (FU-A); the middle one is lost.
    p.lose_down = Some(p.down_rtp + 2);
    let t = p.now;
    p.peer.write_video(t, 0, &keyframe());
    // Some time later (within the resend history), the next frame shows the gap too.
    let _ = p.until(Duration::from_millis(300), |_| false);
    let t = p.now;
    p.peer.write_video(t, 3000, &[0, 0, 0, 1, 0x41, 7, 7, 7]);
    assert!(
        p.until(Duration::from_secs(1), |p| p.media.len() >= 2),
        "the client got {:?} after losing packet {:?} of {}",
        p.media.iter().map(|m| m.1.len()).collect::<Vec<_>>(),
        p.lose_down,
        p.down_rtp
    );
    assert!(p.media[0].1.len() >= 3000, "the keyframe arrived whole");
}

#[test]
fn a_keyframe_request_from_the_viewer_is_an_event() {
    let mut p = Pair::new(false);
    assert!(p.until(Duration::from_secs(2), |p| p
        .events
        .contains(&PeerEvent::Connected)));
    let t = p.now;
    p.peer.write_video(t, 0, &keyframe());
    assert!(p.until(Duration::from_secs(1), |p| !p.media.is_empty()));
    let mid = p.client.media(p.peer.video_mid()).unwrap().mid();
    p.client
        .writer(mid)
        .unwrap()
        .request_keyframe(None, KeyframeRequestKind::Pli)
        .unwrap();
    assert!(p.until(Duration::from_secs(1), |p| p
        .events
        .contains(&PeerEvent::KeyframeRequest)));
}

#[test]
fn ice_that_never_completes_times_out() {
    let mut p = Pair::new(false);
    p.lose = |_| true;
    let t0 = p.now;
    assert!(p.until(Duration::from_secs(10), |p| p
        .events
        .iter()
        .any(|e| matches!(e, PeerEvent::Ended(_)))));
    assert_eq!(
        p.events,
        vec![PeerEvent::Ended(EndReason::IceTimeout(
            Duration::from_secs(5)
        ))]
    );
    assert!(p.now - t0 >= Duration::from_secs(5) && p.now - t0 < Duration::from_secs(6));
}

#[test]
fn dtls_that_stalls_times_out() {
    let mut p = Pair::new(false);
    p.lose = |d| stun::kind(d) == stun::Kind::Dtls;
    assert!(p.until(Duration::from_secs(12), |p| p
        .events
        .iter()
        .any(|e| matches!(e, PeerEvent::Ended(_)))));
    assert_eq!(
        p.events,
        vec![PeerEvent::Ended(EndReason::DtlsTimeout(
            Duration::from_secs(5)
        ))]
    );
}

#[test]
fn close_ends_the_session_once() {
    let mut p = Pair::new(false);
    assert!(p.until(Duration::from_secs(2), |p| p
        .events
        .contains(&PeerEvent::Connected)));
    p.peer.close();
    assert!(p.until(Duration::from_secs(1), |p| p
        .events
        .iter()
        .any(|e| matches!(e, PeerEvent::Ended(_)))));
    p.step();
    p.step();
    let ends = p
        .events
        .iter()
        .filter(|e| matches!(e, PeerEvent::Ended(_)))
        .count();
    assert_eq!(ends, 1);
    assert_eq!(p.events.last(), Some(&PeerEvent::Ended(EndReason::Closed)));
}

/// The client's payload type for `codec` on its section of `kind`.
fn client_pt(p: &mut Pair, kind: MediaKind, codec: str0m::format::Codec) -> (Mid, Pt) {
    let mid = p.client_mids.iter().find(|m| m.0 == kind).unwrap().1;
    let w = p.client.writer(mid).unwrap();
    let pt = w
        .payload_params()
        .find(|p| p.spec().codec == codec)
        .unwrap()
        .pt();
    (mid, pt)
}

#[test]
fn a_publisher_s_media_comes_out_as_samples_and_keyframe_requests_reach_it() {
    let mut p = Pair::with(true, true);
    assert!(p.peer.has_audio());
    assert!(p.until(Duration::from_secs(2), |p| p
        .events
        .contains(&PeerEvent::Connected)));
    let (vmid, vpt) = client_pt(&mut p, MediaKind::Video, str0m::format::Codec::H264);
    let (amid, apt) = client_pt(&mut p, MediaKind::Audio, str0m::format::Codec::Opus);
    let t = p.now;
    let w = p.client.writer(vmid).unwrap();
    w.write(vpt, t, MediaTime::from_90khz(90_000), keyframe())
        .unwrap();
    let w = p.client.writer(amid).unwrap();
    w.write(
        apt,
        t,
        MediaTime::new(48_000, str0m::media::Frequency::FORTY_EIGHT_KHZ),
        vec![0xfc, 1, 2],
    )
    .unwrap();
    let samples = |p: &Pair| -> Vec<Sample> {
        p.events
            .iter()
            .filter_map(|e| match e {
                PeerEvent::Media(s) => Some(s.clone()),
                _ => None,
            })
            .collect()
    };
    assert!(
        p.until(Duration::from_secs(1), |p| samples(p).len() >= 2),
        "{:?}",
        p.events
    );
    let s = samples(&p);
    let v = s.iter().find(|s| s.track == Track::Video).unwrap();
    assert!(v.keyframe && v.contiguous && v.rate == 90_000);
    assert!(v.data.len() >= 3000, "the whole access unit");
    let nals: Vec<u8> = crate::ingest::annexb_nals(&v.data)
        .map(|n| n[0] & 0x1f)
        .collect();
    assert_eq!(nals, [7, 8, 5]);
    let a = s.iter().find(|s| s.track == Track::Audio).unwrap();
    assert_eq!((&a.data[..], a.rate), (&[0xfc, 1, 2][..], 48_000));
    p.peer.request_keyframe();
    assert!(p.until(Duration::from_secs(1), |p| p.client_plis > 0));
}

#[test]
fn a_viewer_s_bandwidth_is_estimated_from_its_twcc_feedback() {
    let mut p = Pair::with_cfg(
        false,
        false,
        PeerConfig {
            bandwidth: Some(Estimation {
                initial_bps: 2_000_000,
                desired_bps: 2_000_000,
            }),
            ..cfg()
        },
    );
    assert!(p.until(Duration::from_secs(2), |p| p
        .events
        .contains(&PeerEvent::Connected)));
    // ~1.5 Mbit/s of video at 30 frames a second for 4 s of simulated time.
    let frame: Vec<u8> = [0, 0, 0, 1, 0x41]
        .into_iter()
        .chain((0..6000u32).map(|i| (i % 251) as u8 | 1))
        .collect();
    let start = p.now;
    for i in 0..120u64 {
        let at = start + Duration::from_millis(i * 33);
        p.until(at.saturating_duration_since(p.now), |_| false);
        let now = p.now;
        p.peer.write_video(now, i * 2970, &frame);
    }
    p.until(Duration::from_millis(500), |_| false);
    let estimates: Vec<u64> = p
        .events
        .iter()
        .filter_map(|e| match e {
            PeerEvent::BandwidthEstimate(b) => Some(*b),
            _ => None,
        })
        .collect();
    // The configured start first, then what the client's feedback showed (2.0, 2.9, 3.8
    // Mbit/s seen): a lossless in-memory path carries more than is sent.
    assert!(
        estimates.len() >= 2,
        "no estimate from feedback: {estimates:?}"
    );
    assert!(
        *estimates.last().unwrap() >= 1_000_000,
        "estimates {estimates:?}"
    );
}

#[test]
fn without_estimation_no_estimates_are_reported() {
    let mut p = Pair::new(false);
    assert!(p.until(Duration::from_secs(2), |p| p
        .events
        .contains(&PeerEvent::Connected)));
    let t = p.now;
    p.peer.write_video(t, 0, &keyframe());
    p.until(Duration::from_secs(2), |_| false);
    assert!(!p
        .events
        .iter()
        .any(|e| matches!(e, PeerEvent::BandwidthEstimate(_))));
}

#[test]
fn the_answer_to_a_chromium_offer_negotiates_transport_cc() {
    // Chromium offers the transport-wide sequence number extension and transport-cc feedback
    // on its H.264: the answer keeps both, so the viewer sends the feedback the estimate needs.
    let offer = crate::offer::tests::chromium_offer(crate::offer::tests::H264, false).replace(
        "a=rtcp-mux\r\na=rtcp-rsize\r\n",
        "a=rtcp-mux\r\na=rtcp-rsize\r\n\
         a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n",
    );
    let summary = check_offer(&offer).unwrap();
    let cfg = PeerConfig {
        bandwidth: Some(Estimation {
            initial_bps: 2_000_000,
            desired_bps: 2_000_000,
        }),
        ..cfg()
    };
    let (_, answer) = Peer::answer(summary, &cfg, Instant::now()).unwrap();
    assert!(
        answer.contains("transport-wide-cc-extensions-01"),
        "{answer}"
    );
    assert!(answer.contains("a=rtcp-fb:102 transport-cc"), "{answer}");
}
