// WHIP publishing from Debian's headless Chromium: a plain RTCPeerConnection page sends its
// fake camera and microphone (getUserMedia with --use-fake-device-for-media-stream) over WHIP
// to a real ferrocast server, as OBS or a browser studio would.
//
//   npm ci --prefix web && cargo build -p ferrocast && node --test tests/browser/whip.test.mjs
//
// Asserts: a wrong key is refused with 401 and the reason; the right key gets 201 and a
// Location; Chromium's getStats shows video and audio sent; /api/streams lists the stream
// with protocol "whip" (H.264 and Opus in); the MPD lists segments and Debian's ffprobe reads
// the 720 rendition and AAC audio from it; ffmpeg decodes frames of the stream over RTMP; a
// WHEP viewer (another page) decodes its video and receives its Opus (getStats inbound-rtp);
// DELETE on the Location ends the stream. Prints one JSON line.
//
// Environment: FERROCAST_BIN, CHROMIUM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CHROMIUM_ARGS } from './g2g.mjs';
import { freePort, log, mpdVideoSegments, stop, until } from './harness.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = process.env.FERROCAST_BIN || path.join(root, 'target/debug/ferrocast');
const STREAM = 'whiptest';
const KEY = 'browser-s3cret';
const TOTAL_MS = 150_000;

const run = (cmd, args, ms) => new Promise((resolve) => {
  execFile(cmd, args, { timeout: ms, maxBuffer: 16 << 20 }, (err, stdout, stderr) => resolve({ ok: !err, stdout, stderr }));
});

// In the page: publish the fake camera and microphone over WHIP; returns the HTTP outcome.
async function publish(page, url, key) {
  return page.evaluate(async ({ url, key }) => {
    const media = await navigator.mediaDevices.getUserMedia({ video: { width: 1280, height: 720, frameRate: 30 }, audio: true });
    const pc = new RTCPeerConnection();
    for (const track of media.getTracks()) pc.addTransceiver(track, { direction: 'sendonly', streams: [media] });
    await pc.setLocalDescription(await pc.createOffer());
    // No trickle: the whole offer after gathering.
    await new Promise((resolve) => {
      if (pc.iceGatheringState === 'complete') return resolve();
      pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && resolve());
      setTimeout(resolve, 3000);
    });
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/sdp', Authorization: `Bearer ${key}` },
      body: pc.localDescription.sdp,
    });
    const body = await res.text();
    if (res.status !== 201) {
      pc.close();
      media.getTracks().forEach((t) => t.stop());
      return { status: res.status, body };
    }
    await pc.setRemoteDescription({ type: 'answer', sdp: body });
    window.whip = { pc, media };
    return { status: res.status, location: res.headers.get('location') };
  }, { url, key });
}

// In the page: what Chromium says it sent.
async function sent(page) {
  return page.evaluate(async () => {
    const out = { state: window.whip.pc.connectionState };
    const stats = await window.whip.pc.getStats();
    const codecs = {};
    stats.forEach((s) => { if (s.type === 'codec') codecs[s.id] = s.mimeType; });
    stats.forEach((s) => {
      if (s.type === 'outbound-rtp') out[s.kind] = { packets: s.packetsSent, codec: codecs[s.codecId], width: s.frameWidth };
    });
    return out;
  });
}

test('WHIP publishing from Chromium: refused without the key, then a stream on every output', { timeout: TOTAL_MS }, async (t) => {
  assert.ok(fs.existsSync(BIN), `no ferrocast binary at ${BIN}: run cargo build -p ferrocast`);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferrocast-whip-'));
  const [rtmp, rtmps, http, udp] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const base = `http://127.0.0.1:${http}`;
  let server, browser;
  t.after(async () => {
    await browser?.close().catch(() => {});
    await stop(server);
    fs.rmSync(dataDir, { recursive: true, force: true });
  });
  const serverLog = fs.openSync(path.join(dataDir, 'server.log'), 'w');
  server = spawn(BIN, ['serve', '--data-dir', path.join(dataDir, 'data'), '--rtmp-addr', `127.0.0.1:${rtmp}`,
    '--rtmps-addr', `127.0.0.1:${rtmps}`, '--http-addr', `127.0.0.1:${http}`, '--webrtc-addr', `127.0.0.1:${udp}`,
    '--publish-key', `${STREAM}=${KEY}`],
  { stdio: ['ignore', serverLog, serverLog], env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info' } });
  try {
    await until('the server to answer /healthz', 10_000, async () => (await fetch(`${base}/healthz`)).ok);
    const { chromium } = createRequire(path.join(root, 'web/package.json'))('playwright-core');
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      headless: true,
      args: [...CHROMIUM_ARGS, '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'],
    });
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    // Same origin as the WHIP endpoint (CORS is tested in the Rust tests); not the stream list,
    // which reloads itself.
    await page.goto(`${base}/healthz`);
    const url = `${base}/whip/${STREAM}`;

    const refused = await publish(page, url, 'not-the-key');
    assert.equal(refused.status, 401, refused.body);
    assert.match(refused.body, /stream key rejected for "whiptest"/);

    const t0 = performance.now();
    const ok = await publish(page, url, KEY);
    assert.equal(ok.status, 201, ok.body);
    assert.match(ok.location, new RegExp(`^/whip/${STREAM}/[0-9a-f]+$`));
    const live = await until('the stream in /api/streams with its size', 20_000, async () => {
      const s = (await (await fetch(`${base}/api/streams`)).json()).find((x) => x.name === STREAM);
      return s?.width ? s : undefined;
    });
    const accepted_s = (performance.now() - t0) / 1000;
    assert.equal(live.protocol, 'whip');
    assert.equal(live.video_codec, 'h264');
    assert.equal(live.audio_codec, 'opus');
    const out = await until('Chromium to have sent video and audio', 10_000, async () => {
      const s = await sent(page);
      return s.video?.packets > 100 && s.audio?.packets > 10 ? s : undefined;
    });
    assert.equal(out.video.codec, 'video/H264');
    assert.equal(out.audio.codec, 'audio/opus');

    const mpdUrl = `${base}/live/${STREAM}/manifest.mpd`;
    await until('the MPD to list 2 video segments', 40_000, async () => {
      const r = await fetch(mpdUrl);
      const mpd = r.ok ? await r.text() : '';
      return mpdVideoSegments(mpd) >= 2;
    }, 500);
    const probe = await run('ffprobe', ['-v', 'error', '-of', 'json', '-show_streams', mpdUrl], 30_000);
    assert.ok(probe.ok, probe.stderr);
    const streams = JSON.parse(probe.stdout).streams;
    assert.ok(streams.some((s) => s.codec_name === 'h264' && s.width === 720), JSON.stringify(streams));
    assert.ok(streams.some((s) => s.codec_name === 'aac'), JSON.stringify(streams));
    const rtmpPlay = await run('ffmpeg', ['-hide_banner', '-nostats', '-loglevel', 'error', '-i',
      `rtmp://127.0.0.1:${rtmp}/live/${STREAM}?rendition=720`, '-map', '0:v', '-frames:v', '60', '-f', 'null', '-progress', 'pipe:1', '-'], 30_000);
    const frames = Number((rtmpPlay.stdout.match(/frame=(\d+)/g) || ['frame=0']).pop().split('=')[1]);
    assert.ok(frames >= 60, `${frames} frames over RTMP: ${rtmpPlay.stderr}`);

    // A WHEP viewer in another page gets the stream with the publisher's Opus.
    const viewer = await browser.newPage();
    await viewer.goto(`${base}/healthz`);
    const inbound = await viewer.evaluate(async (url) => {
      const pc = new RTCPeerConnection();
      pc.addTransceiver('video', { direction: 'recvonly' });
      pc.addTransceiver('audio', { direction: 'recvonly' });
      await pc.setLocalDescription(await pc.createOffer());
      await new Promise((resolve) => {
        if (pc.iceGatheringState === 'complete') return resolve();
        pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && resolve());
        setTimeout(resolve, 3000);
      });
      const res = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: pc.localDescription.sdp });
      if (res.status !== 201) return { status: res.status, body: await res.text() };
      await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
      const end = Date.now() + 10_000;
      const got = {};
      while (Date.now() < end) {
        (await pc.getStats()).forEach((s) => { if (s.type === 'inbound-rtp') got[s.kind] = { packets: s.packetsReceived, frames: s.framesDecoded }; });
        if (got.audio?.packets > 50 && got.video?.frames > 30) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      pc.close();
      return { status: res.status, ...got };
    }, `${base}/whep/${STREAM}`);
    assert.equal(inbound.status, 201, inbound.body);
    assert.ok(inbound.audio?.packets > 50, `WHEP audio: ${JSON.stringify(inbound)}`);
    assert.ok(inbound.video?.frames > 30, `WHEP video: ${JSON.stringify(inbound)}`);

    const del = await fetch(`${base}${ok.location}`, { method: 'DELETE' });
    assert.equal(del.status, 200);
    await until('the stream to end after DELETE', 10_000, async () =>
      !(await (await fetch(`${base}/api/streams`)).json()).some((x) => x.name === STREAM));
    assert.deepEqual(errors, [], 'errors on the page');
    console.log(JSON.stringify({ whip: { accepted_s: Number(accepted_s.toFixed(2)), sent: out, live: { width: live.width, height: live.height, fps: live.fps }, rtmp_frames: frames, whep_inbound: inbound } }));
    log(`WHIP from Chromium: listed ${accepted_s.toFixed(2)} s after the POST, ${live.width}x${live.height}, ${frames} frames over RTMP`);
  } catch (e) {
    const tail = fs.readFileSync(path.join(dataDir, 'server.log'), 'utf8').split('\n').slice(-30).join('\n');
    console.error(`--- server log (last lines) ---\n${tail}`);
    throw e;
  }
});
