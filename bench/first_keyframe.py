#!/usr/bin/env python3
"""RTMP connect -> first keyframe at the player, measured at the protocol level.

For each trial, spawns `rtmpdump --live -q -r URL -o -` with stdout as a pipe (t0 is taken
just before the spawn, so TCP connect, the RTMP handshake, connect/createStream/play and
rtmpdump's own start-up are all inside the number), parses the FLV that rtmpdump writes
incrementally and stops at the first video tag that is a keyframe (frame type 1) and not an
AVC sequence header (AVCPacketType != 0). It also records when the first byte of output and
the first video tag of any kind arrived.

Servers are measured interleaved (A, B, A, B, ...) with a random 0..max-delay pause before
each trial, so the joins land at different points of each publisher's GOP.

Only the Python standard library is used.
"""

import argparse
import json
import os
import random
import select
import signal
import socket
import statistics
import subprocess
import sys
import time

FLV_HEADER_LEN = 9 + 4  # "FLV" header + PreviousTagSize0
TAG_HEADER_LEN = 11


class FlvScanner:
    """Incremental FLV parser: feed bytes, get complete tags back as
    (tag_type, timestamp_ms, data_size, first two data bytes, stream offset just past the tag)."""

    def __init__(self):
        self.buf = bytearray()
        self.header_done = False
        self.consumed = 0  # stream offset of self.buf[0]

    def feed(self, data):
        self.buf += data
        tags = []
        if not self.header_done:
            if len(self.buf) < FLV_HEADER_LEN:
                return tags
            if self.buf[:3] != b"FLV":
                raise ValueError("output does not start with an FLV header: %r" % bytes(self.buf[:16]))
            data_offset = int.from_bytes(self.buf[5:9], "big")
            if len(self.buf) < data_offset + 4:
                return tags
            del self.buf[: data_offset + 4]
            self.consumed += data_offset + 4
            self.header_done = True
        while len(self.buf) >= TAG_HEADER_LEN:
            tag_type = self.buf[0] & 0x1F
            size = int.from_bytes(self.buf[1:4], "big")
            ts = int.from_bytes(self.buf[4:7], "big") | (self.buf[7] << 24)
            if len(self.buf) < TAG_HEADER_LEN + size + 4:
                break
            body = bytes(self.buf[TAG_HEADER_LEN : TAG_HEADER_LEN + 2]) if size >= 2 else b""
            del self.buf[: TAG_HEADER_LEN + size + 4]
            self.consumed += TAG_HEADER_LEN + size + 4
            tags.append((tag_type, ts, size, body, self.consumed))
        return tags


def is_decodable_keyframe(body):
    """A video keyframe (frame type 1) that is not an AVC sequence header (byte1 == 0)."""
    return len(body) >= 2 and (body[0] >> 4) == 1 and body[1] != 0


def one_trial(url, timeout, unbuffered=True):
    """Runs one join; returns a dict of timings (seconds from t0) and details.

    rtmpdump writes its FLV with stdio `fwrite` and never flushes, so on a pipe glibc holds up
    to 4 KiB back (writes come out in 4096-byte multiples): the first bytes of a stream and the
    tail of any tag can sit in rtmpdump until more data arrives. `unbuffered` runs it under
    `stdbuf -o0` so each RTMP_Read result reaches us when rtmpdump has it.
    """
    r = {"url": url, "ok": False}
    cmd = ["rtmpdump", "--live", "-q", "-r", url, "-o", "-"]
    if unbuffered:
        cmd = ["stdbuf", "-o0"] + cmd
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    r["t_spawned"] = time.monotonic() - t0
    scanner = FlvScanner()
    fd = p.stdout.fileno()
    deadline = t0 + timeout
    tags_before = 0
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                r["error"] = "timeout after %.1f s" % timeout
                break
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            data = os.read(fd, 1 << 16)
            now = time.monotonic() - t0
            if not data:
                r["error"] = "rtmpdump ended before a keyframe"
                break
            if "t_first_byte" not in r:
                r["t_first_byte"] = now
            done = False
            for tag_type, ts, size, body, end in scanner.feed(data):
                if tag_type == 9 and "t_first_video" not in r:
                    r["t_first_video"] = now
                if tag_type == 9 and is_decodable_keyframe(body):
                    r["t_keyframe"] = now
                    r["keyframe_ts_ms"] = ts
                    r["keyframe_bytes"] = size
                    r["bytes_before_keyframe_end"] = end
                    r["tags_before_keyframe"] = tags_before
                    r["ok"] = True
                    done = True
                    break
                tags_before += 1
            if done:
                break
    except ValueError as e:
        r["error"] = str(e)
    finally:
        p.kill()
        try:
            _, err = p.communicate(timeout=2)
        except subprocess.TimeoutExpired:
            err = b""
        if not r["ok"] and err:
            r["stderr"] = err.decode(errors="replace")[-400:]
    return r


def client_floor(trials, unbuffered=True):
    """What the client costs by itself: spawn rtmpdump against a port that refuses at once (a
    socket bound but not listening) and time it until it has exited. Start-up, dynamic linking,
    a refused connect and exit: the part of every join that no server can remove."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    url = "rtmp://127.0.0.1:%d/live/floor" % s.getsockname()[1]
    cmd = ["rtmpdump", "--live", "-q", "-r", url, "-o", "-"]
    if unbuffered:
        cmd = ["stdbuf", "-o0"] + cmd
    out = []
    try:
        for _ in range(trials):
            t0 = time.monotonic()
            subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
            out.append(time.monotonic() - t0)
    finally:
        s.close()
    return out


def wait_live(name, url, limit, unbuffered=True):
    """Retries short probes until the stream delivers a video tag, up to `limit` seconds."""
    end = time.monotonic() + limit
    last = None
    while time.monotonic() < end:
        last = one_trial(url, min(5.0, max(0.5, end - time.monotonic())), unbuffered)
        if "t_first_video" in last:
            print("  %s is live (warm-up probe: first keyframe after %.3f s)" % (name, last.get("t_keyframe", float("nan"))), file=sys.stderr)
            return True
        time.sleep(0.5)
    print("  %s did not go live in %d s: %s" % (name, limit, last and (last.get("error"), last.get("stderr"))), file=sys.stderr)
    return False


# ---- CPU accounting of the server processes (whole process tree) -------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _children_map():
    m = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
        except OSError:
            continue
        ppid = int(s[s.rindex(")") + 2 :].split()[1])
        m.setdefault(ppid, []).append(int(d))
    return m


def tree_cpu_seconds(pid):
    m = _children_map()
    todo, total = [pid], 0.0
    while todo:
        p = todo.pop()
        try:
            with open("/proc/%d/stat" % p) as f:
                s = f.read()
            fields = s[s.rindex(")") + 2 :].split()
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime
        except OSError:
            pass
        todo.extend(m.get(p, []))
    return total


# ---- report --------------------------------------------------------------------------------------


def fmt(v):
    return "—" if v is None else "%.3f" % v


def markdown(results, names, args, cpu, floor):
    out = []
    out.append("| # | server | pause before (s) | first byte (s) | first video tag (s) | **first keyframe (s)** | keyframe tag ts (ms) | bytes up to keyframe |")
    out.append("|---|---|---|---|---|---|---|---|")
    for i, r in enumerate(results, 1):
        kf = "**%s**" % fmt(r.get("t_keyframe")) if r["ok"] else "FAIL: %s" % r.get("error", "?")
        out.append("| %d | %s | %.2f | %s | %s | %s | %s | %s |" % (
            i, r["server"], r["pause"], fmt(r.get("t_first_byte")), fmt(r.get("t_first_video")), kf,
            r.get("keyframe_ts_ms", "—"), r.get("bytes_before_keyframe_end", "—")))
    out.append("")
    out.append("| server | trials ok | **median first keyframe (s)** | min (s) | max (s) | median first byte (s) | server CPU during trials |")
    out.append("|---|---|---|---|---|---|---|")
    med = {}
    for n in names:
        ok = [r for r in results if r["server"] == n and r["ok"]]
        total = len([r for r in results if r["server"] == n])
        kfs = [r["t_keyframe"] for r in ok]
        fbs = [r["t_first_byte"] for r in ok]
        med[n] = statistics.median(kfs) if kfs else None
        out.append("| %s | %d/%d | **%s** | %s | %s | %s | %s |" % (
            n, len(ok), total, fmt(med[n]), fmt(min(kfs) if kfs else None), fmt(max(kfs) if kfs else None),
            fmt(statistics.median(fbs) if fbs else None), ("%.1f %% of one core" % cpu[n]) if n in cpu else "—"))
    if len(names) == 2 and all(med[n] for n in names):
        a, b = names
        out.append("")
        out.append("Ratio of medians %s / %s: **%.1f×** (%s joins %.3f s sooner)." % (b, a, med[b] / med[a], a, med[b] - med[a]))
    if floor:
        out.append("")
        out.append("Client floor (the same rtmpdump command against a port that refuses at once, spawn → exit, %d runs): "
                   "median %.3f s, min %.3f s, max %.3f s." % (len(floor), statistics.median(floor), min(floor), max(floor)))
    return "\n".join(out), med


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", action="append", required=True, metavar="NAME=URL", help="server to measure (repeatable; trials interleave in this order)")
    ap.add_argument("--pid", action="append", default=[], metavar="NAME=PID", help="server process whose CPU (with its children) is reported")
    ap.add_argument("--trials", type=int, default=5, help="joins per server (default 5)")
    ap.add_argument("--max-pause", type=float, default=2.0, help="random pause 0..S before each join (default 2)")
    ap.add_argument("--timeout", type=float, default=10.0, help="bound on one join (default 10 s)")
    ap.add_argument("--wait-live", type=float, default=0, help="first wait up to S seconds for every stream to deliver video")
    ap.add_argument("--settle", type=float, default=3.0, help="seconds to wait after the streams are live (default 3)")
    ap.add_argument("--fanout", type=int, default=0, help="keep N extra rtmpdump players on each server during the trials")
    ap.add_argument("--stdio-buffered", action="store_true",
                    help="run rtmpdump as is, without `stdbuf -o0` (its 4 KiB stdout buffer then delays what we see)")
    ap.add_argument("--floor-trials", type=int, default=10, help="runs of the client-floor measurement (0: skip)")
    ap.add_argument("--json", help="write all trial data here")
    ap.add_argument("--markdown", help="write the Markdown tables here")
    ap.add_argument("--seed", type=int, help="random seed for the pauses")
    args = ap.parse_args()

    servers = []
    for s in args.server:
        n, _, u = s.partition("=")
        servers.append((n, u))
    names = [n for n, _ in servers]
    pids = {}
    for s in args.pid:
        n, _, p = s.partition("=")
        pids[n] = int(p)
    rng = random.Random(args.seed)

    if args.wait_live:
        for n, u in servers:
            if not wait_live(n, u, args.wait_live, not args.stdio_buffered):
                return 2
        time.sleep(args.settle)

    fan = []
    if args.fanout:
        print("  starting %d background players per server" % args.fanout, file=sys.stderr)
        for n, u in servers:
            for _ in range(args.fanout):
                fan.append(subprocess.Popen(["rtmpdump", "--live", "-q", "-r", u, "-o", "/dev/null"],
                                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(3)

    def stop_fan(*_):
        for p in fan:
            if p.poll() is None:
                p.kill()
        for p in fan:
            try:
                p.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass

    signal.signal(signal.SIGTERM, lambda *_: (stop_fan(), sys.exit(143)))

    results = []
    cpu = {}
    try:
        cpu0 = {n: tree_cpu_seconds(pids[n]) for n in pids}
        w0 = time.monotonic()
        for i in range(args.trials):
            for n, u in servers:
                pause = rng.uniform(0, args.max_pause)
                time.sleep(pause)
                r = one_trial(u, args.timeout, not args.stdio_buffered)
                r["server"], r["pause"], r["round"] = n, pause, i + 1
                results.append(r)
                print("  round %d %-10s pause %.2f s  first byte %s  first video %s  first keyframe %s%s" % (
                    i + 1, n, pause, fmt(r.get("t_first_byte")), fmt(r.get("t_first_video")), fmt(r.get("t_keyframe")),
                    "" if r["ok"] else "  FAIL: %s %s" % (r.get("error"), r.get("stderr", "").strip())), file=sys.stderr)
        wall = time.monotonic() - w0
        for n in pids:
            cpu[n] = 100.0 * (tree_cpu_seconds(pids[n]) - cpu0[n]) / wall
        alive = sum(1 for p in fan if p.poll() is None)
        if fan:
            print("  background players still running at the end: %d/%d" % (alive, len(fan)), file=sys.stderr)
    finally:
        stop_fan()

    floor = client_floor(args.floor_trials, not args.stdio_buffered) if args.floor_trials else []
    md, med = markdown(results, names, args, cpu, floor)
    print(md)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(md + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "medians": med, "cpu_percent": cpu, "fanout": args.fanout,
                       "stdio_buffered": args.stdio_buffered, "client_floor": floor}, f, indent=1)
    ok = all(any(r["ok"] for r in results if r["server"] == n) for n in names)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
