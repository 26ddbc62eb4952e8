#!/usr/bin/env bash
# Soak: one published stream for M minutes (default 10) with RTMP players joining and leaving
# and DASH fetches, sampling the server's RSS and open fds every 30 s; at the end the stream
# stops and no ffmpeg child may be left. Fails if RSS grows by more than 30 % after warm-up or
# fds do not come back down.
#   bench/soak.sh [--minutes 10]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
MINUTES=10
while (($#)); do case "$1" in --minutes) MINUTES=$2; shift 2;; *) exit 2;; esac; done
ensure_pkgs ffmpeg rtmpdump curl
build_release
TMP=$(mktemp -d /tmp/ferrocast-soak.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
RTMP=$(free_port); RTMPS=$(free_port); HTTP=$(free_port)
target/release/ferrocast serve --data-dir "$TMP/data" --rtmp-addr 127.0.0.1:$RTMP --rtmps-addr 127.0.0.1:$RTMPS \
  --http-addr 127.0.0.1:$HTTP 2>"$TMP/serve.log" &
SERVER=$!; PIDS+=($SERVER)
sleep 1
ffmpeg -hide_banner -loglevel error -re -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=sample_rate=48000 \
  -t $((MINUTES * 60 + 30)) -c:v libx264 -preset veryfast -tune zerolatency -g 60 -b:v 2500k -c:a aac \
  -f flv rtmp://127.0.0.1:$RTMP/live/soak </dev/null >/dev/null 2>&1 &
PUB=$!; PIDS+=($PUB)
sample() { echo "$(awk '/VmRSS/{print $2}' /proc/$SERVER/status) $(ls /proc/$SERVER/fd | wc -l)"; }
END=$((SECONDS + MINUTES * 60))
i=0
BASE=""
while ((SECONDS < END)); do
  # 10 players join for a random 5–25 s; one DASH client follows the MPD meanwhile.
  for _ in $(seq 10); do
    timeout $((5 + RANDOM % 20)) rtmpdump -q --live -r rtmp://127.0.0.1:$RTMP/live/soak -o /dev/null 2>/dev/null &
  done
  timeout 25 ffmpeg -hide_banner -loglevel error -i http://127.0.0.1:$HTTP/live/soak/manifest.mpd -t 20 -f null - 2>/dev/null &
  sleep 30
  read -r rss fds < <(sample)
  i=$((i + 1))
  echo "t=$((i * 30))s rss=${rss}KiB fds=$fds"
  # The first minute is warm-up (GOP caches, segment window, allocator).
  if ((i == 2)); then BASE=$rss; fi
done
if [[ -n "$BASE" ]]; then
  growth=$(( (rss - BASE) * 100 / BASE ))
  echo "RSS after warm-up ${BASE} KiB, at the end ${rss} KiB (${growth} %)"
  ((growth <= 30)) || { echo "FAIL: RSS grew by ${growth} %" >&2; exit 1; }
fi
kill $PUB 2>/dev/null || true
sleep 15
left=$( (pgrep -P "$SERVER" ffmpeg || true) | wc -l)
read -r _ fds_end < <(sample)
echo "after the publisher stopped: ffmpeg children ${left}, fds ${fds_end}"
((left == 0)) || { echo "FAIL: ffmpeg child left after the stream ended" >&2; exit 1; }
((fds_end < 64)) || { echo "FAIL: ${fds_end} fds open with nothing connected" >&2; exit 1; }
echo "soak passed"
