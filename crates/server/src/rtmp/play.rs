//! A connection's player: which stream or rendition it gets (pulled from an encoder first at
//! an edge), the snapshot and then batches from the hub follower — sent with `sendfile` from
//! the stream's shared file on plain RTMP — and the automatic rendition mode, which steps
//! down when the connection congests and back up after a calm period.

use std::time::{Duration, Instant};

use metrics::{counter, histogram};
use rtmp_proto::ServerSession;
use tokio::{net::TcpStream, time::timeout};
use tracing::debug;

use super::conn::{Conn, ConnError, State, Transport};
use crate::stream::{
    auto::{direction, AutoLevel, Observation, RTMP_LADDER},
    follow::{Follower, Step},
    name::{query_param, rendition_name, APP},
    Batch, PlayerGuard,
};

/// Media queued for a player that counts as congestion.
const CONGESTED_BACKLOG: Duration = Duration::from_secs(2);
/// Frames per second assumed when the batching window is off (one frame per batch).
const FRAMES_PER_SEC: u32 = 75;
/// A frame write that blocks this long means the player's connection is congested.
const CONGESTED_WRITE: Duration = Duration::from_millis(250);

/// A viewer connection's quality, 100 (writes return at once, nothing queued) to 0 (a write
/// blocked for [`CONGESTED_WRITE`] or a full backlog of batches waiting): the worse of the two
/// ratios. Exported as the `ferrocast_player_quality_index` histogram; 0 makes the automatic
/// mode step down.
pub fn quality_index(write: Duration, backlog: usize, backlog_limit: usize) -> f64 {
    let w = write.as_secs_f64() / CONGESTED_WRITE.as_secs_f64();
    let b = backlog as f64 / backlog_limit.max(1) as f64;
    (100.0 * (1.0 - w.max(b))).clamp(0.0, 100.0)
}

/// A play waiting for its stream to be pulled from an encoder (edge).
pub(super) struct PendingPull {
    pub(super) stream_id: u32,
    pub(super) name: String,
    pub(super) query: Option<String>,
    pub(super) rendition: Option<&'static str>,
}

/// What a connection plays.
pub(super) struct Playing {
    pub(super) stream_id: u32,
    /// The stream (or rendition) followed, one batch per `player_batch_ms` window.
    pub(super) follow: Follower<Batch>,
    _guard: PlayerGuard,
    /// Automatic rendition mode (`?rendition=auto`).
    auto: Option<Auto>,
}

impl Playing {
    /// Batches waiting for this player that count as congestion (about 2 s of media).
    fn congested_backlog(&self) -> usize {
        let window = self.follow.stream().batch_window();
        let per_batch = if window.is_zero() {
            CONGESTED_BACKLOG / FRAMES_PER_SEC
        } else {
            window
        };
        (CONGESTED_BACKLOG.as_micros() / per_batch.as_micros().max(1)).max(2) as usize
    }
}

/// Automatic mode: degrade 720 → 400 → audio when the player's connection congests (writes
/// block, or it falls behind the live edge), recover one step after a calm period (the
/// decision is `stream::auto`'s, shared with WHEP). Switches happen on the new rendition's
/// next keyframe (aligned on the 4 s segment boundaries), after its sequence header, so the
/// player's decoder reconfigures cleanly.
struct Auto {
    base: String,
    level: AutoLevel,
}

/// Sends `len` bytes of `file` from `offset` with `sendfile`: the socket takes references to
/// the file's pages instead of a copy of the bytes.
#[cfg(target_os = "linux")]
async fn send_file(
    tcp: &TcpStream,
    file: &std::fs::File,
    mut offset: u64,
    mut len: usize,
) -> std::io::Result<()> {
    while len > 0 {
        let n = tcp
            .async_io(tokio::io::Interest::WRITABLE, || {
                let mut off = offset;
                rustix::fs::sendfile(tcp, file, Some(&mut off), len).map_err(std::io::Error::from)
            })
            .await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        offset += n as u64;
        len -= n;
    }
    Ok(())
}

/// One non-blocking `sendfile` of up to `len` bytes if the socket is writable now: how many
/// went (`WouldBlock` when none could).
#[cfg(target_os = "linux")]
fn try_send_file(
    tcp: &TcpStream,
    file: &std::fs::File,
    offset: u64,
    len: usize,
) -> std::io::Result<usize> {
    tcp.try_io(tokio::io::Interest::WRITABLE, || {
        let mut off = offset;
        rustix::fs::sendfile(tcp, file, Some(&mut off), len).map_err(std::io::Error::from)
    })
}

#[cfg(not(target_os = "linux"))]
fn try_send_file(_: &TcpStream, _: &std::fs::File, _: u64, _: usize) -> std::io::Result<usize> {
    Err(std::io::ErrorKind::Unsupported.into())
}

#[cfg(not(target_os = "linux"))]
async fn send_file(_: &TcpStream, _: &std::fs::File, _: u64, _: usize) -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
}

/// The rendition a `?rendition=` choice names (`None`: the source, or not a rendition).
fn rendition_of(choice: &str) -> Option<&'static str> {
    match choice {
        "720" | "v720" | "auto" => Some("v720"),
        "400" | "v400" => Some("v400"),
        "audio" | "a64" => Some("a64"),
        _ => None,
    }
}

impl State<'_> {
    pub(super) fn on_play(
        &mut self,
        session: &mut ServerSession,
        stream_id: u32,
        name: &str,
        query: Option<&str>,
    ) {
        let refuse = |session: &mut ServerSession, msg: String| {
            counter!("ferrocast_play_rejected_total").increment(1);
            debug!(peer = %self.peer, "play refused: {msg}");
            session.reject_play(
                stream_id,
                "NetStream.Play.StreamNotFound",
                &msg,
                Instant::now(),
            );
        };
        if let Err(e) = self.check_app_and_name(name) {
            return refuse(session, e.to_string());
        }
        if self.playing.is_some() {
            return refuse(session, "this connection already plays a stream".into());
        }
        let not_live = || {
            format!("stream {name:?} is not live: publish to rtmp://HOST:1935/{APP}/{name} first")
        };
        let choice = query_param(query, "rendition").unwrap_or("source");
        if self.ctx.pull.is_some() && !self.pulled {
            // An edge pulls what it does not have from the stream's encoder (auto mode starts
            // at 720 and switches only to renditions that are here).
            let rendition = rendition_of(choice);
            let local = rendition.map_or_else(|| name.to_owned(), |r| rendition_name(name, r));
            if self.ctx.hub.get(&local).is_none() {
                self.pending_pull = Some(PendingPull {
                    stream_id,
                    name: name.to_owned(),
                    query: query.map(str::to_owned),
                    rendition,
                });
                return;
            }
        }
        // At an edge that pulls a rendition, the source may not be here: count viewers there.
        let base = self.ctx.hub.get(name).or_else(|| {
            self.ctx
                .hub
                .get(&rendition_name(name, rendition_of(choice)?))
        });
        let Some(base) = base else {
            return refuse(session, not_live());
        };
        let now = Instant::now();
        let (target, auto) = match choice {
            "source" => (name.to_string(), None),
            "auto" => (
                rendition_name(name, RTMP_LADDER[0].id),
                Some(Auto {
                    base: name.into(),
                    level: AutoLevel::new(&RTMP_LADDER, now),
                }),
            ),
            c => match rendition_of(c) {
                Some(r) => (rendition_name(name, r), None),
                None => {
                    return refuse(
                        session,
                        format!(
                            "unknown rendition {:?}: use ?rendition=source|720|400|audio|auto",
                            c.chars().take(20).collect::<String>()
                        ),
                    )
                }
            },
        };
        let Some(stream) = self.ctx.hub.get(&target) else {
            return refuse(session, format!("rendition {choice:?} of {name:?} is not available yet (the transcoder starts a few seconds after the publish); try ?rendition=source"));
        };
        let Some((snapshot, follow)) =
            Follower::batches(&stream, self.ctx.limits.player_queue_frames as u64)
        else {
            return refuse(session, not_live());
        };
        // Viewers are counted on the stream, whichever rendition they watch.
        let guard = base.viewer();
        self.playing = Some(Playing {
            stream_id,
            follow,
            _guard: guard,
            auto,
        });
        session.accept_play(stream_id, name, now);
        // The stream's own encodings, shared with every other player: a joining player costs
        // references, not a copy of the GOP.
        self.burst
            .extend(snapshot.metadata.iter().map(|m| m.encoded(stream_id)));
        self.burst
            .extend(snapshot.frames.iter().map(|f| f.encoded(stream_id)));
        debug!(peer = %self.peer, stream = %name, cached = snapshot.frames.len(), "playing");
    }

    /// One step of the player's follower: send a batch, react to a lag, or end the play.
    pub(super) async fn on_step<S: Transport>(
        &mut self,
        step: Step<Batch>,
        d: &mut Conn<S>,
    ) -> Result<(), ConnError> {
        let Some(p) = &mut self.playing else {
            return Ok(());
        };
        match step {
            Step::Send(batch, from) => {
                // Only the automatic mode looks at how long writes take.
                let t0 = p.auto.is_some().then(Instant::now);
                let write_timeout = d.write_timeout();
                // Plain RTMP on stream 1 (every client we know): the shared pages of the
                // batch's file, sent straight away when the socket has room (the usual case:
                // no timer, no clock read). Otherwise the shared bytes (or, for another stream
                // id, a fresh encoding).
                let sent = match (p.stream_id, d.io().plain_tcp(), batch.file_range(from)) {
                    (1, Some(tcp), Some((file, offset, len))) => {
                        let sent = match try_send_file(tcp, file, offset, len) {
                            Ok(n) => n,
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
                            Err(e) => return Err(rtmp_io::Error::Io(e).into()),
                        };
                        if sent < len {
                            timeout(
                                write_timeout,
                                send_file(tcp, file, offset + sent as u64, len - sent),
                            )
                            .await
                            .map_err(|_| rtmp_io::Error::WriteTimeout(write_timeout))?
                            .map_err(rtmp_io::Error::Io)?;
                        }
                        len
                    }
                    _ => d.write_raw(&batch.encoded_from(from, p.stream_id)).await?,
                };
                d.session_mut().count_sent(sent, Instant::now());
                // The batch (and its file region) is only released after the send.
                drop(batch);
                if let Some(t0) = t0 {
                    // A write that blocks, or batches piling up behind this player, mean its
                    // connection cannot carry the rendition.
                    let q = quality_index(t0.elapsed(), p.follow.backlog(), p.congested_backlog());
                    histogram!("ferrocast_player_quality_index").record(q);
                    self.adapt(q <= 0.0);
                }
            }
            Step::Lagged(n) => {
                debug!(peer = %self.peer, skipped = n, "player fell behind; skipping to the next keyframe");
                counter!("ferrocast_player_lag_skips_total").increment(1);
                self.adapt(true);
            }
            Step::Ended => {
                let name = p.follow.stream().name.clone();
                d.session_mut().end_play(p.stream_id, &name, Instant::now());
                self.playing = None;
            }
        }
        Ok(())
    }

    /// Automatic rendition mode: step down on congestion, up after a calm period.
    fn adapt(&mut self, congested: bool) {
        let Some(p) = &mut self.playing else { return };
        let Some(a) = &mut p.auto else { return };
        let from = a.level.level();
        let Some(next) = a
            .level
            .observe(Observation::Congested(congested), Instant::now())
        else {
            return;
        };
        let (from_id, to_id) = (a.level.ladder()[from].id, a.level.current().id);
        let Some(target) = self.ctx.hub.get(&rendition_name(&a.base, to_id)) else {
            a.level.revert(from);
            return;
        };
        let Some((snapshot, mut follow)) =
            Follower::batches(&target, self.ctx.limits.player_queue_frames as u64)
        else {
            a.level.revert(from);
            return;
        };
        let direction = direction(from, next);
        debug!(peer = %self.peer, from = from_id, to = to_id, "automatic rendition switch {direction}");
        counter!("ferrocast_player_rendition_switches_total", "direction" => direction)
            .increment(1);
        // The new rendition's decoder configuration first; its frames from its next keyframe.
        self.burst.extend(
            snapshot
                .frames
                .iter()
                .filter(|f| f.sequence_header)
                .map(|f| f.encoded(p.stream_id)),
        );
        follow.skip_to_keyframe(to_id != "a64");
        p.follow = follow;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quality_index_is_the_worse_of_write_time_and_backlog() {
        assert_eq!(quality_index(Duration::ZERO, 0, 20), 100.0);
        assert_eq!(quality_index(CONGESTED_WRITE / 2, 0, 20), 50.0);
        assert_eq!(quality_index(Duration::ZERO, 15, 20), 25.0);
        assert_eq!(quality_index(CONGESTED_WRITE * 2, 0, 20), 0.0);
        assert_eq!(quality_index(Duration::ZERO, 21, 20), 0.0);
    }
}
