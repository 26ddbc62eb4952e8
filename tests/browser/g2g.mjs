// Glass-to-glass in headless Chromium, from the pixels: plays a live stream that
// `ferrocast-g2g publish` feeds, in one of three players, with g2g-reader.js reading the
// capture time of every presented frame.
//
//   dashjs  the server's own page, /watch/NAME (dash.js with the page's settings), the reader
//           injected with page.addInitScript: the page is not changed;
//   shaka   g2g-page.html with Shaka Player (lowLatencyMode) on /live/NAME/manifest.mpd;
//   hlsjs   g2g-page.html with hls.js (lowLatencyMode) on /live/NAME/master.m3u8;
//   whep    g2g-page.html with a plain RTCPeerConnection playing /whep/NAME (WebRTC).
// g2g-page.html and the players' files (web/node_modules) are served under the server's own
// origin by Playwright (page.route on /g2g/), so nothing is added to the server and nothing is
// cross-origin.
//
// As a library: measurePlayer(browser, { base, stream, player, secs }) (g2g.test.mjs). As a
// command (bench/g2g.sh), one JSON line per player:
//   node tests/browser/g2g.mjs --base http://127.0.0.1:PORT --stream NAME --player dashjs,shaka,hlsjs [--secs 60]
// Environment: CHROMIUM (default /usr/bin/chromium).
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const nodeModules = path.join(root, 'web/node_modules');
export const READER = path.join(here, 'g2g-reader.js');
export const PLAYERS = ['dashjs', 'shaka', 'hlsjs', 'whep'];

// The field notes' flags for Debian's Chromium, headless; the next two let WebRTC use
// 127.0.0.1 candidates (else it offers none, or mDNS names); the last lets the WHEP page play
// its audio unmuted without a click (its energy is measured after the output volume).
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run',
  '--allow-loopback-in-peer-connection', '--disable-features=WebRtcHideLocalIpsWithMdns',
  '--autoplay-policy=no-user-gesture-required'];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return s.length ? s[Math.ceil(s.length / 2) - 1] : null;
};

export async function launchBrowser() {
  // playwright-core is a devDependency of web/package.json.
  const { chromium } = createRequire(path.join(root, 'web/package.json'))('playwright-core');
  const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
  if (!fs.existsSync(executablePath)) throw new Error(`no Chromium at ${executablePath}: apt-get install -y chromium (or set CHROMIUM)`);
  return chromium.launch({ executablePath, headless: true, args: CHROMIUM_ARGS });
}

// Files served under BASE/g2g/ for the plain page.
const PAGE_FILES = {
  'page.html': [path.join(here, 'g2g-page.html'), 'text/html'],
  'g2g-reader.js': [READER, 'text/javascript'],
  'shaka-player.dash.js': [path.join(nodeModules, 'shaka-player/dist/shaka-player.dash-es2021.js'), 'text/javascript'],
  'hls.min.js': [path.join(nodeModules, 'hls.js/dist/hls.min.js'), 'text/javascript'],
};

function pageUrl(base, stream, player, query = '') {
  const s = encodeURIComponent(stream);
  if (player === 'dashjs') return `${base}/watch/${s}`;
  if (player === 'shaka') return `${base}/g2g/page.html?player=shaka&src=${encodeURIComponent(`/live/${s}/manifest.mpd`)}`;
  if (player === 'hlsjs') return `${base}/g2g/page.html?player=hlsjs&src=${encodeURIComponent(`/live/${s}/master.m3u8`)}`;
  if (player === 'whep') return `${base}/g2g/page.html?player=whep&src=${encodeURIComponent(`/whep/${s}${query}`)}`;
  throw new Error(`unknown player ${player} (one of ${PLAYERS.join(', ')})`);
}

// The player's own latency estimate, where it has one (for comparison with the pixels).
function playerLatency(player) {
  if (player === 'dashjs') return () => window.ferrocast?.player?.getCurrentLiveLatency() ?? NaN;
  return () => (window.g2gPage ? Number(window.g2gPage.latency()) : NaN);
}

// Opens the player (`query`: WHEP's, e.g. ?rendition=400), waits for its first frame (at most startupMs), measures for `secs`
// seconds from then, and returns the reader's report plus the player's own latency estimate
// (median of one sample every 2 s) and any errors. `after(page, report)`, if given, runs once
// the measurement is taken (on the same page: a rendition switch, say); what it returns is
// the result's `after`.
export async function measurePlayer(browser, { base, stream, player, secs = 60, startupMs = 40_000, query = '', log = () => {}, after }) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 760 } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  try {
    if (player === 'dashjs') {
      await page.addInitScript({ path: READER });
    } else {
      await page.route(`${base}/g2g/**`, (route) => {
        const name = new URL(route.request().url()).pathname.split('/').pop();
        const f = PAGE_FILES[name];
        if (!f || !fs.existsSync(f[0])) return route.fulfill({ status: 404, body: `no ${name} (npm ci --prefix web)` });
        return route.fulfill({ path: f[0], contentType: f[1] });
      });
    }
    const url = pageUrl(base, stream, player, query);
    log(`${player}: ${url}`);
    await page.goto(url, { waitUntil: 'domcontentloaded' });
    const report = () => page.evaluate(() => globalThis.ferrocastG2G?.report() ?? null);
    const ownLatency = playerLatency(player);
    const end = Date.now() + startupMs;
    for (;;) {
      const r = await report();
      if (r && r.frames > 0) break;
      if (Date.now() > end) {
        const pageErrors = await page.evaluate(() => window.g2gPage?.errors ?? window.ferrocast?.stats?.errors ?? []).catch(() => []);
        throw new Error(`${player}: no frame within ${startupMs / 1000} s (${JSON.stringify([...errors, ...pageErrors])})`);
      }
      await sleep(100);
    }
    log(`${player}: first frame; measuring ${secs} s`);
    const own = [];
    const until = Date.now() + secs * 1000;
    while (Date.now() < until) {
      await sleep(Math.min(2000, Math.max(0, until - Date.now())));
      own.push(await page.evaluate(ownLatency).catch(() => NaN));
    }
    const r = await report();
    const afterResult = after ? await after(page, report) : undefined;
    const pageErrors = await page.evaluate(() => window.g2gPage?.errors ?? window.ferrocast?.stats?.errors ?? []).catch(() => []);
    const ownMedian = median(own);
    // WHEP: inbound RTP per kind, and the first frame counted from the offer's POST.
    const whep = player === 'whep' ? await page.evaluate(() => window.g2gPage.whepStats()) : undefined;
    if (whep && r.first_frame_s !== null) whep.first_frame_after_post_s = Math.round((r.first_frame_s - whep.posted_s) * 1000) / 1000;
    return {
      player, ...r, player_latency_s: ownMedian === null ? null : Math.round(ownMedian * 1000) / 1000,
      errors: [...errors, ...pageErrors.map(String)], whep, ...(after ? { after: afterResult } : {}),
    };
  } finally {
    await context.close().catch(() => {});
  }
}

// ---- command line ----
function args(argv) {
  const o = { secs: 60, player: PLAYERS.join(',') };
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, '');
    if (!['base', 'stream', 'player', 'secs', 'startup-secs'].includes(k) || argv[i + 1] === undefined) {
      throw new Error(`usage: node g2g.mjs --base URL --stream NAME [--player ${PLAYERS.join(',')}] [--secs 60] [--startup-secs 40]`);
    }
    o[k] = argv[i + 1];
  }
  if (!o.base || !o.stream) throw new Error('--base and --stream are needed');
  return o;
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const o = args(process.argv.slice(2));
  const log = (...a) => console.error(`[g2g ${new Date().toISOString().slice(11, 23)}]`, ...a);
  const browser = await launchBrowser();
  let failed = false;
  try {
    for (const player of o.player.split(',')) {
      try {
        const r = await measurePlayer(browser, {
          base: o.base, stream: o.stream, player, secs: Number(o.secs),
          startupMs: Number(o['startup-secs'] ?? 40) * 1000, log,
        });
        console.log(JSON.stringify(r));
      } catch (e) {
        failed = true;
        log(String(e));
        console.log(JSON.stringify({ player, error: String(e.message || e) }));
      }
    }
  } finally {
    await browser.close();
  }
  process.exitCode = failed ? 1 : 0;
}
