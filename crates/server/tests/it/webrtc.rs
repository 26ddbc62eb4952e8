//! WHEP against the real server: a str0m client (a WebRTC stack like a browser's) over UDP on
//! 127.0.0.1 plays an ffmpeg RTMP publish; bad offers get a clear 4xx; sessions are bounded per
//! IP and in total; ICE that never completes and DTLS that stalls time out; all of it counted
//! in /metrics.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    time::{Duration, Instant},
};

use str0m::{
    change::{SdpAnswer, SdpPendingOffer},
    media::{Direction, MediaKind},
    net::{Protocol, Receive},
    Candidate, Event, Input, Output, Rtc,
};
use tokio::net::UdpSocket;

use crate::common::{eventually, ffmpeg_publish, TestServer};

/// One HTTP/1.1 request: status, lower-cased head, body.
pub(crate) async fn request(
    port: u16,
    method: &str,
    path: &str,
    ctype: Option<&str>,
    body: &str,
) -> (u16, String, String) {
    let h: Vec<(&str, &str)> = ctype.map(|c| ("Content-Type", c)).into_iter().collect();
    crate::common::http_request(port, method, path, &h, body).await
}

pub(crate) async fn post_offer(port: u16, path: &str, sdp: &str) -> (u16, String, String) {
    request(port, "POST", path, Some("application/sdp"), sdp).await
}

/// Sum of a metric's samples whose line starts with `prefix` (name and labels).
pub(crate) async fn metric(port: u16, prefix: &str) -> f64 {
    let (_, _, m) = request(port, "GET", "/metrics", None, "").await;
    m.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The viewers `/api/streams` of this server counts on `name`.
async fn viewers(srv: &TestServer, name: &str) -> u64 {
    srv.streams()
        .await
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .and_then(|s| s["viewers"].as_u64())
        .unwrap_or(0)
}

/// A WebRTC client: str0m, as a browser would, on its own UDP socket (the WHIP tests play
/// with it too).
pub(crate) struct Client {
    rtc: Rtc,
    sock: UdpSocket,
    local: SocketAddr,
    pending: Option<SdpPendingOffer>,
    /// Lose every DTLS datagram we would send (a DTLS handshake that stalls).
    lose_dtls: bool,
    /// What we receive goes through this bottleneck first (`None`: straight in).
    pub(crate) link: Option<Link>,
}

/// A slow access link in front of the client, as a router's queue on a DSL line is: incoming
/// datagrams leave it at `bps`, in order; one that would wait longer than `max_delay` is
/// dropped (tail drop). So the sender sees what a real bottleneck shows — the delay growing,
/// then loss — in its transport-wide congestion control feedback.
pub(crate) struct Link {
    bps: u64,
    max_delay: Duration,
    /// When the bottleneck has sent what is queued.
    free_at: Instant,
    queue: VecDeque<(Instant, SocketAddr, Vec<u8>)>,
    pub(crate) dropped: u64,
}

impl Link {
    pub(crate) fn new(bps: u64, max_delay: Duration) -> Self {
        Self {
            bps,
            max_delay,
            free_at: Instant::now(),
            queue: VecDeque::new(),
            dropped: 0,
        }
    }

    fn push(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        let start = self.free_at.max(now);
        if start - now > self.max_delay {
            self.dropped += 1;
            return;
        }
        self.free_at = start + Duration::from_secs_f64((data.len() * 8) as f64 / self.bps as f64);
        self.queue.push_back((self.free_at, from, data.to_vec()));
    }

    fn next_at(&self) -> Option<Instant> {
        self.queue.front().map(|q| q.0)
    }

    fn pop_due(&mut self, now: Instant) -> Option<(SocketAddr, Vec<u8>)> {
        if self.next_at()? <= now {
            self.queue.pop_front().map(|(_, from, d)| (from, d))
        } else {
            None
        }
    }
}

impl Client {
    pub(crate) async fn new(audio: bool) -> (Self, String) {
        Self::with(Rtc::builder(), audio).await
    }

    async fn with(config: str0m::RtcConfig, audio: bool) -> (Self, String) {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let local = sock.local_addr().unwrap();
        let mut rtc = config.build(Instant::now());
        rtc.add_local_candidate(Candidate::host(local, "udp").unwrap());
        let mut api = rtc.sdp_api();
        api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        if audio {
            api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        }
        let (offer, pending) = api.apply().unwrap();
        (
            Self {
                rtc,
                sock,
                local,
                pending: Some(pending),
                lose_dtls: false,
                link: None,
            },
            offer.to_sdp_string(),
        )
    }

    pub(crate) fn accept(&mut self, answer: &str) {
        let pending = self.pending.take().unwrap();
        self.rtc
            .sdp_api()
            .accept_answer(pending, SdpAnswer::from_sdp_string(answer).unwrap())
            .unwrap();
    }

    /// Drives the client until `done` says so for an event, or `within` passes.
    pub(crate) async fn run(
        &mut self,
        within: Duration,
        mut done: impl FnMut(&Event) -> bool,
    ) -> bool {
        let end = Instant::now() + within;
        let mut buf = vec![0u8; 2048];
        loop {
            let timeout = loop {
                match self.rtc.poll_output().unwrap() {
                    Output::Transmit(t) => {
                        let dtls = matches!(t.contents.first(), Some(20..=63));
                        if !(self.lose_dtls && dtls) {
                            let _ = self.sock.send_to(&t.contents, t.destination).await;
                        }
                    }
                    Output::Event(e) => {
                        if done(&e) {
                            return true;
                        }
                    }
                    Output::Timeout(t) => break t,
                }
            };
            let now = Instant::now();
            if now >= end {
                return false;
            }
            // What the link has let through by now goes in first.
            let mut delivered = false;
            while let Some((from, d)) = self.link.as_mut().and_then(|l| l.pop_due(now)) {
                self.receive(from, &d);
                delivered = true;
            }
            if delivered {
                continue;
            }
            let link_at = self.link.as_ref().and_then(Link::next_at).unwrap_or(end);
            let wait = timeout
                .min(end)
                .min(link_at)
                .saturating_duration_since(now)
                .max(Duration::from_millis(1));
            match tokio::time::timeout(wait, self.sock.recv_from(&mut buf)).await {
                Ok(Ok((n, from))) => match self.link.as_mut() {
                    Some(l) => l.push(Instant::now(), from, &buf[..n]),
                    None => self.receive(from, &buf[..n]),
                },
                _ => self
                    .rtc
                    .handle_input(Input::Timeout(Instant::now()))
                    .unwrap(),
            }
        }
    }

    fn receive(&mut self, from: SocketAddr, data: &[u8]) {
        let input = Input::Receive(
            Instant::now(),
            Receive {
                proto: Protocol::Udp,
                source: from,
                destination: self.local,
                contents: data.try_into().unwrap(),
            },
        );
        self.rtc.handle_input(input).unwrap();
    }
}

fn short_timeouts(c: &mut ferrocast::config::Config) {
    c.transcode = false;
    c.webrtc.ice_timeout_secs = 1;
    c.webrtc.dtls_timeout_secs = 1;
    c.webrtc.max_sessions_per_ip = 2;
    c.webrtc.max_sessions = 3;
}

#[tokio::test]
async fn a_webrtc_client_plays_an_rtmp_publish_and_delete_ends_it() {
    let srv = TestServer::start(|c| c.transcode = false).await;
    let mut ff = ffmpeg_publish(&srv.rtmp_url("wr"), "640x360", 30);
    srv.wait_live("wr", Duration::from_secs(15)).await;
    let (mut client, offer) = Client::new(true).await;
    let (status, head, answer) = post_offer(srv.http, "/whep/wr", &offer).await;
    assert_eq!(status, 201, "{answer}");
    assert!(head.contains("content-type: application/sdp"), "{head}");
    let location = head
        .lines()
        .find_map(|l| l.strip_prefix("location: "))
        .unwrap()
        .trim()
        .to_string();
    assert!(location.starts_with("/whep/wr/"), "{location}");
    assert!(
        answer.contains("a=ice-lite") && answer.contains("127.0.0.1"),
        "{answer}"
    );
    client.accept(&answer);
    // The first picture: a keyframe from the GOP cache, within a second of the answer.
    let t0 = Instant::now();
    let mut first: Option<Duration> = None;
    let mut frames = 0;
    let got = client
        .run(Duration::from_secs(10), |e| {
            if let Event::MediaData(m) = e {
                first.get_or_insert(t0.elapsed());
                frames += 1;
                assert!(!m.data.is_empty());
            }
            frames >= 60
        })
        .await;
    assert!(got, "only {frames} frames in 10 s");
    let first = first.unwrap();
    assert!(
        first < Duration::from_secs(1),
        "first frame after {first:?}"
    );
    let (_, _, streams) = request(srv.http, "GET", "/api/streams", None, "").await;
    assert!(streams.contains("\"viewers\":1"), "{streams}");
    // The recorder is the process's (other tests' sessions run beside this one): the count
    // as a difference, and this server's own viewer count for the session being gone.
    let closed = || metric(srv.http, "ferrocast_webrtc_ended_total{reason=\"closed\"}");
    let closed0 = closed().await;
    let (status, _, _) = request(srv.http, "DELETE", &location, None, "").await;
    assert_eq!(status, 200);
    let (status, _, _) = request(srv.http, "DELETE", &location, None, "").await;
    assert_eq!(status, 404);
    eventually(
        "the session to end as closed",
        Duration::from_secs(5),
        || async { closed().await > closed0 && viewers(&srv, "wr").await == 0 },
    )
    .await;
    let _ = ff.kill().await;
    srv.stop().await;
}

#[tokio::test]
async fn bad_offers_get_a_clear_4xx_and_are_counted() {
    let srv = TestServer::start(short_timeouts).await;
    let mut ff = ffmpeg_publish(&srv.rtmp_url("bad"), "320x240", 30);
    srv.wait_live("bad", Duration::from_secs(15)).await;
    let (_, good) = Client::new(false).await;
    // The recorder is the process's: other tests in this binary count refusals too, so each
    // reason is checked as a difference.
    let port = srv.http;
    let refused = move |reason: &'static str| async move {
        metric(
            port,
            &format!("ferrocast_webrtc_refused_total{{reason=\"{reason}\"}}"),
        )
        .await
    };
    let mut before = vec![];
    for reason in [
        "malformed_sdp",
        "content_type",
        "no_supported_codec",
        "not_live",
        "unplayable",
        "too_large",
    ] {
        before.push(refused(reason).await);
    }

    let (s, _, body) = post_offer(srv.http, "/whep/bad", "v=0\r\nthis is not sdp\r\n").await;
    assert_eq!(s, 400, "{body}");
    assert!(body.starts_with("malformed SDP offer:"), "{body}");
    let (s, _, body) = request(
        srv.http,
        "POST",
        "/whep/bad",
        Some("application/json"),
        &good,
    )
    .await;
    assert_eq!(s, 415, "{body}");
    assert!(body.contains("application/sdp"), "{body}");
    let (_, vp8_only) = Client::with(Rtc::builder().clear_codecs().enable_vp8(true), false).await;
    let (s, _, body) = post_offer(srv.http, "/whep/bad", &vp8_only).await;
    assert_eq!(s, 422, "{body}");
    assert!(
        body.contains("no supported video codec") && body.contains("VP8"),
        "{body}"
    );
    let (s, _, body) = post_offer(srv.http, "/whep/nobody", &good).await;
    assert_eq!(s, 404, "{body}");
    assert!(body.contains("not live"), "{body}");
    let (s, _, body) = post_offer(srv.http, "/whep/bad?rendition=9000", &good).await;
    assert_eq!(s, 422, "{body}");
    let (s, _, body) = post_offer(srv.http, "/whep/bad", &"a".repeat(100_000)).await;
    assert_eq!(s, 413, "{body}");
    let (s, head, _) = request(
        srv.http,
        "PATCH",
        "/whep/bad/123",
        Some("application/trickle-ice-sdpfrag"),
        "a=x",
    )
    .await;
    assert_eq!(s, 405);
    assert!(head.contains("allow:"), "{head}");
    // OPTIONS is the CORS layer's: a page on another origin may POST and DELETE.
    let (s, head, _) = request(srv.http, "OPTIONS", "/whep/bad", None, "").await;
    assert!(
        s == 200 && head.contains("access-control-allow-methods: get,head,options,post,delete"),
        "{s} {head}"
    );
    for (reason, before) in [
        "malformed_sdp",
        "content_type",
        "no_supported_codec",
        "not_live",
        "unplayable",
        "too_large",
    ]
    .into_iter()
    .zip(before)
    {
        assert_eq!(refused(reason).await - before, 1.0, "refused {reason}");
    }
    let _ = ff.kill().await;
    srv.stop().await;
}

#[tokio::test]
async fn sessions_are_bounded_and_ice_and_dtls_that_never_finish_time_out() {
    let srv = TestServer::start(short_timeouts).await;
    let mut ff = ffmpeg_publish(&srv.rtmp_url("lim"), "320x240", 30);
    srv.wait_live("lim", Duration::from_secs(15)).await;
    // Two offers from 127.0.0.1 whose ICE never starts: the per-IP limit is 2.
    for _ in 0..2 {
        let (_, offer) = Client::new(false).await;
        let (s, _, body) = post_offer(srv.http, "/whep/lim", &offer).await;
        assert_eq!(s, 201, "{body}");
    }
    let (_, offer) = Client::new(false).await;
    let (s, head, body) = post_offer(srv.http, "/whep/lim", &offer).await;
    assert_eq!(s, 429, "{body}");
    assert!(
        body.contains("per-address limit") && head.contains("retry-after"),
        "{head} {body}"
    );
    // Their ICE deadline (1 s) frees the places.
    eventually(
        "the two sessions to time out in ICE",
        Duration::from_secs(5),
        || async {
            metric(
                srv.http,
                "ferrocast_webrtc_ended_total{reason=\"ice_timeout\"}",
            )
            .await
                == 2.0
        },
    )
    .await;
    // A client whose ICE works but whose DTLS never arrives.
    let (mut client, offer) = Client::new(false).await;
    client.lose_dtls = true;
    let (s, _, answer) = post_offer(srv.http, "/whep/lim", &offer).await;
    assert_eq!(s, 201, "{answer}");
    client.accept(&answer);
    let stalled = tokio::spawn(async move {
        client.run(Duration::from_secs(4), |_| false).await;
    });
    eventually(
        "the stalled DTLS to time out",
        Duration::from_secs(6),
        || async {
            metric(
                srv.http,
                "ferrocast_webrtc_ended_total{reason=\"dtls_timeout\"}",
            )
            .await
                == 1.0
        },
    )
    .await;
    let _ = stalled.await;
    // (This server's viewer count: the process's session gauge has other tests' sessions.)
    assert_eq!(viewers(&srv, "lim").await, 0);
    assert_eq!(
        metric(
            srv.http,
            "ferrocast_webrtc_refused_total{reason=\"max_sessions_per_ip\"}"
        )
        .await,
        1.0
    );
    let _ = ff.kill().await;
    srv.stop().await;
}

/// An RTMP publish's AAC (real ffmpeg) reaches a WHEP viewer as the ladder's Opus: Opus RTP
/// packets that decode (TOC sane, 20 ms apart, ffmpeg decodes them to the tone) beside the
/// video, within a second of the answer; the Opus is in nobody's MPD, playlist or stream list.
#[tokio::test(flavor = "multi_thread")]
async fn a_whep_viewer_of_an_rtmp_aac_publish_gets_the_ladders_opus() {
    let srv = TestServer::start(|_| {}).await;
    let mut ff = ffmpeg_publish(&srv.rtmp_url("aac"), "640x360", 60);
    srv.wait_live("aac", Duration::from_secs(15)).await;
    // The transcoder runs once a segment is listed (the Opus comes out of the same ffmpeg).
    eventually(
        "the MPD to list a segment of each track",
        Duration::from_secs(30),
        || async {
            let (s, mpd) = srv.get("/live/aac/manifest.mpd").await;
            s == 200
                && crate::common::count_segments(&mpd, "video") >= 1
                && crate::common::count_segments(&mpd, "audio") >= 1
        },
    )
    .await;
    let (_, mpd) = srv.get("/live/aac/manifest.mpd").await;
    assert!(!mpd.contains("o64") && !mpd.contains("opus"), "{mpd}");
    let (_, master) = srv.get("/live/aac/master.m3u8").await;
    assert!(
        !master.contains("o64") && !master.contains("opus"),
        "{master}"
    );
    let listed = srv.streams().await;
    assert_eq!(
        listed[0]["renditions"],
        serde_json::json!(["v720", "v400", "a64"]),
        "{listed}"
    );

    let (mut client, offer) = Client::new(true).await;
    let (status, _, answer) = post_offer(srv.http, "/whep/aac", &offer).await;
    assert_eq!(status, 201, "{answer}");
    client.accept(&answer);
    let t0 = Instant::now();
    let (mut video, mut first_audio) = (0, None);
    let mut opus: Vec<(u64, Vec<u8>)> = vec![];
    let got = client
        .run(Duration::from_secs(15), |e| {
            if let Event::MediaData(m) = e {
                match m.params.spec().codec {
                    str0m::format::Codec::H264 => video += 1,
                    str0m::format::Codec::Opus => {
                        first_audio.get_or_insert(t0.elapsed());
                        opus.push((m.time.numer(), m.data.to_vec()));
                    }
                    _ => {}
                }
            }
            video >= 60 && opus.len() >= 250
        })
        .await;
    assert!(
        got,
        "in 15 s: {video} video frames, {} Opus packets",
        opus.len()
    );
    let first_audio = first_audio.unwrap();
    println!("whep aac→opus: first Opus packet {first_audio:?} after the answer");
    assert!(
        first_audio < Duration::from_millis(1500),
        "first Opus packet {first_audio:?} after the answer"
    );
    // RFC 6716 §3.1 TOC: CELT-only 20 ms frames (-application lowdelay), stereo, one frame.
    for (i, (_, p)) in opus.iter().enumerate() {
        let (config, stereo, code) = (p[0] >> 3, p[0] & 0b100 != 0, p[0] & 3);
        assert!(
            (16..=31).contains(&config) && config % 4 == 3 && stereo && code == 0,
            "packet {i}: TOC {:#04x}",
            p[0]
        );
    }
    // RTP time at 48 kHz, one packet every 960 samples.
    let steps = opus.windows(2).filter(|w| w[1].0 - w[0].0 == 960).count();
    assert!(
        steps >= opus.len() * 95 / 100,
        "{steps} of {} steps are 960",
        opus.len()
    );
    // ffmpeg decodes them (as Matroska, through media's writer) to the publisher's tone.
    let mut w = media::mkv::Writer::new(false, true);
    let mut mkv = vec![];
    let mut tag = vec![];
    let head = media::opus::OpusHead {
        channels: 2,
        pre_skip: 0,
        input_rate: 48_000,
        output_gain: 0,
    };
    media::flv::write_ex_audio_tag(
        media::flv::ExAudioPacketType::SequenceStart,
        media::flv::OPUS_FOURCC,
        &head.to_bytes(),
        &mut tag,
    );
    w.push(media::flv::MediaKind::Audio, 0, &tag, &mut mkv)
        .unwrap();
    for (rtp, p) in &opus {
        tag.clear();
        media::flv::write_ex_audio_tag(
            media::flv::ExAudioPacketType::CodedFrames,
            media::flv::OPUS_FOURCC,
            p,
            &mut tag,
        );
        let ms = ((rtp - opus[0].0) / 48) as u32;
        w.push(media::flv::MediaKind::Audio, ms, &tag, &mut mkv)
            .unwrap();
    }
    let path = std::env::temp_dir().join(format!("ferrocast-whep-opus-{}.mkv", std::process::id()));
    std::fs::write(&path, &mkv).unwrap();
    let mut cmd = tokio::process::Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-nostats", "-xerror", "-i"])
        .arg(&path)
        .args(["-af", "volumedetect", "-f", "null", "-"]);
    let (ok, _, err) = crate::common::run(&mut cmd, Duration::from_secs(20)).await;
    let _ = std::fs::remove_file(&path);
    assert!(ok, "ffmpeg decoding the received Opus: {err}");
    let mean = err
        .lines()
        .find_map(|l| l.split("mean_volume: ").nth(1))
        .and_then(|v| v.trim_end_matches(" dB").parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no volumedetect in {err}"));
    // ffmpeg's sine source is at 1/8 of full scale: about -21 dB; silence would be -91.
    assert!(mean > -30.0, "the received Opus decodes to {mean} dB");
    // How late the Opus reaches the hub after the capture of its media time.
    let sum = metric(srv.http, "ferrocast_latency_webrtc_audio_seconds_sum").await;
    let count = metric(srv.http, "ferrocast_latency_webrtc_audio_seconds_count").await;
    println!(
        "whep aac→opus: Opus in the hub {:.0} ms after capture (mean of {count})",
        sum / count * 1000.0
    );
    assert!(count > 0.0 && sum / count < 1.0, "{sum} / {count}");
    let _ = ff.kill().await;
    srv.stop().await;
}
