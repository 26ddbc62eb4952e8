#!/usr/bin/env bash
# RTMP connect -> first keyframe at the player, ferrocast vs nginx-rtmp in the same run.
#
#   bench/first-keyframe.sh [--trials N] [--fanout N] [--max-pause S] [--rtmpdump-buffered]
#                           [--no-build] [--no-write] [--keep-tmp]
#
# Starts ferrocast (release build) and nginx-rtmp (own prefix, conf, pid and logs in a temp dir)
# on free 127.0.0.1 ports, one ffmpeg publisher per server (same 2.5 Mbps 720p30 stream,
# keyframe every 2 s, both started together), then bench/first_keyframe.py joins each server
# N times, interleaved, with rtmpdump and times the first decodable keyframe. Prints a Markdown
# table and writes it into BENCHMARKS.md (between the first-keyframe markers).
set -euo pipefail

usage() {
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
    cat <<'EOF'

Options:
  --trials N      joins per server (default 5)
  --fanout N      keep N extra rtmpdump players on each server during the trials (default 0: off)
  --max-pause S   random pause 0..S s before each join (default 2)
  --rtmpdump-buffered
                  run rtmpdump without `stdbuf -o0`: its 4 KiB stdout buffer then holds back
                  what it received (first byte and tag tails show up late; see bench/README.md)
  --no-build      use the existing target/release/ferrocast
  --no-write      do not update BENCHMARKS.md
  --keep-tmp      keep the temp dir (logs, confs, JSON) and print its path
EOF
}

TRIALS=5
FANOUT=0
MAX_PAUSE=2
BUILD=1
WRITE=1
KEEP_TMP=0
BUFFERED_ARG=()
ORIG_ARGS=("$@")
while [[ $# -gt 0 ]]; do
    case "$1" in
        --trials) TRIALS="$2"; shift 2 ;;
        --fanout) FANOUT="$2"; shift 2 ;;
        --max-pause) MAX_PAUSE="$2"; shift 2 ;;
        --rtmpdump-buffered) BUFFERED_ARG=(--stdio-buffered); shift ;;
        --no-build) BUILD=0; shift ;;
        --no-write) WRITE=0; shift ;;
        --keep-tmp) KEEP_TMP=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done
[[ "$TRIALS" =~ ^[1-9][0-9]*$ ]] || { echo "--trials must be a positive integer" >&2; exit 2; }
[[ "$FANOUT" =~ ^[0-9]+$ ]] || { echo "--fanout must be a non-negative integer" >&2; exit 2; }

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
NGINX_MODULE=/usr/lib/nginx/modules/ngx_rtmp_module.so
STREAM=bench
log() { printf '[first-keyframe] %s\n' "$*" >&2; }

# ---- dependencies ---------------------------------------------------------------------------------
need_install=0
for c in nginx rtmpdump ffmpeg python3 stdbuf timeout; do
    command -v "$c" >/dev/null 2>&1 || need_install=1
done
[[ -f "$NGINX_MODULE" ]] || need_install=1
if [[ $need_install == 1 ]]; then
    log "installing nginx, libnginx-mod-rtmp, rtmpdump, ffmpeg"
    SUDO=""; [[ $(id -u) == 0 ]] || SUDO="sudo"
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y nginx libnginx-mod-rtmp rtmpdump ffmpeg python3
fi
[[ -f "$NGINX_MODULE" ]] || { echo "$NGINX_MODULE missing after installing libnginx-mod-rtmp" >&2; exit 1; }
NGINX_BIN="$(command -v nginx || echo /usr/sbin/nginx)"

# ---- build -------------------------------------------------------------------------------------------
if [[ $BUILD == 1 ]]; then
    log "cargo build --release -p ferrocast"
    (cd "$ROOT" && cargo build --release -p ferrocast)
fi
FERROCAST="${FERROCAST_BIN:-$ROOT/target/release/ferrocast}"
[[ -x "$FERROCAST" ]] || { echo "$FERROCAST not built" >&2; exit 1; }

# ---- temp dir and cleanup ----------------------------------------------------------------------------
TMP="$(mktemp -d /tmp/ferrocast-first-keyframe.XXXXXX)"
PIDS=()
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Free loopback ports below the ephemeral range (see free_ports in lib.sh).
read -r P_FC_RTMP P_FC_RTMPS P_FC_HTTP P_NGX < <(free_ports 4)

# ---- servers ----------------------------------------------------------------------------------------------
log "ferrocast on rtmp://127.0.0.1:$P_FC_RTMP (rtmps $P_FC_RTMPS, http $P_FC_HTTP)"
mkdir -p "$TMP/ferrocast-data"
RUST_LOG=warn "$FERROCAST" serve --data-dir "$TMP/ferrocast-data" \
    --rtmp-addr "127.0.0.1:$P_FC_RTMP" --rtmps-addr "127.0.0.1:$P_FC_RTMPS" --http-addr "127.0.0.1:$P_FC_HTTP" \
    >"$TMP/ferrocast.log" 2>&1 &
FC_PID=$!; PIDS+=("$FC_PID")

log "nginx-rtmp on rtmp://127.0.0.1:$P_NGX (prefix $TMP/nginx)"
mkdir -p "$TMP/nginx/logs"
sed -e "s#@DIR@#$TMP/nginx#g" -e "s#@PORT@#$P_NGX#g" "$BENCH_DIR/nginx-rtmp.conf.template" >"$TMP/nginx/nginx.conf"
"$NGINX_BIN" -t -q -p "$TMP/nginx/" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log"
"$NGINX_BIN" -p "$TMP/nginx/" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log" >"$TMP/nginx.log" 2>&1 &
NGX_PID=$!; PIDS+=("$NGX_PID")

wait_port "$P_FC_RTMP" ferrocast "$FC_PID" "$TMP/ferrocast.log"
wait_port "$P_NGX" nginx "$NGX_PID" "$TMP/nginx/error.log"

# ---- publishers (same input, started together) ------------------------------------------------------------
FC_URL="rtmp://127.0.0.1:$P_FC_RTMP/live/$STREAM"
NGX_URL="rtmp://127.0.0.1:$P_NGX/live/$STREAM"
publish() { # URL LOG
    ffmpeg -nostdin -hide_banner -loglevel info -re \
        -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000 \
        -c:v libx264 -preset veryfast -tune zerolatency -g 60 -b:v 2500k -c:a aac -f flv "$1" >"$2" 2>&1 &
}
log "publishing the test stream to both servers"
publish "$FC_URL" "$TMP/ffmpeg-ferrocast.log"; PIDS+=("$!"); FF1=$!
publish "$NGX_URL" "$TMP/ffmpeg-nginx.log"; PIDS+=("$!"); FF2=$!

# ---- measure ------------------------------------------------------------------------------------------------
log "measuring: $TRIALS joins per server, interleaved$([[ $FANOUT -gt 0 ]] && echo ", $FANOUT background players per server" || true)"
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
BOUND=$(( 60 + TRIALS * 2 * (10 + ${MAX_PAUSE%.*} + 3) + (FANOUT > 0 ? 10 : 0) ))
timeout --signal=TERM "$BOUND" python3 "$BENCH_DIR/first_keyframe.py" \
    --server "ferrocast=$FC_URL" --server "nginx-rtmp=$NGX_URL" \
    --pid "ferrocast=$FC_PID" --pid "nginx-rtmp=$NGX_PID" \
    --trials "$TRIALS" --max-pause "$MAX_PAUSE" --timeout 10 --wait-live 30 --settle 3 \
    --fanout "$FANOUT" ${BUFFERED_ARG[@]+"${BUFFERED_ARG[@]}"} --json "$TMP/result.json" --markdown "$TMP/result.md" >"$TMP/stdout.md" &
MEASURE_PID=$!; PIDS+=("$MEASURE_PID")
set +e
wait "$MEASURE_PID"; MEASURE_RC=$?
set -e
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"
alive_or_die "ffmpeg (ferrocast publisher)" "$FF1" "$TMP/ffmpeg-ferrocast.log"
alive_or_die "ffmpeg (nginx publisher)" "$FF2" "$TMP/ffmpeg-nginx.log"
[[ $MEASURE_RC == 0 ]] || { echo "measurement failed (exit $MEASURE_RC)" >&2; cat "$TMP/stdout.md" >&2; exit 1; }

speed() { tr '\r' '\n' <"$1" | grep -o 'speed=[ 0-9.]*x' | tail -1 | tr -d ' ' | sed 's/speed=//'; }
FF_SPEED="ferrocast publisher $(speed "$TMP/ffmpeg-ferrocast.log"), nginx-rtmp publisher $(speed "$TMP/ffmpeg-nginx.log")"

# ---- report -------------------------------------------------------------------------------------------------
COMMIT="$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(cd "$ROOT" && git status --porcelain -- crates Cargo.toml Cargo.lock 2>/dev/null)" ]]; then COMMIT="$COMMIT + uncommitted changes in crates/"; fi
MACHINE="$(nproc) cores, $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1), $(free -g | awk '/^Mem:/{print $2}') GiB RAM, $(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r)"
VERSIONS="nginx $("$NGINX_BIN" -v 2>&1 | sed 's#.*/##') + libnginx-mod-rtmp $(dpkg-query -W -f '${Version}' libnginx-mod-rtmp 2>/dev/null || echo '?'), rtmpdump $(dpkg-query -W -f '${Version}' rtmpdump 2>/dev/null || echo '?'), ffmpeg $(ffmpeg -version | awk 'NR==1{print $3}')"
CMD="bench/first-keyframe.sh${ORIG_ARGS[*]:+ ${ORIG_ARGS[*]}}"

{
    echo "Last run: $(date -u '+%Y-%m-%d %H:%M UTC'), ferrocast $COMMIT."
    echo
    echo "- Command: \`$CMD\`"
    echo "- Machine: $MACHINE"
    echo "- Peers and clients: $VERSIONS"
    echo "- Input: one ffmpeg per server, started together: testsrc2 1280x720@30 + sine 440 Hz, libx264 veryfast zerolatency, -g 60 (keyframe every 2 s), 2500k, AAC; ffmpeg speed at the end: $FF_SPEED"
    echo "- Load average (1/5/15 min) before the joins: $LOAD_BEFORE, after: $LOAD_AFTER (2 cores; the two encoders take ~0.5 core, the rest is anything else running on the machine)"
    echo "- Player: \`$([[ ${#BUFFERED_ARG[@]} == 0 ]] && echo 'stdbuf -o0 ')rtmpdump --live -q -r URL -o -\`, its stdout parsed as FLV by bench/first_keyframe.py; t0 is taken just before the spawn"
    echo "- Joins: $TRIALS per server, interleaved, random 0–${MAX_PAUSE} s pause before each$([[ $FANOUT -gt 0 ]] && echo ", with $FANOUT extra rtmpdump players on each server")"
    echo
    cat "$TMP/result.md"
} >"$TMP/section.md"

echo
cat "$TMP/section.md"

if [[ $WRITE == 1 ]]; then
    write_benchmarks_block first-keyframe "RTMP connect → first keyframe (GOP cache)" "$(cat "$TMP/section.md")" "written by bench/first-keyframe.sh; edit outside the markers"
    log "updated $ROOT/BENCHMARKS.md"
fi
