//! A low-latency segment that is never completed must not look complete: a player or an edge
//! reading the segment in progress when the transcoder dies gets a broken transfer (no final
//! chunk of the chunked body), so it asks again, instead of a clean end that reads as a whole
//! (short) segment and gets played or cached.

use std::time::{Duration, Instant};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::common::*;

const NAME: &str = "truncated";

/// The transcoder's ffmpeg of `NAME`: a child of this process whose command line writes to
/// the stream's Unix sockets (the publisher's does not).
fn transcoder_pid(data_dir: &std::path::Path) -> Option<u32> {
    // Its outputs are sockets under this server's data dir (the socket directories carry
    // no stream name).
    let run = format!("unix://{}/run/", data_dir.display());
    let me = std::process::id();
    std::fs::read_dir("/proc").ok()?.find_map(|e| {
        let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Field 4 (after the parenthesised command name) is the parent's pid.
        let ppid: u32 = stat
            .rsplit(')')
            .next()?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let cmd = String::from_utf8_lossy(&cmd);
        (ppid == me && cmd.contains(&run)).then_some(pid)
    })
}

/// `startNumber` + the number of segments listed for video: the segment after the last one
/// listed, which a low-latency player asks for before it starts.
fn next_video_number(mpd: &str) -> u64 {
    let (start, count) = video_numbers(mpd);
    start + count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_whose_transcoder_dies_is_broken_off_not_ended() {
    let srv = TestServer::start(|_| {}).await;
    let _publisher = ffmpeg_publish(&srv.rtmp_url(NAME), "640x360", 120);
    srv.wait_live(NAME, Duration::from_secs(20)).await;
    let port = srv.http;
    eventually(
        "the MPD lists a segment",
        Duration::from_secs(20),
        || async move {
            let (s, body) = http_get(port, &format!("/live/{NAME}/manifest.mpd")).await;
            s == 200 && count_segments(&body, "video") >= 1
        },
    )
    .await;
    let (_, mpd) = http_get(port, &format!("/live/{NAME}/manifest.mpd")).await;

    // Ask for the next segment as a low-latency player does: the answer waits for it to
    // start, then streams its chunks as HTTP/1.1 chunked transfer.
    let n = next_video_number(&mpd);
    let path = segment_path(&mpd, NAME, "v400", &format!("{n}.m4s"));
    let mut s = TcpStream::connect(("127.0.0.1", srv.http)).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut resp = Vec::new();
    let mut buf = [0u8; 16384];
    let head_end = loop {
        let r = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("no answer within 10 s")
            .unwrap();
        assert!(r > 0, "closed before the head: {resp:?}");
        resp.extend_from_slice(&buf[..r]);
        if let Some(p) = resp.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&resp[..head_end]).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    // Its first chunk: the segment is in progress (it lasts 4 s).
    let t0 = Instant::now();
    while resp.len() - head_end < 100 {
        let r = tokio::time::timeout(Duration::from_secs(8), s.read(&mut buf))
            .await
            .expect("no chunk of the segment within 8 s")
            .unwrap();
        assert!(r > 0, "closed before the first chunk");
        resp.extend_from_slice(&buf[..r]);
    }
    eprintln!(
        "segment {n} in progress: {} bytes after {:.2} s",
        resp.len() - head_end,
        t0.elapsed().as_secs_f64()
    );

    // The transcoder dies mid-segment (the server restarts it; this segment is never made).
    let pid = transcoder_pid(&srv.data_dir).expect("the transcoder's ffmpeg among our children");
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(r) => resp.extend_from_slice(&buf[..r]),
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the response did not end within 20 s of the kill"
    );
    let body = &resp[head_end..];
    assert!(
        !body.ends_with(b"\r\n0\r\n\r\n") && !body.starts_with(b"0\r\n\r\n"),
        "the truncated segment ended like a complete one (final chunk sent, {} bytes)",
        body.len()
    );
    srv.stop().await;
}
