//! Recording and replay (`--record`, `[record]`): a recorded stream's presentation stays in
//! the store — every Period's segments and init segments, not only the live window — with its
//! timeline beside them, and once the stream ends it is a recording: listed at
//! `GET /api/recordings`, replayed as a static MPD and HLS VOD playlists over the same
//! segments, deleted by the retention sweep.
//!
//! ```text
//!  packager ── init / segment landed ──▶ RecordingLog (in the DashState) ──▶ store
//!                                        live/NAME/PRES/recording.json (rewritten each time)
//!  GET /api/recordings ──▶ Recordings::scan (list live/, read the logs) ──▶ finished ones
//!  GET /recordings/NAME/PRES/… ──▶ the log ──▶ replay::manifest ──▶ cmaf (static MPD, VOD
//!                                                playlists) | the segment from the store
//!  retention::run ──▶ ended longer ago than the retention ──▶ log first, then the prefix
//! ```
//!
//! The recording's id is its presentation id, so its files keep the keys (and bytes) they had
//! live: nothing is copied when a stream ends. `names` (which streams), `log` (the timeline)
//! and `replay` (log → Manifest) are pure; `catalog` and `retention` do the store IO.

pub mod catalog;
pub mod log;
mod names;
pub mod replay;
pub mod retention;

pub use catalog::{Recordings, Stored};
pub use log::{RecordingLog, LOG_FILE};
pub use names::NamePatterns;

use crate::backend::store::StoreError;

/// Why a recording could not be read, written or configured.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored log that cannot be used (not ours, too large, not JSON, naming unsafe ids).
    #[error("recording log {key}: {reason}")]
    Corrupt {
        /// Its store key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `[record] streams` pattern that is not one.
    #[error("{0}")]
    Pattern(String),
}

/// Real init segments of the ladder (the cmaf crate's test assets), for unit tests that need
/// a `TrackInfo` (which only a parser makes).
#[cfg(test)]
pub(crate) mod test_tracks {
    pub(crate) use cmaf::TrackKind;

    /// The track of the ladder's 720 rendition (video) or its AAC rendition (audio).
    pub(crate) fn track(kind: TrackKind) -> cmaf::TrackInfo {
        let bytes: &[u8] = match kind {
            TrackKind::Video => include_bytes!("../../../cmaf/tests/assets/ladder_v720.mp4"),
            TrackKind::Audio => include_bytes!("../../../cmaf/tests/assets/ladder_audio.mp4"),
        };
        let mut seg = cmaf::Segmenter::new(kind, std::time::Duration::from_secs(4));
        seg.push(bytes, std::time::SystemTime::now())
            .expect("a real ladder output");
        loop {
            match seg.poll() {
                Some(cmaf::SegmenterEvent::Init { info, .. }) => return info,
                Some(_) => {}
                None => panic!("no init segment in the asset"),
            }
        }
    }
}
