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

// Video segments an MPD's SegmentTimeline lists (the audio AdaptationSet left out).
export function mpdVideoSegments(mpd) {
  const video = mpd.split('contentType="audio"')[0];
  let n = 0;
  for (const m of video.matchAll(/<S [^>]*?(?:r="(\d+)")?\/>/g)) n += 1 + Number(m[1] || 0);
  return n;
}
