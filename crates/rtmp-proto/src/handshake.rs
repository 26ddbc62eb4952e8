//! The RTMP handshake (Adobe RTMP spec 1.0 §5.2), plus the FP9 "digest" variant.
//!
//! ```text
//!   client                                  server
//!     C0 (1 byte: version 3)  ───────────▶
//!     C1 (1536 bytes)         ───────────▶
//!                             ◀───────────  S0 + S1 + S2 (1 + 1536 + 1536 bytes)
//!     C2 (1536 bytes)         ───────────▶
//!     first chunks ...        ───────────▶
//! ```
//!
//! Every C1/S1/C2/S2 packet is 1536 bytes: a 4-byte big-endian time, a 4-byte field and
//! 1528 bytes of filler.
//!
//! * **Simple** handshake (the published spec): the 4-byte field of C1/S1 is zero, and
//!   C2/S2 echo the peer's S1/C1.
//! * **Complex** ("FP9", "digest") handshake, spoken by Flash Player 9+, Flash Media Server,
//!   ffmpeg and librtmp with SWF verification: the 4-byte field carries a software version
//!   and C1/S1 embed a 32-byte HMAC-SHA256 digest at an offset derived from the packet
//!   itself. Two layouts ("schemes") exist:
//!
//!   | scheme | offset of the digest                         |
//!   |--------|-----------------------------------------------|
//!   | 0      | `(c[8] + c[9] + c[10] + c[11]) % 728 + 12`    |
//!   | 1      | `(c[772] + c[773] + c[774] + c[775]) % 728 + 776` |
//!
//!   The digest is computed over the packet with the 32 digest bytes cut out, keyed with
//!   the first 30 bytes of the Flash Player key (client) or the first 36 bytes of the
//!   Flash Media Server key (server). S2 (resp. C2) is 1504 filler bytes followed by
//!   `HMAC(key = HMAC(full FMS key (resp. FP key), peer's C1 (resp. S1) digest), filler)`.
//!
//! The server answers a complex C1 with a complex S1/S2 (same scheme), and anything else —
//! including C1s that claim a version but carry no valid digest, which several encoders
//! send — with a simple echo. It never fails because of C1's content: only a wrong C0 is
//! fatal. C2 is consumed but not checked (real clients differ in what they send there).
//!
//! Both state machines are sans-IO: feed whatever bytes arrived, write out whatever they
//! produce. They consume exactly the handshake bytes from the front of the input and leave
//! the rest (the first RTMP chunks) in place.

use bytes::{Buf, BytesMut};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The only protocol version supported: plain, unencrypted RTMP (C0/S0 byte).
pub const RTMP_VERSION: u8 = 3;

/// Size of each of C1, C2, S1 and S2.
pub const HANDSHAKE_SIZE: usize = 1536;

/// Size of an HMAC-SHA256 digest embedded in the complex handshake.
pub const DIGEST_SIZE: usize = 32;

/// The version [`ServerHandshake`] announces in a complex S1: 13.14.10.13, the value
/// nginx-rtmp and FMS-compatible servers use. Anything non-zero with a major version >= 3
/// satisfies ffmpeg and librtmp.
pub const SERVER_VERSION: [u8; 4] = [0x0D, 0x0E, 0x0A, 0x0D];

/// The Flash Player version [`ClientHandshake`] announces in a complex C1: 10.0.32.18.
pub const CLIENT_VERSION: [u8; 4] = [0x0A, 0x00, 0x20, 0x12];

/// Length of the filler that precedes the digest in a complex C2/S2.
const RESPONSE_FILLER: usize = HANDSHAKE_SIZE - DIGEST_SIZE;

/// Modulus of the digest offset computation, common to both schemes.
const OFFSET_MODULUS: usize = 728;

/// The 32 bytes shared by the tails of both Genuine keys.
const KEY_TAIL: [u8; 32] = [
    0xF0, 0xEE, 0xC2, 0x4A, 0x80, 0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0, 0xD1, 0x02, 0x9E, 0x7E, 0x57,
    0x6E, 0xEC, 0x5D, 0x2D, 0x29, 0x80, 0x6F, 0xAB, 0x93, 0xB8, 0xE6, 0x36, 0xCF, 0xEB, 0x31, 0xAE,
];

/// "Genuine Adobe Flash Player 001" + [`KEY_TAIL`]. The 30-byte text keys C1's digest; the
/// full 62 bytes key the HMAC that keys C2's digest.
const GENUINE_FP_KEY: [u8; 62] = concat_key(b"Genuine Adobe Flash Player 001", &KEY_TAIL);
const GENUINE_FP_KEY_TEXT_LEN: usize = 30;

/// "Genuine Adobe Flash Media Server 001" + [`KEY_TAIL`]. The 36-byte text keys S1's digest;
/// the full 68 bytes key the HMAC that keys S2's digest.
const GENUINE_FMS_KEY: [u8; 68] = concat_key(b"Genuine Adobe Flash Media Server 001", &KEY_TAIL);
const GENUINE_FMS_KEY_TEXT_LEN: usize = 36;

const fn concat_key<const A: usize, const B: usize, const N: usize>(
    a: &[u8; A],
    b: &[u8; B],
) -> [u8; N] {
    assert!(A + B == N, "key length mismatch");
    let mut out = [0u8; N];
    let mut i = 0;
    while i < A {
        out[i] = a[i];
        i += 1;
    }
    while i < N {
        out[i] = b[i - A];
        i += 1;
    }
    out
}

/// Why a handshake failed. Every variant means the connection should be closed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeError {
    /// Server side: C0 was not 3 (6 and 8 are RTMPE, anything else is not RTMP at all —
    /// often TLS or HTTP sent to the RTMP port).
    #[error("client asked for RTMP version {0}; only version 3 (plain RTMP) is supported")]
    UnsupportedVersion(u8),
    /// Client side: S0 was not 3.
    #[error("server answered with RTMP version {0}; only version 3 (plain RTMP) is supported")]
    UnexpectedServerVersion(u8),
    /// Client side: the server proved it understood our complex C1 (valid S1 digest) but
    /// its S2 neither carries the matching digest nor echoes C1.
    #[error("server's S2 digest does not match our C1 digest")]
    DigestMismatch,
}

/// Which handshake flavour was negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeKind {
    /// Plain spec handshake: S2/C2 echo C1/S1.
    Simple,
    /// FP9 digest handshake; `scheme` (0 or 1) is the digest layout in use.
    Complex {
        /// Digest layout: 0 = offset derived from bytes 8..12, 1 = from bytes 772..776.
        scheme: u8,
    },
}

/// Progress reported by `handle_input`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeStatus {
    /// The handshake needs more input; flush the output and read from the socket.
    NeedMore,
    /// The handshake is complete; any bytes left in the input are RTMP chunks.
    Done,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ServerState {
    C0,
    C1,
    C2,
    Done,
    Failed(HandshakeError),
}

/// Server side of the handshake: reads C0 C1 C2, writes S0 S1 S2.
pub struct ServerHandshake {
    state: ServerState,
    random: Box<[u8; HANDSHAKE_SIZE]>,
    epoch: u32,
    kind: Option<HandshakeKind>,
    peer_epoch: Option<u32>,
    peer_version: Option<[u8; 4]>,
}

impl ServerHandshake {
    /// `random` fills S1/S2 random parts; `epoch` is S1's time field.
    ///
    /// S1's filler is `random[8..]`; the 1504-byte filler of a complex S2 is `random`
    /// rotated by half its length, so the two packets never look alike.
    pub fn new(random: [u8; HANDSHAKE_SIZE], epoch: u32) -> Self {
        Self {
            state: ServerState::C0,
            random: Box::new(random),
            epoch,
            kind: None,
            peer_epoch: None,
            peer_version: None,
        }
    }

    /// Consumes exactly the handshake bytes it needs from the front of `input` (C0, C1, then
    /// C2), appends S0+S1+S2 to `out` as soon as C0+C1 are complete, returns `Done` once C2
    /// is consumed. Bytes after C2 (the first chunks) stay in `input`.
    ///
    /// A wrong C0 is reported as soon as that first byte arrives (nothing is consumed or
    /// written); the error is sticky. Calling again after `Done` returns `Done` and consumes
    /// nothing.
    pub fn handle_input(
        &mut self,
        input: &mut BytesMut,
        out: &mut Vec<u8>,
    ) -> Result<HandshakeStatus, HandshakeError> {
        loop {
            match &self.state {
                ServerState::C0 => {
                    let Some(&version) = input.first() else {
                        return Ok(HandshakeStatus::NeedMore);
                    };
                    if version != RTMP_VERSION {
                        let err = HandshakeError::UnsupportedVersion(version);
                        self.state = ServerState::Failed(err.clone());
                        return Err(err);
                    }
                    input.advance(1);
                    self.state = ServerState::C1;
                }
                ServerState::C1 => {
                    let Some(c1) = take_packet(input) else {
                        return Ok(HandshakeStatus::NeedMore);
                    };
                    self.respond(&c1, out);
                    self.state = ServerState::C2;
                }
                ServerState::C2 => {
                    if input.len() < HANDSHAKE_SIZE {
                        return Ok(HandshakeStatus::NeedMore);
                    }
                    input.advance(HANDSHAKE_SIZE);
                    self.state = ServerState::Done;
                }
                ServerState::Done => return Ok(HandshakeStatus::Done),
                ServerState::Failed(err) => return Err(err.clone()),
            }
        }
    }

    /// The negotiated flavour; known once C1 has been read.
    pub fn kind(&self) -> Option<HandshakeKind> {
        self.kind
    }

    /// C1's time field, once C1 has been read.
    pub fn peer_epoch(&self) -> Option<u32> {
        self.peer_epoch
    }

    /// C1's version field (e.g. `[9, 0, 124, 2]` for ffmpeg, zeros for simple clients),
    /// once C1 has been read. Informational: it is only trusted if [`Self::kind`] is
    /// `Complex`.
    pub fn peer_version(&self) -> Option<[u8; 4]> {
        self.peer_version
    }

    /// Writes S0 S1 S2 for `c1`.
    fn respond(&mut self, c1: &[u8; HANDSHAKE_SIZE], out: &mut Vec<u8>) {
        self.peer_epoch = Some(u32::from_be_bytes([c1[0], c1[1], c1[2], c1[3]]));
        let version = [c1[4], c1[5], c1[6], c1[7]];
        self.peer_version = Some(version);

        let complex = if version == [0; 4] {
            None
        } else {
            find_digest(c1, &GENUINE_FP_KEY[..GENUINE_FP_KEY_TEXT_LEN], 0)
        };

        out.reserve(1 + 2 * HANDSHAKE_SIZE);
        out.push(RTMP_VERSION);
        match complex {
            None => {
                self.kind = Some(HandshakeKind::Simple);
                let mut s1 = [0u8; HANDSHAKE_SIZE];
                s1[..4].copy_from_slice(&self.epoch.to_be_bytes());
                // s1[4..8] stays zero: announces the simple handshake.
                s1[8..].copy_from_slice(&self.random[8..]);
                out.extend_from_slice(&s1);
                // S2 = C1 verbatim (librtmp compares all 1536 bytes, time fields included).
                out.extend_from_slice(c1);
            }
            Some((scheme, offset)) => {
                self.kind = Some(HandshakeKind::Complex { scheme });
                let client_digest = &c1[offset..offset + DIGEST_SIZE];

                let mut s1 = [0u8; HANDSHAKE_SIZE];
                s1[..4].copy_from_slice(&self.epoch.to_be_bytes());
                s1[4..8].copy_from_slice(&SERVER_VERSION);
                s1[8..].copy_from_slice(&self.random[8..]);
                embed_digest(
                    &mut s1,
                    scheme,
                    &GENUINE_FMS_KEY[..GENUINE_FMS_KEY_TEXT_LEN],
                );
                out.extend_from_slice(&s1);

                let mut filler = [0u8; RESPONSE_FILLER];
                for (i, b) in filler.iter_mut().enumerate() {
                    *b = self.random[(i + HANDSHAKE_SIZE / 2) % HANDSHAKE_SIZE];
                }
                out.extend_from_slice(&filler);
                out.extend_from_slice(&response_digest(&GENUINE_FMS_KEY, client_digest, &filler));
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ClientState {
    Start,
    S0,
    S1,
    S2,
    Done,
    Failed(HandshakeError),
}

/// Client side of the handshake: writes C0 C1, reads S0 S1, writes C2, reads S2.
pub struct ClientHandshake {
    state: ClientState,
    random: Box<[u8; HANDSHAKE_SIZE]>,
    epoch: u32,
    complex: bool,
    c1: Box<[u8; HANDSHAKE_SIZE]>,
    /// Offset of our digest in C1 (complex mode only).
    c1_digest_offset: Option<usize>,
    kind: Option<HandshakeKind>,
    peer_version: Option<[u8; 4]>,
    s2_echoed_c1: Option<bool>,
}

impl ClientHandshake {
    /// `random` fills C1/C2 random parts; `epoch` is C1's time field.
    ///
    /// `complex = true` sends an FP9-style digest C1 (scheme 0, version
    /// [`CLIENT_VERSION`] = 10.0.32.18, like Flash Player); `false` sends a plain one
    /// (version bytes zero).
    pub fn new(random: [u8; HANDSHAKE_SIZE], epoch: u32, complex: bool) -> Self {
        Self {
            state: ClientState::Start,
            random: Box::new(random),
            epoch,
            complex,
            c1: Box::new([0u8; HANDSHAKE_SIZE]),
            c1_digest_offset: None,
            kind: None,
            peer_version: None,
            s2_echoed_c1: None,
        }
    }

    /// Writes C0+C1.
    ///
    /// # Panics
    /// If called more than once.
    pub fn start(&mut self, out: &mut Vec<u8>) {
        assert!(
            self.state == ClientState::Start,
            "ClientHandshake::start called twice"
        );
        let c1 = &mut *self.c1;
        c1[..4].copy_from_slice(&self.epoch.to_be_bytes());
        c1[8..].copy_from_slice(&self.random[8..]);
        if self.complex {
            c1[4..8].copy_from_slice(&CLIENT_VERSION);
            let offset = embed_digest(c1, 0, &GENUINE_FP_KEY[..GENUINE_FP_KEY_TEXT_LEN]);
            self.c1_digest_offset = Some(offset);
        }
        out.reserve(1 + HANDSHAKE_SIZE);
        out.push(RTMP_VERSION);
        out.extend_from_slice(&self.c1[..]);
        self.state = ClientState::S0;
    }

    /// Reads S0+S1+S2; writes C2 as soon as S1 is complete; returns `Done` once S2 is
    /// consumed. Bytes after S2 stay in `input`. Errors are sticky; calling again after
    /// `Done` returns `Done` and consumes nothing.
    ///
    /// # Panics
    /// If [`Self::start`] has not been called.
    pub fn handle_input(
        &mut self,
        input: &mut BytesMut,
        out: &mut Vec<u8>,
    ) -> Result<HandshakeStatus, HandshakeError> {
        assert!(
            self.state != ClientState::Start,
            "ClientHandshake::start must be called before handle_input"
        );
        loop {
            match &self.state {
                ClientState::Start => unreachable!("checked above"),
                ClientState::S0 => {
                    let Some(&version) = input.first() else {
                        return Ok(HandshakeStatus::NeedMore);
                    };
                    if version != RTMP_VERSION {
                        return Err(self.fail(HandshakeError::UnexpectedServerVersion(version)));
                    }
                    input.advance(1);
                    self.state = ClientState::S1;
                }
                ClientState::S1 => {
                    let Some(s1) = take_packet(input) else {
                        return Ok(HandshakeStatus::NeedMore);
                    };
                    self.respond(&s1, out);
                    self.state = ClientState::S2;
                }
                ClientState::S2 => {
                    let Some(s2) = take_packet(input) else {
                        return Ok(HandshakeStatus::NeedMore);
                    };
                    self.check_s2(&s2)?;
                    self.state = ClientState::Done;
                }
                ClientState::Done => return Ok(HandshakeStatus::Done),
                ClientState::Failed(err) => return Err(err.clone()),
            }
        }
    }

    /// The negotiated flavour; known once S1 has been read. `Complex` only if we sent a
    /// digest C1 and the server's S1 carried a valid digest.
    pub fn kind(&self) -> Option<HandshakeKind> {
        self.kind
    }

    /// S1's version field, once S1 has been read.
    pub fn peer_version(&self) -> Option<[u8; 4]> {
        self.peer_version
    }

    /// Whether S2 echoed C1 (bytes 8.., the time fields are ignored); known once S2 has
    /// been read. Informational: in a simple handshake a non-echo is tolerated (as librtmp
    /// does, since some servers send arbitrary S2s).
    pub fn s2_echoed_c1(&self) -> Option<bool> {
        self.s2_echoed_c1
    }

    fn fail(&mut self, err: HandshakeError) -> HandshakeError {
        self.state = ClientState::Failed(err.clone());
        err
    }

    /// Writes C2 for `s1`.
    fn respond(&mut self, s1: &[u8; HANDSHAKE_SIZE], out: &mut Vec<u8>) {
        let version = [s1[4], s1[5], s1[6], s1[7]];
        self.peer_version = Some(version);
        let server_digest = if self.complex && version != [0; 4] {
            find_digest(s1, &GENUINE_FMS_KEY[..GENUINE_FMS_KEY_TEXT_LEN], 0)
        } else {
            None
        };
        out.reserve(HANDSHAKE_SIZE);
        match server_digest {
            None => {
                self.kind = Some(HandshakeKind::Simple);
                out.extend_from_slice(s1);
            }
            Some((scheme, offset)) => {
                self.kind = Some(HandshakeKind::Complex { scheme });
                let mut filler = [0u8; RESPONSE_FILLER];
                for (i, b) in filler.iter_mut().enumerate() {
                    *b = self.random[(i + HANDSHAKE_SIZE / 2) % HANDSHAKE_SIZE];
                }
                out.extend_from_slice(&filler);
                out.extend_from_slice(&response_digest(
                    &GENUINE_FP_KEY,
                    &s1[offset..offset + DIGEST_SIZE],
                    &filler,
                ));
            }
        }
    }

    fn check_s2(&mut self, s2: &[u8; HANDSHAKE_SIZE]) -> Result<(), HandshakeError> {
        let echoed = s2[8..] == self.c1[8..];
        self.s2_echoed_c1 = Some(echoed);
        if let (Some(HandshakeKind::Complex { .. }), Some(offset)) =
            (self.kind, self.c1_digest_offset)
        {
            let key = response_key(&GENUINE_FMS_KEY, &self.c1[offset..offset + DIGEST_SIZE]);
            if !echoed && !verify_hmac(&key, &[&s2[..RESPONSE_FILLER]], &s2[RESPONSE_FILLER..]) {
                return Err(self.fail(HandshakeError::DigestMismatch));
            }
        }
        Ok(())
    }
}

// Hand-written so that session structs deriving `Debug` don't dump kilobytes of filler.
impl std::fmt::Debug for ServerHandshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandshake")
            .field("state", &self.state)
            .field("epoch", &self.epoch)
            .field("kind", &self.kind)
            .field("peer_epoch", &self.peer_epoch)
            .field("peer_version", &self.peer_version)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ClientHandshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientHandshake")
            .field("state", &self.state)
            .field("epoch", &self.epoch)
            .field("complex", &self.complex)
            .field("kind", &self.kind)
            .field("peer_version", &self.peer_version)
            .field("s2_echoed_c1", &self.s2_echoed_c1)
            .finish_non_exhaustive()
    }
}

/// Removes one 1536-byte packet from the front of `input`, if complete.
fn take_packet(input: &mut BytesMut) -> Option<[u8; HANDSHAKE_SIZE]> {
    let bytes = input.get(..HANDSHAKE_SIZE)?;
    let mut packet = [0u8; HANDSHAKE_SIZE];
    packet.copy_from_slice(bytes);
    input.advance(HANDSHAKE_SIZE);
    Some(packet)
}

/// Offset of the 32-byte digest in a C1/S1 laid out with `scheme` (0 or 1).
/// Always within `12..=739` (scheme 0) or `776..=1503` (scheme 1), so the digest fits.
fn digest_offset(packet: &[u8; HANDSHAKE_SIZE], scheme: u8) -> usize {
    let base = if scheme == 0 { 8 } else { 772 };
    let sum: usize = packet[base..base + 4].iter().map(|&b| usize::from(b)).sum();
    sum % OFFSET_MODULUS + base + 4
}

fn new_mac(key: &[u8]) -> Hmac<Sha256> {
    <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length")
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; DIGEST_SIZE] {
    let mut mac = new_mac(key);
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Constant-time check of `expected` against HMAC(key, parts).
fn verify_hmac(key: &[u8], parts: &[&[u8]], expected: &[u8]) -> bool {
    let mut mac = new_mac(key);
    for part in parts {
        mac.update(part);
    }
    mac.verify_slice(expected).is_ok()
}

/// The C1/S1 digest: HMAC over the packet minus the digest bytes at `offset`.
fn packet_digest(packet: &[u8; HANDSHAKE_SIZE], offset: usize, key: &[u8]) -> [u8; DIGEST_SIZE] {
    hmac_sha256(key, &[&packet[..offset], &packet[offset + DIGEST_SIZE..]])
}

/// Places the `scheme` digest keyed with `key` into `packet`; returns its offset.
fn embed_digest(packet: &mut [u8; HANDSHAKE_SIZE], scheme: u8, key: &[u8]) -> usize {
    let offset = digest_offset(packet, scheme);
    let digest = packet_digest(packet, offset, key);
    packet[offset..offset + DIGEST_SIZE].copy_from_slice(&digest);
    offset
}

/// Looks for a valid digest keyed with `key`, trying scheme `first` then the other one.
/// Returns the scheme and the digest offset.
fn find_digest(packet: &[u8; HANDSHAKE_SIZE], key: &[u8], first: u8) -> Option<(u8, usize)> {
    [first, first ^ 1].into_iter().find_map(|scheme| {
        let offset = digest_offset(packet, scheme);
        verify_hmac(
            key,
            &[&packet[..offset], &packet[offset + DIGEST_SIZE..]],
            &packet[offset..offset + DIGEST_SIZE],
        )
        .then_some((scheme, offset))
    })
}

/// Key of a C2/S2 digest: HMAC(full Genuine key, the peer's C1/S1 digest).
fn response_key(full_key: &[u8], peer_digest: &[u8]) -> [u8; DIGEST_SIZE] {
    hmac_sha256(full_key, &[peer_digest])
}

/// The trailing 32 bytes of a complex C2/S2.
fn response_digest(full_key: &[u8], peer_digest: &[u8], filler: &[u8]) -> [u8; DIGEST_SIZE] {
    hmac_sha256(&response_key(full_key, peer_digest), &[filler])
}

#[cfg(test)]
mod tests {
    use super::*;

    const RTMPDUMP_C0C1: &[u8] = include_bytes!("testdata/c0c1-rtmpdump.bin");
    const RTMPDUMP_FP9_C0C1: &[u8] = include_bytes!("testdata/c0c1-rtmpdump-fp9.bin");
    const FFMPEG_C0C1: &[u8] = include_bytes!("testdata/c0c1-ffmpeg.bin");
    const GSTREAMER_C0C1: &[u8] = include_bytes!("testdata/c0c1-gstreamer.bin");

    /// Deterministic pseudo-random bytes (xorshift64*), good enough for filler and fuzzing.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn fill(&mut self, buf: &mut [u8]) {
            for b in buf {
                *b = (self.next() >> 56) as u8;
            }
        }
        fn block(&mut self) -> [u8; HANDSHAKE_SIZE] {
            let mut b = [0u8; HANDSHAKE_SIZE];
            self.fill(&mut b);
            b
        }
    }

    fn packet(bytes: &[u8]) -> [u8; HANDSHAKE_SIZE] {
        bytes.try_into().unwrap()
    }

    /// Checks that `s1` carries a valid FMS digest under `scheme` and returns it.
    fn s1_digest(s1: &[u8; HANDSHAKE_SIZE], scheme: u8) -> [u8; DIGEST_SIZE] {
        let offset = digest_offset(s1, scheme);
        let digest: [u8; DIGEST_SIZE] = s1[offset..offset + DIGEST_SIZE].try_into().unwrap();
        assert_eq!(
            packet_digest(s1, offset, &GENUINE_FMS_KEY[..36]),
            digest,
            "S1 digest (scheme {scheme})"
        );
        digest
    }

    /// Full check of the server's answer to a complex C1 whose digest is under `scheme`.
    fn assert_complex_answer(c1: &[u8; HANDSHAKE_SIZE], scheme: u8, answer: &[u8]) {
        assert_eq!(answer.len(), 1 + 2 * HANDSHAKE_SIZE);
        assert_eq!(answer[0], RTMP_VERSION);
        let s1 = packet(&answer[1..1 + HANDSHAKE_SIZE]);
        let s2 = packet(&answer[1 + HANDSHAKE_SIZE..]);
        assert_eq!(s1[4..8], SERVER_VERSION);
        s1_digest(&s1, scheme);
        // Clients that try the other layout first (ffmpeg tries scheme 1 first) must still
        // land on `scheme`.
        assert_eq!(
            find_digest(&s1, &GENUINE_FMS_KEY[..36], scheme ^ 1),
            Some((scheme, digest_offset(&s1, scheme)))
        );
        let c1_off = digest_offset(c1, scheme);
        let key = hmac_sha256(&GENUINE_FMS_KEY, &[&c1[c1_off..c1_off + 32]]);
        assert_eq!(hmac_sha256(&key, &[&s2[..1504]])[..], s2[1504..]);
        assert_ne!(s2[8..], c1[8..], "complex S2 is not an echo");
    }

    fn assert_simple_answer(c1: &[u8], answer: &[u8], epoch: u32, random: &[u8; HANDSHAKE_SIZE]) {
        assert_eq!(answer.len(), 1 + 2 * HANDSHAKE_SIZE);
        assert_eq!(answer[0], RTMP_VERSION);
        let s1 = &answer[1..1 + HANDSHAKE_SIZE];
        assert_eq!(s1[..4], epoch.to_be_bytes());
        assert_eq!(s1[4..8], [0; 4]);
        assert_eq!(s1[8..], random[8..]);
        assert_eq!(&answer[1 + HANDSHAKE_SIZE..], c1, "simple S2 echoes C1");
    }

    /// Builds a complex C1 with the digest under `scheme`, as a Flash Player would.
    fn complex_c1(rng: &mut Rng, scheme: u8) -> [u8; HANDSHAKE_SIZE] {
        let mut c1 = rng.block();
        c1[..4].copy_from_slice(&0x1234u32.to_be_bytes());
        c1[4..8].copy_from_slice(&CLIENT_VERSION);
        embed_digest(&mut c1, scheme, &GENUINE_FP_KEY[..30]);
        c1
    }

    #[test]
    fn key_constants() {
        assert_eq!(&GENUINE_FP_KEY[..30], b"Genuine Adobe Flash Player 001");
        assert_eq!(
            &GENUINE_FMS_KEY[..36],
            b"Genuine Adobe Flash Media Server 001"
        );
        assert_eq!(GENUINE_FP_KEY[30..], KEY_TAIL);
        assert_eq!(GENUINE_FMS_KEY[36..], KEY_TAIL);
        assert_eq!(KEY_TAIL[0], 0xF0);
        assert_eq!(KEY_TAIL[31], 0xAE);
    }

    #[test]
    fn digest_offsets_stay_in_range() {
        let mut p = [0u8; HANDSHAKE_SIZE];
        assert_eq!(digest_offset(&p, 0), 12);
        assert_eq!(digest_offset(&p, 1), 776);
        p[8..12].fill(0xFF);
        p[772..776].fill(0xFF);
        for scheme in [0, 1] {
            for v in 0..=255u8 {
                p[8..12].fill(v);
                p[772..776].fill(v);
                let off = digest_offset(&p, scheme);
                let (lo, hi) = if scheme == 0 {
                    (12, 772)
                } else {
                    (776, HANDSHAKE_SIZE)
                };
                assert!(
                    off >= lo && off + DIGEST_SIZE <= hi,
                    "scheme {scheme}: {off}"
                );
            }
        }
    }

    /// Runs client and server against each other, feeding `step` bytes at a time (0 = all
    /// at once). Returns both kinds.
    fn round_trip(complex: bool, step: usize) -> (HandshakeKind, HandshakeKind) {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ step as u64 ^ u64::from(complex));
        let mut client = ClientHandshake::new(rng.block(), 1000, complex);
        let mut server = ServerHandshake::new(rng.block(), 2000);

        let mut c0c1 = Vec::new();
        client.start(&mut c0c1);
        assert_eq!(c0c1.len(), 1 + HANDSHAKE_SIZE);
        let c2_trailer = b"first chunk bytes";
        let s_trailer = b"server chunks";

        // Client -> server: C0 C1 (C2 is appended once the client produced it).
        let mut to_server = BytesMut::new();
        let mut server_out = Vec::new();
        let mut pending: Vec<u8> = c0c1;
        let feed = |pending: &mut Vec<u8>, buf: &mut BytesMut| {
            let n = if step == 0 {
                pending.len()
            } else {
                step.min(pending.len())
            };
            buf.extend_from_slice(&pending[..n]);
            pending.drain(..n);
        };
        while server_out.is_empty() {
            assert!(!pending.is_empty(), "server never answered");
            feed(&mut pending, &mut to_server);
            assert_eq!(
                server
                    .handle_input(&mut to_server, &mut server_out)
                    .unwrap(),
                HandshakeStatus::NeedMore
            );
        }
        assert!(pending.is_empty() && to_server.is_empty());
        assert_eq!(server_out.len(), 1 + 2 * HANDSHAKE_SIZE);
        let server_kind = server.kind().unwrap();

        // Server -> client: S0 S1 S2 + trailing chunk bytes.
        let mut pending: Vec<u8> = server_out;
        pending.extend_from_slice(s_trailer);
        let mut to_client = BytesMut::new();
        let mut client_out = Vec::new();
        loop {
            feed(&mut pending, &mut to_client);
            let status = client
                .handle_input(&mut to_client, &mut client_out)
                .unwrap();
            if status == HandshakeStatus::Done {
                break;
            }
            assert!(!pending.is_empty(), "client never finished");
        }
        to_client.extend_from_slice(&pending);
        assert_eq!(&to_client[..], s_trailer, "bytes after S2 stay in input");
        assert_eq!(client_out.len(), HANDSHAKE_SIZE, "exactly C2");
        assert_eq!(client.s2_echoed_c1(), Some(!complex));

        // Client -> server: C2 + first chunks.
        let mut pending = client_out.clone();
        pending.extend_from_slice(c2_trailer);
        let mut server_out = Vec::new();
        loop {
            feed(&mut pending, &mut to_server);
            let status = server
                .handle_input(&mut to_server, &mut server_out)
                .unwrap();
            if status == HandshakeStatus::Done {
                break;
            }
            assert!(!pending.is_empty(), "server never finished");
        }
        to_server.extend_from_slice(&pending);
        assert_eq!(&to_server[..], c2_trailer, "bytes after C2 stay in input");
        assert!(server_out.is_empty());

        // Done is sticky and consumes nothing.
        assert_eq!(
            server.handle_input(&mut to_server, &mut server_out),
            Ok(HandshakeStatus::Done)
        );
        assert_eq!(
            client.handle_input(&mut to_client, &mut server_out),
            Ok(HandshakeStatus::Done)
        );
        assert_eq!(&to_server[..], c2_trailer);
        assert_eq!(&to_client[..], s_trailer);
        assert!(server_out.is_empty());

        let client_kind = client.kind().unwrap();
        if complex {
            assert_eq!(server.peer_version(), Some(CLIENT_VERSION));
            assert_eq!(client.peer_version(), Some(SERVER_VERSION));
        } else {
            assert_eq!(server.peer_version(), Some([0; 4]));
            assert_eq!(client.peer_version(), Some([0; 4]));
        }
        assert_eq!(server.peer_epoch(), Some(1000));
        (client_kind, server_kind)
    }

    #[test]
    fn simple_round_trip() {
        for step in [0, 1, 7, 1000, 1537] {
            assert_eq!(
                round_trip(false, step),
                (HandshakeKind::Simple, HandshakeKind::Simple),
                "step {step}"
            );
        }
    }

    #[test]
    fn complex_round_trip() {
        for step in [0, 1, 7, 1000, 1537] {
            assert_eq!(
                round_trip(true, step),
                (
                    HandshakeKind::Complex { scheme: 0 },
                    HandshakeKind::Complex { scheme: 0 }
                ),
                "step {step}"
            );
        }
    }

    #[test]
    fn client_c2_is_fp9_response() {
        let mut rng = Rng(42);
        let mut client = ClientHandshake::new(rng.block(), 5, true);
        let mut server = ServerHandshake::new(rng.block(), 6);
        let mut c0c1 = Vec::new();
        client.start(&mut c0c1);
        let mut answer = Vec::new();
        server
            .handle_input(&mut BytesMut::from(&c0c1[..]), &mut answer)
            .unwrap();
        let s1 = packet(&answer[1..1 + HANDSHAKE_SIZE]);
        let mut c2 = Vec::new();
        client
            .handle_input(&mut BytesMut::from(&answer[..]), &mut c2)
            .unwrap();
        let key = hmac_sha256(&GENUINE_FP_KEY, &[&s1_digest(&s1, 0)]);
        assert_eq!(hmac_sha256(&key, &[&c2[..1504]])[..], c2[1504..]);
        assert_ne!(c2[..], s1[..]);
        // And the C1 digest is a scheme-0 FP digest.
        let c1 = packet(&c0c1[1..]);
        assert_eq!(c1[4..8], CLIENT_VERSION);
        assert_eq!(
            find_digest(&c1, &GENUINE_FP_KEY[..30], 0).map(|d| d.0),
            Some(0)
        );
    }

    #[test]
    fn server_answers_scheme_1_with_scheme_1() {
        let mut rng = Rng(7);
        for _ in 0..20 {
            let c1 = complex_c1(&mut rng, 1);
            let mut input = BytesMut::new();
            input.extend_from_slice(&[RTMP_VERSION]);
            input.extend_from_slice(&c1);
            let mut server = ServerHandshake::new(rng.block(), 0);
            let mut out = Vec::new();
            assert_eq!(
                server.handle_input(&mut input, &mut out),
                Ok(HandshakeStatus::NeedMore)
            );
            assert_eq!(server.kind(), Some(HandshakeKind::Complex { scheme: 1 }));
            assert_complex_answer(&c1, 1, &out);

            // Our client accepts a scheme-1 S1 too (it tries both layouts).
            let mut client = ClientHandshake::new(rng.block(), 0, true);
            client.start(&mut Vec::new());
            let mut s = BytesMut::from(&out[..1 + HANDSHAKE_SIZE]);
            let mut c2 = Vec::new();
            client.handle_input(&mut s, &mut c2).unwrap();
            assert_eq!(client.kind(), Some(HandshakeKind::Complex { scheme: 1 }));
        }
    }

    #[test]
    fn real_ffmpeg_c1_is_complex_scheme_0() {
        // ffmpeg 5.1 publishing (`ffmpeg ... -f flv rtmp://...`): version 9.0.124.2, digest
        // at offset 494 (scheme 0).
        let c1 = packet(&FFMPEG_C0C1[1..]);
        assert_eq!(FFMPEG_C0C1[0], 3);
        assert_eq!(c1[4..8], [9, 0, 124, 2]);
        assert_eq!(digest_offset(&c1, 0), 494);

        let random = Rng(1).block();
        let mut server = ServerHandshake::new(random, 77);
        let mut input = BytesMut::from(FFMPEG_C0C1);
        let mut out = Vec::new();
        assert_eq!(
            server.handle_input(&mut input, &mut out),
            Ok(HandshakeStatus::NeedMore)
        );
        assert!(input.is_empty());
        assert_eq!(server.kind(), Some(HandshakeKind::Complex { scheme: 0 }));
        assert_eq!(server.peer_version(), Some([9, 0, 124, 2]));
        assert_eq!(server.peer_epoch(), Some(0));
        assert_complex_answer(&c1, 0, &out);
        assert_eq!(out[1..5], 77u32.to_be_bytes());
    }

    #[test]
    fn real_rtmpdump_fp9_c1_is_complex_scheme_0() {
        // rtmpdump 2.4 with SWF verification (-w/-x): version 10.0.45.2; `rtmpdump -V`
        // logged "Client digest offset: 430".
        let c1 = packet(&RTMPDUMP_FP9_C0C1[1..]);
        assert_eq!(c1[4..8], [10, 0, 45, 2]);
        assert_eq!(digest_offset(&c1, 0), 430);

        let mut server = ServerHandshake::new(Rng(2).block(), 0);
        let mut input = BytesMut::from(RTMPDUMP_FP9_C0C1);
        let mut out = Vec::new();
        server.handle_input(&mut input, &mut out).unwrap();
        assert_eq!(server.kind(), Some(HandshakeKind::Complex { scheme: 0 }));
        assert_complex_answer(&c1, 0, &out);
    }

    #[test]
    fn real_rtmpdump_plain_c1_is_simple() {
        // rtmpdump 2.4 without SWF verification sends version 0.0.0.0 (simple handshake).
        let c1 = packet(&RTMPDUMP_C0C1[1..]);
        assert_eq!(c1[4..8], [0; 4]);
        let random = Rng(3).block();
        let mut server = ServerHandshake::new(random, 9);
        let mut input = BytesMut::from(RTMPDUMP_C0C1);
        let mut out = Vec::new();
        server.handle_input(&mut input, &mut out).unwrap();
        assert_eq!(server.kind(), Some(HandshakeKind::Simple));
        assert_simple_answer(&c1, &out, 9, &random);
    }

    #[test]
    fn real_gstreamer_c1_is_simple() {
        // GStreamer rtmp2src 1.22: version 0.0.0.0, no digest.
        let c1 = packet(&GSTREAMER_C0C1[1..]);
        assert_eq!(c1[4..8], [0; 4]);
        assert_eq!(find_digest(&c1, &GENUINE_FP_KEY[..30], 0), None);
        let random = Rng(4).block();
        let mut server = ServerHandshake::new(random, 10);
        let mut input = BytesMut::from(GSTREAMER_C0C1);
        let mut out = Vec::new();
        server.handle_input(&mut input, &mut out).unwrap();
        assert_eq!(server.kind(), Some(HandshakeKind::Simple));
        assert_simple_answer(&c1, &out, 10, &random);
    }

    /// Recorded over TCP against this module (`ServerHandshake::new(transcript_random(),
    /// 0x0102_0304)`): C0 C1 | S0 S1 S2 | C2. rtmpdump -V said "Genuine Adobe Flash Media
    /// Server" and ffmpeg (playing, which validates S1 and S2) logged "Server version
    /// 13.14.10.13"; both then sent `connect`.
    const FFMPEG_PLAY_TRANSCRIPT: &[u8] = include_bytes!("testdata/transcript-ffmpeg-play.bin");
    const RTMPDUMP_FP9_TRANSCRIPT: &[u8] = include_bytes!("testdata/transcript-rtmpdump-fp9.bin");

    fn transcript_random() -> [u8; HANDSHAKE_SIZE] {
        let mut random = [0u8; HANDSHAKE_SIZE];
        for (i, b) in random.iter_mut().enumerate() {
            *b = (i as u32).wrapping_mul(2_654_435_761).rotate_right(13) as u8;
        }
        random
    }

    #[test]
    fn real_clients_accepted_our_answer_and_sent_fp9_c2() {
        for transcript in [FFMPEG_PLAY_TRANSCRIPT, RTMPDUMP_FP9_TRANSCRIPT] {
            assert_eq!(
                transcript.len(),
                1 + HANDSHAKE_SIZE + 1 + 3 * HANDSHAKE_SIZE
            );
            let (c0c1, rest) = transcript.split_at(1 + HANDSHAKE_SIZE);
            let (answer, c2) = rest.split_at(1 + 2 * HANDSHAKE_SIZE);

            // Deterministic: the same inputs reproduce exactly what the real client accepted.
            let mut server = ServerHandshake::new(transcript_random(), 0x0102_0304);
            let mut input = BytesMut::from(c0c1);
            let mut out = Vec::new();
            server.handle_input(&mut input, &mut out).unwrap();
            assert_eq!(out, answer);
            assert_eq!(server.kind(), Some(HandshakeKind::Complex { scheme: 0 }));

            // The client's C2 is the FP9 response keyed with the full 62-byte FP key: a
            // known-answer test for that key, produced by real ffmpeg / librtmp.
            let s1 = packet(&answer[1..1 + HANDSHAKE_SIZE]);
            let expected = response_digest(&GENUINE_FP_KEY, &s1_digest(&s1, 0), &c2[..1504]);
            assert_eq!(expected[..], c2[1504..]);

            input.extend_from_slice(c2);
            input.extend_from_slice(b"\x03chunk");
            assert_eq!(
                server.handle_input(&mut input, &mut out),
                Ok(HandshakeStatus::Done)
            );
            assert_eq!(&input[..], b"\x03chunk");
        }
    }

    #[test]
    fn real_captures_byte_by_byte() {
        for capture in [
            FFMPEG_C0C1,
            RTMPDUMP_FP9_C0C1,
            RTMPDUMP_C0C1,
            GSTREAMER_C0C1,
        ] {
            let random = Rng(5).block();
            let mut all_at_once = Vec::new();
            ServerHandshake::new(random, 1)
                .handle_input(&mut BytesMut::from(capture), &mut all_at_once)
                .unwrap();
            let mut server = ServerHandshake::new(random, 1);
            let mut input = BytesMut::new();
            let mut out = Vec::new();
            for (i, &b) in capture.iter().enumerate() {
                assert_eq!(
                    server.kind().is_some(),
                    i == capture.len(),
                    "kind known after C1"
                );
                input.extend_from_slice(&[b]);
                server.handle_input(&mut input, &mut out).unwrap();
                if i + 1 < capture.len() {
                    assert!(out.is_empty());
                }
            }
            assert_eq!(out, all_at_once);
        }
    }

    #[test]
    fn wrong_versions_are_rejected_without_output() {
        for v in [0u8, 1, 2, 4, 6, 8, 9, 0x16, b'G', 0xFF] {
            let mut server = ServerHandshake::new([0; HANDSHAKE_SIZE], 0);
            let mut input = BytesMut::from(&[v][..]);
            let mut out = Vec::new();
            let err = server.handle_input(&mut input, &mut out).unwrap_err();
            assert_eq!(err, HandshakeError::UnsupportedVersion(v));
            assert!(out.is_empty());
            // Sticky.
            input.extend_from_slice(&[3; 5000]);
            assert_eq!(server.handle_input(&mut input, &mut out), Err(err));
            assert!(out.is_empty());
            assert_eq!(server.kind(), None);
        }
        assert_eq!(
            HandshakeError::UnsupportedVersion(6).to_string(),
            "client asked for RTMP version 6; only version 3 (plain RTMP) is supported"
        );

        let mut client = ClientHandshake::new([0; HANDSHAKE_SIZE], 0, true);
        client.start(&mut Vec::new());
        let mut input = BytesMut::from(&[6u8, 0, 0][..]);
        assert_eq!(
            client.handle_input(&mut input, &mut Vec::new()),
            Err(HandshakeError::UnexpectedServerVersion(6))
        );
    }

    #[test]
    fn truncated_inputs_need_more() {
        let mut rng = Rng(11);
        let mut full = vec![RTMP_VERSION];
        full.extend_from_slice(&complex_c1(&mut rng, 0));
        for len in [0, 1, 2, 100, 1536] {
            let mut server = ServerHandshake::new(rng.block(), 0);
            let mut input = BytesMut::from(&full[..len]);
            let mut out = Vec::new();
            assert_eq!(
                server.handle_input(&mut input, &mut out),
                Ok(HandshakeStatus::NeedMore)
            );
            assert!(out.is_empty());
            assert_eq!(server.kind(), None);
        }
        // C0 C1 and a partial C2.
        let mut server = ServerHandshake::new(rng.block(), 0);
        let mut input = BytesMut::from(&full[..]);
        input.extend_from_slice(&[0; 1535]);
        let mut out = Vec::new();
        assert_eq!(
            server.handle_input(&mut input, &mut out),
            Ok(HandshakeStatus::NeedMore)
        );
        assert_eq!(input.len(), 1535, "partial C2 left in input");
        assert_eq!(out.len(), 1 + 2 * HANDSHAKE_SIZE);
    }

    #[test]
    fn garbage_version_bytes_fall_back_to_simple() {
        let mut rng = Rng(12);
        for _ in 0..50 {
            let mut c1 = rng.block();
            c1[4] |= 1; // non-zero version, but no valid digest
            let random = rng.block();
            let mut server = ServerHandshake::new(random, 3);
            let mut input = BytesMut::from(&[RTMP_VERSION][..]);
            input.extend_from_slice(&c1);
            let mut out = Vec::new();
            server.handle_input(&mut input, &mut out).unwrap();
            assert_eq!(server.kind(), Some(HandshakeKind::Simple));
            assert_simple_answer(&c1, &out, 3, &random);
        }
        // Digest present but version zero: the spec's simple handshake wins.
        let mut c1 = complex_c1(&mut rng, 0);
        c1[4..8].fill(0);
        let mut server = ServerHandshake::new(rng.block(), 3);
        let mut input = BytesMut::from(&[RTMP_VERSION][..]);
        input.extend_from_slice(&c1);
        server.handle_input(&mut input, &mut Vec::new()).unwrap();
        assert_eq!(server.kind(), Some(HandshakeKind::Simple));
    }

    /// Client-side: S0 S1 S2 built by hand.
    fn client_against(
        s1: &[u8; HANDSHAKE_SIZE],
        s2: &[u8],
    ) -> (
        ClientHandshake,
        Result<HandshakeStatus, HandshakeError>,
        Vec<u8>,
    ) {
        let mut client = ClientHandshake::new(Rng(13).block(), 0, true);
        client.start(&mut Vec::new());
        let mut input = BytesMut::from(&[RTMP_VERSION][..]);
        input.extend_from_slice(s1);
        input.extend_from_slice(s2);
        let mut c2 = Vec::new();
        let res = client.handle_input(&mut input, &mut c2);
        (client, res, c2)
    }

    #[test]
    fn client_rejects_bad_s2_digest_after_valid_s1() {
        let mut rng = Rng(14);
        let mut client = ClientHandshake::new(rng.block(), 0, true);
        let mut c0c1 = Vec::new();
        client.start(&mut c0c1);
        let mut answer = Vec::new();
        ServerHandshake::new(rng.block(), 0)
            .handle_input(&mut BytesMut::from(&c0c1[..]), &mut answer)
            .unwrap();
        let last = answer.len() - 1;
        answer[last] ^= 1; // corrupt S2's digest
        let mut input = BytesMut::from(&answer[..]);
        let mut c2 = Vec::new();
        assert_eq!(
            client.handle_input(&mut input, &mut c2),
            Err(HandshakeError::DigestMismatch)
        );
        assert_eq!(c2.len(), HANDSHAKE_SIZE, "C2 was written after S1");
        assert_eq!(
            client.handle_input(&mut input, &mut c2),
            Err(HandshakeError::DigestMismatch),
            "sticky"
        );
    }

    #[test]
    fn client_accepts_echo_s2_after_valid_s1() {
        let mut rng = Rng(15);
        let mut client = ClientHandshake::new(rng.block(), 0, true);
        let mut c0c1 = Vec::new();
        client.start(&mut c0c1);
        let mut answer = Vec::new();
        ServerHandshake::new(rng.block(), 0)
            .handle_input(&mut BytesMut::from(&c0c1[..]), &mut answer)
            .unwrap();
        answer.truncate(1 + HANDSHAKE_SIZE);
        answer.extend_from_slice(&c0c1[1..]);
        let mut c2 = Vec::new();
        assert_eq!(
            client.handle_input(&mut BytesMut::from(&answer[..]), &mut c2),
            Ok(HandshakeStatus::Done)
        );
        assert_eq!(client.s2_echoed_c1(), Some(true));
    }

    #[test]
    fn client_falls_back_to_echo_for_simple_servers() {
        let mut rng = Rng(16);
        // Version set but no valid digest: C2 = echo of S1, any S2 accepted.
        let mut s1 = rng.block();
        s1[4..8].copy_from_slice(&[3, 5, 1, 1]);
        let (client, res, c2) = client_against(&s1, &rng.block());
        assert_eq!(res, Ok(HandshakeStatus::Done));
        assert_eq!(client.kind(), Some(HandshakeKind::Simple));
        assert_eq!(client.s2_echoed_c1(), Some(false));
        assert_eq!(c2[..], s1[..]);
        // Zero version.
        let mut s1 = rng.block();
        s1[4..8].fill(0);
        let (client, res, c2) = client_against(&s1, &rng.block());
        assert_eq!(res, Ok(HandshakeStatus::Done));
        assert_eq!(client.kind(), Some(HandshakeKind::Simple));
        assert_eq!(c2[..], s1[..]);
    }

    #[test]
    fn fuzz_no_panics() {
        let mut rng = Rng(0xDEAD_BEEF);
        for round in 0..300 {
            let len = (rng.next() % 5000) as usize;
            let mut data = vec![0u8; len];
            rng.fill(&mut data);
            if round % 2 == 0 && !data.is_empty() {
                data[0] = RTMP_VERSION;
            }
            let chunk = 1 + (rng.next() % 700) as usize;

            let mut server = ServerHandshake::new(rng.block(), 0);
            let mut client = ClientHandshake::new(rng.block(), 0, round % 3 != 0);
            client.start(&mut Vec::new());
            let (mut si, mut ci) = (BytesMut::new(), BytesMut::new());
            let mut out = Vec::new();
            for piece in data.chunks(chunk) {
                si.extend_from_slice(piece);
                ci.extend_from_slice(piece);
                let _ = server.handle_input(&mut si, &mut out);
                let _ = client.handle_input(&mut ci, &mut out);
            }
        }
    }

    #[test]
    fn debug_is_short() {
        let server = ServerHandshake::new([0xAB; HANDSHAKE_SIZE], 0);
        let client = ClientHandshake::new([0xAB; HANDSHAKE_SIZE], 0, true);
        assert!(format!("{server:?}").len() < 200, "{server:?}");
        assert!(format!("{client:?}").len() < 200, "{client:?}");
    }

    #[test]
    #[should_panic(expected = "start must be called")]
    fn client_input_before_start_is_misuse() {
        let mut client = ClientHandshake::new([0; HANDSHAKE_SIZE], 0, false);
        let _ = client.handle_input(&mut BytesMut::new(), &mut Vec::new());
    }

    #[test]
    #[should_panic(expected = "start called twice")]
    fn client_double_start_is_misuse() {
        let mut client = ClientHandshake::new([0; HANDSHAKE_SIZE], 0, false);
        client.start(&mut Vec::new());
        client.start(&mut Vec::new());
    }
}
