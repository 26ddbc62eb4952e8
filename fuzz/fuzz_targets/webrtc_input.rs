//! What a WHEP viewer or WHIP publisher controls before it has a session: the offer's text (our checks and
//! str0m's SDP parser), and any datagram on the shared UDP port (the STUN USERNAME lookup
//! that routes it); plus the FLV → Annex B conversion on publisher bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use webrtc_proto::{check_offer, check_whip_offer, h264::AnnexB, stun};

fuzz_target!(|data: &[u8]| {
    let _ = stun::local_ufrag(data);
    let text = String::from_utf8_lossy(data);
    let _ = check_offer(&text);
    let _ = check_whip_offer(&text);
    // The same bytes as a run of FLV video tags, each length-prefixed by one byte.
    let mut a = AnnexB::new();
    let mut rest = data;
    while let Some((&n, tail)) = rest.split_first() {
        let n = usize::from(n).min(tail.len());
        let _ = a.push(&tail[..n]);
        rest = &tail[n..];
    }
});
