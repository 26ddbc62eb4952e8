//! Why an offer is refused and why a session ended, each with the party at fault.

/// Why an SDP offer cannot be answered. Every variant is the offerer's fault (a 4xx).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OfferError {
    /// Not SDP, or SDP that str0m cannot take (missing fingerprint, ICE credentials, …).
    #[error("malformed SDP offer: {0}")]
    Malformed(String),
    /// Larger than [`crate::offer::MAX_OFFER_BYTES`].
    #[error("the SDP offer is {0} bytes; at most {max} are accepted", max = crate::offer::MAX_OFFER_BYTES)]
    TooLarge(usize),
    /// No `m=video` section that can receive.
    #[error("the offer has no video section that can receive (add a recvonly video transceiver)")]
    NoVideo,
    /// A video section, but none of its codecs is H.264 with packetization-mode=1.
    #[error("no supported video codec in the offer: this server sends H.264 (packetization-mode=1); the offer has {offered}")]
    NoSupportedCodec {
        /// What the offer lists, for the reason text.
        offered: String,
    },
    /// WHIP: no `m=video` section that sends.
    #[error("the offer has no video section that sends (add the camera's video track, sendonly)")]
    NoVideoToSend,
    /// WHIP: a video section that sends, but not H.264 with packetization-mode=1.
    #[error("no supported video codec in the offer: this server takes H.264 (packetization-mode=1; OBS: x264 or NVENC H.264, ffmpeg: -c:v libx264 -bf 0); the offer has {offered}")]
    NoSupportedIngestCodec {
        /// What the offer lists, for the reason text.
        offered: String,
    },
    /// WHIP: an audio section that sends, but not Opus.
    #[error("unsupported audio codec in the offer: this server takes Opus (or no audio); the offer has {offered}")]
    NoOpus {
        /// What the offer lists, for the reason text.
        offered: String,
    },
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EndReason {
    /// The peer never completed ICE (no valid STUN check) within the deadline: its fault.
    #[error("ICE did not complete within {0:?}")]
    IceTimeout(std::time::Duration),
    /// ICE worked but the DTLS handshake did not finish within the deadline: its fault.
    #[error("DTLS did not complete within {0:?} of ICE")]
    DtlsTimeout(std::time::Duration),
    /// The peer stopped answering (ICE consent lost): it went away.
    #[error("the peer stopped answering (ICE disconnected)")]
    Disconnected,
    /// The peer closed DTLS, or we closed the session (DELETE, stream ended).
    #[error("closed")]
    Closed,
    /// str0m refused something the peer sent (bad DTLS, SRTP): the peer's fault.
    #[error("protocol error from the peer: {0}")]
    Protocol(String),
}

impl EndReason {
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            EndReason::IceTimeout(_) => "ice_timeout",
            EndReason::DtlsTimeout(_) => "dtls_timeout",
            EndReason::Disconnected => "disconnected",
            EndReason::Closed => "closed",
            EndReason::Protocol(_) => "protocol",
        }
    }
}
