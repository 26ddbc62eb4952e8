// ferrocast web player (/watch/NAME): dash.js with low-latency settings, live stats, and
// beacons with first-frame time, stalls and latency samples to POST /api/beacon.
//
// Query parameters (for comparisons and debugging): ?ll=0 turns low latency off (dash.js's
// defaults, ignoring the MPD's latency hints); ?delay=SECONDS forces the target live delay;
// ?mode=webrtc plays over WHEP instead (sub-second; ?rendition=source|720|400 picks the
// rendition, ?rendition=auto lets the server move between 720 and 400 with the bandwidth it
// estimates to us, the server's default — the source, the lowest delay — otherwise).
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const video = $('video');
  const name = decodeURIComponent(location.pathname.replace(/\/+$/, '').split('/').pop() || '');
  const params = new URLSearchParams(location.search);
  const lowLatency = params.get('ll') !== '0';
  const webrtc = params.get('mode') === 'webrtc';
  const delayParam = Number.parseFloat(params.get('delay') ?? '');
  const mpdUrl = `/live/${encodeURIComponent(name)}/manifest.mpd`;
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  // Everything the page measures. The browser test reads it as window.ferrocast.stats.
  const stats = {
    stream: name, state: 'loading', live: false, lowLatency, mode: '', targetDelay: NaN,
    firstPlayingMs: null, firstFrameMs: null, waited: false,
    latency: NaN, prftLatency: NaN, playerLatency: NaN, width: 0, height: 0, buffer: NaN, rate: 1,
    stalls: 0, stallMs: 0, stallLog: [], errors: [], ended: false, endedBy: null, mpdEnd: NaN,
    // WebRTC mode: the session's URL, frames decoded, and where the latency figure comes from.
    session: null, framesDecoded: 0, latencySource: '',
  };
  let player = null;
  window.ferrocast = { stats, get player() { return player; } };

  $('title').textContent = name;
  document.title = `${name} — ferrocast`;

  function setState(state, message) {
    stats.state = state;
    const badge = $('badge');
    badge.textContent = { live: 'LIVE', playing: 'playing', ended: 'ended', error: 'error' }[state] || state;
    badge.className = 'badge' + (state === 'live' ? ' live' : state === 'error' ? ' error' : '');
    $('overlay').hidden = !message;
    $('overlay').textContent = message || '';
  }

  // ---- MPD inspection: decides the settings before dash.js starts -------------------------

  function isoSeconds(d) {
    const m = /^PT(?:([\d.]+)H)?(?:([\d.]+)M)?(?:([\d.]+)S)?$/.exec(d || '');
    return m ? (+(m[1] || 0)) * 3600 + (+(m[2] || 0)) * 60 + (+(m[3] || 0)) : NaN;
  }

  // ---- Latency from the MPD's ProducerReferenceTime -----------------------------------------
  // The server anchors each Period on the capture clock and says so with a
  // ProducerReferenceTime (the wall-clock time at which a media time was captured). The latency
  // shown is then capture → screen: now (on the server's clock, from /time) minus the capture
  // time of the frame on screen. dash.js's own estimate (getCurrentLiveLatency) assumes the
  // availability start time is the capture clock; this reads it from the MPD instead.
  let prft = null; // [{ periodStart (s), wallMs, mediaS (the reference's time on the timeline) }]
  let clockOffsetMs = 0; // server clock − ours
  const asArray = (v) => (Array.isArray(v) ? v : v == null ? [] : [v]);
  function producerReferences(mpd) {
    if (!mpd) return null;
    const out = [];
    for (const period of asArray(mpd.Period || mpd.Period_asArray)) {
      const start = Number(period.start) || 0;
      for (const set of asArray(period.AdaptationSet || period.AdaptationSet_asArray)) {
        const ref = asArray(set.ProducerReferenceTime || set.ProducerReferenceTime_asArray)[0];
        const tmpl = set.SegmentTemplate || asArray(set.Representation)[0]?.SegmentTemplate || {};
        const ts = Number(tmpl.timescale) || 1;
        const pto = Number(tmpl.presentationTimeOffset) || 0;
        // dash.js hands the attribute over already parsed, as a Date: Date.parse() of that
        // goes through its string form, which has whole seconds only (latency off by up to 1 s).
        const wall = ref && ref.wallClockTime;
        const wallMs = wall instanceof Date ? wall.getTime() : Date.parse(wall);
        if (!Number.isFinite(wallMs)) continue;
        out.push({ periodStart: start, wallMs, mediaS: start + (Number(ref.presentationTime) - pto) / ts });
        break;
      }
    }
    return out.length ? out : null;
  }
  function prftLatency(currentTime) {
    if (!prft) return NaN;
    // The reference of the Period that holds the frame on screen.
    const ref = [...prft].reverse().find((r) => r.periodStart <= currentTime + 0.001) || prft[0];
    const capturedMs = ref.wallMs + (currentTime - ref.mediaS) * 1000;
    return (Date.now() + clockOffsetMs - capturedMs) / 1000;
  }
  async function syncClock() {
    try {
      const t0 = Date.now();
      const res = await fetch('/time', { cache: 'no-store' });
      const server = Date.parse((await res.text()).trim());
      const t1 = Date.now();
      if (Number.isFinite(server)) clockOffsetMs = server - (t0 + t1) / 2;
    } catch (e) {
      // Keep our own clock.
    }
  }
  syncClock();

  function inspect(text) {
    const doc = new DOMParser().parseFromString(text, 'application/xml');
    const mpd = doc.documentElement;
    const all = (tag) => [...doc.getElementsByTagName(tag)];
    const latency = all('Latency')[0];
    const rate = all('PlaybackRate')[0];
    return {
      // A dynamic MPD with mediaPresentationDuration is a live stream that has ended.
      live: mpd.getAttribute('type') === 'dynamic' && !mpd.hasAttribute('mediaPresentationDuration'),
      // LL-DASH: segments are fetched while they are being produced.
      chunked: all('*').some((e) => e.getAttribute('availabilityTimeComplete') === 'false'),
      serviceTarget: latency ? +latency.getAttribute('target') / 1000 : NaN,
      serviceRates: !!rate,
      segment: isoSeconds(mpd.getAttribute('maxSegmentDuration')),
    };
  }

  // The settings for this MPD. Names are dash.js 5's (index.d.ts and Settings.js of the pinned
  // version). dash.js's own order for the target delay: streaming.delay.liveDelay, then
  // liveDelayFragmentCount, then the MPD's ServiceDescription, then suggestedPresentationDelay.
  function settingsFor(info) {
    const s = { streaming: { abr: { autoSwitchBitrate: { video: true } } } };
    if (!lowLatency) {
      // For comparison: a classic live player, which ignores the MPD's latency hints and
      // plays dash.js's default four segments behind live, at normal speed.
      s.streaming.applyServiceDescription = false;
      s.streaming.delay = { useSuggestedPresentationDelay: false };
      s.streaming.liveCatchup = { enabled: false };
      return { mode: 'low latency off (dash.js defaults, no latency hints)', settings: s };
    }
    // Catch up (or slow down) by at most 10 %: barely audible, unlike dash.js's default of ±50 %.
    const catchup = { enabled: true, playbackRate: { min: -0.1, max: 0.1 } };
    let delay;
    let mode;
    if (info.chunked) {
      // LL-DASH: dash.js switches to its low-latency mode by itself (availabilityTimeComplete
      // is false) and fetches the segment in progress as it is produced. The server's
      // ServiceDescription (target latency, playback rates) knows the chunk size and the
      // encoder's lag, so it decides; without one, aim 1.5 s behind live.
      delay = Number.isFinite(info.serviceTarget) ? NaN : 1.5;
      if (info.serviceRates) delete catchup.playbackRate;
      mode = 'low latency (chunked CMAF)';
    } else {
      // Whole segments: one is listed only once complete (its duration) plus the server's
      // production lag, and the MPD is re-read every minimumUpdatePeriod; playing closer to
      // live than that stalls. One segment plus 4 s played without stalls here (4-s segments,
      // 3-5 s lag on a busy 2-core machine); ?delay= overrides it.
      const segment = Number.isFinite(info.segment) ? info.segment : 4;
      delay = segment + 4;
      // Seek back towards live when more than two segments late (after a long stall).
      catchup.maxDrift = 2 * segment;
      mode = 'low delay (whole segments)';
    }
    if (Number.isFinite(delayParam) && delayParam > 0) delay = delayParam;
    s.streaming.delay = { liveDelay: delay };
    s.streaming.liveCatchup = catchup;
    return { mode, settings: s };
  }

  // ---- Beacons ---------------------------------------------------------------------------

  const pending = { latency: [], stalls: 0, stallMs: 0, playedMs: 0, firstFrame: null };

  function sendBeacon() {
    const body = { stream: name };
    if (pending.firstFrame !== null) body.first_frame_s = pending.firstFrame;
    if (pending.latency.length) body.latency_s = pending.latency.slice(-30);
    if (pending.stalls) body.stalls = pending.stalls;
    if (pending.stallMs) body.stall_s = +(pending.stallMs / 1000).toFixed(3);
    if (pending.playedMs >= 1) body.played_s = +(pending.playedMs / 1000).toFixed(3);
    if (Object.keys(body).length === 1) return;
    const json = JSON.stringify(body);
    // A string body goes as text/plain, which sendBeacon may send anywhere; the server does not
    // look at the content type. fetch(keepalive) is the fallback where sendBeacon refuses.
    if (!(navigator.sendBeacon && navigator.sendBeacon('/api/beacon', json))) {
      fetch('/api/beacon', { method: 'POST', body: json, keepalive: true }).catch(() => {});
    }
    Object.assign(pending, { latency: [], stalls: 0, stallMs: 0, playedMs: 0, firstFrame: null });
  }
  setInterval(sendBeacon, 10000);
  // The last beacon when the viewer leaves: pagehide fires on close and on navigation, and
  // visibilitychange covers mobile browsers that kill hidden tabs without pagehide.
  addEventListener('pagehide', () => { endStall(); sendBeacon(); });
  let hiddenBeforePlay = document.hidden;
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) return;
    if (stats.firstPlayingMs === null) hiddenBeforePlay = true;
    sendBeacon();
  });

  // ---- Playback events: first frame and stalls --------------------------------------------

  let stallStart = null;
  function endStall() {
    if (stallStart === null) return;
    const ms = performance.now() - stallStart;
    const stallStartAt = stallStart;
    stallStart = null;
    stats.stalls += 1;
    stats.stallMs += ms;
    // When and how long (seconds since page load), the last 20, for debugging.
    stats.stallLog.push([+(stallStartAt / 1000).toFixed(2), Math.round(ms)]);
    if (stats.stallLog.length > 20) stats.stallLog.shift();
    pending.stalls += 1;
    pending.stallMs += ms;
  }

  video.addEventListener('playing', () => {
    if (stats.firstPlayingMs === null) {
      // performance.now() counts from navigation start, so this is page load → playing.
      stats.firstPlayingMs = performance.now();
      $('firstframe').textContent = (stats.firstPlayingMs / 1000).toFixed(2) + ' s' + (stats.waited ? ' (incl. wait)' : '');
      // Waiting for a broadcast to start, or in a background tab (no autoplay there), is not
      // a first-frame time.
      if (!stats.waited && !hiddenBeforePlay) pending.firstFrame = +(stats.firstPlayingMs / 1000).toFixed(3);
      if (video.requestVideoFrameCallback) {
        video.requestVideoFrameCallback(() => { stats.firstFrameMs = performance.now(); });
      }
    }
    endStall();
    if (!stats.ended) setState(stats.live ? 'live' : 'playing');
  });
  // A stall: playback stopped for lack of data after it had started. Seeks (ours or dash.js's
  // catch-up) are not stalls.
  video.addEventListener('waiting', () => {
    if (stats.firstPlayingMs !== null && !video.seeking && !stats.ended && stallStart === null) {
      stallStart = performance.now();
    }
  });
  // A seek during a stall (dash.js jumping back to live) ends it: the viewer saw it all the same.
  video.addEventListener('seeking', endStall);
  video.addEventListener('resize', () => {
    if (video.videoWidth && video.videoHeight) {
      const stage = video.parentElement;
      stage.style.aspectRatio = `${video.videoWidth} / ${video.videoHeight}`;
      stage.style.setProperty('--ar', video.videoWidth / video.videoHeight);
    }
  });
  video.addEventListener('ended', () => onEnded('dash.js'));

  function onEnded(by) {
    if (stats.ended) return;
    // Running out of media at the end of a broadcast is the end, not a stall.
    stallStart = null;
    stats.endedBy = by;
    sendBeacon();
    if (webrtc) {
      stats.ended = true;
      setState('ended', `The broadcast of ${name} has ended.`);
      restartWebrtc();
      return;
    }
    ended();
  }

  // ---- Stats display ------------------------------------------------------------------------

  let lastTick = performance.now();
  let lastSample = 0;
  let lastTime = -1;
  let lastMoved = 0;
  function tick() {
    const now = performance.now();
    const dt = now - lastTick;
    lastTick = now;
    if (webrtc) {
      const playing = !video.paused && !stats.ended && stallStart === null && video.readyState >= 3;
      if (playing) pending.playedMs += dt;
      tickWebrtc().then(() => {
        if (playing && stats.latency > 0 && now - lastSample >= 2000) {
          lastSample = now;
          pending.latency.push(+stats.latency.toFixed(3));
        }
      }, () => {});
      return;
    }
    if (!player || stats.firstPlayingMs === null) return;
    // Safety net for the end of a broadcast: dash.js 5 ends a dynamic stream
    // by itself only if the MPD also says which segment is the last (SegmentTemplate@endNumber)
    // or turns static; otherwise it waits forever at the end. So once the MPD has a
    // mediaPresentationDuration, playback stuck within a second of it, or stuck anywhere for
    // 3 s (one track, often audio, can end a little early), is the end.
    if (video.currentTime !== lastTime || video.paused) {
      lastTime = video.currentTime;
      lastMoved = now;
    }
    const stuck = !video.paused && now - lastMoved >= 3000;
    const atEnd = stats.mpdEnd - video.currentTime < 1 && (video.readyState < 3 || video.paused);
    if (!stats.ended && Number.isFinite(stats.mpdEnd) && (atEnd || stuck)) {
      onEnded('page');
      video.pause();
    }
    const playing = !video.paused && !stats.ended && stallStart === null && video.readyState >= 3;
    if (playing) pending.playedMs += dt;
    const live = stats.live && !stats.ended;
    stats.playerLatency = live ? player.getCurrentLiveLatency() : NaN;
    stats.prftLatency = live ? prftLatency(video.currentTime) : NaN;
    stats.latency = Number.isFinite(stats.prftLatency) ? stats.prftLatency : stats.playerLatency;
    stats.targetDelay = player.getTargetLiveDelay();
    stats.buffer = player.getBufferLength('video');
    stats.rate = video.playbackRate;
    stats.width = video.videoWidth;
    stats.height = video.videoHeight;
    // One latency sample every 2 s of smooth playback goes into the next beacon.
    if (playing && stats.latency > 0 && now - lastSample >= 2000) {
      lastSample = now;
      pending.latency.push(+stats.latency.toFixed(3));
    }
    const secs = (v) => (Number.isFinite(v) && v > 0 ? v.toFixed(2) + ' s' : '–');
    $('latency').textContent = secs(stats.latency) + (Number.isFinite(stats.prftLatency) ? ' (from capture)' : '');
    $('latency').title = Number.isFinite(stats.prftLatency)
      ? `capture → screen, from the MPD's ProducerReferenceTime; dash.js's own estimate: ${secs(stats.playerLatency)}`
      : "dash.js's estimate (the MPD has no ProducerReferenceTime)";
    $('target').textContent = secs(stats.targetDelay);
    $('buffer').textContent = secs(stats.buffer);
    $('rate').textContent = stats.rate.toFixed(2) + '×';
    $('stalls').textContent = `${stats.stalls}` + (stats.stallMs ? ` (${(stats.stallMs / 1000).toFixed(1)} s)` : '');
    // What is on screen (the decoder's size), with the bitrate of the Representation of that size.
    const rep = representations().find((r) => r.height === stats.height);
    $('rendition').textContent = stats.height
      ? `${stats.height}p` + (rep ? ` · ${Math.round(rep.bandwidth / 1000)} kb/s` : '')
      : '–';
  }
  setInterval(tick, 500);

  // ---- Rendition picker --------------------------------------------------------------------

  function representations() {
    try {
      return player ? player.getRepresentationsByType('video') || [] : [];
    } catch (e) {
      return [];
    }
  }

  function fillPicker() {
    const select = $('quality');
    const current = select.value;
    select.replaceChildren(new Option('Auto', 'auto'));
    for (const r of [...representations()].sort((a, b) => b.height - a.height)) {
      select.add(new Option(`${r.height}p · ${Math.round(r.bandwidth / 1000)} kb/s`, r.id));
    }
    select.value = [...select.options].some((o) => o.value === current) ? current : 'auto';
    select.disabled = select.options.length < 2;
  }

  $('quality').addEventListener('change', (e) => {
    const id = e.target.value;
    if (!player || webrtc) return;
    if (id === 'auto') {
      player.updateSettings({ streaming: { abr: { autoSwitchBitrate: { video: true } } } });
    } else {
      player.updateSettings({ streaming: { abr: { autoSwitchBitrate: { video: false } } } });
      // With a long buffer (whole segments), replace what is buffered so the switch shows
      // within a moment. With low latency the buffer is ~2 s: it plays out about as fast, and
      // flushing it only risks a stall.
      player.setRepresentationForTypeById('video', id, player.getBufferLength('video') > 3);
    }
  });

  $('unmute').addEventListener('click', () => {
    video.muted = false;
    $('unmute').hidden = true;
  });


  // ---- WebRTC (WHEP) mode ------------------------------------------------------------------
  // One recvonly RTCPeerConnection, the complete offer POSTed to /whep/NAME (no trickle), the
  // answer set; the Location is DELETEd when the page goes. The latency shown is capture →
  // screen where the browser knows the capture time (requestVideoFrameCallback's captureTime,
  // from the sender's RTCP clock), else the receive side alone (jitter buffer + half the RTT),
  // labelled so.
  let pc = null;
  let frameLatency = NaN;
  function watchFrames() {
    if (!video.requestVideoFrameCallback) return;
    const onFrame = (_, meta) => {
      if (Number.isFinite(meta.captureTime) && meta.captureTime > 0) {
        const l = (meta.expectedDisplayTime - meta.captureTime) / 1000;
        if (l > 0 && l < 30) frameLatency = l;
      }
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  }

  async function whepSession() {
    const conn = new RTCPeerConnection();
    conn.addTransceiver('video', { direction: 'recvonly' });
    conn.addTransceiver('audio', { direction: 'recvonly' });
    const media = new MediaStream();
    conn.ontrack = (e) => {
      media.addTrack(e.track);
      video.srcObject = media;
    };
    await conn.setLocalDescription(await conn.createOffer());
    // The whole offer at once: wait for candidate gathering (host candidates only: quick).
    await new Promise((resolve) => {
      if (conn.iceGatheringState === 'complete') return resolve();
      conn.addEventListener('icegatheringstatechange', () => conn.iceGatheringState === 'complete' && resolve());
      setTimeout(resolve, 2000);
    });
    const rendition = params.get('rendition');
    const url = `/whep/${encodeURIComponent(name)}` + (rendition ? `?rendition=${encodeURIComponent(rendition)}` : '');
    const res = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: conn.localDescription.sdp });
    if (!res.ok) {
      conn.close();
      return { status: res.status, reason: (await res.text()).trim() };
    }
    stats.session = new URL(res.headers.get('Location'), location.href).pathname;
    await conn.setRemoteDescription({ type: 'answer', sdp: await res.text() });
    return { conn };
  }

  async function startWebrtc() {
    stats.mode = 'WebRTC (WHEP)';
    const dash = document.createElement('a');
    dash.href = '?';
    dash.textContent = 'Play over DASH';
    $('mode').replaceChildren('Mode: WebRTC (WHEP), sub-second. ', dash);
    for (;;) {
      let r;
      try {
        r = await whepSession();
      } catch (e) {
        r = { status: 0, reason: String(e.message || e) };
      }
      if (r.conn) {
        pc = r.conn;
        break;
      }
      // 404: not live (yet); anything else is shown, and retried the same way.
      stats.waited = true;
      if (r.status === 404) setState('waiting', `${name} is not live right now. This page starts playing when the broadcast begins.`);
      else setState('error', `WHEP ${r.status || 'request'} failed: ${r.reason}`);
      await sleep(2000);
    }
    stats.live = true;
    setState('loading');
    pc.addEventListener('connectionstatechange', () => {
      if (['failed', 'closed'].includes(pc.connectionState)) onEnded('webrtc');
    });
    video.play().catch(() => {
      video.muted = true;
      $('unmute').hidden = false;
      video.play().catch(() => {});
    });
  }

  // After the broadcast ends (the session closes), a new one of the same name plays again.
  async function restartWebrtc() {
    if (pc) pc.close();
    pc = null;
    await sleep(3000);
    stats.ended = false;
    stats.endedBy = null;
    startWebrtc();
  }

  addEventListener('pagehide', () => {
    if (stats.session) fetch(stats.session, { method: 'DELETE', keepalive: true }).catch(() => {});
  });

  async function tickWebrtc() {
    if (!pc || stats.firstPlayingMs === null) return;
    const report = await pc.getStats();
    let jitterS = NaN;
    let rttS = NaN;
    report.forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'video') {
        stats.framesDecoded = r.framesDecoded || 0;
        if (r.jitterBufferEmittedCount) jitterS = r.jitterBufferDelay / r.jitterBufferEmittedCount;
      }
      if (r.type === 'candidate-pair' && r.nominated && Number.isFinite(r.currentRoundTripTime)) rttS = r.currentRoundTripTime;
    });
    const receiveSide = (Number.isFinite(jitterS) ? jitterS : 0) + (Number.isFinite(rttS) ? rttS / 2 : 0);
    stats.latencySource = Number.isFinite(frameLatency) ? 'capture' : 'receive side';
    stats.latency = Number.isFinite(frameLatency) ? frameLatency : receiveSide;
    stats.buffer = jitterS;
    stats.rate = video.playbackRate;
    stats.width = video.videoWidth;
    stats.height = video.videoHeight;
    const secs = (v) => (Number.isFinite(v) && v > 0 ? v.toFixed(2) + ' s' : '–');
    $('latency').textContent = secs(stats.latency) + (stats.latencySource === 'capture' ? ' (from capture)' : ' (receive side)');
    $('latency').title = stats.latencySource === 'capture'
      ? "capture → screen, from the browser's capture time of each frame"
      : 'jitter buffer + half the round trip (the browser did not give a capture time)';
    $('target').textContent = 'as low as possible';
    $('buffer').textContent = secs(jitterS);
    $('rate').textContent = stats.rate.toFixed(2) + '×';
    $('stalls').textContent = `${stats.stalls}` + (stats.stallMs ? ` (${(stats.stallMs / 1000).toFixed(1)} s)` : '');
    // In the automatic mode the server changes the rendition: the decoder's size shows which.
    const auto = params.get('rendition') === 'auto' ? ' · auto' : '';
    $('rendition').textContent = stats.height ? `${stats.height}p · WebRTC${auto}` : '–';
  }

  function webrtcPicker() {
    const select = $('quality');
    const current = params.get('rendition') || '';
    // Default: the server's choice (the source unless it has B-frames: no transcoder delay).
    // Auto: the 720 rendition, stepped down to 400 (and back) as the bandwidth to us allows.
    select.replaceChildren(new Option('Default · lowest delay', ''), new Option('Auto · 720/400 by bandwidth', 'auto'),
      new Option('Source', 'source'), new Option('720p', '720'), new Option('400p', '400'));
    select.value = current;
    select.disabled = false;
    // Another rendition is another WHEP session: reload with the choice in the URL.
    select.addEventListener('change', (e) => {
      const q = new URLSearchParams(location.search);
      if (e.target.value === '') q.delete('rendition');
      else q.set('rendition', e.target.value);
      location.search = q.toString();
    });
  }

  // ---- Start -------------------------------------------------------------------------------

  // The MPD answers 404 until the broadcast has produced its first segment: wait for it.
  async function fetchManifest(quiet) {
    for (;;) {
      let res = null;
      try {
        res = await fetch(mpdUrl, { cache: 'no-store' });
      } catch (e) {
        // Network error: retry like a 404.
      }
      if (res && res.ok) return res.text();
      if (res && res.status === 400) throw new Error((await res.text()).trim());
      if (!quiet) {
        stats.waited = true;
        setState('waiting', `${name} is not live right now. This page starts playing when the broadcast begins.`);
      }
      await sleep(2000);
    }
  }

  function start(text) {
    const info = inspect(text);
    const { mode, settings } = settingsFor(info);
    stats.mode = mode;
    stats.live = info.live;
    const toggle = document.createElement('a');
    toggle.href = lowLatency ? '?ll=0' : '?';
    toggle.textContent = lowLatency ? 'Turn low latency off' : 'Turn low latency on';
    $('mode').replaceChildren(`Mode: ${mode}. `, toggle);

    if (!player) {
      player = dashjs.MediaPlayer().create();
      const ev = dashjs.MediaPlayer.events;
      player.on(ev.ERROR, (e) => {
        const err = e.error || {};
        stats.errors.push({ code: err.code, message: String(err.message || '').slice(0, 200) });
        if (stats.errors.length > 50) stats.errors.shift();
        const text = `Playback error ${err.code ?? ''}: ${err.message || 'unknown'}`;
        // Over the picture only while nothing plays; dash.js retries what it can.
        if (video.readyState < 3) setState('error', text);
        $('error').textContent = text;
      });
      player.on(ev.STREAM_INITIALIZED, fillPicker);
      player.on(ev.PLAYBACK_ENDED, () => onEnded('dash.js'));
      // Every MPD load, first and updates: an ended broadcast's MPD has a duration.
      player.on(ev.MANIFEST_LOADED, (e) => {
        const d = Number(e.data && e.data.mediaPresentationDuration);
        stats.mpdEnd = Number.isFinite(d) && d > 0 ? d : NaN;
        prft = producerReferences(e.data) || prft;
      });
      // Browsers refuse autoplay with sound until the viewer interacts: play muted then.
      player.on(ev.PLAYBACK_NOT_ALLOWED, () => {
        video.muted = true;
        $('unmute').hidden = false;
        player.play();
      });
      player.updateSettings(settings);
      player.initialize(video, mpdUrl, true);
    } else {
      player.updateSettings(settings);
      player.attachSource(mpdUrl);
    }
    setState('loading');
  }

  function ended() {
    stats.ended = true;
    setState('ended', `The broadcast of ${name} has ended.`);
    waitForRestart();
  }

  // After the end, a new broadcast of the same name restarts the player.
  async function waitForRestart() {
    for (;;) {
      await sleep(3000);
      const text = await fetchManifest(true);
      if (inspect(text).live) {
        stats.ended = false;
        stats.endedBy = null;
        $('error').textContent = '';
        stats.mpdEnd = NaN;
        stats.waited = true;
        start(text);
        return;
      }
    }
  }

  if (webrtc) {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(name)) {
      setState('error', 'Invalid stream name.');
      return;
    }
    if (typeof RTCPeerConnection === 'undefined') {
      setState('error', 'This browser has no WebRTC: play over DASH instead (drop ?mode=webrtc).');
      return;
    }
    webrtcPicker();
    watchFrames();
    startWebrtc();
    return;
  }
  if (typeof dashjs === 'undefined') {
    // The server says why (typically: npm ci was not run where it runs).
    setState('error', 'The player library (dash.js) did not load.');
    fetch('/player/dash.all.min.js', { method: 'GET' })
      .then((r) => (r.ok ? null : r.text()))
      .then((why) => why && setState('error', why.trim()), () => {});
    return;
  }
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(name)) {
    setState('error', 'Invalid stream name.');
    return;
  }
  // A broadcast that ended (its MPD stays for the time-shift window) is not replayed here.
  fetchManifest(false).then((text) => (inspect(text).live ? start(text) : ended()), (e) => setState('error', e.message));
})();
