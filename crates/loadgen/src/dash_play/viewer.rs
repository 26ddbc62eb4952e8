//! One simulated DASH player (see the module above for what it does): its MPD refresh loop,
//! one fetch loop per track (video, audio) that plans what to fetch next, and the counters
//! each response updates.

use std::{
    collections::BTreeMap,
    sync::{atomic::Ordering::Relaxed, Arc, Mutex},
    time::Duration,
};

use tokio::{
    sync::Notify,
    time::{sleep_until, timeout_at, Instant},
};

use super::{
    abr::{Abr, Switch},
    context::Ctx,
    mpd::{self, Content, Mpd, Segment},
    playback::Playback,
    report::ViewerResult,
};
use crate::{
    http::{self, HttpClient},
    Error,
};

/// A segment response slower than this is counted as slow (by its `X-Cache`).
const SLOW: Duration = Duration::from_secs(1);
/// Largest segment accepted (bytes).
const MAX_SEGMENT_BYTES: u64 = 64 << 20;
/// Tries for one segment before skipping it.
const SEGMENT_TRIES: u32 = 3;
/// Pause before trying a failed request again.
const RETRY_PAUSE: Duration = Duration::from_millis(500);
/// The initial MPD must arrive within this (the stream may still be starting).
const FIRST_MPD_WITHIN: Duration = Duration::from_secs(30);

/// One track (video or audio) of a player.
#[derive(Debug, Clone)]
struct Track {
    content: Content,
    period: String,
    rep: String,
    next: u64,
    /// (period, representation) whose init segment is in.
    init: Option<(String, String)>,
    /// End of received media, seconds since availabilityStartTime.
    end: Option<f64>,
    tries: u32,
    abr: Option<Abr>,
    /// No more segments will come (the MPD ended).
    done: bool,
}

struct Viewer {
    mpd: Arc<Mpd>,
    /// Local instant of the next MPD refresh (none once the MPD stopped updating).
    next_refresh: Option<Instant>,
    tracks: Vec<Track>,
    playback: Playback,
    start_pos: f64,
    begin: Instant,
    result: ViewerResult,
}

// One per loop turn of a track, never stored: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Plan {
    Fetch {
        init: Option<::http::Uri>,
        uri: ::http::Uri,
        rep: String,
        number: u64,
        start: f64,
        end: f64,
        /// The segment was complete when asked for.
        complete: bool,
    },
    Wait(Instant),
    Done,
}

fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
    *map.entry(key.to_owned()).or_default() += 1;
}

impl Viewer {
    fn secs(&self, at: Instant) -> f64 {
        (at - self.begin).as_secs_f64()
    }

    /// Decides what `track` does next.
    fn plan(&mut self, ctx: &Ctx, t: usize) -> Result<Plan, Error> {
        let now = Instant::now();
        let now_s = self.secs(now);
        let playhead = self.playback.position(now_s);
        let mpd = self.mpd.clone();
        let ast = mpd.availability_start_ms.unwrap_or(0) as f64;
        let track = &mut self.tracks[t];
        let Some(period) = mpd.period(&track.period) else {
            // Our Period left the MPD (time-shift window): go on in the last one.
            let Some(last) = mpd.last_period() else {
                return Ok(Plan::Done);
            };
            track.period = last.id.clone();
            track.init = None;
            return Ok(Plan::Wait(now));
        };
        let Some(set) = period.set(track.content) else {
            return Ok(Plan::Wait(self.next_refresh.unwrap_or(ctx.stop_at)));
        };
        // The current Representation, or the nearest in bandwidth if it went away.
        let rep = match set.representation(&track.rep) {
            Some(r) => r,
            None => {
                let r = &set.representations[0];
                track.rep = r.id.clone();
                if let Some(abr) = &mut track.abr {
                    *abr = Abr::new(set.representations.iter().map(|r| r.bandwidth).collect());
                }
                r
            }
        };
        let tmpl = &rep.template;
        let Some(seg) = tmpl.segment(track.next).copied() else {
            let first = tmpl.segments.first().map(|s| s.number);
            if first.is_some_and(|f| track.next < f) {
                // Fell out of the time-shift window before we got there.
                let f = first.unwrap_or(track.next);
                self.result.skipped += (f - track.next).min(u32::MAX as u64) as u32;
                track.next = f;
                return Ok(Plan::Wait(now));
            }
            if let Some(p) = mpd.period_after(&track.period) {
                // The Period ended (a republish): go on with the next one from its start.
                track.period = p.id.clone();
                track.init = None;
                if let Some(s) = p
                    .set(track.content)
                    .and_then(|s| s.representations.first())
                    .and_then(|r| r.template.segments.first())
                {
                    track.next = s.number;
                }
                return Ok(Plan::Wait(now));
            }
            return Ok(match self.next_refresh {
                // (While the refresh is under way `r` is past: the refresh's notification
                // wakes the track, so do not spin until it lands.)
                Some(r) => Plan::Wait(r.max(now + Duration::from_secs(1))),
                None => Plan::Done, // ended: nothing more will be listed
            });
        };
        let start = period.start_s + tmpl.start_s(&seg);
        let end = period.start_s + tmpl.end_s(&seg);
        // Buffer room.
        if let Some(pos) = playhead {
            let ahead = start - pos;
            let max = ctx.cfg.max_buffer.as_secs_f64();
            if ahead > max {
                return Ok(Plan::Wait(
                    now + Duration::from_secs_f64((ahead - max).min(3600.0)),
                ));
            }
        }
        let complete_ms = ast + end * 1000.0;
        let ato = if ctx.cfg.low_latency {
            tmpl.availability_time_offset_s
        } else {
            0.0
        };
        let available = ctx.instant_at(
            complete_ms - ato * 1000.0 + ctx.cfg.margin.as_secs_f64() * 1000.0,
            now,
        );
        if available > now {
            return Ok(Plan::Wait(available));
        }
        let init = match &track.init {
            Some((p, r)) if *p == track.period && *r == rep.id => None,
            _ => match rep.init_url()? {
                Some(u) => Some(ctx.uri(&u)?),
                None => None,
            },
        };
        Ok(Plan::Fetch {
            init,
            uri: ctx.uri(&rep.media_url(&seg)?)?,
            rep: rep.id.clone(),
            number: seg.number,
            start,
            end,
            complete: ctx.server_now_ms()
                >= complete_ms + ctx.cfg.margin.as_secs_f64() * 1000.0 - 1.0,
        })
    }
}

/// Records a response in the player's and the run's counters. A request cut off because the
/// run ended is not counted: it is no error of the server's.
fn record(ctx: &Ctx, v: &Mutex<Viewer>, f: &Result<http::Fetched, Error>, object: Option<&str>) {
    if f.is_err() && Instant::now() >= ctx.stop_at {
        return;
    }
    let Ok(mut v) = v.lock() else { return };
    let what = if object.is_some() { "segment" } else { "mpd" };
    match f {
        Ok(f) => {
            v.result.bytes += f.bytes;
            ctx.shared.bytes.fetch_add(f.bytes, Relaxed);
            bump(
                &mut v.result.x_cache,
                f.x_cache.as_deref().unwrap_or("none"),
            );
            if f.status != 200 {
                bump(
                    &mut v.result.http_errors,
                    &format!("{what}: status {}", f.status),
                );
                ctx.shared.http_errors.fetch_add(1, Relaxed);
            }
            if object.is_some() && f.elapsed > SLOW {
                bump(&mut v.result.slow, f.x_cache.as_deref().unwrap_or("none"));
            }
            if let Some(key) = object {
                if let Ok(mut o) = ctx.shared.objects.lock() {
                    let c = o.entry(key.to_owned()).or_default();
                    c.requests += 1;
                    if matches!(f.x_cache.as_deref(), Some("MISS" | "BYPASS")) {
                        c.misses += 1;
                    }
                }
            }
        }
        Err(e) => {
            bump(&mut v.result.http_errors, &format!("{what}: {}", e.kind()));
            ctx.shared.http_errors.fetch_add(1, Relaxed);
        }
    }
}

async fn fetch(
    ctx: &Ctx,
    client: &HttpClient,
    uri: &::http::Uri,
    keep: bool,
    max: u64,
) -> Result<http::Fetched, Error> {
    let deadline = (Instant::now() + ctx.cfg.request_timeout).min(ctx.stop_at);
    http::get(client, uri, keep, max, deadline).await
}

/// GETs and parses the MPD; counts it.
async fn fetch_mpd(ctx: &Ctx, client: &HttpClient, v: &Mutex<Viewer>) -> Result<Mpd, Error> {
    let f = fetch(ctx, client, &ctx.mpd_uri, true, mpd::MAX_MPD_BYTES as u64).await;
    record(ctx, v, &f, None);
    let f = f?;
    if f.status != 200 {
        return Err(Error::Status(f.status));
    }
    let body = f.body.unwrap_or_default();
    let text =
        std::str::from_utf8(&body).map_err(|_| Error::Mpd(mpd::MpdError("not UTF-8".into())))?;
    let parsed = Mpd::parse(text, &ctx.mpd_url);
    if let Ok(mut v) = v.lock() {
        match &parsed {
            Ok(_) => v.result.mpd_fetches += 1,
            Err(_) => bump(&mut v.result.http_errors, "mpd: unusable"),
        }
    }
    Ok(parsed?)
}

fn update_period(mpd: &Mpd) -> Option<Duration> {
    mpd.minimum_update_period
        .map(|d| d.clamp(Duration::from_millis(500), Duration::from_secs(60)))
}

async fn mpd_loop(ctx: &Ctx, client: &HttpClient, v: &Mutex<Viewer>, notify: &Notify) {
    loop {
        let next = match v.lock() {
            Ok(v) => v.next_refresh,
            Err(_) => return,
        };
        let Some(next) = next else { return };
        sleep_until(next.min(ctx.stop_at)).await;
        if Instant::now() >= ctx.stop_at {
            return;
        }
        let got = fetch_mpd(ctx, client, v).await;
        if let Ok(mut v) = v.lock() {
            match got {
                Ok(m) => {
                    v.next_refresh = update_period(&m).map(|p| Instant::now() + p);
                    v.mpd = Arc::new(m);
                }
                Err(_) => {
                    let p = update_period(&v.mpd).unwrap_or(Duration::from_secs(2));
                    v.next_refresh = Some(Instant::now() + p);
                }
            }
        }
        notify.notify_waiters();
    }
}

async fn track_loop(
    ctx: &Ctx,
    client: &HttpClient,
    v: &Mutex<Viewer>,
    notify: &Notify,
    t: usize,
) -> Result<(), Error> {
    let mut immediate = 0u32;
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let plan = {
            let mut g = v.lock().map_err(|_| Error::Input("poisoned".into()))?;
            g.plan(ctx, t)?
        };
        match plan {
            Plan::Done => {
                if let Ok(mut g) = v.lock() {
                    g.tracks[t].done = true;
                    if g.tracks.iter().all(|t| t.done) {
                        g.result.ended = true;
                        let now_s = g.secs(Instant::now());
                        g.playback.end_of_stream(now_s);
                    }
                }
                return Ok(());
            }
            Plan::Wait(at) => {
                if at > Instant::now() {
                    tokio::select! {
                        _ = sleep_until(at.min(ctx.stop_at)) => {}
                        _ = &mut notified => {}
                    }
                } else {
                    // A state change (window, Period) to act on at once; never spin.
                    immediate += 1;
                    if immediate > 100 {
                        immediate = 0;
                        sleep_until(Instant::now() + Duration::from_millis(10)).await;
                    } else {
                        tokio::task::yield_now().await;
                    }
                }
                if Instant::now() >= ctx.stop_at {
                    return Ok(());
                }
            }
            Plan::Fetch {
                init,
                uri,
                rep,
                number,
                start,
                end,
                complete,
            } => {
                if let Some(init_uri) = init {
                    let f = fetch(ctx, client, &init_uri, false, MAX_SEGMENT_BYTES).await;
                    record(ctx, v, &f, Some(init_uri.path()));
                    if f.is_err() && Instant::now() >= ctx.stop_at {
                        return Ok(()); // the run ended during the request
                    }
                    let ok = matches!(&f, Ok(f) if f.status == 200);
                    {
                        let mut g = v.lock().map_err(|_| Error::Input("poisoned".into()))?;
                        let tr = &mut g.tracks[t];
                        if ok {
                            tr.init = Some((tr.period.clone(), rep.clone()));
                            tr.tries = 0;
                        } else {
                            tr.tries += 1;
                        }
                    }
                    if !ok {
                        sleep_until((Instant::now() + RETRY_PAUSE).min(ctx.stop_at)).await;
                    }
                    continue;
                }
                let f = if complete {
                    fetch(ctx, client, &uri, false, MAX_SEGMENT_BYTES).await
                } else {
                    // A segment still being made arrives chunk by chunk, in real time: what
                    // has arrived reaches up to the live edge (less one 0.5 s chunk), which is
                    // what a low-latency player appends to its buffer as it goes.
                    let deadline = (Instant::now() + ctx.cfg.request_timeout).min(ctx.stop_at);
                    let mut on_data = |_: u64| {
                        if let Ok(mut g) = v.lock() {
                            let ast = g.mpd.availability_start_ms.unwrap_or(0) as f64;
                            let edge = (ctx.server_now_ms() - ast) / 1000.0 - 0.5;
                            let partial = edge.min(end);
                            let g = &mut *g;
                            let tr = &mut g.tracks[t];
                            if tr.end.is_some_and(|e| e >= start - 0.05)
                                && partial > tr.end.unwrap_or(0.0)
                            {
                                tr.end = Some(partial);
                                if g.playback.started() {
                                    let buffered = g
                                        .tracks
                                        .iter()
                                        .filter_map(|t| t.end)
                                        .fold(f64::INFINITY, f64::min);
                                    let now_s = g.secs(Instant::now());
                                    let before = g.playback.stalls;
                                    g.playback.buffered(now_s, buffered);
                                    ctx.shared
                                        .stalls
                                        .fetch_add(u64::from(g.playback.stalls - before), Relaxed);
                                }
                            }
                        }
                    };
                    http::get_with(
                        client,
                        &uri,
                        false,
                        MAX_SEGMENT_BYTES,
                        deadline,
                        &mut on_data,
                    )
                    .await
                };
                record(ctx, v, &f, Some(uri.path()));
                if f.is_err() && Instant::now() >= ctx.stop_at {
                    return Ok(()); // the run ended during the request
                }
                let failed = {
                    let mut g = v.lock().map_err(|_| Error::Input("poisoned".into()))?;
                    let now_s = g.secs(Instant::now());
                    match f {
                        Ok(f) if f.status == 200 => {
                            ctx.shared.segments.fetch_add(1, Relaxed);
                            let g = &mut *g;
                            let tr = &mut g.tracks[t];
                            tr.next = number + 1;
                            tr.tries = 0;
                            tr.end = Some(end);
                            if tr.content == Content::Video {
                                g.result.video_segments += 1;
                                *g.result.renditions.entry(rep.clone()).or_default() += 1;
                                if let Some(abr) = &mut tr.abr {
                                    let sw = abr.on_fetch(
                                        f.bytes,
                                        f.elapsed.as_secs_f64(),
                                        end - start,
                                        complete,
                                    );
                                    let set = g
                                        .mpd
                                        .period(&tr.period)
                                        .and_then(|p| p.set(Content::Video));
                                    if let Some(r) =
                                        set.and_then(|s| s.representations.get(abr.index))
                                    {
                                        tr.rep = r.id.clone();
                                    }
                                    match sw {
                                        Switch::Up => g.result.switches_up += 1,
                                        Switch::Down => g.result.switches_down += 1,
                                        Switch::None => {}
                                    }
                                }
                            } else {
                                g.result.audio_segments += 1;
                            }
                            let all_in = g.tracks.iter().all(|t| t.end.is_some());
                            let buffered = g
                                .tracks
                                .iter()
                                .filter_map(|t| t.end)
                                .fold(f64::INFINITY, f64::min);
                            if all_in {
                                if g.playback.started() {
                                    let before = g.playback.stalls;
                                    g.playback.buffered(now_s, buffered);
                                    ctx.shared
                                        .stalls
                                        .fetch_add(u64::from(g.playback.stalls - before), Relaxed);
                                } else {
                                    g.result.startup_s = Some(now_s);
                                    let pos = g.start_pos.min(buffered);
                                    g.playback.start(now_s, pos, buffered);
                                    ctx.shared.started.fetch_add(1, Relaxed);
                                }
                            }
                            false
                        }
                        _ => {
                            let g2 = &mut *g;
                            let tr = &mut g2.tracks[t];
                            tr.tries += 1;
                            if tr.tries >= SEGMENT_TRIES {
                                tr.tries = 0;
                                tr.next = number + 1;
                                g2.result.skipped += 1;
                            }
                            true
                        }
                    }
                };
                if failed {
                    sleep_until((Instant::now() + RETRY_PAUSE).min(ctx.stop_at)).await;
                }
            }
        }
    }
}

/// The first MPD, retried while the stream is starting.
async fn first_mpd(ctx: &Ctx, client: &HttpClient, v: &Mutex<Viewer>) -> Result<Mpd, Error> {
    let give_up = (Instant::now() + FIRST_MPD_WITHIN).min(ctx.stop_at);
    loop {
        match fetch_mpd(ctx, client, v).await {
            Ok(m) => return Ok(m),
            Err(e) if Instant::now() + Duration::from_secs(1) >= give_up => return Err(e),
            Err(Error::Mpd(e)) => return Err(Error::Mpd(e)),
            Err(_) => sleep_until(Instant::now() + Duration::from_secs(1)).await,
        }
    }
}

fn placeholder_mpd() -> Mpd {
    Mpd {
        dynamic: true,
        availability_start_ms: None,
        publish_time_ms: None,
        minimum_update_period: None,
        suggested_presentation_delay: None,
        time_shift_buffer_depth: None,
        media_presentation_duration: None,
        utc_timing: Vec::new(),
        periods: Vec::new(),
    }
}

pub(super) async fn viewer(ctx: Arc<Ctx>, index: usize, start_at: Instant) -> ViewerResult {
    sleep_until(start_at).await;
    let begin = Instant::now();
    let client = http::client(2);
    let v = Mutex::new(Viewer {
        mpd: Arc::new(placeholder_mpd()),
        next_refresh: None,
        tracks: Vec::new(),
        playback: Playback::default(),
        start_pos: 0.0,
        begin,
        result: ViewerResult {
            index,
            ..Default::default()
        },
    });
    let outcome = async {
        let m = first_mpd(&ctx, &client, &v).await?;
        setup(&ctx, &v, m)?;
        let notify = Notify::new();
        let tracks = v.lock().map(|g| g.tracks.len()).unwrap_or(0);
        let mpd = mpd_loop(&ctx, &client, &v, &notify);
        let video = track_loop(&ctx, &client, &v, &notify, 0);
        let audio = async {
            if tracks > 1 {
                track_loop(&ctx, &client, &v, &notify, 1).await
            } else {
                Ok(())
            }
        };
        // The MPD loop ends by itself once the MPD stops updating; the tracks end the player.
        let tracks = async { tokio::try_join!(video, audio).map(|_| ()) };
        tokio::pin!(tracks);
        tokio::select! {
            r = &mut tracks => r,
            _ = mpd => tracks.await,
        }
    };
    let outcome = timeout_at(ctx.stop_at, outcome).await;
    let mut g = match v.into_inner() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    let now_s = g.secs(Instant::now().min(ctx.stop_at));
    g.playback.finish(now_s);
    let error = match outcome {
        Ok(Err(e)) => Some(e),
        Err(_) if !g.playback.started() => {
            Some(Error::Timeout("no media before the end of the run"))
        }
        _ => None,
    };
    if let Some(e) = &error {
        ctx.shared.failed.fetch_add(1, Relaxed);
        g.result.error = Some(e.to_string());
        g.result.error_kind = Some(e.kind());
    }
    g.result.stalls = g.playback.stalls;
    g.result.started_at_s = (begin - ctx.t0).as_secs_f64();
    g.result.stall_starts_s = std::mem::take(&mut g.playback.stall_starts);
    g.result.stall_s = g.playback.stall_s;
    if let (Some(pos), Some(ast)) = (g.playback.position(now_s), g.mpd.availability_start_ms) {
        g.result.latency_s = Some((ctx.server_now_ms() - ast as f64) / 1000.0 - pos);
    }
    g.result.final_rendition = g.tracks.first().map(|t| t.rep.clone());
    g.result
}

/// Picks the starting point in the last Period.
fn setup(ctx: &Ctx, v: &Mutex<Viewer>, m: Mpd) -> Result<(), Error> {
    if !m.dynamic {
        return Err(Error::Mpd(mpd::MpdError("not a live (dynamic) MPD".into())));
    }
    let period = m
        .last_period()
        .ok_or_else(|| Error::Mpd(mpd::MpdError("no Period".into())))?;
    let video = period
        .set(Content::Video)
        .ok_or_else(|| Error::Mpd(mpd::MpdError("no video AdaptationSet".into())))?;
    let seg_s = m.max_segment_s().unwrap_or(4.0);
    let delay = match ctx.cfg.delay {
        Some(d) => d.as_secs_f64(),
        None if ctx.cfg.low_latency => m
            .suggested_presentation_delay
            .map_or(seg_s, |d| d.as_secs_f64()),
        None => 2.0 * seg_s,
    };
    let edge = (ctx.server_now_ms() - m.availability_start_ms.unwrap_or(0) as f64) / 1000.0;
    let target = edge - delay - period.start_s;
    let mut tracks = Vec::new();
    let mut start_pos = f64::NEG_INFINITY;
    let sets = [Some(video), period.set(Content::Audio)];
    for set in sets.into_iter().flatten() {
        let rep = &set.representations[0];
        let t = &rep.template;
        let seg: Segment = match t.segment_at(target) {
            Some(s) => *s,
            None => *t.segments.last().ok_or_else(|| {
                Error::Mpd(mpd::MpdError(format!(
                    "Representation {:?} lists no segment",
                    rep.id
                )))
            })?,
        };
        start_pos = start_pos.max(period.start_s + t.start_s(&seg));
        let content = if std::ptr::eq(set, video) {
            Content::Video
        } else {
            Content::Audio
        };
        tracks.push(Track {
            content,
            period: period.id.clone(),
            rep: rep.id.clone(),
            next: seg.number,
            init: None,
            end: None,
            tries: 0,
            done: false,
            abr: (content == Content::Video)
                .then(|| Abr::new(set.representations.iter().map(|r| r.bandwidth).collect())),
        });
    }
    let mut g = v.lock().map_err(|_| Error::Input("poisoned".into()))?;
    g.start_pos = start_pos.max(period.start_s + target);
    g.next_refresh = update_period(&m).map(|p| Instant::now() + p);
    g.tracks = tracks;
    g.mpd = Arc::new(m);
    Ok(())
}
