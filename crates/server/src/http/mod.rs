//! The origin's HTTP side: DASH and HLS, the stream API, metrics, the clock, the web
//! player and replay of recordings (`recordings`). `router` is the table of routes; each handler lives in the file named for what it
//! serves. `listener` is the one HTTP listener every role runs its router on (caps and
//! deadlines; `conn` and `deadline` are its connection state and socket rules).
mod api;
mod conn;
mod deadline;
mod error;
mod hls;
pub mod listener;
mod origin;
pub mod player;
pub(crate) mod range;
mod recorder;
mod recordings;
mod router;
mod state;

pub use api::StreamEntry;
pub use error::{AppError, AppResult};
pub use origin::{iso8601, time};
pub use recorder::recorder;
pub use recordings::RecordingEntry;
pub use router::{cors, router};
pub use state::HttpState;
