#!/usr/bin/env python3
"""Helpers for bench/fanout.sh (stdlib only).

  fanout_helper.py rtmpdump --url URL --server-pid PID [--self-only] --players N --duration S
                            --ramp-ms M --settle S --publisher-log FFMPEG_LOG --json OUT
      N rtmpdump players (`rtmpdump --live -q -r URL -o /dev/null`), started M ms apart; after
      the last start and S s more, the server's process tree CPU (utime+stime) and RSS are read
      at both ends of a D s window, and so are the FLV bytes each rtmpdump wrote (/proc/PID/io
      wchar: it receives with recv(), which rchar does not count) and its CPU. A player kept
      up when it was still running at the end and wrote at least 95 % of the FLV bytes a
      real-time stream carries over the window (ffmpeg's `size=` per second of its `time=`);
      "vs the stream": at least 95 % of what ffmpeg actually sent during the window (less when
      the encoder itself fell behind). Writes JSON shaped like ferrocast-bench's report.

  fanout_helper.py idle --server-pid PID [--self-only] --duration S --json OUT
      The server's CPU and RSS with no players (the publisher only), the baseline that the
      "marginal" cost per player subtracts.

  fanout_helper.py progress --publisher-log FFMPEG_LOG
      ffmpeg's media time (s) at its last progress line.

  fanout_helper.py report [--idle SERVER=FILE ...] --result SERVER:CLIENT:N=FILE ... --markdown OUT
      The Markdown tables for BENCHMARKS.md from the JSON reports.
"""

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time

TICKS = os.sysconf("SC_CLK_TCK")


def tree(pid, children=True):
    if not children:
        return [pid] if os.path.exists(f"/proc/{pid}") else []
    out, todo = [], [pid]
    while todo and len(out) < 4096:
        p = todo.pop()
        if not os.path.exists(f"/proc/{p}"):
            continue
        out.append(p)
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return int(rest[11]) + int(rest[12])
    except (OSError, IndexError, ValueError):
        return 0


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def wchar(pid):
    try:
        with open(f"/proc/{pid}/io") as f:
            for line in f:
                if line.startswith("wchar:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def tree_sample(pid, children=True):
    pids = tree(pid, children)
    return {"ticks": sum(ticks(p) for p in pids), "rss": sum(rss_kib(p) for p in pids), "processes": len(pids)}


PROGRESS = re.compile(r"size=\s*(\d+)kB time=(\d+):(\d+):([\d.]+)")


def publisher_progress(path):
    """(media seconds, bytes) of ffmpeg's last progress lines."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 8192))
        text = f.read().decode("latin-1").replace("\r", "\n")
    return [(int(h) * 3600 + int(m) * 60 + float(s), int(kb) * 1024) for kb, h, m, s in PROGRESS.findall(text)]


def publisher_rate(path):
    """Bytes per second ffmpeg sent recently (from its last progress lines)."""
    p = publisher_progress(path)
    return p[-1] if p else None


def dist(values):
    v = sorted(x for x in values if x is not None)
    if not v:
        return None
    rank = lambda q: v[max(1, min(len(v), -(-q * len(v) // 100))) - 1]
    return {"n": len(v), "min": v[0], "p50": rank(50), "p90": rank(90), "p99": rank(99), "max": v[-1]}


def cmd_rtmpdump(a):
    procs = []
    server_before = tree_sample(a.server_pid, not a.self_only)
    try:
        for i in range(a.players):
            procs.append(subprocess.Popen(["rtmpdump", "--live", "-q", "-r", a.url, "-o", "/dev/null"],
                                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
            time.sleep(a.ramp_ms / 1000.0)
        time.sleep(a.settle)

        def sample():
            return {
                "t": time.monotonic(),
                "server": tree_sample(a.server_pid, not a.self_only),
                "pub": publisher_rate(a.publisher_log),
                "players": [(wchar(p.pid), ticks(p.pid), rss_kib(p.pid)) for p in procs],
            }

        s0 = sample()
        time.sleep(a.duration)
        s1 = sample()
        alive = [p.poll() is None for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        for p in procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    window = s1["t"] - s0["t"]
    # ffmpeg's progress at both ends: the bytes it sent per second of media (what a real-time
    # stream delivers per wall-clock second) and what it actually sent during the window (less,
    # when the encoder itself fell behind on a saturated machine).
    pub_rate = pub_sent = stream_speed = None
    if s0["pub"] and s1["pub"] and s1["pub"][0] > s0["pub"][0]:
        pub_sent = s1["pub"][1] - s0["pub"][1]
        pub_rate = pub_sent / (s1["pub"][0] - s0["pub"][0])
        stream_speed = (s1["pub"][0] - s0["pub"][0]) / window
    players = []
    for i, ((r0, t0, _), (r1, t1, rss), ok) in enumerate(zip(s0["players"], s1["players"], alive)):
        got = (r1 - r0) if r0 is not None and r1 is not None else None
        kbps = got * 8 / 1000 / window if got is not None else None
        kept = bool(ok and got is not None and pub_rate and got >= 0.95 * pub_rate * window)
        kept_edge = bool(ok and got is not None and pub_sent and got >= 0.95 * pub_sent)
        players.append({"index": i, "alive": ok, "bytes": got, "kbps": kbps, "kept_up": kept,
                        "kept_up_vs_edge": kept_edge, "cpu_ticks": t1 - t0, "rss_kib": rss})
    errors = sum(1 for p in players if not p["alive"])
    active = a.players - errors
    sv0, sv1 = s0["server"], s1["server"]
    cpu_s = (sv1["ticks"] - sv0["ticks"]) / TICKS
    server = {"pid": a.server_pid, "cpu_s": cpu_s, "cpu_pct_of_core": cpu_s / window * 100,
              "rss_before_kib": server_before["rss"], "rss_end_kib": sv1["rss"], "processes": sv1["processes"]}
    client_cpu = sum(p["cpu_ticks"] for p in players) / TICKS
    report = {
        "client_kind": "rtmpdump",
        "url": a.url,
        "clients": a.players,
        "duration_s": a.duration,
        "ramp_ms": a.ramp_ms,
        "settle_s": a.settle,
        "window_s": window,
        "rule": {"min_bytes_vs_publisher": 0.95},
        "publisher_kbps": pub_rate * 8 / 1000 if pub_rate else None,
        "started": a.players,
        "kept_up": sum(1 for p in players if p["kept_up"]),
        "live_edge_ratio": stream_speed,
        "publisher_speed": stream_speed,
        "kept_up_vs_edge": sum(1 for p in players if p["kept_up_vs_edge"]),
        "errors": errors,
        "active": active,
        "first_keyframe_s": None,
        "bitrate_kbps": dist(p["kbps"] for p in players if p["alive"]),
        "server": server,
        "server_cpu_pct_per_100": server["cpu_pct_of_core"] / active * 100 if active else None,
        "server_rss_per_player_kib": (sv1["rss"] - server_before["rss"]) / active if active else None,
        "client": {"cpu_s": client_cpu, "cpu_pct_of_core": client_cpu / window * 100,
                   "rss_end_kib": sum(p["rss_kib"] for p in players)},
        "players": players,
    }
    with open(a.json, "w") as f:
        json.dump(report, f, indent=1)
    print(f"rtmpdump x{a.players} {a.url}: kept up {report['kept_up']}, gone {errors}, server "
          f"{server['cpu_pct_of_core']:.1f} % of a core ({report['server_cpu_pct_per_100'] or 0:.2f} % per 100), "
          f"players {report['client']['cpu_pct_of_core']:.0f} % of a core", file=sys.stderr)


def cmd_idle(a):
    s0, t0 = tree_sample(a.server_pid, not a.self_only), time.monotonic()
    time.sleep(a.duration)
    s1, t1 = tree_sample(a.server_pid, not a.self_only), time.monotonic()
    cpu_s = (s1["ticks"] - s0["ticks"]) / TICKS
    r = {"pid": a.server_pid, "window_s": t1 - t0, "cpu_s": cpu_s, "cpu_pct_of_core": cpu_s / (t1 - t0) * 100,
         "rss_kib": s1["rss"]}
    with open(a.json, "w") as f:
        json.dump(r, f, indent=1)
    print(f"no players: server {r['cpu_pct_of_core']:.2f} % of a core, RSS {r['rss_kib'] / 1024:.1f} MiB", file=sys.stderr)


def cmd_progress(a):
    """Prints ffmpeg's media time (s) from its last progress line, or nothing."""
    p = publisher_progress(a.publisher_log)
    if p:
        print(f"{p[-1][0]:.2f}")


def fmt(v, d=1, unit=""):
    return "–" if v is None else f"{v:.{d}f}{unit}"


def cmd_report(a):
    idle = {}
    for item in a.idle:
        server, path = item.split("=", 1)
        with open(path) as f:
            idle[server] = json.load(f)
    rows = []
    for item in a.result:
        label, path = item.split("=", 1)
        server, client, n = label.split(":")
        with open(path) as f:
            r = json.load(f)
        rows.append((server, client, int(n), r))
    def marginal(server, r):
        sv, act = r.get("server"), r.get("active")
        if server not in idle or not sv or not act:
            return None
        return (sv["cpu_pct_of_core"] - idle[server]["cpu_pct_of_core"]) / act * 100

    out = []
    if idle:
        out.append("Without players (publisher only, {:.0f} s): ".format(max(i["window_s"] for i in idle.values()))
                   + ", ".join(f"{s} {i['cpu_pct_of_core']:.2f} % of a core, RSS {i['rss_kib'] / 1024:.1f} MiB"
                               for s, i in idle.items())
                   + ". \"Marginal\" below subtracts this from the server's CPU.")
        out.append("")
    out.append("| server | players (client) | kept up | errors | publisher speed | server CPU, % of one core | **% of a core per 100 players** "
               "| marginal per 100 | server RSS before → end (MiB) | RSS per player (KiB) | first keyframe p50 / p99 (s) | bitrate min / median (kbit/s) | client CPU, % of a core |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for server, client, n, r in rows:
        sv = r.get("server") or {}
        fk = r.get("first_keyframe_s")
        br = r.get("bitrate_kbps")
        kept = f"{r['kept_up']}/{n}"
        if r.get("kept_up_vs_edge") is not None and r["kept_up_vs_edge"] != r["kept_up"]:
            if client == "rtmpdump":
                kept += f" ({r['kept_up_vs_edge']} got ≥ 95 % of what ffmpeg sent)"
            else:
                kept += (f" ({r['kept_up_vs_edge']} within 5 % of the best player, "
                         f"who got {r['live_edge_ratio']:.2f}× real time)")
        speed = r.get("publisher_speed")
        out.append("| {} | {} ({}) | {} | {} | {} | {} | **{}** | {} | {} → {} | {} | {} | {} | {} |".format(
            server, n, client, kept, r["errors"], fmt(speed, 2, "×"), fmt(sv.get("cpu_pct_of_core")),
            fmt(r.get("server_cpu_pct_per_100"), 2), fmt(marginal(server, r), 2),
            fmt(sv.get("rss_before_kib", 0) / 1024), fmt(sv.get("rss_end_kib", 0) / 1024),
            fmt(r.get("server_rss_per_player_kib"), 0),
            f"{fk['p50']:.3f} / {fk['p99']:.3f}" if fk else "–",
            f"{br['min']:.0f} / {br['p50']:.0f}" if br else "–",
            fmt((r.get("client") or {}).get("cpu_pct_of_core"), 0)))
    out.append("")
    # Ratios at equal load: nginx-rtmp's CPU per player over ferrocast's, per client kind and N.
    by = {(s, c, n): r for s, c, n, r in rows}
    for (s, c, n), r in sorted(by.items(), key=lambda kv: (kv[0][2], kv[0][1])):
        if s != "ferrocast" or ("nginx-rtmp", c, n) not in by:
            continue
        f_, g_ = r.get("server_cpu_pct_per_100"), by[("nginx-rtmp", c, n)].get("server_cpu_pct_per_100")
        fm, gm = r.get("server_rss_per_player_kib"), by[("nginx-rtmp", c, n)].get("server_rss_per_player_kib")
        fmg, gmg = marginal("ferrocast", r), marginal("nginx-rtmp", by[("nginx-rtmp", c, n)])
        if f_ and g_:
            line = (f"- {n} players ({c}): nginx-rtmp / ferrocast CPU per player = **{g_ / f_:.2f}×** "
                    f"({g_:.2f} vs {f_:.2f} % of a core per 100 players; target ≥ 3.5×)")
            if fmg and gmg:
                line += f", marginal **{gmg / fmg:.2f}×** ({gmg:.2f} vs {fmg:.2f})"
            line += f"; memory per player {fmt(fm, 0)} KiB (ferrocast) vs {fmt(gm, 0)} KiB (nginx-rtmp)"
            out.append(line)
    text = "\n".join(out) + "\n"
    with open(a.markdown, "w") as f:
        f.write(text)
    print(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("rtmpdump")
    r.add_argument("--url", required=True)
    r.add_argument("--server-pid", type=int, required=True)
    r.add_argument("--self-only", action="store_true", help="the server process only, not its children")
    r.add_argument("--players", type=int, default=200)
    r.add_argument("--duration", type=float, default=30)
    r.add_argument("--ramp-ms", type=float, default=10)
    r.add_argument("--settle", type=float, default=3)
    r.add_argument("--publisher-log", required=True)
    r.add_argument("--json", required=True)
    i = sub.add_parser("idle")
    i.add_argument("--server-pid", type=int, required=True)
    i.add_argument("--self-only", action="store_true")
    i.add_argument("--duration", type=float, default=10)
    i.add_argument("--json", required=True)
    g = sub.add_parser("progress")
    g.add_argument("--publisher-log", required=True)
    p = sub.add_parser("report")
    p.add_argument("--idle", action="append", default=[], help="SERVER=FILE")
    p.add_argument("--result", action="append", default=[], help="SERVER:CLIENT:N=FILE")
    p.add_argument("--markdown", required=True)
    a = ap.parse_args()
    {"rtmpdump": cmd_rtmpdump, "idle": cmd_idle, "progress": cmd_progress, "report": cmd_report}[a.cmd](a)


if __name__ == "__main__":
    main()
