#!/usr/bin/env bash
# RTMP fan-out: server CPU and memory per player, ferrocast vs nginx-rtmp in the same run.
#
#   bench/fanout.sh [--players N] [--duration S] [--ramp-ms M] [--settle S]
#                   [--rtmpdump-players N] [--max-search "250 500 1000"] [--search-duration S]
#                   [--no-build] [--no-write] [--keep-tmp]
#
# Starts ferrocast (release build) and nginx-rtmp (own prefix, conf, pid and logs in a temp dir)
# on free 127.0.0.1 ports and one ffmpeg publisher per server (same 2.5 Mbps 720p30 stream as
# bench/first-keyframe.sh, both started together, both running all along). Then, one server at
# a time: N players with `ferrocast-bench rtmp-play`, then N rtmpdump players as a cross-check
# of our client. Each measurement reads the server's CPU (utime+stime of its process tree) over
# a D-second window that starts after the ramp-up and a settle time, and its RSS before the
# players and at the end. Prints a Markdown table and writes it into BENCHMARKS.md (between the
# fanout markers).
set -euo pipefail

usage() {
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
    cat <<'EOF'

Options (env FERROCAST_BIN=PATH / FERROCAST_BENCH_BIN=PATH run those binaries instead of
target/release/{ferrocast,ferrocast-bench}):
  --players N          players per server with ferrocast-bench (default 200)
  --duration S         measurement window in seconds (default 30)
  --ramp-ms M          pause between two players' starts (default 10)
  --settle S           wait after the last start before the window opens (default 3)
  --rtmpdump-players N rtmpdump players per server for the cross-check (default 200; 0: skip)
  --max-search "N..."  also find the most ferrocast-bench players that all keep up, trying these
                       counts in order per server and stopping at the first that fails
                       (e.g. "250 500 1000"; default: off)
  --search-duration S  window of each search step (default 20)
  --no-build           use the existing target/release/{ferrocast,ferrocast-bench}
  --no-write           do not update BENCHMARKS.md
  --keep-tmp           keep the temp dir (logs, confs, JSON) and print its path
EOF
}

PLAYERS=200
DURATION=30
RAMP_MS=10
SETTLE=3
RTMPDUMP_PLAYERS=200
MAX_SEARCH=""
SEARCH_DURATION=20
BUILD=1
WRITE=1
KEEP_TMP=0
ORIG_ARGS=("$@")
while [[ $# -gt 0 ]]; do
    case "$1" in
        --players) PLAYERS="$2"; shift 2 ;;
        --duration) DURATION="$2"; shift 2 ;;
        --ramp-ms) RAMP_MS="$2"; shift 2 ;;
        --settle) SETTLE="$2"; shift 2 ;;
        --rtmpdump-players) RTMPDUMP_PLAYERS="$2"; shift 2 ;;
        --max-search) MAX_SEARCH="$2"; shift 2 ;;
        --search-duration) SEARCH_DURATION="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --no-write) WRITE=0; shift ;;
        --keep-tmp) KEEP_TMP=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done
posint() { [[ "$2" =~ ^[1-9][0-9]*$ ]] || { echo "$1 must be a positive integer" >&2; exit 2; }; }
posint --players "$PLAYERS"
posint --duration "$DURATION"
posint --search-duration "$SEARCH_DURATION"
[[ "$RTMPDUMP_PLAYERS" =~ ^[0-9]+$ ]] || { echo "--rtmpdump-players must be a non-negative integer" >&2; exit 2; }
[[ "$RAMP_MS" =~ ^[0-9]+$ ]] || { echo "--ramp-ms must be a non-negative integer" >&2; exit 2; }
[[ "$SETTLE" =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "--settle must be a number of seconds" >&2; exit 2; }
for n in $MAX_SEARCH; do posint "--max-search entries" "$n"; done
for n in $PLAYERS $RTMPDUMP_PLAYERS $MAX_SEARCH; do
    (( n <= 5000 )) || { echo "at most 5000 players per step on this machine" >&2; exit 2; }
done

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
NGINX_MODULE=/usr/lib/nginx/modules/ngx_rtmp_module.so
STREAM=bench
log() { printf '[fanout] %s\n' "$*" >&2; }

# ---- dependencies ---------------------------------------------------------------------------------
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"
ensure_pkgs nginx libnginx-mod-rtmp rtmpdump ffmpeg python3 coreutils
[[ -f "$NGINX_MODULE" ]] || { echo "$NGINX_MODULE missing after installing libnginx-mod-rtmp" >&2; exit 1; }
NGINX_BIN="$(command -v nginx || echo /usr/sbin/nginx)"

# ---- build ---------------------------------------------------------------------------------------
if [[ $BUILD == 1 ]]; then
    log "cargo build --release -p ferrocast -p loadgen"
    (cd "$ROOT" && cargo build --release -p ferrocast -p loadgen)
fi
# FERROCAST_BIN=path benchmarks another ferrocast build (e.g. a candidate fix) against the same peer.
FERROCAST="${FERROCAST_BIN:-$ROOT/target/release/ferrocast}"
BENCH="${FERROCAST_BENCH_BIN:-$ROOT/target/release/ferrocast-bench}"
for b in "$FERROCAST" "$BENCH"; do [[ -x "$b" ]] || { echo "$b not built" >&2; exit 1; }; done

# Every player is a socket in this shell's children and in both servers.
MAX_N=$PLAYERS
for n in $RTMPDUMP_PLAYERS $MAX_SEARCH; do (( n > MAX_N )) && MAX_N=$n; done
want_fds=$(( MAX_N * 2 + 1024 ))
if (( $(ulimit -n) < want_fds )); then
    ulimit -n "$(( $(ulimit -Hn) < want_fds ? $(ulimit -Hn) : want_fds ))" || true
fi
(( $(ulimit -n) >= MAX_N + 256 )) || { echo "open file limit $(ulimit -n) is too low for $MAX_N players" >&2; exit 1; }

# ---- temp dir and cleanup ------------------------------------------------------------------------
TMP="$(mktemp -d /tmp/ferrocast-fanout.XXXXXX)"
PIDS=()
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Free loopback ports below the ephemeral range (see bench/first-keyframe.sh for why).
read -r P_FC_RTMP P_FC_RTMPS P_FC_HTTP P_NGX < <(free_ports 4)

# ---- servers -------------------------------------------------------------------------------------
log "ferrocast on rtmp://127.0.0.1:$P_FC_RTMP"
mkdir -p "$TMP/ferrocast-data"
# Every player comes from 127.0.0.1: lift the per-IP connection cap (1000 by default) the way
# nginx's worker_connections is lifted below.
printf '[limits]\nmax_connections_per_ip = %d\n' "$(( MAX_N + 64 ))" >"$TMP/ferrocast.toml"
# A pure RTMP server like nginx-rtmp: no transcoder/packager (bench/transcode-cpu.sh measures
# those). Older builds (FERROCAST_BIN) without the flag run with their transcoder, which is then
# left out of the CPU count (see SELF_ONLY).
NO_TRANSCODE=()
if "$FERROCAST" serve --help 2>/dev/null | grep -q -- --no-transcode; then NO_TRANSCODE=(--no-transcode); fi
RUST_LOG=warn "$FERROCAST" serve ${NO_TRANSCODE[@]+"${NO_TRANSCODE[@]}"} --config "$TMP/ferrocast.toml" --data-dir "$TMP/ferrocast-data" \
    --rtmp-addr "127.0.0.1:$P_FC_RTMP" --rtmps-addr "127.0.0.1:$P_FC_RTMPS" --http-addr "127.0.0.1:$P_FC_HTTP" \
    >"$TMP/ferrocast.log" 2>&1 &
FC_PID=$!; PIDS+=("$FC_PID")

log "nginx-rtmp on rtmp://127.0.0.1:$P_NGX (prefix $TMP/nginx)"
mkdir -p "$TMP/nginx/logs"
# The first-keyframe template with room for more players: 1024 connections is too few.
sed -e "s#@DIR@#$TMP/nginx#g" -e "s#@PORT@#$P_NGX#g" \
    -e "s#^worker_processes 1;#worker_processes 1;\nworker_rlimit_nofile $(( MAX_N * 2 + 1024 ));#" \
    -e "s#worker_connections 1024;#worker_connections $(( MAX_N + 512 ));#" \
    "$BENCH_DIR/nginx-rtmp.conf.template" >"$TMP/nginx/nginx.conf"
"$NGINX_BIN" -t -q -p "$TMP/nginx/" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log"
"$NGINX_BIN" -p "$TMP/nginx/" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log" >"$TMP/nginx.log" 2>&1 &
NGX_PID=$!; PIDS+=("$NGX_PID")

wait_port "$P_FC_RTMP" ferrocast "$FC_PID" "$TMP/ferrocast.log"
wait_port "$P_NGX" nginx "$NGX_PID" "$TMP/nginx/error.log"

# ---- publishers (same input as first-keyframe.sh, started together) --------------------------------
FC_URL="rtmp://127.0.0.1:$P_FC_RTMP/live/$STREAM"
NGX_URL="rtmp://127.0.0.1:$P_NGX/live/$STREAM"
publish() { # URL LOG
    ffmpeg -nostdin -hide_banner -loglevel info -re \
        -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000 \
        -c:v libx264 -preset veryfast -tune zerolatency -g 60 -b:v 2500k -c:a aac -f flv "$1" >"$2" 2>&1 &
}
log "publishing the test stream to both servers"
publish "$FC_URL" "$TMP/ffmpeg-ferrocast.log"; PIDS+=("$!"); FF1=$!
publish "$NGX_URL" "$TMP/ffmpeg-nginx-rtmp.log"; PIDS+=("$!"); FF2=$!

wait_live() { # NAME URL
    local i
    for i in $(seq 30); do
        if timeout 20 "$BENCH" --quiet rtmp-play --url "$2" --clients 1 --duration 3 --settle 0.5 >/dev/null 2>&1; then
            return 0
        fi
        sleep 1
    done
    echo "$1: the stream is not playable after 30 tries" >&2; exit 1
}
wait_live ferrocast "$FC_URL"
wait_live nginx-rtmp "$NGX_URL"

# ---- measure -------------------------------------------------------------------------------------
declare -A URL=([ferrocast]="$FC_URL" [nginx-rtmp]="$NGX_URL")
declare -A PID=([ferrocast]="$FC_PID" [nginx-rtmp]="$NGX_PID")
declare -A FFLOG=([ferrocast]="$TMP/ffmpeg-ferrocast.log" [nginx-rtmp]="$TMP/ffmpeg-nginx-rtmp.log")
# Only ferrocast's own process is counted (a transcoder child, if any, is not fan-out work);
# nginx works in a worker child of its master, so there the tree is counted.
declare -A SELF_ONLY=([ferrocast]=1 [nginx-rtmp]=0)
children_ticks() { # PID -> CPU ticks of PID's descendants (not PID itself)
    python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); import fanout_helper as h; p = int(sys.argv[2]); print(h.tree_sample(p)["ticks"] - h.tree_sample(p, False)["ticks"])' "$BENCH_DIR" "$1"
}
FC_CHILD_TICKS0="$(children_ticks "$FC_PID")"; FC_CHILD_T0=$(date +%s.%N)
RESULTS=()
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"

ours() { # SERVER N DURATION -> JSON path on stdout
    local server=$1 n=$2 d=$3 out="$TMP/ours-$1-$2.json"
    local bound=$(( 60 + d + (n * RAMP_MS) / 1000 + ${SETTLE%.*} ))
    log "$server: $n ferrocast-bench players, window ${d} s"
    local m0 t0 m1 t1
    m0="$(python3 "$BENCH_DIR/fanout_helper.py" progress --publisher-log "${FFLOG[$server]}")"; t0=$(date +%s.%N)
    set +e
    timeout --signal=INT --kill-after=10 "$bound" "$BENCH" rtmp-play --url "${URL[$server]}" --clients "$n" \
        --duration "$d" --ramp-ms "$RAMP_MS" --settle "$SETTLE" --server-pid "${PID[$server]}" \
        $([[ ${SELF_ONLY[$server]} == 1 ]] && echo --server-self-only) --json "$out" >"$TMP/ours-$server-$n.txt" 2>"$TMP/ours-$server-$n.log"
    local rc=$?
    set -e
    [[ -s "$out" ]] || { echo "ferrocast-bench failed (exit $rc)" >&2; cat "$TMP/ours-$server-$n.log" >&2; exit 1; }
    # The publisher's speed over the whole step (ramp-up included): tells a stream that slowed
    # from a server that could not deliver it.
    m1="$(python3 "$BENCH_DIR/fanout_helper.py" progress --publisher-log "${FFLOG[$server]}")"; t1=$(date +%s.%N)
    python3 - "$out" "$m0" "$m1" "$t0" "$t1" <<'PY'
import json, sys
path, m0, m1, t0, t1 = sys.argv[1:]
r = json.load(open(path))
r["publisher_speed"] = (float(m1) - float(m0)) / (float(t1) - float(t0)) if m0 and m1 else None
json.dump(r, open(path, "w"), indent=1)
PY
    sed 's/^/    /' "$TMP/ours-$server-$n.txt" >&2
    alive_or_die "$server" "${PID[$server]}" "$TMP/$server.log"
    echo "$out"
}

theirs() { # SERVER N
    local server=$1 n=$2 out="$TMP/rtmpdump-$1-$2.json"
    local bound=$(( 60 + DURATION + (n * (RAMP_MS + 5)) / 1000 + ${SETTLE%.*} ))
    log "$server: $n rtmpdump players, window ${DURATION} s"
    timeout --signal=INT --kill-after=10 "$bound" python3 "$BENCH_DIR/fanout_helper.py" rtmpdump \
        --url "${URL[$server]}" --server-pid "${PID[$server]}" $([[ ${SELF_ONLY[$server]} == 1 ]] && echo --self-only) \
        --players "$n" --duration "$DURATION" \
        --ramp-ms "$RAMP_MS" --settle "$SETTLE" --publisher-log "${FFLOG[$server]}" --json "$out"
    alive_or_die "$server" "${PID[$server]}" "$TMP/$server.log"
    echo "$out"
}

IDLE_ARGS=()
for server in ferrocast nginx-rtmp; do
    log "$server: no players, 10 s"
    python3 "$BENCH_DIR/fanout_helper.py" idle --server-pid "${PID[$server]}" \
        $([[ ${SELF_ONLY[$server]} == 1 ]] && echo --self-only) --duration 10 --json "$TMP/idle-$server.json"
    IDLE_ARGS+=(--idle "$server=$TMP/idle-$server.json")
done
for server in ferrocast nginx-rtmp; do
    f="$(ours "$server" "$PLAYERS" "$DURATION")"
    RESULTS+=("$server:ferrocast-bench:$PLAYERS=$f")
    sleep 3
done
if (( RTMPDUMP_PLAYERS > 0 )); then
    for server in ferrocast nginx-rtmp; do
        f="$(theirs "$server" "$RTMPDUMP_PLAYERS")"
        RESULTS+=("$server:rtmpdump:$RTMPDUMP_PLAYERS=$f")
        sleep 3
    done
fi

SEARCH_LINES=()
if [[ -n "$MAX_SEARCH" ]]; then
    for server in ferrocast nginx-rtmp; do
        best=0
        for n in $MAX_SEARCH; do
            f="$(ours "$server" "$n" "$SEARCH_DURATION")"
            RESULTS+=("$server:ferrocast-bench:$n=$f")
            read -r kept errors < <(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["kept_up"], r["errors"])' "$f")
            sleep 3
            if [[ "$kept" == "$n" && "$errors" == 0 ]]; then best=$n; else failed_at=$n; break; fi
        done
        SEARCH_LINES+=("- $server: all players kept up at **$best**$([[ -n "${failed_at:-}" ]] && echo ", not at $failed_at" || true) (tried: $MAX_SEARCH, stopping at the first count where one did not)")
        unset failed_at
    done
fi
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"
FC_CHILD_PCT="$(python3 -c 'import sys; a, b, t0, t1, hz = map(float, sys.argv[1:]); print(f"{(b - a) / hz / (t1 - t0) * 100:.0f}")' \
    "$FC_CHILD_TICKS0" "$(children_ticks "$FC_PID")" "$FC_CHILD_T0" "$(date +%s.%N)" "$(getconf CLK_TCK)")"
alive_or_die "ffmpeg (ferrocast publisher)" "$FF1" "$TMP/ffmpeg-ferrocast.log"
alive_or_die "ffmpeg (nginx-rtmp publisher)" "$FF2" "$TMP/ffmpeg-nginx-rtmp.log"

speed() { tr '\r' '\n' <"$1" | grep -o 'speed=[ 0-9.]*x' | tail -1 | tr -d ' ' | sed 's/speed=//'; }
FF_SPEED="ferrocast publisher $(speed "$TMP/ffmpeg-ferrocast.log"), nginx-rtmp publisher $(speed "$TMP/ffmpeg-nginx-rtmp.log")"

REPORT_ARGS=()
for r in "${RESULTS[@]}"; do REPORT_ARGS+=(--result "$r"); done
python3 "$BENCH_DIR/fanout_helper.py" report "${IDLE_ARGS[@]}" "${REPORT_ARGS[@]}" --markdown "$TMP/result.md" >/dev/null

# ---- report --------------------------------------------------------------------------------------
COMMIT="$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(cd "$ROOT" && git status --porcelain -- crates Cargo.toml Cargo.lock 2>/dev/null)" ]]; then COMMIT="$COMMIT + uncommitted changes in crates/"; fi
MACHINE="$(nproc) cores, $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1), $(free -g | awk '/^Mem:/{print $2}') GiB RAM, $(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r)"
VERSIONS="nginx $("$NGINX_BIN" -v 2>&1 | sed 's#.*/##') + libnginx-mod-rtmp $(dpkg-query -W -f '${Version}' libnginx-mod-rtmp 2>/dev/null || echo '?'), rtmpdump $(dpkg-query -W -f '${Version}' rtmpdump 2>/dev/null || echo '?'), ffmpeg $(ffmpeg -version | awk 'NR==1{print $3}')"
CMD="bench/fanout.sh${ORIG_ARGS[*]:+ ${ORIG_ARGS[*]}}"

{
    echo "Last run: $(date -u '+%Y-%m-%d %H:%M UTC'), ferrocast $COMMIT."
    echo
    echo "- Command: \`$([[ -n "${FERROCAST_BIN:-}" ]] && echo "FERROCAST_BIN=$FERROCAST_BIN ")$CMD\`"
    echo "- Machine: $MACHINE"
    echo "- Peers and clients: $VERSIONS; ferrocast-bench from this repo (crates/loadgen)"
    echo "- Input: one ffmpeg per server, started together and running through all measurements: testsrc2 1280x720@30 + sine 440 Hz, libx264 veryfast zerolatency, -g 60, 2500k, AAC; ffmpeg speed at the end: $FF_SPEED"
    echo "- Load average (1/5/15 min) before: $LOAD_BEFORE, after: $LOAD_AFTER (2 cores)"
    if [[ ${#NO_TRANSCODE[@]} -gt 0 ]]; then
        echo "- ferrocast runs as \`serve --no-transcode\`: a pure RTMP server like nginx-rtmp (no rendition ladder, no DASH packaging)."
    else
        echo "- ferrocast's CPU is its own process only: its children (the ffmpeg rendition ladder it starts for every stream) used $FC_CHILD_PCT % of a core on average during the measurements and are not counted; they do load the machine for both servers."
    fi
    echo "- Each row: players started ${RAMP_MS} ms apart, ${SETTLE} s to settle, then a ${DURATION} s window (search steps: ${SEARCH_DURATION} s) over which the server's CPU (utime+stime; ferrocast: its process, nginx: master + worker) is read; RSS before the players and at the end of the window. One server at a time, the other idle but publishing."
    echo "- Kept up: ferrocast-bench: media timestamps advanced ≥ 95 % of wall-clock time over the window and no timestamp gap > 1 s; rtmpdump: still running and wrote ≥ 95 % of the FLV bytes a real-time stream carries over the window (ffmpeg's size= per second of its time=). When nobody kept up, the cell also says how many kept within 5 % of the best player (ferrocast-bench) or got ≥ 95 % of what ffmpeg actually sent (rtmpdump); \"publisher speed\" is ffmpeg's media time per wall-clock second over the step (below 1 when the encoder starved on the saturated machine), which tells a stream that slowed from a server that could not deliver it."
    echo
    cat "$TMP/result.md"
    for l in "${SEARCH_LINES[@]+"${SEARCH_LINES[@]}"}"; do echo "$l"; done
} >"$TMP/section.md"

echo
cat "$TMP/section.md"

if [[ $WRITE == 1 ]]; then
    write_benchmarks_block fanout "RTMP fan-out: server CPU and memory per player" "$(cat "$TMP/section.md")" "written by bench/fanout.sh; edit outside the markers"
    log "updated $ROOT/BENCHMARKS.md"
fi
