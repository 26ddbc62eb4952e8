// Browser test of the web player: a real ferrocast server, a real ffmpeg publisher and
// Debian's Chromium (headless, driven by playwright-core) watching /watch/NAME.
//
//   npm ci --prefix web && cargo build -p ferrocast && node --test tests/browser/
//
// Asserts that the video plays (currentTime advances ≥ 3 s, no dash.js error), reads dash.js
// getCurrentLiveLatency(), switches renditions by hand (the decoded height follows 720 ↔ 400),
// and that the player ends cleanly when the publisher stops (no error storm, no 404 storm).
// Prints one JSON line: {"first_frame_s":…, "latency_s":…, "stalls":…, …}.
//
// Environment: FERROCAST_BIN (default target/debug/ferrocast), CHROMIUM (default
// /usr/bin/chromium), FFMPEG (default ffmpeg), WATCH_QUERY (page query, e.g. "ll=0": low
// latency off), WATCH_SEGMENTS (segments listed before the page opens, default 2; 6 gives
// dash.js room to play 16 s behind with ll=0), WATCH_SCREENSHOT (a PNG path: a screenshot while playing).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { mpdVideoSegments } from './harness.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
// playwright-core is a devDependency of web/package.json, not of a package here.
const { chromium } = createRequire(path.join(root, 'web/package.json'))('playwright-core');

const BIN = process.env.FERROCAST_BIN || path.join(root, 'target/debug/ferrocast');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const FFMPEG = process.env.FFMPEG || 'ffmpeg';
const QUERY = process.env.WATCH_QUERY ? `?${process.env.WATCH_QUERY}` : '';
const STREAM = 'browsertest';
const TOTAL_MS = 90_000;
// Segments the MPD must list before the page opens (a viewer joining an established stream).
const SEGMENTS = Number(process.env.WATCH_SEGMENTS || 2);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => console.error(`[${(performance.now() / 1000).toFixed(1)}s]`, ...a);

async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// mpd-parser reads the live MPD: both video renditions with their sizes and bandwidths, the
// audio rendition with its real channel count, every segment 4 s (video) with a URL that
// resolves; mp4box.js parses the init segment (codec, size) and a media segment (moof/mdat).
async function checkStructure(base) {
  const req = createRequire(path.join(root, 'web/package.json'));
  const mpdParser = req('mpd-parser');
  const MP4Box = req('mp4box');
  const mpdUrl = `${base}/live/${STREAM}/manifest.mpd`;
  const text = await (await fetch(mpdUrl)).text();
  const m = mpdParser.parse(text, { manifestUri: mpdUrl });
  const video = m.playlists.map((p) => p.attributes).sort((a, b) => b.BANDWIDTH - a.BANDWIDTH);
  assert.deepEqual(video.map((a) => [a.RESOLUTION.width, a.RESOLUTION.height, a.BANDWIDTH]),
    [[720, 720, 1500000], [400, 400, 500000]], 'video renditions');
  const audioGroups = Object.values(m.mediaGroups.AUDIO || {});
  const audio = audioGroups.flatMap((g) => Object.values(g)).flatMap((x) => x.playlists || []);
  assert.equal(audio.length, 1, 'one audio rendition');
  assert.ok(audio[0].attributes.CODECS.startsWith('mp4a.40'), audio[0].attributes.CODECS);
  const segs = m.playlists[0].segments;
  assert.ok(segs.length >= 2, 'segments listed');
  for (const seg of segs.slice(0, -1)) assert.ok(Math.abs(seg.duration - 4) < 0.05, `segment of ${seg.duration} s`);
  const parse = (buf) => {
    const f = MP4Box.createFile();
    let info = null;
    f.onReady = (i) => { info = i; };
    const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
    ab.fileStart = 0;
    f.appendBuffer(ab);
    f.flush();
    return { f, info };
  };
  const get = async (u) => Buffer.from(await (await fetch(new URL(u, mpdUrl))).arrayBuffer());
  const init = await get(segs[0].map.resolvedUri);
  const media = await get(segs[0].resolvedUri);
  const { info } = parse(Buffer.concat([init, media]));
  assert.ok(info, 'mp4box.js parsed the init segment');
  const track = info.videoTracks[0];
  assert.ok(track.codec.startsWith('avc1.'), track.codec);
  assert.ok(track.video.width === 720 || track.video.width === 400, `width ${track.video.width}`);
  assert.ok(info.isFragmented, 'fragmented MP4');
  log(`structure: mpd-parser ${video.length} video + ${audio.length} audio renditions, ${segs.length} segments; mp4box.js ${track.codec} ${track.video.width}x${track.video.height}`);
}

// Polls `fn` until it returns a truthy value or `ms` pass; the message says what was awaited.
async function until(what, ms, fn, every = 250) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms / 1000} s waiting for ${what}`);
    await sleep(every);
  }
}

function stop(child, name) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => {
      log(`${name} did not exit on SIGTERM, killing`);
      child.kill('SIGKILL');
    }, 5000);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : NaN;
};
const round = (v, d = 3) => (Number.isFinite(v) ? +v.toFixed(d) : null);

test('web player plays live DASH, switches renditions and ends cleanly', { timeout: TOTAL_MS }, async (t) => {
  assert.ok(fs.existsSync(BIN), `no ferrocast binary at ${BIN}: run cargo build -p ferrocast (or set FERROCAST_BIN)`);
  assert.ok(fs.existsSync(CHROMIUM), `no Chromium at ${CHROMIUM}: apt-get install -y chromium (or set CHROMIUM)`);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferrocast-browser-'));
  const [rtmp, rtmps, http] = [await freePort(), await freePort(), await freePort()];
  const base = `http://127.0.0.1:${http}`;
  let server, publisher, browser, page;
  t.after(async () => {
    await browser?.close().catch(() => {});
    await stop(publisher, 'ffmpeg');
    await stop(server, 'ferrocast');
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  // ---- server and publisher ----
  const serverLog = fs.openSync(path.join(dataDir, 'server.log'), 'w');
  server = spawn(BIN, ['serve', '--data-dir', path.join(dataDir, 'data'), '--rtmp-addr', `127.0.0.1:${rtmp}`, '--webrtc-addr', '127.0.0.1:0',
    '--rtmps-addr', `127.0.0.1:${rtmps}`, '--http-addr', `127.0.0.1:${http}`],
  { stdio: ['ignore', serverLog, serverLog], env: { ...process.env, FERROCAST_WEB_DIR: path.join(root, 'web') } });
  try {
    await until('the server to answer /healthz', 10_000, async () => (await fetch(`${base}/healthz`)).ok);
    const dashjs = await fetch(`${base}/player/dash.all.min.js`, { method: 'HEAD' });
    assert.equal(dashjs.status, 200, 'dash.js is not served: run npm ci --prefix web');

    // -t bounds the publisher even if this script dies without stopping it.
    publisher = spawn(FFMPEG, ['-hide_banner', '-loglevel', 'error', '-nostdin', '-re',
      '-f', 'lavfi', '-i', 'testsrc2=size=1280x720:rate=30', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
      '-c:v', 'libx264', '-preset', 'veryfast', '-g', '60', '-c:a', 'aac', '-t', '80',
      '-f', 'flv', `rtmp://127.0.0.1:${rtmp}/live/${STREAM}`], { stdio: ['ignore', 'ignore', 'inherit'] });
    const published = performance.now();
    await until(`the MPD to list ${SEGMENTS} segments`, 10_000 + SEGMENTS * 5_000, async () => {
      const r = await fetch(`${base}/live/${STREAM}/manifest.mpd`);
      if (!r.ok) return false;
      return mpdVideoSegments(await r.text()) >= SEGMENTS;
    }, 200);
    log(`MPD ready ${((performance.now() - published) / 1000).toFixed(1)} s after publishing started`);

    // ---- browser ----
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      // The field notes' flags; launch() also gives every run a fresh temporary profile.
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
        '--disable-sync', '--no-first-run'],
    });
    page = await browser.newPage({ viewport: { width: 1100, height: 760 } });
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(m.text()); });
    const notFound = [];
    let stoppedAt = null;
    page.on('response', (r) => {
      if (r.status() === 404 && stoppedAt !== null) notFound.push(r.url());
    });
    const beacons = [];
    page.on('request', (r) => { if (r.url().endsWith('/api/beacon')) beacons.push(r.postData()); });

    await page.goto(`${base}/watch/${STREAM}${QUERY}`, { waitUntil: 'domcontentloaded' });
    const stats = () => page.evaluate(() => window.ferrocast.stats);
    const video = () => page.evaluate(() => {
      const v = document.querySelector('video');
      return { time: v.currentTime, height: v.videoHeight, paused: v.paused };
    });

    // It plays: first frame, then currentTime advances by ≥ 3 s.
    await until('the first playing event', 15_000, async () => (await stats()).firstPlayingMs !== null, 50);
    const t0 = (await video()).time;
    await until('currentTime to advance 3 s', 20_000, async () => (await video()).time >= t0 + 3);
    let s = await stats();
    assert.deepEqual(s.errors, [], 'dash.js errors while playing');
    const latencies = [];
    const sampleLatency = async () => {
      const l = await page.evaluate(() => window.ferrocast.player.getCurrentLiveLatency());
      if (Number.isFinite(l) && l > 0) latencies.push(l);
      return l;
    };
    log(`playing: first frame ${(s.firstPlayingMs / 1000).toFixed(2)} s, latency ${(await sampleLatency()).toFixed(2)} s, mode ${s.mode}, target ${s.targetDelay}`);
    // The page's latency comes from the MPD's ProducerReferenceTime (the capture clock). The
    // server anchors availabilityStartTime on the same clock, so dash.js's own estimate must
    // agree with it: both are read in the same tick of the page's stats loop, each on its own
    // estimate of the server's clock (/time), so within 0.25 s (two clock syncs' round trips
    // and rounding; a wrong anchor is off by the transcoder's delay, ~0.3 s or more).
    await until('a ProducerReferenceTime latency on the page', 10_000, async () => Number.isFinite((await stats()).prftLatency));
    s = await stats();
    assert.ok(Math.abs(s.prftLatency - s.playerLatency) < 0.25,
      `latency from ProducerReferenceTime ${s.prftLatency} vs dash.js ${s.playerLatency}`);
    if (process.env.WATCH_SCREENSHOT) await page.screenshot({ path: process.env.WATCH_SCREENSHOT });

    // Manual rendition switches: to the other height and back; the decoded size must follow.
    const options = await page.$$eval('#quality option', (os) => os.map((o) => ({ value: o.value, label: o.textContent })));
    const reps = options.filter((o) => o.value !== 'auto').map((o) => ({ id: o.value, height: parseInt(o.label, 10) }));
    assert.deepEqual(reps.map((r) => r.height).sort(), [400, 720], `picker offers ${JSON.stringify(options)}`);
    const switches = [];
    let height = (await video()).height;
    for (let i = 0; i < 2; i++) {
      const target = reps.find((r) => r.height !== height);
      const began = performance.now();
      log(`switching to ${target.height} at page time ${(await page.evaluate(() => performance.now() / 1000)).toFixed(2)} s`);
      await page.selectOption('#quality', target.id);
      await until(`the decoded height to become ${target.height}`, 15_000, async () => {
        await sampleLatency();
        return (await video()).height === target.height;
      }, 100);
      switches.push(round((performance.now() - began) / 1000, 2));
      log(`switched ${height} → ${target.height} in ${switches.at(-1)} s`);
      height = target.height;
    }
    await page.selectOption('#quality', 'auto');
    // A few more seconds of steady playback for the latency figure.
    for (let i = 0; i < 4; i++) {
      await sampleLatency();
      await sleep(1000);
    }
    s = await stats();
    assert.deepEqual(s.errors, [], 'dash.js errors while switching');

    // Independent structural checks of what we serve: the MPD through mpd-parser (videojs),
    // init and media segments through mp4box.js (GPAC's parser in JS).
    await checkStructure(base);

    // The publisher stops: the MPD gets mediaPresentationDuration and the player plays out to
    // the end without asking for segments that will never come.
    stoppedAt = performance.now();
    await stop(publisher, 'ffmpeg');
    await until('the MPD to end (mediaPresentationDuration)', 15_000, async () =>
      (await (await fetch(`${base}/live/${STREAM}/manifest.mpd`)).text()).includes('mediaPresentationDuration'));
    await until('the player to reach the end', 40_000, async () => (await stats()).ended, 200);
    const endS = (performance.now() - stoppedAt) / 1000;
    s = await stats();
    log(`ended ${endS.toFixed(1)} s after the publisher stopped; 404s after stop: ${notFound.length}`);
    if (s.stalls) log(`stalls [page time s, ms]: ${JSON.stringify(s.stallLog)}`);
    assert.ok(s.errors.length <= 1, `error storm at the end: ${JSON.stringify(s.errors)}`);
    assert.ok(notFound.length <= 2, `404 storm at the end: ${notFound.join(' ')}`);
    assert.deepEqual(pageErrors, [], 'page errors');
    // The ended MPD (mediaPresentationDuration + endNumber) lets dash.js finish on its own.
    assert.equal(s.endedBy, 'dash.js', 'dash.js did not end the stream itself');

    // The page's beacons reached the server and show in /metrics.
    await until('the beacon metrics', 5_000, async () => {
      const m = await (await fetch(`${base}/metrics`)).text();
      return m.includes(`ferrocast_player_first_frame_seconds_count{stream="${STREAM}"}`) &&
        m.includes(`ferrocast_player_latency_seconds_count{stream="${STREAM}"}`);
    });

    console.log(JSON.stringify({
      first_frame_s: round(s.firstPlayingMs / 1000),
      first_frame_presented_s: round(s.firstFrameMs / 1000),
      latency_s: round(median(latencies), 2),
      latency_min_s: round(Math.min(...latencies), 2),
      latency_max_s: round(Math.max(...latencies), 2),
      target_delay_s: round(s.targetDelay, 2),
      stalls: s.stalls,
      stall_s: round(s.stallMs / 1000, 2),
      switch_s: switches,
      end_after_stop_s: round(endS, 1),
      ended_by: s.endedBy,
      errors: s.errors.length,
      beacons: beacons.length,
      mode: s.mode,
    }));
  } catch (e) {
    // What the page saw, for the failure report.
    const seen = await page?.evaluate(() => {
      const v = document.querySelector('video');
      return { ...window.ferrocast.stats, currentTime: v.currentTime, readyState: v.readyState, paused: v.paused };
    }).catch(() => null);
    if (seen) console.error(`page state: ${JSON.stringify(seen)}`);
    console.error(`load average: ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
    const tail = fs.readFileSync(path.join(dataDir, 'server.log'), 'utf8').split('\n').slice(-40).join('\n');
    console.error(`--- server log (last lines) ---\n${tail}`);
    throw e;
  }
});
