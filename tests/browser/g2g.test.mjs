// Glass-to-glass of the web player, of hls.js and of Shaka, read from the pixels: a real
// ferrocast server, the probe's publisher (`ferrocast-g2g publish`: the capture time stamped
// into every frame) and Debian's Chromium playing /watch/NAME (dash.js), then hls.js
// (lowLatencyMode) on the LL-HLS playlists, then Shaka (lowLatencyMode) on the MPD, with
// tests/browser/g2g-reader.js reading the stamp of every frame the page shows.
//
//   npm ci --prefix web && cargo build -p ferrocast -p g2g && node --test tests/browser/
//
// Asserts, per player, that the glass-to-glass is read (≥ 90 % of the frames the page
// presented decode, none misread) and that its median is below its limit + MARGIN_S. Prints
// one JSON line per player ({"g2g": {...}}). Bounded: TOTAL_MS each; everything on 127.0.0.1.
// The WHEP (WebRTC) case is asserted against WHEP_LIMIT_S + WHEP_MARGIN_S.
//
// Environment: FERROCAST_BIN (default target/debug/ferrocast), G2G_BIN (default
// target/debug/ferrocast-g2g), CHROMIUM (default /usr/bin/chromium), FFMPEG (default ffmpeg),
// G2G_SECS (seconds measured after the first frame, default 30).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchBrowser, measurePlayer } from './g2g.mjs';
import { freePort, log, mpdVideoSegments, stop, until } from './harness.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = process.env.FERROCAST_BIN || path.join(root, 'target/debug/ferrocast');
const G2G = process.env.G2G_BIN || path.join(root, 'target/debug/ferrocast-g2g');
const SECS = Number(process.env.G2G_SECS || 30);
const STREAM = 'g2gtest';
const TOTAL_MS = 90_000 + SECS * 1000 + Math.min(SECS, 15) * 1000;

// ---- The limits ---------------------------------------------------------------------------
// Issue 16's goals for the median glass-to-glass, read from the pixels: dash.js with stock
// settings (our /watch page) and Shaka in lowLatencyMode below 2.0 s, hls.js in lowLatencyMode
// on our LL-HLS below 3.0 s. Measured with bench/g2g.sh on the shared 2-core box at load
// average ~7 (BENCHMARKS.md, "Glass-to-glass (from the pixels)"): dash.js 1.66 s, Shaka
// 1.91 s, hls.js 2.08 s.
//
// MARGIN_S covers what differs from the bench: a loaded CI box, and a shorter window, whose
// median still holds some of a player's catch-up from its start (dash.js joins up to ~0.5 s
// further behind than where it settles and closes the gap at ≤ 8 % playback speed).
const DASHJS_TARGET_S = 2.0;
const SHAKA_TARGET_S = 2.0;
const HLS_TARGET_S = 3.0;
const MARGIN_S = 0.6;
// Of the frames the page presented, this share at least must yield a time.
const MIN_READ = 0.9;
// WHEP (WebRTC, the source stream) must stay below WHEP_LIMIT_S + WHEP_MARGIN_S: issue 17's
// target, and a margin for a loaded CI box and a debug build (0.09-0.13 s measured here; see
// BENCHMARKS.md, "Glass-to-glass"). Its own margin: MARGIN_S is for dash.js's catch-up.
const WHEP_LIMIT_S = 0.5;
const WHEP_MARGIN_S = 0.25;
const WHEP_SECS = Math.min(SECS, 15);

// Starts the server and the publisher, waits for an established stream (two whole segments,
// as the bench joins), and opens Chromium; everything is stopped after the test.
async function liveStack(t) {
  for (const [bin, what] of [[BIN, 'ferrocast'], [G2G, 'ferrocast-g2g']]) {
    assert.ok(fs.existsSync(bin), `no ${what} binary at ${bin}: run cargo build -p ferrocast -p g2g`);
  }
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferrocast-g2g-'));
  const [rtmp, rtmps, http] = [await freePort(), await freePort(), await freePort()];
  const base = `http://127.0.0.1:${http}`;
  const live = { base, dataDir, server: null, publisher: null, browser: null };
  t.after(async () => {
    await live.browser?.close().catch(() => {});
    await stop(live.publisher);
    await stop(live.server);
    fs.rmSync(dataDir, { recursive: true, force: true });
  });
  const serverLog = fs.openSync(path.join(dataDir, 'server.log'), 'w');
  live.server = spawn(BIN, ['serve', '--data-dir', path.join(dataDir, 'data'), '--rtmp-addr', `127.0.0.1:${rtmp}`, '--webrtc-addr', '127.0.0.1:0',
    '--rtmps-addr', `127.0.0.1:${rtmps}`, '--http-addr', `127.0.0.1:${http}`],
  { stdio: ['ignore', serverLog, serverLog], env: { ...process.env, FERROCAST_WEB_DIR: path.join(root, 'web') } });
  await until('the server to answer /healthz', 10_000, async () => (await fetch(`${base}/healthz`)).ok);
  // --secs bounds the publisher even if this script dies without stopping it.
  live.publisher = spawn(G2G, ['publish', `rtmp://127.0.0.1:${rtmp}/live/${STREAM}`, '--secs', String(TOTAL_MS / 1000)],
    { stdio: ['ignore', 'ignore', 'inherit'] });
  // Join an established stream, as the bench does: two whole segments listed.
  await until('the MPD to list 2 segments', 20_000, async () => {
    const r = await fetch(`${base}/live/${STREAM}/manifest.mpd`);
    return r.ok && mpdVideoSegments(await r.text()) >= 2;
  }, 200);
  live.browser = await launchBrowser();
  return live;
}

// The assertions every player's measurement must pass, with its own limit.
function assertMeasured(r, name, limit) {
  assert.deepEqual(r.errors, [], 'errors on the page');
  assert.equal(r.misreads, 0, `misread stamps (last: ${r.last_error})`);
  assert.ok(r.presented >= SECS * 30 * 0.8, `only ${r.presented} frames presented in ${SECS} s`);
  assert.ok(r.samples >= MIN_READ * r.presented,
    `${r.samples} of ${r.presented} presented frames read (${r.frames} seen, ${r.unreadable} unreadable, last: ${r.last_error})`);
  assert.ok(r.median_s > 0, `median ${r.median_s} s`);
  assert.ok(r.median_s < limit + MARGIN_S,
    `${name} glass-to-glass median ${r.median_s} s is not below ${limit} s + ${MARGIN_S} s (series: ${JSON.stringify(r.series)})`);
}

function failureContext(live) {
  console.error(`load average: ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  const tail = fs.readFileSync(path.join(live.dataDir, 'server.log'), 'utf8').split('\n').slice(-30).join('\n');
  console.error(`--- server log (last lines) ---\n${tail}`);
}

test('glass-to-glass of the web player (dash.js), read from the pixels', { timeout: TOTAL_MS }, async (t) => {
  const live = await liveStack(t);
  try {
    const { base, browser } = live;
    const r = await measurePlayer(browser, { base, stream: STREAM, player: 'dashjs', secs: SECS, startupMs: 15_000, log });
    console.log(JSON.stringify({ g2g: r }));
    log(`dash.js glass-to-glass median ${r.median_s} s, p90 ${r.p90_s} s (dash.js says ${r.player_latency_s} s); ` +
      `${r.samples} of ${r.presented} presented frames read, ${r.misreads} misread, first frame ${r.first_frame_s} s`);
    assertMeasured(r, 'dash.js', DASHJS_TARGET_S);
    // The same stream over WHEP (a plain RTCPeerConnection page), from the pixels too.
    const w = await measurePlayer(browser, { base, stream: STREAM, player: 'whep', secs: WHEP_SECS, startupMs: 15_000, log });
    console.log(JSON.stringify({ g2g_whep: { ...w, series: undefined } }));
    log(`WHEP glass-to-glass median ${w.median_s} s, p90 ${w.p90_s} s; ${w.samples} of ${w.presented} presented frames read, ` +
      `${w.misreads} misread, first frame ${w.whep.first_frame_after_post_s} s after the POST`);
    assert.deepEqual(w.errors, [], 'errors on the WHEP page');
    assert.equal(w.misreads, 0, `misread stamps over WHEP (last: ${w.last_error})`);
    assert.ok(w.samples >= WHEP_SECS * 30 * 0.6, `only ${w.samples} frames read over WHEP`);
    assert.ok(w.median_s > 0 && w.median_s < WHEP_LIMIT_S + WHEP_MARGIN_S,
      `WHEP glass-to-glass median ${w.median_s} s is not below ${WHEP_LIMIT_S} s + ${WHEP_MARGIN_S} s (series: ${JSON.stringify(w.series)})`);
    // The reader's CRC is the one the publisher writes (crates/g2g checks the same value).
    const page = await browser.newPage();
    await page.addInitScript({ path: path.join(root, 'tests/browser/g2g-reader.js') });
    await page.goto(`${base}/healthz`);
    assert.equal(await page.evaluate(() => globalThis.ferrocastG2G.crc16([...'123456789'].map((c) => c.charCodeAt(0)))), 0x29b1);
  } catch (e) {
    failureContext(live);
    throw e;
  }
});

test('glass-to-glass of hls.js (lowLatencyMode) on the LL-HLS playlists, read from the pixels', { timeout: TOTAL_MS }, async (t) => {
  const live = await liveStack(t);
  try {
    // Then the 720/400 switch: hls.js told to play the other rendition shows its frames (it
    // finds the new playlist's live edge from the rendition reports).
    const after = async (page, report) => {
      const { heights, current } = await page.evaluate(() => {
        const h = window.g2gPage.instance;
        return { heights: h.levels.map((l) => l.height), current: h.currentLevel };
      });
      const to = heights.findIndex((_, i) => i !== current);
      await page.evaluate((i) => { window.g2gPage.instance.currentLevel = i; }, to);
      const shown = await until(`hls.js to show the ${heights[to]} rendition`, 20_000, async () => {
        const seen = (await report()).heights ?? {};
        return (seen[String(heights[to])] ?? 0) >= 30 && seen;
      }, 250);
      return { from: heights[current], to: heights[to], heights: shown };
    };
    const r = await measurePlayer(live.browser, { base: live.base, stream: STREAM, player: 'hlsjs', secs: SECS, startupMs: 15_000, log, after });
    console.log(JSON.stringify({ g2g: r }));
    log(`hls.js glass-to-glass median ${r.median_s} s, p90 ${r.p90_s} s (hls.js says ${r.player_latency_s} s); ` +
      `${r.samples} of ${r.presented} presented frames read, ${r.misreads} misread, first frame ${r.first_frame_s} s, ` +
      `${r.stalls} stalls`);
    assertMeasured(r, 'hls.js', HLS_TARGET_S);
    assert.ok(r.after && r.after.from !== r.after.to, `no rendition switch: ${JSON.stringify(r.after)}`);
  } catch (e) {
    failureContext(live);
    throw e;
  }
});

test('glass-to-glass of Shaka Player (lowLatencyMode) on the LL-DASH MPD, read from the pixels', { timeout: TOTAL_MS }, async (t) => {
  const live = await liveStack(t);
  try {
    const r = await measurePlayer(live.browser, { base: live.base, stream: STREAM, player: 'shaka', secs: SECS, startupMs: 15_000, log });
    console.log(JSON.stringify({ g2g: r }));
    log(`Shaka glass-to-glass median ${r.median_s} s, p90 ${r.p90_s} s (Shaka says ${r.player_latency_s} s); ` +
      `${r.samples} of ${r.presented} presented frames read, ${r.misreads} misread, first frame ${r.first_frame_s} s, ` +
      `${r.stalls} stalls`);
    assertMeasured(r, 'Shaka', SHAKA_TARGET_S);
  } catch (e) {
    failureContext(live);
    throw e;
  }
});
