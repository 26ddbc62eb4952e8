// What a DASH player does at start, as a timeline: every request for the MPD, /time and the
// segments (sent, headers, done, bytes), the <video> element's events (seeking, waiting,
// playing, rate changes), the first presented frame, and every 0.5 s the playhead, the
// buffered ranges, the player's live edge and its own latency. Seconds from page navigation.
// A diagnostic for issue 16 (why Shaka's first frame is late and it stalls), not a test.
//
//   node tests/browser/dash-timeline.mjs --base http://127.0.0.1:PORT --stream NAME
//        [--player shaka|dashjs] [--secs 15] [--shaka-config JSON] [--debug-log 1]
//        [--rewrite duration] [--spd SECONDS] [--mup SECONDS] [--g2g 1]
//
// --shaka-config is merged into { streaming: { lowLatencyMode: true } } (the setting),
// e.g. '{"manifest":{"dash":{"autoCorrectDrift":false}}}'. --debug-log loads Shaka's debug
// build and prints its log (level from $SHAKA_LOG, default DEBUG).
// --rewrite and --spd change the MPD on its way to the page (Playwright's page.route), to try
// a signalling before the server has it: `duration` replaces each SegmentTimeline with
// SegmentTemplate@duration (4 s, $Number$ addressing from the wall clock; the segments the
// server makes are the same); --spd sets MPD@suggestedPresentationDelay, --mup
// MPD@minimumUpdatePeriod. --g2g 1 measures instead, from the pixels (g2g.mjs's measurePlayer,
// the player's own page, the same rewrite on its browser context) and prints its JSON line.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchBrowser, measurePlayer } from './g2g.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const shakaDist = path.resolve(here, '../../web/node_modules/shaka-player/dist');

const o = { player: 'shaka', secs: '15', 'shaka-config': '{}', 'debug-log': '0' };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const k = argv[i].replace(/^--/, '');
  if (!['base', 'stream', 'player', 'secs', 'shaka-config', 'debug-log', 'rewrite', 'spd', 'mup', 'g2g'].includes(k) || argv[i + 1] === undefined) {
    throw new Error('usage: node dash-timeline.mjs --base URL --stream NAME [--player shaka|dashjs] [--secs 15] [--shaka-config JSON] [--debug-log 1] [--rewrite duration] [--spd S] [--mup S] [--g2g 1]');
  }
  o[k] = argv[i + 1];
}
if (!o.base || !o.stream) throw new Error('--base and --stream are needed');
const mpdPath = `/live/${encodeURIComponent(o.stream)}/manifest.mpd`;
const debug = o['debug-log'] === '1';

// Runs in the page: the <video> element's events and a tick every 0.5 s. `edge` and
// `latency` read the player's own view (Shaka's seekRange end, dash.js's DVR window end).
function pageProbe() {
  const log = (...a) => console.log('EV', ...a);
  const t = (v) => v.currentTime.toFixed(3);
  const watch = (video) => {
    for (const e of ['loadedmetadata', 'seeking', 'seeked', 'waiting', 'playing', 'ratechange']) {
      video.addEventListener(e, () => log(e, `ct=${t(video)}`, `rate=${video.playbackRate}`));
    }
    video.requestVideoFrameCallback((_, m) => log(`first frame shown, mediaTime=${m.mediaTime.toFixed(3)}`));
    setInterval(() => {
      const b = [];
      for (let i = 0; i < video.buffered.length; i++) b.push(`${video.buffered.start(i).toFixed(2)}-${video.buffered.end(i).toFixed(2)}`);
      const v = window.probeView ? window.probeView() : {};
      log(`tick ct=${t(video)} buffered=${b.join(',') || '-'} edge=${v.edge ?? '-'} latency=${v.latency ?? '-'} height=${v.height ?? '-'} rate=${video.playbackRate.toFixed(2)}`);
    }, 500);
  };
  const found = () => {
    const v = document.querySelector('video');
    if (v) watch(v);
    else setTimeout(found, 20);
  };
  found();
}

const shakaPage = (config) => `<!doctype html><html><body><video muted autoplay playsinline></video>
<script src="/probe/shaka.js"></script><script>
(async () => {
  const log = (...a) => console.log('EV', ...a);
  shaka.polyfill.installAll();
  if (${debug} && shaka.log.setLevel) shaka.log.setLevel(shaka.log.Level.${process.env.SHAKA_LOG || 'DEBUG'});
  const video = document.querySelector('video');
  const p = new shaka.Player();
  await p.attach(video);
  const config = ${config};
  config.streaming = Object.assign({ lowLatencyMode: true }, config.streaming);
  p.configure(config);
  p.addEventListener('error', (e) => log('error', e.detail && e.detail.code));
  p.addEventListener('buffering', (e) => log('buffering', e.buffering, 'ct=' + video.currentTime.toFixed(3)));
  p.addEventListener('adaptation', () => log('adaptation to', p.getVariantTracks().filter((x) => x.active).map((x) => x.height)));
  p.addEventListener('gapjumped', () => log('gap jumped'));
  p.addEventListener('stalldetected', () => log('stall detected'));
  window.probeView = () => {
    const s = p.getStats();
    return { edge: p.seekRange().end.toFixed(2), latency: (s.liveLatency || 0).toFixed(2), height: s.height };
  };
  await p.load(${JSON.stringify(mpdPath)});
  const tl = p.getManifest().presentationTimeline;
  const ast = p.getPresentationStartTimeAsDate().getTime();
  log('loaded: wall clock - availabilityStartTime = ' + ((Date.now() - ast) / 1000).toFixed(3) +
      ' s, live edge (seekRange end) = ' + tl.getSeekRangeEnd().toFixed(3) + ' s, segment availability end = ' +
      tl.getSegmentAvailabilityEnd().toFixed(3) + ', presentation delay = ' + tl.getDelay() +
      ', max segment duration = ' + tl.getMaxSegmentDuration() + ', initial bandwidth estimate = ' + Math.round(p.getStats().estimatedBandwidth / 1000) + ' kbit/s');
})().catch((e) => console.log('EV failed', String(e)));
</script></body></html>`;

// The MPD as --rewrite, --spd and --mup want it.
function rewriteMpd(mpd) {
  if (o.rewrite === 'duration') {
    mpd = mpd.replace(/<SegmentTimeline>[\s\S]*?<\/SegmentTimeline>\s*/g, '')
      .replace(/<SegmentTemplate timescale="(\d+)"/g, (m, ts) => `${m} duration="${4 * Number(ts)}"`)
      .replace(/(<SegmentTemplate[^>]*?)>\s*<\/SegmentTemplate>/g, '$1/>');
  } else if (o.rewrite) {
    throw new Error(`unknown --rewrite ${o.rewrite} (duration)`);
  }
  if (o.spd) mpd = mpd.replace(/suggestedPresentationDelay="[^"]*"/, `suggestedPresentationDelay="PT${Number(o.spd)}S"`);
  if (o.mup) mpd = mpd.replace(/minimumUpdatePeriod="[^"]*"/, `minimumUpdatePeriod="PT${Number(o.mup)}S"`);
  return mpd;
}

async function routeMpd(target) {
  if (!(o.rewrite || o.spd || o.mup)) return;
  await target.route((u) => u.pathname === mpdPath, async (route) => {
    const res = await route.fetch();
    return route.fulfill({ response: res, body: rewriteMpd(await res.text()) });
  });
}

const browser = await launchBrowser();
if (o.g2g === '1') {
  // measurePlayer opens its own context: hand it one with the MPD route in place.
  const withRoute = { newContext: async (opts) => { const c = await browser.newContext(opts); await routeMpd(c); return c; } };
  try {
    const r = await measurePlayer(withRoute, { base: o.base, stream: o.stream, player: o.player, secs: Number(o.secs) });
    console.log(JSON.stringify({ rewrite: o.rewrite ?? null, spd: o.spd ?? null, mup: o.mup ?? null, ...r }));
  } finally {
    await browser.close();
  }
  process.exit(0);
}
const page = await (await browser.newContext()).newPage();
const t0 = Date.now();
const out = (...a) => console.log(((Date.now() - t0) / 1000).toFixed(3).padStart(7), ...a);
page.on('console', (m) => {
  const text = m.text();
  if (text.startsWith('EV ')) out(text.slice(3));
  else if (debug) out('log', text.slice(0, 400));
});
const started = new Map();
const short = (u) => u.replace(o.base, '');
const ours = (u) => u.startsWith(o.base) && (u.includes('/live/') || u.endsWith('/time'));
page.on('request', (r) => { if (ours(r.url())) { started.set(r, Date.now()); out('request ', short(r.url())); } });
page.on('response', (r) => {
  const q = r.request();
  if (started.has(q)) out('headers ', r.status(), short(q.url()), `after ${((Date.now() - started.get(q)) / 1000).toFixed(3)} s`);
});
page.on('requestfinished', async (r) => {
  if (!started.has(r)) return;
  const s = await r.sizes().catch(() => ({}));
  out('done    ', short(r.url()), `after ${((Date.now() - started.get(r)) / 1000).toFixed(3)} s`, `${s.responseBodySize} bytes`);
});
page.on('requestfailed', (r) => { if (started.has(r)) out('failed  ', short(r.url()), r.failure()?.errorText); });
await routeMpd(page);
if (o.player === 'shaka') {
  await page.route(`${o.base}/probe/**`, (route) => {
    if (new URL(route.request().url()).pathname === '/probe/page.html') {
      return route.fulfill({ body: shakaPage(o['shaka-config']), contentType: 'text/html' });
    }
    const file = path.join(shakaDist, debug ? 'shaka-player.compiled.debug.js' : 'shaka-player.compiled.js');
    if (!fs.existsSync(file)) return route.fulfill({ status: 404, body: `no ${file} (npm ci --prefix web)` });
    return route.fulfill({ path: file, contentType: 'text/javascript' });
  });
  await page.addInitScript(pageProbe);
  await page.goto(`${o.base}/probe/page.html`);
} else if (o.player === 'dashjs') {
  await page.addInitScript(pageProbe);
  await page.addInitScript(() => {
    window.probeView = () => {
      const p = window.ferrocast?.player;
      if (!p) return {};
      return { edge: p.getDvrWindow?.()?.end?.toFixed(2), latency: p.getCurrentLiveLatency?.()?.toFixed(2) };
    };
  });
  await page.goto(`${o.base}/watch/${encodeURIComponent(o.stream)}`);
} else {
  throw new Error(`unknown --player ${o.player} (shaka, dashjs)`);
}
await new Promise((r) => setTimeout(r, Number(o.secs) * 1000));
await browser.close();
