#!/usr/bin/env bash
# WebRTC fan-out: server CPU and memory per WHEP viewer next to an RTMP viewer's, same stream,
# same run.
#
#   bench/whep-fanout.sh [--viewers N] [--runs K] [--duration S] [--ramp-ms M] [--settle S]
#                        [--no-build] [--no-write] [--keep-tmp]
#
# Starts `ferrocast serve --no-transcode` on free 127.0.0.1 ports (a config lifts the WebRTC
# per-IP cap, 50 by default, and the RTMP one: every viewer comes from 127.0.0.1) and one
# ffmpeg publisher (2.5 Mbps 720p30, x264 veryfast zerolatency, -bf 0, keyframe every 2 s, so
# WHEP sends the source itself). Measures the server with no viewers for 10 s (the baseline:
# ingest only), then K times: N WHEP viewers (`ferrocast-bench whep-play`, real str0m clients:
# ICE, DTLS-SRTP, RTP, NACK), then N RTMP viewers (`ferrocast-bench rtmp-play`) of the same
# stream. Each reads the server's CPU over a D-second window after the ramp and a settle time,
# and its RSS before the viewers and at the end. Prints a Markdown block and writes it into
# BENCHMARKS.md (between the whep-fanout markers).
set -euo pipefail

usage() {
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
    cat <<'EOF'

Options (env FERROCAST_BIN=PATH / FERROCAST_BENCH_BIN=PATH run those binaries instead of
target/release/{ferrocast,ferrocast-bench}, e.g. a debug build):
  --viewers N   viewers per measurement, WHEP and RTMP each (default 100)
  --runs K      WHEP + RTMP measurements, one after the other (default 3)
  --duration S  measurement window in seconds (default 20)
  --ramp-ms M   pause between two viewers' starts (default 10)
  --settle S    wait after the last start before the window opens (default 3)
  --no-build    use the existing binaries
  --no-write    do not update BENCHMARKS.md
  --keep-tmp    keep the temp dir (logs, config, JSON) and print its path
EOF
}

VIEWERS=100
RUNS=3
DURATION=20
RAMP_MS=10
SETTLE=3
BUILD=1
WRITE=1
KEEP_TMP=0
ORIG_ARGS=("$@")
while [[ $# -gt 0 ]]; do
    case "$1" in
        --viewers) VIEWERS="$2"; shift 2 ;;
        --runs) RUNS="$2"; shift 2 ;;
        --duration) DURATION="$2"; shift 2 ;;
        --ramp-ms) RAMP_MS="$2"; shift 2 ;;
        --settle) SETTLE="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --no-write) WRITE=0; shift ;;
        --keep-tmp) KEEP_TMP=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done
posint() { [[ "$2" =~ ^[1-9][0-9]*$ ]] || { echo "$1 must be a positive integer" >&2; exit 2; }; }
posint --viewers "$VIEWERS"
posint --runs "$RUNS"
posint --duration "$DURATION"
[[ "$RAMP_MS" =~ ^[0-9]+$ ]] || { echo "--ramp-ms must be a non-negative integer" >&2; exit 2; }
[[ "$SETTLE" =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "--settle must be a number of seconds" >&2; exit 2; }
(( VIEWERS <= 2000 )) || { echo "at most 2000 viewers on this machine" >&2; exit 2; }
(( RUNS <= 9 )) || { echo "at most 9 runs" >&2; exit 2; }

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
STREAM=bench
log() { printf '[whep-fanout] %s\n' "$*" >&2; }

# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"
ensure_pkgs ffmpeg python3 coreutils

if [[ $BUILD == 1 ]]; then
    log "cargo build --release -p ferrocast -p loadgen"
    (cd "$ROOT" && cargo build --release -p ferrocast -p loadgen)
fi
FERROCAST="${FERROCAST_BIN:-$ROOT/target/release/ferrocast}"
BENCH="${FERROCAST_BENCH_BIN:-$ROOT/target/release/ferrocast-bench}"
for b in "$FERROCAST" "$BENCH"; do [[ -x "$b" ]] || { echo "$b not built" >&2; exit 1; }; done
case "$FERROCAST" in *release*) BUILD_KIND=release ;; *debug*) BUILD_KIND=debug ;; *) BUILD_KIND="$FERROCAST" ;; esac

# Each viewer is a socket (UDP for WHEP, TCP for RTMP) here and in the server.
want_fds=$(( VIEWERS * 2 + 1024 ))
if (( $(ulimit -n) < want_fds )); then
    ulimit -n "$(( $(ulimit -Hn) < want_fds ? $(ulimit -Hn) : want_fds ))" || true
fi
(( $(ulimit -n) >= VIEWERS + 256 )) || { echo "open file limit $(ulimit -n) is too low for $VIEWERS viewers" >&2; exit 1; }

TMP="$(mktemp -d /tmp/ferrocast-whep-fanout.XXXXXX)"
PIDS=()
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

read -r P_RTMP P_RTMPS P_HTTP P_UDP < <(free_ports 4)

# ---- server --------------------------------------------------------------------------------------
log "ferrocast on rtmp://127.0.0.1:$P_RTMP, http://127.0.0.1:$P_HTTP, udp 127.0.0.1:$P_UDP"
mkdir -p "$TMP/ferrocast-data"
# Every viewer comes from 127.0.0.1: the WebRTC per-IP cap (max_sessions_per_ip, 50 by
# default) would answer the 51st offer with 429, and the RTMP one (1000) bounds RTMP viewers.
cat >"$TMP/ferrocast.toml" <<EOF
[limits]
max_connections_per_ip = $(( VIEWERS + 64 ))

[webrtc]
max_sessions_per_ip = $(( VIEWERS + 16 ))
max_sessions = $(( VIEWERS + 64 > 1000 ? VIEWERS + 64 : 1000 ))
EOF
RUST_LOG=warn "$FERROCAST" serve --no-transcode --config "$TMP/ferrocast.toml" --data-dir "$TMP/ferrocast-data" \
    --rtmp-addr "127.0.0.1:$P_RTMP" --rtmps-addr "127.0.0.1:$P_RTMPS" --http-addr "127.0.0.1:$P_HTTP" \
    --webrtc-addr "127.0.0.1:$P_UDP" >"$TMP/ferrocast.log" 2>&1 &
FC_PID=$!; PIDS+=("$FC_PID")
wait_port "$P_RTMP" ferrocast "$FC_PID" "$TMP/ferrocast.log"

# ---- publisher (fanout.sh's stream, without B-frames so WHEP sends the source) ------------------
RTMP_URL="rtmp://127.0.0.1:$P_RTMP/live/$STREAM"
WHEP_URL="http://127.0.0.1:$P_HTTP/whep/$STREAM"
log "publishing the test stream"
ffmpeg -nostdin -hide_banner -loglevel info -re \
    -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000 \
    -c:v libx264 -preset veryfast -tune zerolatency -bf 0 -g 60 -b:v 2500k -c:a aac -f flv "$RTMP_URL" \
    >"$TMP/ffmpeg.log" 2>&1 &
FF_PID=$!; PIDS+=("$FF_PID")

live=0
for _ in $(seq 30); do
    if timeout 20 "$BENCH" --quiet whep-play --url "$WHEP_URL" --clients 1 --duration 2 --settle 0.5 >/dev/null 2>&1; then
        live=1; break
    fi
    sleep 1
done
[[ $live == 1 ]] || { echo "the stream is not playable over WHEP after 30 tries" >&2; tail -20 "$TMP/ferrocast.log" >&2; exit 1; }

# ---- measure -------------------------------------------------------------------------------------
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
log "no viewers, 10 s (baseline)"
python3 "$BENCH_DIR/fanout_helper.py" idle --server-pid "$FC_PID" --self-only --duration 10 --json "$TMP/idle.json"

measure() { # MODE RUN -> JSON path on stdout
    local mode=$1 run=$2 out="$TMP/$1-$2.json" url
    local bound=$(( 60 + DURATION + (VIEWERS * RAMP_MS) / 1000 + ${SETTLE%.*} ))
    [[ $mode == whep ]] && url="$WHEP_URL" || url="$RTMP_URL"
    log "run $run: $VIEWERS $mode viewers, window ${DURATION} s"
    set +e
    timeout --signal=INT --kill-after=10 "$bound" "$BENCH" "$mode-play" --url "$url" --clients "$VIEWERS" \
        --duration "$DURATION" --ramp-ms "$RAMP_MS" --settle "$SETTLE" --server-pid "$FC_PID" --server-self-only \
        --json "$out" >"$TMP/$mode-$run.txt" 2>"$TMP/$mode-$run.log"
    local rc=$?
    set -e
    [[ -s "$out" ]] || { echo "ferrocast-bench $mode-play failed (exit $rc)" >&2; cat "$TMP/$mode-$run.log" >&2; exit 1; }
    sed 's/^/    /' "$TMP/$mode-$run.txt" >&2
    alive_or_die ferrocast "$FC_PID" "$TMP/ferrocast.log"
    alive_or_die ffmpeg "$FF_PID" "$TMP/ffmpeg.log"
    echo "$out"
}

RESULTS=()
# Run 1 starts with RTMP so that its RSS growth is read on a fresh server (freed WHEP sessions
# would leave heap it reuses); then the order alternates.
for run in $(seq "$RUNS"); do
    order="rtmp whep"; (( run % 2 == 0 )) && order="whep rtmp"
    for mode in $order; do
        RESULTS+=("$(measure "$mode" "$run")")
        sleep 3 # sessions ended (DELETE, TCP close) before the next RSS "before"
    done
done
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"
speed() { tr '\r' '\n' <"$1" | grep -o 'speed=[ 0-9.]*x' | tail -1 | tr -d ' ' | sed 's/speed=//'; }
FF_SPEED="$(speed "$TMP/ffmpeg.log")"

# ---- report --------------------------------------------------------------------------------------
COMMIT="$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(cd "$ROOT" && git status --porcelain -- crates Cargo.toml Cargo.lock 2>/dev/null)" ]]; then COMMIT="$COMMIT + uncommitted changes in crates/"; fi
MACHINE="$(nproc) cores, $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1), $(free -g | awk '/^Mem:/{print $2}') GiB RAM, kernel $(uname -r)"
CMD="bench/whep-fanout.sh${ORIG_ARGS[*]:+ ${ORIG_ARGS[*]}}"
python3 - "$TMP/idle.json" "$VIEWERS" "$DURATION" "${RESULTS[@]}" >"$TMP/tables.md" <<'PY'
import json, statistics, sys
idle = json.load(open(sys.argv[1]))
n, duration = int(sys.argv[2]), sys.argv[3]
runs = {"whep": [], "rtmp": []}
for p in sys.argv[4:]:
    mode = "whep" if "/whep-" in p else "rtmp"
    runs[mode].append(json.load(open(p)))
idle_pct = idle["cpu_pct_of_core"]

def fig(r, mode):
    s = r.get("server") or {}
    active = r.get("active") or 0
    cpu = s.get("cpu_pct_of_core")
    fk = r.get("first_keyframe_s") or {}
    return {
        "kept": f'{r["kept_up"]}/{r["clients"]}',
        "errors": r["errors"],
        "cpu": cpu,
        "cpu100": r.get("server_cpu_pct_per_100"),
        "marg100": (cpu - idle_pct) * 100 / active if cpu is not None and active else None,
        "rss": r.get("server_rss_per_viewer_kib") if mode == "whep" else r.get("server_rss_per_player_kib"),
        "rss_before": s.get("rss_before_kib"),
        "over_idle": (s["rss_end_kib"] - idle["rss_kib"]) / active if s.get("rss_end_kib") and active else None,
        "fk50": fk.get("p50"), "fk99": fk.get("p99"),
        "lost": r.get("lost") if mode == "whep" else None,
        "nacks": r.get("nacks") if mode == "whep" else None,
        "mbps": r.get("total_mbps"),
        "tool": (r.get("client") or {}).get("cpu_pct_of_core"),
    }

def f(x, d=1, unit=""):
    return "–" if x is None else f"{x:,.{d}f}{unit}"

print(f"Baseline, no viewers (publisher ingest only): server {idle_pct:.1f} % of one core, RSS {idle['rss_kib'] / 1024:.1f} MiB.")
print()
print("| run | protocol | kept up | errors | first frame p50 / p99 (ms) | lost pkts / NACKs | server CPU % of a core | per 100 viewers (gross / minus baseline) | RSS growth per viewer (KiB) | RSS over the baseline per viewer (KiB) | RSS before (MiB) | delivered (Mbit/s) | tool CPU % |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
figs = {"whep": [], "rtmp": []}
for i in range(max(len(runs["whep"]), len(runs["rtmp"]))):
    for mode in ("whep", "rtmp"):
        if i >= len(runs[mode]):
            continue
        x = fig(runs[mode][i], mode)
        figs[mode].append(x)
        ms = lambda v: "–" if v is None else f"{v * 1000:.0f}"
        loss = "–" if mode == "rtmp" else f'{x["lost"]} / {x["nacks"]}'
        print(f'| {i + 1} | {"WHEP" if mode == "whep" else "RTMP"} | {x["kept"]} | {x["errors"]} | {ms(x["fk50"])} / {ms(x["fk99"])} | {loss} | {f(x["cpu"])} | {f(x["cpu100"], 2)} / {f(x["marg100"], 2)} | {f(x["rss"], 0)} | {f(x["over_idle"], 0)} | {f(x["rss_before"] / 1024 if x["rss_before"] else None)} | {f(x["mbps"])} | {f(x["tool"])} |')
print()

def med(mode, k):
    v = [x[k] for x in figs[mode] if x[k] is not None]
    return statistics.median(v) if v else None

print(f"Median of {len(figs['whep'])} runs, {n} viewers each, {duration} s window:")
print()
print("| protocol | server CPU per 100 viewers (minus baseline) | RSS per viewer (see below) | first frame p50 / p99 | all kept up |")
print("|---|---|---|---|---|")
for mode in ("whep", "rtmp"):
    allk = all(x["kept"] == f"{n}/{n}" and x["errors"] == 0 for x in figs[mode])
    fk50, fk99 = med(mode, "fk50"), med(mode, "fk99")
    rss = med(mode, "over_idle") if mode == "whep" else (figs[mode][0]["rss"] if figs[mode] else None)
    print(f'| {"WHEP" if mode == "whep" else "RTMP"} | {f(med(mode, "marg100"), 2)} % of a core | {f(rss, 0)} KiB | {"–" if fk50 is None else f"{fk50 * 1000:.0f}"} / {"–" if fk99 is None else f"{fk99 * 1000:.0f}"} ms | {"yes" if allk else "**no**"} |')
w, r = med("whep", "marg100"), med("rtmp", "marg100")
wr = med("whep", "over_idle")
rr = figs["rtmp"][0]["rss"] if figs["rtmp"] else None
print()
print("RSS per viewer: WHEP = the server's RSS at the end of the window minus its no-viewer baseline, per viewer (median of the runs: the heap a WHEP viewer needs, whatever earlier runs left); RTMP = run 1's growth, on a fresh server before any WHEP viewer (later RTMP runs reuse the heap freed WHEP sessions left and grow by ~0).")
print()
if w and r and r > 0:
    print(f"A WHEP viewer costs the server {w / r:.0f}× the CPU of an RTMP viewer" + (f" and {wr / rr:.0f}× the memory." if wr and rr and rr > 0 else "."))
PY

{
    echo "Command: \`$CMD\` ($BUILD_KIND build), commit $COMMIT, $(date -u '+%Y-%m-%d %H:%M UTC')."
    echo "Machine: $MACHINE; load average $LOAD_BEFORE before, $LOAD_AFTER after (1/5/15 min)."
    echo "Stream: ffmpeg testsrc2 1280×720 30 fps, x264 veryfast zerolatency -bf 0 -g 60 2.5 Mbit/s + AAC, published over RTMP (publisher speed at the end ${FF_SPEED:-?}); \`serve --no-transcode\`; WHEP viewers get the source. Server = ferrocast's own process (no children)."
    echo "WHEP: \`ferrocast-bench whep-play\` (str0m clients, ICE + DTLS-SRTP, NACK/PLI; first frame = POST → first complete keyframe); RTMP: \`ferrocast-bench rtmp-play\` (first frame = connect → first keyframe). Both in one process each, on this machine, so their CPU competes with the server's. Kept up = media time ≥ 95 % of wall time over the window and no gap > 1 s. RSS growth per viewer = from before the viewers to the end of the window, divided by the viewers; the allocator keeps what earlier runs freed, so later runs grow less."
    echo
    cat "$TMP/tables.md"
} >"$TMP/section.md"

echo
cat "$TMP/section.md"

if [[ $WRITE == 1 ]]; then
    write_benchmarks_block whep-fanout "WebRTC fan-out" "$(cat "$TMP/section.md")" "written by bench/whep-fanout.sh; edit outside the markers"
    log "updated $ROOT/BENCHMARKS.md"
fi
