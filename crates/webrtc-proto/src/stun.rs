//! Just enough STUN (RFC 8489) to route a datagram on our one UDP port to its session before
//! the session knows the sender's address: the ICE connectivity check's USERNAME is
//! `OURS:THEIRS` (RFC 8445 §7.2.2), and `OURS` is the ufrag the session's answer gave.
//! Everything else about STUN is str0m's.

const HEADER: usize = 20;
const MAGIC: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
const USERNAME: u16 = 0x0006;
/// A USERNAME is at most 513 bytes (RFC 8489 §14.3).
const MAX_USERNAME: usize = 513;

/// What a datagram on a WebRTC port is (RFC 7983 §7: demultiplexing by the first byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 0–3.
    Stun,
    /// 20–63.
    Dtls,
    /// 128–191: RTP or RTCP (SRTP).
    Rtp,
    /// Anything else (dropped).
    Other,
}

/// The kind of datagram by its first byte.
pub fn kind(datagram: &[u8]) -> Kind {
    match datagram.first() {
        Some(0..=3) => Kind::Stun,
        Some(20..=63) => Kind::Dtls,
        Some(128..=191) => Kind::Rtp,
        _ => Kind::Other,
    }
}

/// Our ufrag from a STUN message's USERNAME (`OURS:THEIRS`), if the datagram is STUN and has
/// one.
pub fn local_ufrag(datagram: &[u8]) -> Option<&str> {
    if kind(datagram) != Kind::Stun || datagram.len() < HEADER || datagram[4..8] != MAGIC {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    let body = datagram.get(HEADER..HEADER + len)?;
    let mut pos = 0;
    while let Some(head) = body.get(pos..pos + 4) {
        let typ = u16::from_be_bytes([head[0], head[1]]);
        let alen = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let value = body.get(pos + 4..pos + 4 + alen)?;
        if typ == USERNAME {
            if alen > MAX_USERNAME {
                return None;
            }
            let user = std::str::from_utf8(value).ok()?;
            return user.split(':').next().filter(|u| !u.is_empty());
        }
        // Values are padded to 4 bytes.
        pos += 4 + alen.div_ceil(4) * 4;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A binding request as Chromium sends it (PRIORITY, USERNAME, …), trimmed.
    fn binding(user: &[u8]) -> Vec<u8> {
        let mut attrs = vec![0x00, 0x24, 0, 4, 0x6e, 0x7f, 0x1e, 0xff];
        attrs.extend_from_slice(&USERNAME.to_be_bytes());
        attrs.extend_from_slice(&(user.len() as u16).to_be_bytes());
        attrs.extend_from_slice(user);
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        m.extend_from_slice(&MAGIC);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&attrs);
        m
    }

    #[test]
    fn finds_our_ufrag() {
        assert_eq!(local_ufrag(&binding(b"h3Zk9:Ab1c")), Some("h3Zk9"));
        assert_eq!(local_ufrag(&binding(b":Ab1c")), None);
        assert_eq!(kind(&[22, 254, 253]), Kind::Dtls);
        assert_eq!(kind(&[0x80, 96]), Kind::Rtp);
    }

    #[test]
    fn hostile_bytes_give_none() {
        let good = binding(b"h3Zk9:Ab1c");
        for cut in 0..good.len() {
            let _ = local_ufrag(&good[..cut]);
        }
        let mut lying = good.clone();
        lying[3] = 0xff; // a message length past the end
        assert_eq!(local_ufrag(&lying), None);
        let mut long_attr = good.clone();
        long_attr[HEADER + 10] = 0xff; // USERNAME length past the end
        assert_eq!(local_ufrag(&long_attr), None);
        assert_eq!(local_ufrag(&[0xde, 0xad]), None);
    }
}
