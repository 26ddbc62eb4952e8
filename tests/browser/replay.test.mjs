// Browser test of replay: a real ferrocast server with --record, a real ffmpeg publisher
// (30 s of a test pattern in real time) and Debian's Chromium (headless, playwright-core)
// playing the recording's static MPD with dash.js, as the web player serves it.
//
//   npm ci --prefix web && cargo build -p ferrocast && node --test tests/browser/replay.test.mjs
//
// Asserts that once the publisher stops the recording is listed at /api/recordings, that
// dash.js reads it as a static presentation of the listed duration, seeks to the middle and
// plays on from there (currentTime advances ≥ 3 s past the seek target) without an error.
// Prints one JSON line: {"duration_s":…, "seek_to_s":…, "seeked_in_s":…, …}.
//
// Environment: FERROCAST_BIN (default target/debug/ferrocast), CHROMIUM (default
// /usr/bin/chromium), FFMPEG (default ffmpeg), FERROCAST_WEB_DIR (the web directory with
// node_modules, default web/).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, log, stop, until } from './harness.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const WEB = process.env.FERROCAST_WEB_DIR || path.join(root, 'web');
const { chromium } = createRequire(path.join(WEB, 'package.json'))('playwright-core');

const BIN = process.env.FERROCAST_BIN || path.join(root, 'target/debug/ferrocast');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const FFMPEG = process.env.FFMPEG || 'ffmpeg';
const STREAM = 'replaytest';
const SECONDS = 30;
const TOTAL_MS = 150_000;

test('dash.js seeks to the middle of a recording and plays', { timeout: TOTAL_MS }, async (t) => {
  assert.ok(fs.existsSync(BIN), `no ferrocast binary at ${BIN}: run cargo build -p ferrocast (or set FERROCAST_BIN)`);
  assert.ok(fs.existsSync(CHROMIUM), `no Chromium at ${CHROMIUM}: apt-get install -y chromium (or set CHROMIUM)`);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferrocast-replay-'));
  const [rtmp, rtmps, http] = [await freePort(), await freePort(), await freePort()];
  const base = `http://127.0.0.1:${http}`;
  let server, publisher, browser, page;
  t.after(async () => {
    await browser?.close().catch(() => {});
    await stop(publisher);
    await stop(server);
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  const serverLog = fs.openSync(path.join(dataDir, 'server.log'), 'w');
  server = spawn(BIN, ['serve', '--record', '--data-dir', path.join(dataDir, 'data'), '--rtmp-addr', `127.0.0.1:${rtmp}`,
    '--webrtc-addr', '127.0.0.1:0', '--rtmps-addr', `127.0.0.1:${rtmps}`, '--http-addr', `127.0.0.1:${http}`],
  { stdio: ['ignore', serverLog, serverLog], env: { ...process.env, FERROCAST_WEB_DIR: WEB } });
  try {
    await until('the server to answer /healthz', 10_000, async () => (await fetch(`${base}/healthz`)).ok);
    const dashjs = await fetch(`${base}/player/dash.all.min.js`, { method: 'HEAD' });
    assert.equal(dashjs.status, 200, 'dash.js is not served: run npm ci --prefix web');

    publisher = spawn(FFMPEG, ['-hide_banner', '-loglevel', 'error', '-nostdin', '-re',
      '-f', 'lavfi', '-i', 'testsrc2=size=1280x720:rate=30', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
      '-c:v', 'libx264', '-preset', 'veryfast', '-g', '60', '-c:a', 'aac', '-t', String(SECONDS),
      '-f', 'flv', `rtmp://127.0.0.1:${rtmp}/live/${STREAM}`], { stdio: ['ignore', 'ignore', 'inherit'] });
    await until('the publisher to finish', (SECONDS + 30) * 1000, async () => publisher.exitCode !== null);
    assert.equal(publisher.exitCode, 0, 'the publisher failed');
    const rec = await until('the recording to be listed', 30_000, async () => {
      const list = await (await fetch(`${base}/api/recordings`)).json();
      return list.find((r) => r.name === STREAM);
    });
    log(`recording ${rec.id}: ${rec.duration_secs} s, ${rec.bytes} bytes`);

    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
        '--disable-sync', '--no-first-run', '--autoplay-policy=no-user-gesture-required'],
    });
    page = await browser.newPage();
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    const failed = [];
    page.on('response', (r) => { if (r.status() >= 400 && !r.url().endsWith('/favicon.ico')) failed.push(`${r.status()} ${r.url()}`); });
    // A page of the server's own origin, then dash.js as the web player serves it.
    await page.goto(`${base}/time`);
    await page.setContent('<video id="v" muted playsinline width="640" height="360"></video>');
    await page.addScriptTag({ url: `${base}/player/dash.all.min.js` });
    await page.evaluate((mpd) => {
      const v = document.getElementById('v');
      const p = window.dashjs.MediaPlayer().create();
      window.replay = { p, v, errors: [] };
      p.on(window.dashjs.MediaPlayer.events.ERROR, (e) => window.replay.errors.push(JSON.stringify(e.error || e)));
      p.initialize(v, mpd, true);
    }, `${base}${rec.dash}`);
    const state = () => page.evaluate(() => {
      const { p, v, errors } = window.replay;
      return { time: v.currentTime, ready: v.readyState, duration: p.duration(), dynamic: p.isDynamic(), errors };
    });

    await until('the recording to start playing', 20_000, async () => (await state()).ready >= 2, 100);
    const s0 = await state();
    assert.equal(s0.dynamic, false, 'dash.js took the recording for a live stream');
    assert.ok(Math.abs(s0.duration - rec.duration_secs) < 1, `dash.js duration ${s0.duration}, listed ${rec.duration_secs}`);
    const target = s0.duration / 2;
    const began = performance.now();
    await page.evaluate((to) => window.replay.p.seek(to), target);
    await until('the seek to land', 15_000, async () => {
      const s = await state();
      return s.time >= target - 0.5 && s.time < target + 2;
    }, 100);
    const seekedIn = (performance.now() - began) / 1000;
    await until('playback to advance 3 s past the seek target', 20_000, async () => (await state()).time >= target + 3, 200);
    const s = await state();
    assert.deepEqual(s.errors, [], 'dash.js errors');
    assert.deepEqual(pageErrors, [], 'page errors');
    assert.deepEqual(failed, [], 'failed requests');
    console.log(JSON.stringify({
      duration_s: +s.duration.toFixed(3),
      listed_s: rec.duration_secs,
      seek_to_s: +target.toFixed(3),
      seeked_in_s: +seekedIn.toFixed(2),
      played_to_s: +s.time.toFixed(2),
    }));
  } catch (e) {
    const seen = await page?.evaluate(() => {
      const r = window.replay;
      return r && { time: r.v.currentTime, ready: r.v.readyState, errors: r.errors };
    }).catch(() => null);
    if (seen) console.error(`page state: ${JSON.stringify(seen)}`);
    const tail = fs.readFileSync(path.join(dataDir, 'server.log'), 'utf8').split('\n').slice(-40).join('\n');
    console.error(`--- server log (last lines) ---\n${tail}`);
    throw e;
  }
});
