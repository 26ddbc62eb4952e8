//! A WHIP publisher's stream: the samples its peer receives, assembled into FLV tags
//! (`webrtc_proto::ingest`), then through the same admission as an RTMP publish's frames
//! (validation, the transcoder's start, the capture clock: `rtmp::admit_frame`) into the hub.
//! The stream ends when this is dropped (the session ended).

use std::{net::SocketAddr, sync::Arc, time::Instant};

use media::validate::Validator;
use metrics::counter;
use tracing::debug;
use webrtc_proto::{ingest::Assembler, Peer, Sample};

use crate::{
    net::GroupSlot,
    rtmp::{admit_frame, RtmpContext},
    stream::{Frame, PublishHandle},
};

/// One WHIP publish.
pub(crate) struct Publisher {
    handle: PublishHandle,
    validator: Option<Validator>,
    assembler: Assembler,
    ctx: Arc<RtmpContext>,
    from: SocketAddr,
    /// The publisher's place in the per-address connection count (shared with RTMP).
    _slot: GroupSlot,
}

impl Publisher {
    /// A publish of `handle`'s stream from `from`; `audio` when Opus was negotiated.
    pub(super) fn new(
        handle: PublishHandle,
        ctx: Arc<RtmpContext>,
        from: SocketAddr,
        slot: GroupSlot,
        audio: bool,
        now: Instant,
    ) -> Self {
        handle.stream.set_protocol("whip");
        Self {
            handle,
            validator: Some(Validator::new()),
            // RFC 7587: Opus in WebRTC is always signalled as two channels.
            assembler: Assembler::new(now, audio.then_some(2)),
            ctx,
            from,
            _slot: slot,
        }
    }

    /// Takes one received sample. `Err` is why the stream was refused: the session ends.
    pub(super) fn on_sample(&mut self, s: &Sample) -> Result<(), String> {
        let tags = match self.assembler.push(s) {
            Ok(t) => t,
            Err(e) => {
                // One bad access unit: dropped, and the next keyframe repairs the picture.
                counter!("ferrocast_webrtc_bad_frames_total").increment(1);
                debug!(stream = %self.handle.stream.name, "{e}");
                return Ok(());
            }
        };
        for t in tags {
            let frame = Frame::new(t.kind, t.timestamp, t.body.into());
            admit_frame(
                &mut self.validator,
                &self.handle,
                frame,
                self.from,
                &self.ctx,
            )?;
        }
        Ok(())
    }

    /// Sends a keyframe request (PLI) if one is due.
    pub(super) fn ask_keyframe(&mut self, peer: &mut Peer, now: Instant) {
        if peer.is_connected() && self.assembler.keyframe_due(now) {
            counter!("ferrocast_whip_keyframe_requests_total").increment(1);
            peer.request_keyframe();
        }
    }
}
