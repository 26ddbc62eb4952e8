//! Checking an offer before a peer is made for it: size, SDP syntax (str0m's parser), and
//! whether it can carry what we exchange — H.264 with packetization-mode=1 (RFC 6184 §8.1;
//! mode 0 would need single-NAL packets, which our 720p frames do not fit) and, if it has an
//! audio section, Opus. A WHEP offer must receive that ([`check_offer`]), a WHIP offer send
//! it ([`check_whip_offer`]). The reasons name what the offer had, so a developer can fix
//! the page or the encoder settings.

use str0m::change::SdpOffer;

use crate::OfferError;

/// Largest offer accepted, in bytes (a browser's is 4–8 KiB).
pub const MAX_OFFER_BYTES: usize = 64 << 10;
/// Most codec names quoted in a refusal.
const MAX_NAMES: usize = 8;

/// What an acceptable offer can receive.
#[derive(Debug)]
pub struct OfferSummary {
    /// The offer, parsed.
    pub(crate) sdp: SdpOffer,
    /// The mid of the video section we send on.
    pub(crate) video_mid: String,
    /// The mid of the audio section that can receive Opus, if any.
    pub(crate) audio_mid: Option<String>,
}

impl OfferSummary {
    /// It has an audio section that can receive Opus.
    pub fn opus(&self) -> bool {
        self.audio_mid.is_some()
    }
}

/// One `m=` section, as far as we look at it.
#[derive(Default)]
struct Section {
    kind: String,
    /// `(payload type, codec name)` from `a=rtpmap`.
    rtpmap: Vec<(String, String)>,
    /// Payload types whose `a=fmtp` says packetization-mode=1.
    mode1: Vec<String>,
    /// Direction attribute (sendrecv when absent).
    direction: Option<String>,
    /// `a=mid`.
    mid: Option<String>,
}

impl Section {
    /// The offerer will receive on it.
    fn receives(&self) -> bool {
        matches!(
            self.direction.as_deref(),
            None | Some("sendrecv" | "recvonly")
        )
    }
    /// The offerer will send on it.
    fn sends(&self) -> bool {
        matches!(
            self.direction.as_deref(),
            None | Some("sendrecv" | "sendonly")
        )
    }
    fn has(&self, codec: &str) -> bool {
        self.rtpmap
            .iter()
            .any(|(_, c)| c.eq_ignore_ascii_case(codec))
    }
    fn has_h264_mode1(&self) -> bool {
        self.rtpmap
            .iter()
            .any(|(pt, c)| c.eq_ignore_ascii_case("H264") && self.mode1.contains(pt))
    }
}

fn sections(sdp: &str) -> Vec<Section> {
    let mut v: Vec<Section> = vec![];
    for line in sdp.lines().map(str::trim_end) {
        if let Some(m) = line.strip_prefix("m=") {
            v.push(Section {
                kind: m.split(' ').next().unwrap_or_default().to_string(),
                ..Section::default()
            });
            continue;
        }
        let Some(s) = v.last_mut() else { continue };
        if let Some(rest) = line.strip_prefix("a=rtpmap:") {
            let (pt, enc) = rest.split_once(' ').unwrap_or((rest, ""));
            let name = enc.split('/').next().unwrap_or_default();
            s.rtpmap.push((pt.to_string(), name.to_string()));
        } else if let Some(rest) = line.strip_prefix("a=fmtp:") {
            let (pt, params) = rest.split_once(' ').unwrap_or((rest, ""));
            if params
                .split(';')
                .any(|p| p.trim().eq_ignore_ascii_case("packetization-mode=1"))
            {
                s.mode1.push(pt.to_string());
            }
        } else if let Some(mid) = line.strip_prefix("a=mid:") {
            s.mid = Some(mid.trim().to_string());
        } else if let Some(d) = line.strip_prefix("a=") {
            if matches!(d, "sendrecv" | "recvonly" | "sendonly" | "inactive") {
                s.direction = Some(d.to_string());
            }
        }
    }
    v
}

/// The offer parsed (bounded in size first) and its sections.
fn parse(sdp: &str) -> Result<(SdpOffer, Vec<Section>), OfferError> {
    if sdp.len() > MAX_OFFER_BYTES {
        return Err(OfferError::TooLarge(sdp.len()));
    }
    let parsed =
        SdpOffer::from_sdp_string(sdp).map_err(|e| OfferError::Malformed(e.to_string()))?;
    Ok((parsed, sections(sdp)))
}

/// Codec names of some sections, for a refusal ("no codecs" when there are none).
fn offered(secs: &[&Section]) -> String {
    let mut names: Vec<String> = vec![];
    for s in secs {
        for (pt, c) in &s.rtpmap {
            let name = if c.eq_ignore_ascii_case("H264") && !s.mode1.contains(pt) {
                "H264 (packetization-mode 0)".to_string()
            } else {
                c.clone()
            };
            if !names.contains(&name) && names.len() < MAX_NAMES {
                names.push(name);
            }
        }
    }
    if names.is_empty() {
        "no codecs".to_string()
    } else {
        names.join(", ")
    }
}

/// Checks a WHIP offer (the publisher sends): a video section that sends H.264 with
/// packetization-mode=1, and an audio section, if any, that sends Opus.
pub fn check_whip_offer(sdp: &str) -> Result<OfferSummary, OfferError> {
    let (parsed, secs) = parse(sdp)?;
    let videos: Vec<&Section> = secs
        .iter()
        .filter(|s| s.kind == "video" && s.sends())
        .collect();
    if videos.is_empty() {
        return Err(OfferError::NoVideoToSend);
    }
    let video = videos.iter().find(|s| s.has_h264_mode1()).ok_or_else(|| {
        OfferError::NoSupportedIngestCodec {
            offered: offered(&videos),
        }
    })?;
    let video_mid = video
        .mid
        .clone()
        .ok_or_else(|| OfferError::Malformed("the video section has no a=mid".into()))?;
    let audios: Vec<&Section> = secs
        .iter()
        .filter(|s| s.kind == "audio" && s.sends())
        .collect();
    let audio_mid = match audios.iter().find(|s| s.has("opus")) {
        Some(a) => Some(
            a.mid
                .clone()
                .ok_or_else(|| OfferError::Malformed("the audio section has no a=mid".into()))?,
        ),
        None if audios.is_empty() => None,
        None => {
            return Err(OfferError::NoOpus {
                offered: offered(&audios),
            })
        }
    };
    Ok(OfferSummary {
        sdp: parsed,
        video_mid,
        audio_mid,
    })
}

/// Checks a WHEP offer: [`OfferError`] says what is wrong with it.
pub fn check_offer(sdp: &str) -> Result<OfferSummary, OfferError> {
    let (parsed, secs) = parse(sdp)?;
    let videos: Vec<&Section> = secs
        .iter()
        .filter(|s| s.kind == "video" && s.receives())
        .collect();
    if videos.is_empty() {
        return Err(OfferError::NoVideo);
    }
    let Some(video) = videos.iter().find(|s| s.has_h264_mode1()) else {
        return Err(OfferError::NoSupportedCodec {
            offered: offered(&videos),
        });
    };
    let video_mid = video
        .mid
        .clone()
        .ok_or_else(|| OfferError::Malformed("the video section has no a=mid".into()))?;
    let audio_mid = secs
        .iter()
        .find(|s| s.kind == "audio" && s.receives() && s.has("opus"))
        .and_then(|s| s.mid.clone());
    Ok(OfferSummary {
        sdp: parsed,
        video_mid,
        audio_mid,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An offer as Debian's Chromium makes it for two recvonly transceivers (trimmed to the
    /// lines that matter; the ICE and DTLS lines are real ones).
    pub(crate) fn chromium_offer(video_codecs: &str, audio: bool) -> String {
        let mut s = String::from(
            "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
             a=group:BUNDLE 0 1\r\na=extmap-allow-mixed\r\na=msid-semantic: WMS\r\n",
        );
        s.push_str(&format!(
            "m=video 9 UDP/TLS/RTP/SAVPF {pts}\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n\
             a=ice-ufrag:Ab1c\r\na=ice-pwd:0123456789abcdefghijklmn\r\na=ice-options:trickle\r\n\
             a=fingerprint:sha-256 1F:2A:3B:4C:5D:6E:7F:80:91:A2:B3:C4:D5:E6:F7:08:19:2A:3B:4C:5D:6E:7F:80:91:A2:B3:C4:D5:E6:F7:08\r\n\
             a=setup:actpass\r\na=mid:0\r\na=recvonly\r\na=rtcp-mux\r\na=rtcp-rsize\r\n{video_codecs}",
            pts = pts(video_codecs)
        ));
        if audio {
            s.push_str(
                "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n\
                 a=ice-ufrag:Ab1c\r\na=ice-pwd:0123456789abcdefghijklmn\r\n\
                 a=fingerprint:sha-256 1F:2A:3B:4C:5D:6E:7F:80:91:A2:B3:C4:D5:E6:F7:08:19:2A:3B:4C:5D:6E:7F:80:91:A2:B3:C4:D5:E6:F7:08\r\n\
                 a=setup:actpass\r\na=mid:1\r\na=recvonly\r\na=rtcp-mux\r\n\
                 a=rtpmap:111 opus/48000/2\r\na=rtcp-fb:111 transport-cc\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n",
            );
        } else {
            s = s.replace("a=group:BUNDLE 0 1", "a=group:BUNDLE 0");
        }
        s
    }

    fn pts(codecs: &str) -> String {
        codecs
            .lines()
            .filter_map(|l| l.strip_prefix("a=rtpmap:"))
            .filter_map(|l| l.split(' ').next())
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub(crate) const H264: &str = "a=rtpmap:102 H264/90000\r\na=rtcp-fb:102 goog-remb\r\n\
        a=rtcp-fb:102 transport-cc\r\na=rtcp-fb:102 ccm fir\r\na=rtcp-fb:102 nack\r\na=rtcp-fb:102 nack pli\r\n\
        a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
        a=rtpmap:103 rtx/90000\r\na=fmtp:103 apt=102\r\n";
    const VP8: &str = "a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n";
    const H264_MODE0: &str = "a=rtpmap:106 H264/90000\r\na=fmtp:106 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f\r\n";

    #[test]
    fn a_chromium_offer_with_h264_and_opus_is_accepted() {
        let s = check_offer(&chromium_offer(&format!("{VP8}{H264}"), true)).unwrap();
        assert!(s.opus());
        assert_eq!(
            (s.video_mid.as_str(), s.audio_mid.as_deref()),
            ("0", Some("1"))
        );
        let s = check_offer(&chromium_offer(H264, false)).unwrap();
        assert!(!s.opus());
    }

    #[test]
    fn garbage_is_malformed_with_the_parsers_reason() {
        for bad in ["", "hello", "v=0\r\nm=video\r\n", "\u{0}\u{1}\u{2}"] {
            match check_offer(bad) {
                Err(OfferError::Malformed(why)) => assert!(!why.is_empty()),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn too_large_is_refused_before_parsing() {
        let big = "a".repeat(MAX_OFFER_BYTES + 1);
        assert_eq!(
            check_offer(&big).unwrap_err(),
            OfferError::TooLarge(MAX_OFFER_BYTES + 1)
        );
    }

    #[test]
    fn no_h264_says_what_was_offered() {
        let e = check_offer(&chromium_offer(&format!("{VP8}{H264_MODE0}"), true)).unwrap_err();
        let OfferError::NoSupportedCodec { offered } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(offered, "VP8, rtx, H264 (packetization-mode 0)");
        assert!(e.to_string().contains("packetization-mode=1"), "{e}");
    }

    /// A publisher's offer: the same sections, sending.
    fn whip_offer(video_codecs: &str, audio: bool) -> String {
        chromium_offer(video_codecs, audio).replace("a=recvonly", "a=sendonly")
    }

    #[test]
    fn a_whip_offer_must_send_h264_and_opus() {
        let s = check_whip_offer(&whip_offer(&format!("{VP8}{H264}"), true)).unwrap();
        assert_eq!(
            (s.video_mid.as_str(), s.audio_mid.as_deref()),
            ("0", Some("1"))
        );
        assert!(!check_whip_offer(&whip_offer(H264, false)).unwrap().opus());
        assert_eq!(
            check_whip_offer(&chromium_offer(H264, true)).unwrap_err(),
            OfferError::NoVideoToSend,
            "a viewer's offer is not a publisher's"
        );
        let e = check_whip_offer(&whip_offer(&format!("{VP8}{H264_MODE0}"), true)).unwrap_err();
        assert_eq!(
            e,
            OfferError::NoSupportedIngestCodec {
                offered: "VP8, rtx, H264 (packetization-mode 0)".into()
            }
        );
        assert!(e.to_string().contains("takes H.264"), "{e}");
        let pcmu = whip_offer(H264, true).replace("opus/48000/2", "PCMU/8000");
        let e = check_whip_offer(&pcmu).unwrap_err();
        assert_eq!(
            e,
            OfferError::NoOpus {
                offered: "PCMU".into()
            }
        );
        assert!(matches!(
            check_whip_offer("v=0\r\n"),
            Err(OfferError::Malformed(_))
        ));
    }

    #[test]
    fn an_offer_that_only_sends_has_no_video_to_receive() {
        let sdp = chromium_offer(H264, false).replace("a=recvonly", "a=sendonly");
        assert_eq!(check_offer(&sdp).unwrap_err(), OfferError::NoVideo);
    }
}
