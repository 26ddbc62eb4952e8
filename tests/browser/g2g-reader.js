// Glass-to-glass from the pixels, in the browser: reads the capture time that
// `ferrocast-g2g publish` stamps into each frame (crates/g2g/src/stamp.rs has the layout) from
// every frame the <video> presents, and reports now − capture.
//
// A classic script, so that Playwright can inject it into any page before the page's own
// scripts run (page.addInitScript({ path })) and a plain page can load it with <script src>.
// It attaches itself to the first <video> of the page; `ferrocastG2G.attach(video)` attaches
// to another. `ferrocastG2G.report()` gives the figures so far:
//   { median_s, p90_s, min_s, max_s, samples, frames, presented, unreadable, misreads,
//     first_frame_s, stalls, longest_gap_s, waiting, via, reader_ms, dropped, heights, series }
//
// How it reads: video.requestVideoFrameCallback calls back for each frame about to be shown;
// the frame is taken as a WebCodecs VideoFrame and only the Y plane's rows and columns the
// cells are in are copied out (no colour conversion; MSE frames are not tainted). Where a
// frame's planes are not in memory (GPU decoding) it is drawn on a canvas instead, only its
// cells' part, and read back with getImageData. "Now" is the wall clock (Date.now(),
// CLOCK_REALTIME like the publisher's) at the frame's expected display time.
// The counting is the Rust reader's (crates/g2g/src/stats.rs): nearest-rank percentiles, a
// stall is a gap of > 500 ms between presented frames, a misread is a clear stamp with a bad
// checksum or an implausible time, unclear cells are "unreadable".
(() => {
  'use strict';
  if (globalThis.ferrocastG2G) return;
  // The stamp's layout; crates/g2g's tests check that this line equals its layout_json().
  const LAYOUT = {"refWidth":1280,"refHeight":720,"cell":40,"cols":16,"rows":8,"gridX":320,"gridY":200,"timeBits":48,"checkBits":16,"minContrast":40,"sampleHalf":0.25};
  const STALL_GAP_MS = 500;
  const MAX_AHEAD_MS = 1000;
  const MAX_BEHIND_MS = 120000;
  const BITS = LAYOUT.timeBits + LAYOUT.checkBits;
  // VideoFrame formats whose first plane is 8-bit luma.
  const YUV = new Set(['I420', 'I420A', 'I422', 'I444', 'NV12']);

  // CRC-16/IBM-3740 (poly 0x1021, init 0xffff, no reflection, no final xor).
  function crc16(bytes) {
    let c = 0xffff;
    for (const b of bytes) {
      c ^= b << 8;
      for (let i = 0; i < 8; i++) c = c & 0x8000 ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff;
    }
    return c;
  }

  // Where the 16:9 reference picture lies in a w×h frame: centred, as large as fits.
  function fit(w, h) {
    const scale = Math.min(w / LAYOUT.refWidth, h / LAYOUT.refHeight);
    return { x: (w - LAYOUT.refWidth * scale) / 2, y: (h - LAYOUT.refHeight * scale) / 2, scale };
  }

  // The reference rectangle of the cells, in frame pixels (whole, with a pixel of margin).
  function gridRect(w, h) {
    const f = fit(w, h);
    const x0 = Math.max(0, Math.floor(f.x + LAYOUT.gridX * f.scale) - 1);
    const y0 = Math.max(0, Math.floor(f.y + LAYOUT.gridY * f.scale) - 1);
    const x1 = Math.min(w, Math.ceil(f.x + (LAYOUT.gridX + LAYOUT.cols * LAYOUT.cell) * f.scale) + 1);
    const y1 = Math.min(h, Math.ceil(f.y + (LAYOUT.gridY + LAYOUT.rows * LAYOUT.cell) * f.scale) + 1);
    return { x: x0, y: y0, w: x1 - x0, h: y1 - y0 };
  }

  // Reads a stamp from RGBA pixels: `rgba` holds the rect `r` of a w×h frame (a canvas's
  // getImageData). Returns { time } or { error: 'nostamp' | 'checksum' | 'small' }.
  function readRgba(rgba, r, w, h) {
    return readLuma((x, y) => {
      x = Math.min(Math.max(x, r.x), r.x + r.w - 1) - r.x;
      y = Math.min(Math.max(y, r.y), r.y + r.h - 1) - r.y;
      const i = (y * r.w + x) * 4;
      return 0.299 * rgba[i] + 0.587 * rgba[i + 1] + 0.114 * rgba[i + 2];
    }, w, h);
  }

  // Reads a stamp from a Y plane: `bytes` from `offset` on, rows `stride` apart, holding the
  // rect `r` of a w×h frame (a VideoFrame's copyTo).
  function readPlane(bytes, offset, stride, r, w, h) {
    return readLuma((x, y) => {
      x = Math.min(Math.max(x, r.x), r.x + r.w - 1) - r.x;
      y = Math.min(Math.max(y, r.y), r.y + r.h - 1) - r.y;
      return bytes[offset + y * stride + x];
    }, w, h);
  }

  // The stamp of a w×h frame whose pixel (x, y) has luma `luma(x, y)`.
  function readLuma(luma, w, h) {
    const f = fit(w, h);
    if (LAYOUT.cell * f.scale < 4) return { error: 'small' };
    const half = Math.floor(LAYOUT.sampleHalf * LAYOUT.cell * f.scale);
    const mean = (cx, cy) => {
      // Same window as the Rust reader: the square around the centre, clamped to the frame.
      const xa = Math.max(0, cx - half), xb = Math.min(w - 1, cx + half);
      const ya = Math.max(0, cy - half), yb = Math.min(h - 1, cy + half);
      let s = 0;
      for (let y = ya; y <= yb; y++) for (let x = xa; x <= xb; x++) s += luma(x, y);
      return s / ((xb - xa + 1) * (yb - ya + 1));
    };
    const cell = (bit, second) => {
      const col = 2 * (bit % (LAYOUT.cols / 2)) + (second ? 1 : 0);
      const row = Math.floor(bit / (LAYOUT.cols / 2));
      const cx = LAYOUT.gridX + (col + 0.5) * LAYOUT.cell;
      const cy = LAYOUT.gridY + (row + 0.5) * LAYOUT.cell;
      return mean(Math.floor(f.x + cx * f.scale), Math.floor(f.y + cy * f.scale));
    };
    // 64 bits don't fit a double: the time (48 bits) as a number, the checksum apart.
    let time = 0;
    let check = 0;
    for (let bit = 0; bit < BITS; bit++) {
      const a = cell(bit, false);
      const b = cell(bit, true);
      if (Math.abs(a - b) < LAYOUT.minContrast) return { error: 'nostamp', bit };
      const one = a > b ? 1 : 0;
      if (bit < LAYOUT.timeBits) time = time * 2 + one;
      else check = check * 2 + one;
    }
    const bytes = [];
    for (let i = 5, t = time; i >= 0; i--, t = Math.floor(t / 256)) bytes[i] = t % 256;
    if (crc16(bytes) !== check) return { error: 'checksum', time };
    return { time };
  }

  const quantile = (sorted, p) => (sorted.length ? sorted[Math.min(sorted.length, Math.max(1, Math.ceil(p * sorted.length))) - 1] : NaN);
  const secs = (ms) => (Number.isFinite(ms) ? Math.round(ms) / 1000 : null);

  const readers = new Map();

  function attach(video) {
    if (readers.has(video)) return readers.get(video);
    const st = {
      latencies: [], frames: 0, unreadable: 0, misreads: 0, firstMs: null, firstPresented: null, lastPresented: null,
      lastMs: null, workMs: 0, via: null, stalls: 0, longestGap: 0, waiting: 0, heights: {}, series: [], lastSeries: -1, lastError: null,
    };
    const canvas = document.createElement('canvas');
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    const onFrame = (now, md) => {
      video.requestVideoFrameCallback(onFrame);
      // Wall-clock time at which this frame is expected on screen.
      const shownMs = Date.now() + (md.expectedDisplayTime - performance.now());
      const w = md.width || video.videoWidth;
      const h = md.height || video.videoHeight;
      st.frames += 1;
      if (st.lastMs !== null) {
        const gap = shownMs - st.lastMs;
        if (gap > STALL_GAP_MS) st.stalls += 1;
        st.longestGap = Math.max(st.longestGap, gap);
      }
      if (st.firstMs === null) {
        st.firstMs = shownMs;
        // Navigation start → first frame on screen (performance.now() counts from navigation).
        st.firstPageMs = md.expectedDisplayTime;
        st.firstPresented = md.presentedFrames;
      }
      st.lastMs = shownMs;
      st.lastPresented = md.presentedFrames;
      st.heights[h] = (st.heights[h] || 0) + 1;
      const r = gridRect(w, h);
      const began = performance.now();
      const frame = videoFrame(video);
      if (frame) {
        readFrame(frame, r, w, h).then((res) => tally(res, shownMs, began), (e) => tally({ error: String(e) }, shownMs, began));
      } else {
        tally(readCanvas(r, w, h), shownMs, began);
      }
    };
    // The frame as a WebCodecs VideoFrame with its planes in memory (software decoding, as
    // headless Chromium with --disable-gpu does); null where it is not (then the canvas).
    let frames = typeof VideoFrame === 'function';
    const videoFrame = (v) => {
      if (!frames) return null;
      let f = null;
      try {
        f = new VideoFrame(v, { timestamp: 0 });
      } catch {
        frames = false;
        return null;
      }
      if (!YUV.has(f.format)) {
        f.close();
        frames = false;
        return null;
      }
      return f;
    };
    // Copies out only the Y plane's rows and columns the cells are in: no colour conversion,
    // no drawing, so little work on the page's main thread, which the player needs too.
    const readFrame = async (f, r, w, h) => {
      try {
        const vr = f.visibleRect;
        // Even coordinates: the chroma planes of 4:2:0 come along in the copy.
        const x0 = (vr.x + r.x) & ~1;
        const y0 = (vr.y + r.y) & ~1;
        const x1 = Math.min(f.codedWidth, vr.x + r.x + r.w + 1) & ~1;
        const y1 = Math.min(f.codedHeight, vr.y + r.y + r.h + 1) & ~1;
        const rect = { x: x0, y: y0, width: x1 - x0, height: y1 - y0 };
        const buf = new Uint8Array(f.allocationSize({ rect }));
        const [y] = await f.copyTo(buf, { rect });
        const at = { x: x0 - vr.x, y: y0 - vr.y, w: rect.width, h: rect.height };
        return readPlane(buf, y.offset, y.stride, at, w, h);
      } finally {
        f.close();
      }
    };
    // The fallback: the cells' part of the frame drawn on a canvas and read back.
    const readCanvas = (r, w, h) => {
      if (canvas.width !== r.w || canvas.height !== r.h) {
        canvas.width = r.w;
        canvas.height = r.h;
      }
      try {
        ctx.drawImage(video, r.x, r.y, r.w, r.h, 0, 0, r.w, r.h);
        return readRgba(ctx.getImageData(0, 0, r.w, r.h).data, r, w, h);
      } catch (e) {
        return { error: String(e) };
      }
    };
    const tally = (res, shownMs, began) => {
      st.workMs += performance.now() - began;
      st.via = frames ? 'VideoFrame' : 'canvas';
      if (res.time !== undefined) {
        const l = shownMs - res.time;
        if (l >= -MAX_AHEAD_MS && l <= MAX_BEHIND_MS) {
          st.latencies.push(l);
          // One sample a second, to see how the latency moves (seconds since the first frame).
          const t = Math.floor((shownMs - st.firstMs) / 1000);
          if (t !== st.lastSeries) {
            st.lastSeries = t;
            st.series.push([t, secs(l)]);
          }
        } else {
          st.misreads += 1;
          st.lastError = `implausible ${l} ms`;
        }
      } else if (res.error === 'checksum') {
        st.misreads += 1;
        st.lastError = 'checksum';
      } else {
        st.unreadable += 1;
        st.lastError = res.error;
      }
    };
    video.requestVideoFrameCallback(onFrame);
    // The player's own notion of a stall, beside the frame gaps: 'waiting' after the first
    // frame that is not a seek.
    video.addEventListener('waiting', () => {
      if (st.firstMs !== null && !video.seeking) st.waiting += 1;
    });
    const reader = {
      report() {
        const s = [...st.latencies].sort((a, b) => a - b);
        const q = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : {};
        return {
          median_s: secs(quantile(s, 0.5)),
          p90_s: secs(quantile(s, 0.9)),
          min_s: secs(s[0]),
          max_s: secs(s[s.length - 1]),
          samples: s.length,
          frames: st.frames,
          // Frames the compositor presented since the first one we saw (some may have come
          // and gone between two callbacks).
          presented: st.firstPresented === null ? 0 : st.lastPresented - st.firstPresented + 1,
          unreadable: st.unreadable,
          misreads: st.misreads,
          last_error: st.lastError,
          first_frame_s: st.firstPageMs === undefined ? null : secs(st.firstPageMs),
          stalls: st.stalls,
          longest_gap_s: secs(st.longestGap),
          waiting: st.waiting,
          // How frames are read (VideoFrame, or canvas where frames are not in memory), and the
          // reader's own cost: mean ms from the callback to the stamp read, per frame.
          via: st.via ?? null,
          reader_ms: st.frames ? Math.round((st.workMs / st.frames) * 100) / 100 : null,
          dropped: q.droppedVideoFrames ?? null,
          heights: st.heights,
          series: st.series,
        };
      },
    };
    readers.set(video, reader);
    return reader;
  }

  function report() {
    const first = readers.values().next().value;
    return first ? first.report() : null;
  }

  globalThis.ferrocastG2G = { attach, report, readRgba, gridRect, crc16, LAYOUT };

  // Attach to the first <video> as soon as there is one.
  function find() {
    const v = document.querySelector('video');
    if (v) attach(v);
    return !!v;
  }
  if (!find()) {
    const mo = new MutationObserver(() => { if (find()) mo.disconnect(); });
    mo.observe(document, { childList: true, subtree: true });
  }
})();
