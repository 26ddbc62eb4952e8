#!/usr/bin/env bash
# Ladder settings compared on the same input: the ladder's own ffmpeg command (as the server
# logs it) run on one 30 s 720p30 input (the publisher of bench/transcode-cpu.sh) once per
# variant, alternating, as fast as ffmpeg goes. A variant is CHUNK_MS:GOP_S — the CMAF chunk
# (-frag_duration) and the keyframe interval (-g/-keyint_min; 4 s segments keep their forced
# keyframes on the 4 s grid either way). Per variant: CPU seconds (user + sys) per second of
# media, which is the share of one core the ladder needs at real time; each video rung's
# bitrate and its SSIM / PSNR against the source scaled and padded the way the ladder does.
#
#   bench/ladder-ab.sh [--runs 3] [--variants "200:8 500:8 200:1"] [--input FILE]
#
# The default input is ffmpeg's testsrc2, synthetic and easy on an encoder: --input measures
# on footage of your own (its first 30 s, encoded the way the publisher does).
#
# 200:8 is the ladder of 2026-12-07 (200 ms chunks, x264's keyframe interval at 2 segments:
# only the forced keyframes every 4 s), 500:8 the one before issue 16's 200 ms chunks.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
RUNS=3
VARIANTS="200:8 500:8 200:1"
INPUT=""
while (($#)); do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --variants) VARIANTS=$2; shift 2 ;;
    --input) INPUT=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
ensure_pkgs ffmpeg curl
# The server only prints its ladder command here (its own CPU is not measured): a debug build.
cargo build --locked -p ferrocast >/dev/null 2>&1 || cargo build -p ferrocast
BIN=target/debug/ferrocast
TMP=$(mktemp -d /tmp/ferrocast-ladder-ab.XXXXXX)
PIDS=()
KEEP_TMP=0
log() { echo "$*" >&2; }
trap cleanup EXIT
MEDIA_SECS=30
# The broadcaster's input, as bench/transcode-cpu.sh publishes it.
if [[ -n "$INPUT" ]]; then
  SOURCE=(-i "$INPUT")
else
  SOURCE=(-f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000)
fi
ffmpeg -hide_banner -loglevel error "${SOURCE[@]}" -t $MEDIA_SECS -r 30 -c:v libx264 -preset veryfast \
  -tune zerolatency -g 60 -b:v 2500k -c:a aac -f flv "$TMP/in.flv" </dev/null
# The ladder's command: publish a few seconds and read it from the server's debug log.
RTMP=$(free_port); RTMPS=$(free_port); HTTP=$(free_port)
RUST_LOG=ferrocast=debug "$BIN" serve --no-webrtc --data-dir "$TMP/data" --rtmp-addr 127.0.0.1:$RTMP \
  --rtmps-addr 127.0.0.1:$RTMPS --http-addr 127.0.0.1:$HTTP 2>"$TMP/serve.log" &
PIDS+=($!)
sleep 1
ffmpeg -hide_banner -loglevel error -re -i "$TMP/in.flv" -t 4 -c copy -f flv rtmp://127.0.0.1:$RTMP/live/cpu </dev/null || true
LINE=$(sed 's/\x1b\[[0-9;]*m//g' "$TMP/serve.log" | grep -m1 -o 'ffmpeg -hide_banner.*' | sed 's/ stream=[^ ]*$//')
[[ -n "$LINE" ]] || { echo "no ffmpeg command in the server's log ($TMP/serve.log)" >&2; KEEP_TMP=1; exit 1; }
read -r -a ARGS <<<"${LINE#ffmpeg }"
echo "ladder: ${LINE}" >&2

# fps of the input: x264's keyframe interval in frames.
FPS=30
run() { # VARIANT -> CPU seconds; the outputs stay in $TMP/VARIANT/
  local v=$1 ms=${1%%:*} gop=$((${1##*:} * FPS)) out=() n=0 a prev=""
  mkdir -p "$TMP/$v"
  for a in "${ARGS[@]}"; do
    case "$prev" in
      -frag_duration) a=$((ms * 1000)) ;;
      -g | -keyint_min) a=$gop ;;
    esac
    if [[ "$a" == unix://* ]]; then a="$TMP/$v/out$n.mp4"; n=$((n + 1)); fi
    out+=("$a"); prev=$a
  done
  # bash's `time`: the user and system seconds of ffmpeg (and its threads).
  local TIMEFORMAT='%U %S'
  { time ffmpeg -y "${out[@]}" <"$TMP/in.flv" >/dev/null 2>"$TMP/$v/ffmpeg.log"; } 2>"$TMP/$v/time"
  awk '{printf "%.2f\n", $1 + $2}' "$TMP/$v/time"
}

# SIDE OUT -> "kbit/s ssim psnr": the rung against the source, scaled and padded as the
# ladder's filter does it.
quality() {
  local side=$1 f=$2 kbps ssim psnr
  kbps=$(ffprobe -v error -select_streams v:0 -show_entries format=size -of csv=p=0 "$f" |
    awk -v d=$MEDIA_SECS '{printf "%.0f", $1 * 8 / d / 1000}')
  local ref="scale=$side:$side:force_original_aspect_ratio=decrease:force_divisible_by=2,pad=$side:$side:(ow-iw)/2:(oh-ih)/2,setsar=1,format=yuv420p"
  ssim=$(ffmpeg -hide_banner -nostats -i "$f" -i "$TMP/in.flv" -lavfi "[1:v]$ref[r];[0:v]format=yuv420p[d];[d][r]ssim" -f null - 2>&1 |
    grep -o 'All:[0-9.]*' | tail -1 | cut -d: -f2)
  psnr=$(ffmpeg -hide_banner -nostats -i "$f" -i "$TMP/in.flv" -lavfi "[1:v]$ref[r];[0:v]format=yuv420p[d];[d][r]psnr" -f null - 2>&1 |
    grep -o 'average:[0-9.inf]*' | tail -1 | cut -d: -f2)
  echo "$kbps $ssim $psnr"
}

declare -A CPU
for r in $(seq "$RUNS"); do
  for v in $VARIANTS; do
    s=$(run "$v")
    CPU[$v]+="$s "
    echo "run $r, variant $v: ${s} s of CPU for ${MEDIA_SECS} s of media" >&2
  done
done
echo
echo "| variant (chunk ms : keyframe every s) | CPU s per run (${MEDIA_SECS} s of media) | median, % of one core at real time | 720: kbit/s, SSIM, PSNR dB | 400: kbit/s, SSIM, PSNR dB |"
echo "|---|---|---|---|---|"
for v in $VARIANTS; do
  med=$(python3 -c "import statistics,sys; print(f'{statistics.median(map(float, sys.argv[1:]))/$MEDIA_SECS*100:.1f}')" ${CPU[$v]})
  q720=$(quality 720 "$TMP/$v/out0.mp4"); q400=$(quality 400 "$TMP/$v/out1.mp4")
  echo "| $v | ${CPU[$v]}| ${med} % | ${q720// /, } | ${q400// /, } |"
done
