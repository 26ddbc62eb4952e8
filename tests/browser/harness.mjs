// Helpers for the browser tests: free loopback ports, polling with a deadline, stopping a
// child, counting an MPD's segments. (watch.test.mjs and failover.test.mjs still carry their
// own copies of the first three; new tests import them from here.)
import net from 'node:net';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const log = (...a) => console.error(`[${(performance.now() / 1000).toFixed(1)}s]`, ...a);

// A free TCP port on 127.0.0.1 (bound, read, released).
export async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// Polls `fn` until it returns a truthy value or `ms` pass; the message says what was awaited.
export async function until(what, ms, fn, every = 250) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms / 1000} s waiting for ${what}`);
    await sleep(every);
  }
}

// SIGTERM, then SIGKILL after 5 s; resolves when the child has exited.
export function stop(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

// xs:duration / xs:dateTime of an MPD attribute, in seconds.
const seconds = (d) => {
  const m = /^PT(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?$/.exec(d || '');
  return m ? Number(m[1] || 0) * 3600 + Number(m[2] || 0) * 60 + Number(m[3] || 0) : NaN;
};
const attr = (text, name) => (new RegExp(`\\b${name}="([^"]*)"`).exec(text) || [])[1];

// Video segments of an MPD's last Period that a player may fetch at the MPD's publishTime,
// the one in progress included. ferrocast addresses segments by SegmentTemplate@duration
// (segment startNumber + i covers Period time [i·d, (i+1)·d), available availabilityTimeOffset
// before its end), as a DASH client computes them; the audio AdaptationSet is left out.
export function mpdVideoSegments(mpd) {
  const head = mpd.slice(0, mpd.indexOf('>', mpd.indexOf('<MPD')));
  const now = (Date.parse(attr(head, 'publishTime')) - Date.parse(attr(head, 'availabilityStartTime'))) / 1000;
  const period = mpd.slice(mpd.lastIndexOf('<Period'));
  const video = period.slice(period.indexOf('contentType="video"'));
  const template = video.slice(video.indexOf('<SegmentTemplate'), video.indexOf('>', video.indexOf('<SegmentTemplate')));
  const d = Number(attr(template, 'duration')) / Number(attr(template, 'timescale') || 1);
  const ato = Number(attr(template, 'availabilityTimeOffset') || 0);
  const start = seconds(attr(period.slice(0, period.indexOf('>')), 'start'));
  const n = Math.floor((now - start + ato) / d);
  return Number.isFinite(n) && n > 0 ? n : 0;
}
