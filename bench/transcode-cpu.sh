#!/usr/bin/env bash
# One 720p30 stream through the whole encoder: ferrocast's own CPU next to its ffmpeg
# transcoder's, ingest → first MPD time, and segment availability lag. --write updates
# BENCHMARKS.md.
#
#   bench/transcode-cpu.sh [--seconds 30] [--write]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
SECONDS_MEASURED=30
WRITE=0
while (($#)); do
  case "$1" in
    --seconds) SECONDS_MEASURED=$2; shift 2 ;;
    --write) WRITE=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
ensure_pkgs ffmpeg curl
build_release
BIN=target/release/ferrocast
TMP=$(mktemp -d /tmp/ferrocast-transcode-cpu.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
RTMP=$(free_port); RTMPS=$(free_port); HTTP=$(free_port)
"$BIN" serve --data-dir "$TMP/data" --rtmp-addr 127.0.0.1:$RTMP --rtmps-addr 127.0.0.1:$RTMPS --http-addr 127.0.0.1:$HTTP 2>"$TMP/serve.log" &
SERVER=$!; PIDS+=($SERVER)
sleep 1
T0=$(date +%s.%N)
ffmpeg -hide_banner -loglevel error -re -f lavfi -i testsrc2=size=1280x720:rate=30 \
  -f lavfi -i sine=frequency=440:sample_rate=48000 -t $((SECONDS_MEASURED + 25)) -c:v libx264 -preset veryfast \
  -tune zerolatency -g 60 -b:v 2500k -c:a aac -f flv rtmp://127.0.0.1:$RTMP/live/cpu </dev/null >/dev/null 2>&1 & PIDS+=($!)
until [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HTTP/live/cpu/manifest.mpd") == 200 ]]; do sleep 0.1; done
T1=$(date +%s.%N)
FIRST_MPD=$(python3 -c "print(f'{$T1-$T0:.2f}')")
sleep 5
CHILD=$(pgrep -P "$SERVER" ffmpeg | head -1)
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
s0=$(ticks "$SERVER"); c0=$(ticks "$CHILD"); w0=$(date +%s.%N)
sleep "$SECONDS_MEASURED"
s1=$(ticks "$SERVER"); c1=$(ticks "$CHILD"); w1=$(date +%s.%N)
RSS_S=$(awk '/VmRSS/{print $2}' "/proc/$SERVER/status"); RSS_C=$(awk '/VmRSS/{print $2}' "/proc/$CHILD/status")
read -r SRV FF SHARE < <(python3 -c "
w=$w1-$w0; s=($s1-$s0)/$HZ/w*100; c=($c1-$c0)/$HZ/w*100
print(f'{s:.1f} {c:.1f} {s/c*100:.1f}')")
LAG=$(curl -s "http://127.0.0.1:$HTTP/metrics" | awk -F'[ ]' '/^ferrocast_segment_lag_seconds\{quantile="0.5"\}/{p50=$2} /^ferrocast_segment_lag_seconds\{quantile="0.95"\}/{p95=$2} END{printf "%.2f / %.2f", p50, p95}')
TABLE=$(cat <<EOF
Last run: $(date -u '+%Y-%m-%d %H:%M UTC'), ferrocast $(git rev-parse --short HEAD), \`bench/transcode-cpu.sh --seconds $SECONDS_MEASURED\`.
Machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1), load average at the end: $(cut -d' ' -f1-3 /proc/loadavg).
Input: ffmpeg testsrc2 1280×720 @ 30 fps, x264 veryfast zerolatency 2.5 Mbit/s, AAC; ladder 720×720 @ 1500k + 400×400 @ 500k + AAC 64k.

| measure | value |
|---|---|
| ferrocast process CPU (ingest, hub, packager, HTTP), % of one core | $SRV |
| its ffmpeg transcoder child, % of one core | $FF |
| **ferrocast's share of ffmpeg's CPU** | **$SHARE %** |
| RSS: ferrocast / ffmpeg | $((RSS_S / 1024)) MiB / $((RSS_C / 1024)) MiB |
| publish start → first MPD served (includes the first 4 s segment) | $FIRST_MPD s |
| segment lag (segment end → listed), p50 / p95 | $LAG s |
EOF
)
echo "$TABLE"
if ((WRITE)); then
  write_benchmarks_block transcode-cpu "One transcoded stream: ferrocast's CPU next to ffmpeg's" "$TABLE"
fi
