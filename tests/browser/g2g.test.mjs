// Glass-to-glass of the web player, read from the pixels: a real ferrocast server, the
// probe's publisher (`ferrocast-g2g publish`: the capture time stamped into every frame) and
// Debian's Chromium playing /watch/NAME (dash.js), with tests/browser/g2g-reader.js injected
// to read the stamp of every frame the page shows.
//
//   npm ci --prefix web && cargo build -p ferrocast -p g2g && node --test tests/browser/
//
// Asserts that the glass-to-glass is read (≥ 90 % of the frames the page presented decode,
// none misread) and that its median is below LIMIT_S + MARGIN_S; then the same over WHEP
// (WebRTC) against WHEP_LIMIT_S + WHEP_MARGIN_S. Prints one JSON line each ({"g2g": {...}},
// {"g2g_whep": {...}}). Bounded: TOTAL_MS; everything on 127.0.0.1.
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

// ---- The limit ----------------------------------------------------------------------------
// The median glass-to-glass of dash.js must stay below LIMIT_S + MARGIN_S.
//
// CURRENT_S is today's level: dash.js 2.75 s in bench/g2g.sh (BENCHMARKS.md, "Glass-to-glass
// (from the pixels)"; 2.84 s in issue 16), rounded up. TARGET_S is issue 16's goal for dash.js
// with stock settings, not met yet. When it is, switch the test to it by changing the one line
// `const LIMIT_S = CURRENT_S` to `const LIMIT_S = TARGET_S`.
//
// MARGIN_S covers what differs from the bench: a loaded CI box, and a shorter window, whose
// median still holds some of dash.js's slow catch-up from its start (it joins up to ~1 s
// further behind than where it settles, and closes the gap at ≤ 10 % playback speed).
const CURRENT_S = 2.9;
const TARGET_S = 2.0;
const LIMIT_S = CURRENT_S;
const MARGIN_S = 1.5;
// Of the frames the page presented, this share at least must yield a time.
const MIN_READ = 0.9;
// WHEP (WebRTC, the source stream) must stay below WHEP_LIMIT_S + WHEP_MARGIN_S: issue 17's
// target, and a margin for a loaded CI box and a debug build (0.09-0.13 s measured here; see
// BENCHMARKS.md, "Glass-to-glass"). Its own margin: MARGIN_S is for dash.js's catch-up.
const WHEP_LIMIT_S = 0.5;
const WHEP_MARGIN_S = 0.25;
const WHEP_SECS = Math.min(SECS, 15);

test('glass-to-glass of the web player (dash.js), read from the pixels', { timeout: TOTAL_MS }, async (t) => {
  for (const [bin, what] of [[BIN, 'ferrocast'], [G2G, 'ferrocast-g2g']]) {
    assert.ok(fs.existsSync(bin), `no ${what} binary at ${bin}: run cargo build -p ferrocast -p g2g`);
  }
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferrocast-g2g-'));
  const [rtmp, rtmps, http] = [await freePort(), await freePort(), await freePort()];
  const base = `http://127.0.0.1:${http}`;
  let server, publisher, browser;
  t.after(async () => {
    await browser?.close().catch(() => {});
    await stop(publisher);
    await stop(server);
    fs.rmSync(dataDir, { recursive: true, force: true });
  });
  const serverLog = fs.openSync(path.join(dataDir, 'server.log'), 'w');
  server = spawn(BIN, ['serve', '--data-dir', path.join(dataDir, 'data'), '--rtmp-addr', `127.0.0.1:${rtmp}`, '--webrtc-addr', '127.0.0.1:0',
    '--rtmps-addr', `127.0.0.1:${rtmps}`, '--http-addr', `127.0.0.1:${http}`],
  { stdio: ['ignore', serverLog, serverLog], env: { ...process.env, FERROCAST_WEB_DIR: path.join(root, 'web') } });
  try {
    await until('the server to answer /healthz', 10_000, async () => (await fetch(`${base}/healthz`)).ok);
    // --secs bounds the publisher even if this script dies without stopping it.
    publisher = spawn(G2G, ['publish', `rtmp://127.0.0.1:${rtmp}/live/${STREAM}`, '--secs', String(TOTAL_MS / 1000)],
      { stdio: ['ignore', 'ignore', 'inherit'] });
    // Join an established stream, as the bench does: two whole segments listed.
    await until('the MPD to list 2 segments', 20_000, async () => {
      const r = await fetch(`${base}/live/${STREAM}/manifest.mpd`);
      return r.ok && mpdVideoSegments(await r.text()) >= 2;
    }, 200);

    browser = await launchBrowser();
    const r = await measurePlayer(browser, { base, stream: STREAM, player: 'dashjs', secs: SECS, startupMs: 15_000, log });
    console.log(JSON.stringify({ g2g: r }));
    log(`dash.js glass-to-glass median ${r.median_s} s, p90 ${r.p90_s} s (dash.js says ${r.player_latency_s} s); ` +
      `${r.samples} of ${r.presented} presented frames read, ${r.misreads} misread, first frame ${r.first_frame_s} s`);

    assert.deepEqual(r.errors, [], 'errors on the page');
    assert.equal(r.misreads, 0, `misread stamps (last: ${r.last_error})`);
    assert.ok(r.presented >= SECS * 30 * 0.8, `only ${r.presented} frames presented in ${SECS} s`);
    assert.ok(r.samples >= MIN_READ * r.presented,
      `${r.samples} of ${r.presented} presented frames read (${r.frames} seen, ${r.unreadable} unreadable, last: ${r.last_error})`);
    assert.ok(r.median_s > 0, `median ${r.median_s} s`);
    assert.ok(r.median_s < LIMIT_S + MARGIN_S,
      `glass-to-glass median ${r.median_s} s is not below ${LIMIT_S} s + ${MARGIN_S} s (series: ${JSON.stringify(r.series)})`);
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
    console.error(`load average: ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
    const tail = fs.readFileSync(path.join(dataDir, 'server.log'), 'utf8').split('\n').slice(-30).join('\n');
    console.error(`--- server log (last lines) ---\n${tail}`);
    throw e;
  }
});
