//! A presentation that starts again never reuses a URL: `ferrocast serve` is stopped (SIGTERM)
//! and, later, killed (SIGKILL) mid-stream, started again on the same data directory, and the
//! same name is published again. No URL the new MPD or HLS playlists list — nor the segment
//! they announce next, which a low-latency player asks for before it exists — may return an
//! object of the old presentation, and the start-up sweep removes the old presentation from
//! the store, so its URLs are 404.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    process::{Child, Command},
};

use crate::common::*;

const BIN: &str = env!("CARGO_BIN_EXE_ferrocast");
const NAME: &str = "again";

/// One `ferrocast serve` process on loopback ports.
struct Serve {
    child: Child,
    rtmp: u16,
    http: u16,
}

impl Serve {
    async fn start(dir: &Path) -> Self {
        let (rtmp, rtmps, http) = (free_port(), free_port(), free_port());
        let child = Command::new(BIN)
            .args(["serve", "--data-dir", dir.to_str().unwrap()])
            .args(["--rtmp-addr", &format!("127.0.0.1:{rtmp}")])
            .args(["--rtmps-addr", &format!("127.0.0.1:{rtmps}")])
            .args(["--http-addr", &format!("127.0.0.1:{http}")])
            .args(["--webrtc-addr", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        eventually(
            "serve answers /healthz",
            Duration::from_secs(15),
            || async { http_get(http, "/healthz").await.0 == 200 },
        )
        .await;
        Self { child, rtmp, http }
    }

    /// ffmpeg publishing NAME for up to 2 minutes (dropped to stop).
    fn publish(&self) -> Child {
        ffmpeg_publish(
            &format!("rtmp://127.0.0.1:{}/live/{NAME}", self.rtmp),
            "320x240",
            120,
        )
    }

    /// SIGTERM, then waits (bounded) for the process to exit.
    async fn stop(mut self) {
        let pid = self.child.id().unwrap().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        let done = tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await;
        assert!(done.is_ok(), "serve did not exit within 20 s of SIGTERM");
    }

    /// SIGKILL: nothing is flushed or cleaned up.
    async fn kill(mut self) {
        self.child.kill().await.unwrap();
    }
}

/// A GET that may wait (the segment announced next) and stream for a while: (status, body).
async fn fetch(port: u16, path: &str) -> (u16, Vec<u8>) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await else {
        return (0, vec![]);
    };
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut resp = Vec::new();
    tokio::time::timeout(Duration::from_secs(25), s.read_to_end(&mut resp))
        .await
        .unwrap_or_else(|_| panic!("GET {path}: no complete answer within 25 s"))
        .unwrap();
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(resp.len(), |p| p + 4);
    let status = String::from_utf8_lossy(&resp[..split])
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, resp[split..].to_vec())
}

/// What the presentation lists right now: every init and media URL of the MPD and of the
/// HLS media playlists, and the segments announced next (the one after the last listed per
/// Representation in the MPD; the HLS preload hints).
#[derive(Default, Debug)]
struct Listed {
    urls: BTreeSet<String>,
    next: BTreeSet<String>,
}

fn from_mpd(mpd: &str, out: &mut Listed) {
    let m = parse_mpd_of(mpd, NAME);
    let path = |u: url::Url| u.path().to_owned();
    for (pi, p) in m.periods.iter().enumerate() {
        for r in p.adaptation_sets.iter().flat_map(|s| &s.representations) {
            if let Some(init) = r.init_url().unwrap() {
                out.urls.insert(path(init));
            }
            for s in &r.template.segments {
                out.urls.insert(path(r.media_url(s).unwrap()));
            }
            if let (true, Some(last)) = (pi + 1 == m.periods.len(), r.template.segments.last()) {
                let next = loadgen::Segment {
                    number: last.number + 1,
                    ..*last
                };
                out.next.insert(path(r.media_url(&next).unwrap()));
            }
        }
    }
}

fn attr<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let i = line.find(&format!("{name}=\""))? + name.len() + 2;
    line[i..].split('"').next()
}

fn from_playlist(dir: &str, text: &str, out: &mut Listed) {
    for line in text.lines() {
        if let Some(tag) = line.strip_prefix('#') {
            let Some(uri) = attr(tag, "URI") else {
                continue;
            };
            if tag.starts_with("EXT-X-PRELOAD-HINT") {
                out.next.insert(resolve(dir, uri));
            } else if tag.starts_with("EXT-X-MAP") || tag.starts_with("EXT-X-PART:") {
                out.urls.insert(resolve(dir, uri));
            }
        } else if !line.trim().is_empty() {
            out.urls.insert(resolve(dir, line.trim()));
        }
    }
}

async fn listed(http: u16) -> Listed {
    let mut out = Listed::default();
    let (s, mpd) = http_get(http, &format!("/live/{NAME}/manifest.mpd")).await;
    assert_eq!(s, 200, "{mpd}");
    from_mpd(&mpd, &mut out);
    let (s, master) = http_get(http, &format!("/live/{NAME}/master.m3u8")).await;
    assert_eq!(s, 200, "{master}");
    let mut playlists = BTreeSet::new();
    for line in master.lines() {
        let uri = line
            .strip_prefix('#')
            .and_then(|t| attr(t, "URI"))
            .or((!line.starts_with('#') && !line.trim().is_empty()).then_some(line.trim()));
        if let Some(u) = uri {
            playlists.insert(resolve(&format!("/live/{NAME}/"), u));
        }
    }
    assert!(playlists.len() >= 3, "{master}");
    for pl in playlists {
        let (s, text) = http_get(http, &pl).await;
        assert_eq!(s, 200, "{pl}: {text}");
        let dir = pl.rsplit_once('/').unwrap().0.to_owned() + "/";
        from_playlist(&dir, &text, &mut out);
    }
    // The announced segments that are listed already (the one in progress) are not "next".
    let listed = out.urls.clone();
    out.next.retain(|u| !listed.contains(u));
    out
}

/// Waits until the MPD lists at least `n` video segments.
async fn wait_segments(http: u16, n: usize) {
    eventually(
        &format!("{n} video segments listed"),
        Duration::from_secs(60),
        || async move {
            let (s, mpd) = http_get(http, &format!("/live/{NAME}/manifest.mpd")).await;
            s == 200 && count_segments(&mpd, "video") >= n
        },
    )
    .await;
}

/// Every URL fetched at once (the one in progress and the announced ones stream for a few
/// seconds each): path → (status, body).
async fn fetch_all(
    http: u16,
    urls: impl IntoIterator<Item = String>,
) -> BTreeMap<String, (u16, Vec<u8>)> {
    let tasks: Vec<_> = urls
        .into_iter()
        .map(|u| tokio::spawn(async move { (u.clone(), fetch(http, &u).await) }))
        .collect();
    let mut out = BTreeMap::new();
    for t in tasks {
        let (u, r) = t.await.unwrap();
        out.insert(u, r);
    }
    out
}

/// The old presentation as a viewer saw it: every URL listed (and announced) and its bytes.
async fn record(http: u16) -> BTreeMap<String, Vec<u8>> {
    let l = listed(http).await;
    let got = fetch_all(http, l.urls.iter().chain(&l.next).cloned()).await;
    for u in &l.urls {
        assert_eq!(got[u].0, 200, "listed {u} not served");
    }
    got.into_iter()
        .filter(|(_, (s, b))| *s == 200 && !b.is_empty())
        .map(|(u, (_, b))| (u, b))
        .collect()
}

/// The new presentation against the old ones: no URL in common, no media URL answering with
/// an old object's bytes (listed or announced next), every old URL 404.
async fn check_fresh(http: u16, old: &BTreeMap<String, Vec<u8>>) -> Listed {
    let now = listed(http).await;
    assert!(!now.next.is_empty(), "no segment announced next: {now:?}");
    let reused: Vec<_> = now
        .urls
        .iter()
        .chain(&now.next)
        .filter(|u| old.contains_key(*u))
        .collect();
    let got = fetch_all(http, now.urls.iter().chain(&now.next).cloned()).await;
    let stale: Vec<_> = got
        .iter()
        .filter(|(u, (s, b))| u.ends_with(".m4s") && *s == 200 && old.values().any(|o| o == b))
        .map(|(u, _)| u.clone())
        .collect();
    assert!(
        stale.is_empty(),
        "URLs of the new presentation answered with the old presentation's bytes: {stale:?}"
    );
    assert!(
        reused.is_empty(),
        "the new presentation reuses URLs of the old one: {reused:?}"
    );
    for u in &now.urls {
        assert_eq!(got[u].0, 200, "listed {u} not served");
    }
    for u in &now.next {
        assert_eq!(got[u].0, 200, "announced {u} not served when it came");
        assert!(got[u].1.len() > 100, "announced {u}: empty body");
    }
    for u in old.keys() {
        let (s, _) = fetch(http, u).await;
        assert_eq!(s, 404, "{u} of the old presentation still served");
    }
    now
}

/// The presentation ids (directories) stored under the stream.
fn stored_presentations(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir.join("store/live").join(NAME))
        .map(|d| {
            d.filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// The first path component under `/live/NAME/` of the new presentation's media URLs.
fn presentation_of(l: &Listed) -> String {
    let u = l.urls.iter().find(|u| u.ends_with(".m4s")).unwrap();
    u.trim_start_matches(&format!("/live/{NAME}/"))
        .split('/')
        .next()
        .unwrap()
        .to_owned()
}

async fn sweep_leaves_only(dir: &Path, id: &str) {
    let want: BTreeSet<String> = [id.to_owned()].into();
    let t0 = Instant::now();
    eventually(
        "the store holds only the new presentation",
        Duration::from_secs(20),
        || async { stored_presentations(dir) == want },
    )
    .await;
    eprintln!(
        "store after the sweep: {:?} ({:.1} s)",
        stored_presentations(dir),
        t0.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_presentation_never_serves_the_old_ones_bytes() {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("ferrocast-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);

    // 1. A presentation of 5 segments, then a clean stop (SIGTERM).
    let srv = Serve::start(&dir).await;
    let publisher = srv.publish();
    wait_segments(srv.http, 5).await;
    let old1 = record(srv.http).await;
    assert!(old1.len() > 15, "{:?}", old1.keys());
    srv.stop().await;
    drop(publisher);

    // 2. Started again on the same store, the same name published again: checked while it is
    //    shorter than the old one (its announced next number was stored by the old one).
    let srv = Serve::start(&dir).await;
    let publisher = srv.publish();
    wait_segments(srv.http, 2).await;
    let now = check_fresh(srv.http, &old1).await;
    sweep_leaves_only(&dir, &presentation_of(&now)).await;
    // Then it runs longer than the next one will, and the server is killed (SIGKILL).
    wait_segments(srv.http, 5).await;
    let old2 = record(srv.http).await;
    srv.kill().await;
    drop(publisher);
    assert!(
        stored_presentations(&dir).contains(&presentation_of(&now)),
        "the killed server's presentation is not in the store: nothing to sweep"
    );

    // 3. After the crash: the same checks against what the killed server left.
    let srv = Serve::start(&dir).await;
    let publisher = srv.publish();
    wait_segments(srv.http, 2).await;
    let mut old = old1;
    old.extend(old2);
    let now = check_fresh(srv.http, &old).await;
    sweep_leaves_only(&dir, &presentation_of(&now)).await;
    srv.stop().await;
    drop(publisher);
    let _ = std::fs::remove_dir_all(&dir);
}
