//! The stamp through the real thing: stamped frames of the moving test picture go through
//! ffmpeg's scale and pad (the ladder's filter, `crates/server/src/encode/ladder.rs`) and x264
//! at the ladder's bitrates, are decoded back by a second ffmpeg, and are read.
//!
//! Needs `ffmpeg` (or `FFMPEG`) with libx264, as the rest of the test suite does.

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use g2g::{PgmStream, TestPicture, Yuv420};

const FRAMES: u64 = 60;
const T0: u64 = 1_796_000_000_000;

fn ffmpeg() -> String {
    std::env::var("FFMPEG").unwrap_or_else(|_| "ffmpeg".into())
}

/// Encodes FRAMES stamped frames (frame n stamped T0 + n) through `filter` at `kbps`,
/// decodes them, and returns what each decoded frame read as.
fn through_x264(filter: &str, kbps: u32) -> Vec<Result<u64, g2g::ReadError>> {
    let enc_args = format!(
        "-hide_banner -loglevel error -f rawvideo -pix_fmt yuv420p -s 1280x720 -r 30 -i pipe:0 -vf {filter} \
         -c:v libx264 -preset veryfast -tune zerolatency -profile:v high -g 60 -b:v {kbps}k -maxrate {kbps}k \
         -bufsize {}k -f h264 pipe:1",
        2 * kbps
    );
    let mut enc = Command::new(ffmpeg())
        .args(enc_args.split_whitespace())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("ffmpeg (set FFMPEG)");
    let dec_args = "-hide_banner -loglevel error -f h264 -i pipe:0 -fps_mode passthrough -pix_fmt gray -c:v pgm -f image2pipe pipe:1";
    let mut dec = Command::new(ffmpeg())
        .args(dec_args.split_whitespace())
        .stdin(Stdio::from(enc.stdout.take().unwrap()))
        .stdout(Stdio::piped())
        .spawn()
        .expect("ffmpeg (set FFMPEG)");
    let mut stdin = enc.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let pic = TestPicture::new(1280, 720);
        let mut f = Yuv420::new(1280, 720);
        for n in 0..FRAMES {
            pic.draw(n, &mut f);
            f.stamp(T0 + n);
            stdin.write_all(f.bytes()).unwrap();
        }
    });
    let mut out = Vec::new();
    dec.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    feeder.join().unwrap();
    assert!(
        enc.wait().unwrap().success() && dec.wait().unwrap().success(),
        "ffmpeg failed"
    );
    let mut s = PgmStream::new();
    s.push(&out);
    let mut reads = Vec::new();
    while let Some(f) = s.poll().unwrap() {
        reads.push(g2g::read(&f.luma()));
    }
    reads
}

fn check(what: &str, reads: &[Result<u64, g2g::ReadError>]) {
    assert_eq!(reads.len() as u64, FRAMES, "{what}: frames decoded");
    // Every frame reads, and as the time it was stamped with: no frame lost, none misread.
    let bad: Vec<_> = reads
        .iter()
        .enumerate()
        .filter(|(n, r)| **r != Ok(T0 + *n as u64))
        .collect();
    assert!(
        bad.is_empty(),
        "{what}: {} of {FRAMES} frames wrong: {bad:?}",
        bad.len()
    );
}

#[test]
fn reads_through_the_ladder_and_x264() {
    let ladder = |side: u32| {
        format!(
            "scale={side}:{side}:force_original_aspect_ratio=decrease:force_divisible_by=2,\
             pad={side}:{side}:(ow-iw)/2:(oh-ih)/2,setsar=1,format=yuv420p"
        )
    };
    check("400×400 at 500k", &through_x264(&ladder(400), 500));
    check("720×720 at 1500k", &through_x264(&ladder(720), 1500));
    check(
        "1280×720 at 2500k (the publisher's own stream)",
        &through_x264("format=yuv420p", 2500),
    );
}
