//! Where the media comes from: an FLV file read directly and paced by its timestamps, or an
//! ffmpeg child that remuxes (or encodes) anything else to FLV on its stdout. Either runs as
//! its own task and sends [`Item`]s to the run, whatever the connection does.

use std::{
    collections::VecDeque,
    path::{Path, PathBuf},
    process::Stdio,
    sync::Arc,
    time::Duration,
};

use bytes::Bytes;
use media::flv;
use rtmp_proto::{amf0::Value, MediaKind};
use tokio::{
    io::{AsyncRead, AsyncReadExt, BufReader},
    process::{Child, Command},
    sync::mpsc,
    time::{sleep_until, timeout, Instant},
};

use crate::{error::SourceError, Tag};

/// What the source produces.
#[derive(Debug)]
pub(crate) enum Item {
    Meta(Value),
    Tag(Tag),
    /// The input failed (the run ends with this error).
    Failed(String),
}

/// Reads FLV tags from a byte stream (a file or a pipe), one at a time: the IO around
/// [`flv::Demuxer`].
struct FlvStream<R> {
    r: R,
    demux: flv::Demuxer,
}

/// One raw tag: type id, timestamp, body.
type RawTag = (u8, u32, Bytes);

impl<R: AsyncRead + Unpin> FlvStream<R> {
    fn new(r: R) -> Self {
        Self {
            r,
            demux: flv::Demuxer::new(),
        }
    }

    async fn next(&mut self) -> Result<Option<RawTag>, SourceError> {
        loop {
            if let Some(t) = self.demux.poll()? {
                return Ok(Some((t.tag_type.id(), t.timestamp, t.data)));
            }
            if self.r.read_buf(self.demux.buffer_mut()).await? == 0 {
                return Ok(self.demux.finish().map(|()| None)?);
            }
        }
    }
}

/// Whether `path` is a readable file that starts like FLV.
pub async fn is_flv_file(path: &str) -> bool {
    let Ok(mut f) = tokio::fs::File::open(path).await else {
        return false;
    };
    let mut h = [0u8; 3];
    f.read_exact(&mut h).await.is_ok() && &h == b"FLV"
}

/// Sends an FLV file's tags in real time (by their timestamps), looping with continuing
/// timestamps when asked.
pub(crate) async fn flv_source(path: PathBuf, looping: bool, tx: mpsc::Sender<Item>) {
    if let Err(e) = flv_source_inner(&path, looping, &tx).await {
        let _ = tx
            .send(Item::Failed(format!("{}: {e}", path.display())))
            .await;
    }
}

async fn flv_source_inner(
    path: &Path,
    looping: bool,
    tx: &mpsc::Sender<Item>,
) -> Result<(), SourceError> {
    let start = Instant::now();
    // Added to the file's timestamps in this lap.
    let mut offset: u64 = 0;
    let mut lap = 0u64;
    loop {
        let f = tokio::fs::File::open(path).await?;
        let mut s = FlvStream::new(BufReader::with_capacity(256 << 10, f));
        let mut base: Option<u32> = None;
        let mut max_out: u64 = offset;
        let mut last_video: Option<u64> = None;
        let mut step: u64 = 33;
        let mut frames = 0u64;
        while let Some((type_id, ts, data)) = s.next().await? {
            let kind = match type_id {
                8 => MediaKind::Audio,
                9 => MediaKind::Video,
                18 => {
                    if lap == 0 {
                        if let Some(m) = flv::parse_metadata(&data).ok().flatten() {
                            tx.send(Item::Meta(m))
                                .await
                                .map_err(|_| SourceError::Stopped)?;
                        }
                    }
                    continue;
                }
                _ => continue,
            };
            let Some(mut tag) = Tag::new(kind, 0, data) else {
                continue;
            };
            if tag.sequence_header && lap > 0 {
                continue;
            }
            let b = if tag.sequence_header {
                base.unwrap_or(ts)
            } else {
                *base.get_or_insert(ts)
            };
            let out = offset + ts.saturating_sub(b) as u64;
            if !tag.sequence_header {
                frames += 1;
                max_out = max_out.max(out);
                if kind == MediaKind::Video {
                    if let Some(l) = last_video {
                        if out > l {
                            step = out - l;
                        }
                    }
                    last_video = Some(out);
                }
            }
            tag.timestamp = out as u32;
            sleep_until(start + Duration::from_millis(out)).await;
            tx.send(Item::Tag(tag))
                .await
                .map_err(|_| SourceError::Stopped)?;
        }
        if frames == 0 {
            return Err(SourceError::NoFrames);
        }
        if !looping {
            return Ok(());
        }
        offset = max_out + step.clamp(1, 1000);
        lap += 1;
    }
}

/// The ffmpeg command that turns `input` into FLV on stdout.
pub fn ffmpeg_command(ffmpeg: &Path, input: &str, looping: bool, transcode: bool) -> Command {
    let mut c = Command::new(ffmpeg);
    c.args(["-hide_banner", "-nostdin", "-loglevel", "error"]);
    if looping {
        c.args(["-stream_loop", "-1"]);
    }
    c.args(["-re", "-i", input, "-map", "0:v:0?", "-map", "0:a:0?"]);
    if transcode {
        c.args([
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
            "-pix_fmt",
            "yuv420p",
        ]);
        c.args([
            "-force_key_frames",
            "expr:gte(t,n_forced*2)",
            "-c:a",
            "aac",
            "-b:a",
            "128k",
        ]);
    } else {
        c.args(["-c", "copy"]);
    }
    c.args(["-f", "flv", "-flvflags", "no_duration_filesize", "pipe:1"]);
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c
}

/// Reads FLV from an ffmpeg child (killed when this ends).
pub(crate) async fn ffmpeg_source(mut child: Child, tx: mpsc::Sender<Item>) {
    let stderr_tail = Arc::new(std::sync::Mutex::new(VecDeque::<String>::new()));
    if let Some(err) = child.stderr.take() {
        let tail = stderr_tail.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncBufReadExt;
            let mut lines = BufReader::new(err).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                let mut t = tail.lock().unwrap();
                if t.len() >= 20 {
                    t.pop_front();
                }
                t.push_back(l.chars().take(300).collect());
            }
        });
    }
    let Some(out) = child.stdout.take() else {
        let _ = tx.send(Item::Failed("ffmpeg: no stdout".into())).await;
        return;
    };
    let mut s = FlvStream::new(BufReader::with_capacity(256 << 10, out));
    let mut frames = 0u64;
    let r: Result<(), SourceError> = async {
        while let Some((type_id, ts, data)) = s.next().await? {
            let item = match type_id {
                8 => Tag::new(MediaKind::Audio, ts, data).map(Item::Tag),
                9 => Tag::new(MediaKind::Video, ts, data).map(Item::Tag),
                18 => flv::parse_metadata(&data).ok().flatten().map(Item::Meta),
                _ => None,
            };
            if let Some(item) = item {
                frames += matches!(item, Item::Tag(_)) as u64;
                tx.send(item).await.map_err(|_| SourceError::Stopped)?;
            }
        }
        Ok(())
    }
    .await;
    let status = timeout(Duration::from_secs(5), child.wait()).await;
    // Let the stderr reader catch the last lines.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let tail = stderr_tail
        .lock()
        .unwrap()
        .iter()
        .cloned()
        .collect::<Vec<_>>()
        .join("\n  ");
    let failed = match (&r, &status) {
        (Err(SourceError::Stopped), _) => return,
        (Err(e), _) => Some(format!("reading ffmpeg's output: {e}")),
        (Ok(()), Ok(Ok(st))) if !st.success() => Some(format!("ffmpeg exited with {st}")),
        (Ok(()), _) if frames == 0 => Some("ffmpeg produced no audio or video".into()),
        _ => None,
    };
    if let Some(f) = failed {
        let msg = if tail.is_empty() {
            f
        } else {
            format!("{f}:\n  {tail}")
        };
        let _ = tx.send(Item::Failed(msg)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn flv_stream_reads_a_real_file_and_survives_garbage() {
        let file = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../media/tests/assets/avc_aac_720p30.flv"
        ))
        .unwrap();
        let mut s = FlvStream::new(&file[..]);
        let mut n = 0;
        let mut meta = 0;
        while let Some((t, _, d)) = s.next().await.unwrap() {
            n += 1;
            if t == 18 && flv::parse_metadata(&d).ok().flatten().is_some() {
                meta += 1;
            }
        }
        assert!(n >= 80, "{n}");
        assert_eq!(meta, 1);
        // Truncated and hostile inputs end with an error, never a panic or a huge allocation.
        let mut s = FlvStream::new(&file[..file.len() / 2]);
        let mut r = Ok(Some((0, 0, Bytes::new())));
        for _ in 0..10_000 {
            r = s.next().await;
            if !matches!(r, Ok(Some(_))) {
                break;
            }
        }
        assert!(r.is_err() || matches!(r, Ok(None)));
        for bad in [
            &b"FLX\x01\x05\0\0\0\x09"[..],
            b"FLV\x01\x05\xff\xff\xff\xff",
            b"FL",
        ] {
            assert!(FlvStream::new(bad).next().await.is_err());
        }
    }
}
