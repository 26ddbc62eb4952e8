//! Sans-IO WebRTC for ferrocast's WHEP playback: the pure parts around
//! [str0m](https://docs.rs/str0m) (itself sans-IO), so the server's driver only owns the UDP
//! socket, the clock and the hub.
//!
//! Nothing here touches a socket or reads the clock: every input carries `now`, and the peer
//! says when it next needs the time.
//!
//! ```text
//!  POST /whep offer ─▶ offer::check ─▶ Peer::answer ─▶ answer SDP (ICE-lite, one candidate)
//!  UDP datagram ──▶ stun::username (which peer) ─▶ Peer::handle_datagram(now, …) ─┐
//!  timer ─────────────────────────────────────────▶ Peer::handle_timeout(now) ─────┼─▶ Peer::poll()
//!  hub frame (FLV) ─▶ h264::AnnexB ─▶ timeline::Timeline ─▶ Peer::write_video ─────┘   Transmit → socket
//!                                                                                     Event (connected,
//!                                                                                       keyframe wanted,
//!                                                                                       bandwidth estimate,
//!                                                                                       ended)
//!                                                                                     Timeout → timer
//!  admission::Admission: sessions in total and per IP, decided before a peer is made
//! ```
//!
//! | spec | module |
//! |---|---|
//! | RFC 8866 SDP, RFC 6184 §8.1 H.264 fmtp (packetization-mode), RFC 7587 Opus | [`offer`] |
//! | RFC 8445 ICE (lite), RFC 5764 DTLS-SRTP, RFC 4585 NACK/PLI, draft-holmer-rmcat-transport-wide-cc-extensions-01 TWCC and GoogCC (draft-ietf-rmcat-gcc-02) bandwidth estimation, REMB — in str0m | [`peer`] |
//! | RFC 8489 STUN USERNAME (§14.3) for demultiplexing one port | [`stun`] |
//! | ISO/IEC 14496-15 AVCC → ITU-T H.264 Annex B byte stream | [`h264`] |
//! | RFC 3550 §5.1 RTP timestamps (90 kHz video, 48 kHz Opus) | [`timeline`] |
//! | draft-ietf-wish-whep: limits a server applies | [`admission`] |
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod admission;
mod error;
pub mod h264;
pub mod ingest;
pub mod offer;
pub mod peer;
pub mod stun;
pub mod timeline;

pub use admission::{Admission, Refusal};
pub use error::{EndReason, OfferError};
pub use offer::{check_offer, check_whip_offer, OfferSummary};
pub use peer::{Estimation, Peer, PeerConfig, PeerEvent, Poll, Sample, Track};

/// Installs str0m's crypto provider (aws-lc-rs) for the process; call once before the first
/// [`Peer`]. Calling it again is harmless.
pub fn init_crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| str0m::crypto::from_feature_flags().install_process_default());
}
