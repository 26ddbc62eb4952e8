// dash.js in Chromium keeps playing through an encoder failover. A real local cluster
// (`scripts/cluster.sh up`: redis-server, s3s-fs, two encoders, gateway, edge), ffmpeg
// publishing over RTMPS to the edge, the web player loaded from the edge
// (/watch/NAME: page and DASH from the same place). The stream's owner encoder is killed with
// SIGKILL while the page plays; the hot standby takes over with a new Period.
//
//   npm ci --prefix web && cargo build -p ferrocast && node --test tests/browser/failover.test.mjs
//
// Asserts: playback resumes by itself after the kill, the longest frozen picture is ≤ 10 s
// (the failover budget), and the video advances ≥ 10 s in the 45 s after the kill, with no
// fatal dash.js error. Prints one JSON line with the measured stall.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { mpdVideoSegments } from './harness.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const { chromium } = createRequire(path.join(root, 'web/package.json'))('playwright-core');
const BIN = process.env.FERROCAST_BIN || path.join(root, 'target/debug/ferrocast');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const STREAM = 'failover';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => console.error(`[${(performance.now() / 1000).toFixed(1)}s]`, ...a);

async function until(what, ms, fn, every = 250) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms / 1000} s waiting for ${what}`);
    await sleep(every);
  }
}

test('dash.js keeps playing through an encoder failover', { timeout: 240_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferrocast-failover-browser-'));
  const cluster = (cmd) => execFileSync(path.join(root, 'scripts/cluster.sh'), [cmd, '--dir', dir], {
    env: { ...process.env, CLUSTER_DETACH: '1', FERROCAST_BIN: BIN },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let browser;
  let ffmpeg;
  let ok = false;
  try {
    cluster('up');
    const env = Object.fromEntries(fs.readFileSync(path.join(dir, 'cluster.env'), 'utf8').trim().split('\n').map((l) => l.split(/=(.*)/s).slice(0, 2)));
    const edge = `http://127.0.0.1:${env.EDGE_HTTP}`;
    ffmpeg = spawn('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-re',
      '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=30', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
      '-t', '180', '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-g', '30', '-b:v', '800k',
      '-c:a', 'aac', '-f', 'flv', `rtmps://127.0.0.1:${env.EDGE_RTMPS}/live/${STREAM}`], { stdio: 'ignore' });
    await until('the MPD at the edge with 2 segments', 60_000, async () => {
      const r = await fetch(`${edge}/live/${STREAM}/manifest.mpd`);
      return r.ok && mpdVideoSegments(await r.text()) >= 2;
    });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--autoplay-policy=no-user-gesture-required'],
    });
    const page = await browser.newPage();
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    await page.goto(`${edge}/watch/${STREAM}`, { waitUntil: 'domcontentloaded' });
    const video = () => page.evaluate(() => document.querySelector('video').currentTime);
    await until('playback', 30_000, async () => (await video()) > 3);
    log(`playing at ${(await video()).toFixed(1)} s; killing the owner`);

    const owner = execFileSync('redis-cli', ['-p', env.REDIS_PORT, 'GET', `ferrocast:owner:${STREAM}`]).toString().trim().split('|')[0];
    assert.match(owner, /^enc-[12]$/, `owner ${owner}`);
    const pid = fs.readFileSync(path.join(dir, owner === 'enc-1' ? 'encoder-1.pid' : 'encoder-2.pid'), 'utf8').trim();
    const tKill = performance.now();
    const atKill = await video();
    process.kill(Number(pid), 'SIGKILL');

    // Sample playback for 45 s: the longest time currentTime did not move is the stall.
    let last = atKill;
    let lastMove = performance.now();
    let longestStall = 0;
    while (performance.now() - tKill < 45_000) {
      await sleep(250);
      const t = await video();
      if (t > last + 0.01) {
        longestStall = Math.max(longestStall, (performance.now() - lastMove) / 1000);
        last = t;
        lastMove = performance.now();
      }
    }
    longestStall = Math.max(longestStall, (performance.now() - lastMove) / 1000);
    const advanced = last - atKill;
    const stats = await page.evaluate(() => window.ferrocast.stats);
    const newOwner = execFileSync('redis-cli', ['-p', env.REDIS_PORT, 'GET', `ferrocast:owner:${STREAM}`]).toString().trim();
    console.log(JSON.stringify({ owner, new_owner: newOwner, advanced_s: +advanced.toFixed(1), longest_stall_s: +longestStall.toFixed(1), dashjs_errors: stats.errors.length, stalls: stats.stalls }));
    assert.ok(!newOwner.startsWith(`${owner}|`), `the stream still belongs to the killed ${owner}`);
    assert.ok(longestStall <= 10, `the picture froze for ${longestStall.toFixed(1)} s, over the 10 s failover budget`);
    assert.ok(advanced >= 10, `video advanced only ${advanced.toFixed(1)} s in the 45 s after the kill (longest stall ${longestStall.toFixed(1)} s)`);
    assert.ok(last > atKill && performance.now() - lastMove < 5000, 'playback stopped again at the end');
    assert.deepEqual(pageErrors, [], 'page errors');
    ok = true;
  } finally {
    if (browser) await browser.close().catch(() => {});
    if (ffmpeg) ffmpeg.kill('SIGKILL');
    try { cluster('down'); } catch { /* already down */ }
    if (ok) fs.rmSync(dir, { recursive: true, force: true });
    else log(`cluster logs kept in ${dir}`);
  }
});
