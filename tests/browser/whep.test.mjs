// WHEP playback in Debian's headless Chromium: a real ferrocast server, an RTMP broadcaster
// (`ferrocast-g2g publish`: ffmpeg, x264 zerolatency, the capture time stamped into every
// frame) and a plain RTCPeerConnection page (g2g-page.html?player=whep: two recvonly
// transceivers, one POST of the complete offer, the answer) playing /whep/NAME.
//
//   npm ci --prefix web && cargo build -p ferrocast -p g2g && node --test tests/browser/
//
// Asserts, for the source (the default: no B-frames), ?rendition=400 and ?rendition=auto (the
// 720, with the server's bandwidth estimator on: Chromium's TWCC feedback; a fast loopback
// path, so it stays on 720): frames decode
// (getStats inbound-rtp video framesDecoded, the picture's size), the stamps read back (so
// the picture is the stream's, in order), the first frame comes < FIRST_FRAME_S after the
// POST, the broadcaster's AAC arrives as Opus (inbound-rtp audio: packets, decoded samples
// and audio energy: the ladder's o64 rendition, issue 17), and DELETE on the Location ends the
// session (/metrics). Prints one JSON line per case.
//
// Environment: FERROCAST_BIN, G2G_BIN, CHROMIUM, FFMPEG (as g2g.test.mjs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchBrowser, measurePlayer } from './g2g.mjs';
import { freePort, log, stop, until } from './harness.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = process.env.FERROCAST_BIN || path.join(root, 'target/debug/ferrocast');
const G2G = process.env.G2G_BIN || path.join(root, 'target/debug/ferrocast-g2g');
const STREAM = 'wheptest';
const SECS = 8;
const TOTAL_MS = 120_000;
// A new viewer's first picture, counted from the offer's POST (issue 17: < 1 s; 0.34-0.55 s
// measured on a calm box), plus a margin for a loaded CI box (1.5-1.8 s seen at load 10-17).
const FIRST_FRAME_S = 1.0;
const FIRST_FRAME_MARGIN_S = 1.0;

const metric = (text, name) => text.split('\n').filter((l) => l.startsWith(name))
  .reduce((n, l) => n + Number(l.split(' ').pop()), 0);

test('WHEP playback in Chromium: source and a rendition, first frame, DELETE', { timeout: TOTAL_MS }, async (t) => {
  for (const [bin, what] of [[BIN, 'ferrocast'], [G2G, 'ferrocast-g2g']]) {
    assert.ok(fs.existsSync(bin), `no ${what} binary at ${bin}: run cargo build -p ferrocast -p g2g`);
  }
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferrocast-whep-'));
  const [rtmp, rtmps, http, udp] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const base = `http://127.0.0.1:${http}`;
  let server, publisher, browser;
  t.after(async () => {
    await browser?.close().catch(() => {});
    await stop(publisher);
    await stop(server);
    fs.rmSync(dataDir, { recursive: true, force: true });
  });
  const serverLog = fs.openSync(path.join(dataDir, 'server.log'), 'w');
  server = spawn(BIN, ['serve', '--data-dir', path.join(dataDir, 'data'), '--rtmp-addr', `127.0.0.1:${rtmp}`,
    '--rtmps-addr', `127.0.0.1:${rtmps}`, '--http-addr', `127.0.0.1:${http}`, '--webrtc-addr', `127.0.0.1:${udp}`],
  { stdio: ['ignore', serverLog, serverLog] });
  try {
    await until('the server to answer /healthz', 10_000, async () => (await fetch(`${base}/healthz`)).ok);
    publisher = spawn(G2G, ['publish', `rtmp://127.0.0.1:${rtmp}/live/${STREAM}`, '--secs', String(TOTAL_MS / 1000)],
      { stdio: ['ignore', 'ignore', 'inherit'] });
    // The 400 rendition exists once the transcoder has produced its first chunk.
    await until('the stream and its 400 rendition', 30_000, async () => {
      const r = await fetch(`${base}/live/${STREAM}/v400/index.m3u8`);
      return r.ok && (await r.text()).includes('#EXTINF');
    }, 250);
    browser = await launchBrowser();
    for (const [query, width, height] of [['', 1280, 720], ['?rendition=400', 400, 400], ['?rendition=auto', 720, 720]]) {
      const r = await measurePlayer(browser, { base, stream: STREAM, player: 'whep', secs: SECS, startupMs: 15_000, query, log });
      console.log(JSON.stringify({ whep: { query, ...r, series: undefined } }));
      const v = r.whep.inbound.video;
      log(`WHEP${query}: first frame ${r.whep.first_frame_after_post_s} s after the POST, glass-to-glass median ` +
        `${r.median_s} s, ${v.frames_decoded} frames decoded (${v.width}x${v.height}, ${v.codec}), ${r.misreads} misread`);
      assert.deepEqual(r.errors, [], 'errors on the page');
      assert.match(r.whep.location, new RegExp(`^/whep/${STREAM}/[0-9a-f]+$`));
      assert.equal(v.codec, 'video/H264');
      assert.ok(v.frames_decoded >= SECS * 30 * 0.7, `only ${v.frames_decoded} frames decoded in ${SECS} s`);
      assert.deepEqual([v.width, v.height], [width, height]);
      assert.equal(r.misreads, 0, `misread stamps (last: ${r.last_error})`);
      // The source is smooth: most frames are shown and read. Not a share of `presented`: the
      // cache's burst at the start is presented faster than the page's frame callbacks come.
      // (A rendition reaches us in the packager's 0.5 s chunks, so the receiver gets bursts
      // and shows fewer of its frames; it is checked for decoding only.)
      if (!query) assert.ok(r.samples >= SECS * 30 * 0.6, `only ${r.samples} frames read (${r.presented} presented)`);
      else assert.ok(r.samples > 0, 'no frame of the rendition read');
      assert.ok(r.whep.first_frame_after_post_s < FIRST_FRAME_S + FIRST_FRAME_MARGIN_S,
        `first frame ${r.whep.first_frame_after_post_s} s after the POST (limit ${FIRST_FRAME_S} s + ${FIRST_FRAME_MARGIN_S} s)`);
      // The RTMP broadcaster's AAC, as the ladder's Opus: received, decoded, not silence
      // (the publisher's 440 Hz sine; concealment alone has no energy).
      const a = r.whep.inbound.audio;
      log(`WHEP${query} audio: ${a?.packets} packets, ${a?.samples} samples, energy ${a?.energy}, ${a?.concealed} concealed (${a?.codec})`);
      assert.equal(a?.codec, 'audio/opus', `inbound audio: ${JSON.stringify(a)}`);
      assert.ok(a.packets > SECS * 50 * 0.7, `only ${a.packets} Opus packets in ${SECS} s`);
      assert.ok(a.samples > SECS * 48_000 * 0.5, `only ${a.samples} audio samples decoded`);
      assert.ok(a.energy > 0, `no audio energy: ${JSON.stringify(a)}`);
    }
    // The web player's WebRTC mode (issue 17): /watch/NAME?mode=webrtc plays over WHEP with
    // its overlay (latency, rendition), and DELETEs its session when the viewer leaves.
    const watch = await browser.newPage();
    await watch.goto(`${base}/watch/${STREAM}?mode=webrtc`, { waitUntil: 'domcontentloaded' });
    const stats = () => watch.evaluate(() => window.ferrocast.stats);
    await until('the web player playing over WebRTC', 20_000, async () => {
      const s = await stats();
      return s.state === 'live' && s.framesDecoded >= 60 && s.width === 1280 && s.latency > 0;
    }, 250);
    const s = await stats();
    const shown = await watch.evaluate(() => ({
      latency: document.getElementById('latency').textContent,
      rendition: document.getElementById('rendition').textContent,
    }));
    log(`web player, WebRTC mode: ${s.framesDecoded} frames decoded, ${s.width}x${s.height}, latency shown ${shown.latency}`);
    assert.match(s.session, new RegExp(`^/whep/${STREAM}/[0-9a-f]+$`));
    assert.equal(shown.rendition, '720p · WebRTC');
    assert.match(shown.latency, /^\d+\.\d\d s \((from capture|receive side)\)$/);
    // The overlay's figure is the browser's (capture time or receive side), against the WHEP
    // target of 0.5 s plus the same 0.25 s margin as the glass-to-glass test.
    assert.ok(s.latency < 0.5 + 0.25, `the player shows ${s.latency} s (${s.latencySource})`);
    assert.deepEqual(s.errors, []);
    const ended = async () => metric(await (await fetch(`${base}/metrics`)).text(), 'ferrocast_webrtc_ended_total');
    const endedBefore = await ended();
    await watch.goto('about:blank');
    await until('the leaving viewer to DELETE its session', 5_000, async () => (await ended()) > endedBefore);
    await watch.close();

    // The page closed its peer connection without a DELETE; a DELETE ends a live one at once.
    const offer = await (await browser.newPage()).evaluate(async () => {
      const pc = new RTCPeerConnection();
      pc.addTransceiver('video', { direction: 'recvonly' });
      await pc.setLocalDescription(await pc.createOffer());
      return pc.localDescription.sdp;
    });
    const res = await fetch(`${base}/whep/${STREAM}`, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: offer });
    assert.equal(res.status, 201, await res.text());
    const location = res.headers.get('location');
    const del = await fetch(`${base}${location}`, { method: 'DELETE' });
    assert.equal(del.status, 200);
    assert.equal((await fetch(`${base}${location}`, { method: 'DELETE' })).status, 404, 'a second DELETE finds nothing');
    await until('the sessions to be gone from /metrics', 20_000, async () => {
      const m = await (await fetch(`${base}/metrics`)).text();
      return metric(m, 'ferrocast_webrtc_sessions ') === 0 && metric(m, 'ferrocast_webrtc_ended_total') >= 4;
    });
  } catch (e) {
    const tail = fs.readFileSync(path.join(dataDir, 'server.log'), 'utf8').split('\n').slice(-30).join('\n');
    console.error(`--- server log (last lines) ---\n${tail}`);
    throw e;
  }
});
