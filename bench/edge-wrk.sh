#!/usr/bin/env bash
# Cached segment serving: `ferrocast edge` vs nginx serving the same bytes as static files, in
# the same run, with wrk. Also nginx as a caching proxy (proxy_cache_lock on) in front of the
# same origin. Prints a Markdown table; --write puts it into BENCHMARKS.md.
#
#   bench/edge-wrk.sh [--duration 10] [--connections 100] [--write]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
DURATION=10
CONNS=100
WRITE=0
while (($#)); do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    --write) WRITE=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

ensure_pkgs nginx wrk ffmpeg curl
build_release
BIN=target/release/ferrocast

TMP=$(mktemp -d /tmp/ferrocast-edge-wrk.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT

RTMP=$(free_port); RTMPS=$(free_port); ORIGIN=$(free_port); EDGE=$(free_port); NGX=$(free_port); NGXP=$(free_port)

"$BIN" serve --data-dir "$TMP/data" --rtmp-addr 127.0.0.1:$RTMP --rtmps-addr 127.0.0.1:$RTMPS \
  --http-addr 127.0.0.1:$ORIGIN 2>"$TMP/serve.log" & PIDS+=($!)
"$BIN" edge --origin http://127.0.0.1:$ORIGIN --http-addr 127.0.0.1:$EDGE 2>"$TMP/edge.log" & PIDS+=($!)
sleep 1
ffmpeg -hide_banner -loglevel error -re -f lavfi -i testsrc2=size=1280x720:rate=30 \
  -f lavfi -i sine=frequency=440:sample_rate=48000 -t 60 -c:v libx264 -preset veryfast \
  -tune zerolatency -g 60 -b:v 2500k -c:a aac -f flv rtmp://127.0.0.1:$RTMP/live/bench \
  </dev/null >/dev/null 2>&1 & PIDS+=($!)

# Wait for three finished segments; take a finished 720 one (~0.75 MB) and the MPD.
for _ in $(seq 1 120); do
  [[ -f "$TMP/data/store/live/bench/v720/2.m4s" ]] && break
  sleep 0.5
done
SEG=/live/bench/v720/1.m4s
MPD=/live/bench/manifest.mpd
mkdir -p "$TMP/www/live/bench/v720"
cp "$TMP/data/store/live/bench/v720/1.m4s" "$TMP/www/live/bench/v720/1.m4s"
curl -s "http://127.0.0.1:$ORIGIN$MPD" > "$TMP/www/live/bench/manifest.mpd"
SEG_BYTES=$(stat -c %s "$TMP/www/live/bench/v720/1.m4s")
MPD_BYTES=$(stat -c %s "$TMP/www/live/bench/manifest.mpd")

mkdir -p "$TMP/nginx/logs" "$TMP/nginx/cache"
cat > "$TMP/nginx/nginx.conf" <<EOF
$( [[ $(id -u) -eq 0 ]] && echo "user root;" )
worker_processes 1;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  keepalive_requests 100000;
  proxy_cache_path $TMP/nginx/cache keys_zone=seg:10m max_size=1g inactive=10m;
  server { listen 127.0.0.1:$NGX; root $TMP/www; types { video/mp4 m4s; application/dash+xml mpd; } }
  server {
    listen 127.0.0.1:$NGXP;
    location / {
      proxy_pass http://127.0.0.1:$ORIGIN;
      proxy_cache seg; proxy_cache_lock on; proxy_cache_valid 200 10m;
      proxy_ignore_headers Cache-Control; proxy_http_version 1.1;
    }
  }
}
EOF
nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" & PIDS+=($!)
sleep 1

# Warm the caches.
for u in "http://127.0.0.1:$EDGE$SEG" "http://127.0.0.1:$NGXP$SEG" "http://127.0.0.1:$EDGE$MPD"; do curl -s -o /dev/null "$u"; curl -s -o /dev/null "$u"; done

run_wrk() { # url → "req/s MB/s p99"
  wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency "$1" 2>/dev/null | awk '
    /Requests\/sec/ {r=$2} /Transfer\/sec/ {t=$2}
    /^ +99%/ {p=$2} END {print r, t, p}'
}
declare -A RES
for target in "ferrocast edge|$EDGE|$SEG" "nginx static|$NGX|$SEG" "nginx caching proxy|$NGXP|$SEG" \
              "ferrocast edge (MPD)|$EDGE|$MPD" "nginx static (MPD)|$NGX|$MPD"; do
  IFS='|' read -r name p path <<<"$target"
  RES[$name]=$(run_wrk "http://127.0.0.1:$p$path")
  echo "$name: ${RES[$name]}" >&2
done
hit=$(curl -s "http://127.0.0.1:$EDGE/metrics" | awk '/^ferrocast_edge_hit_ratio /{print $2}')
fetches=$(curl -s "http://127.0.0.1:$EDGE/metrics" | awk '/^ferrocast_edge_origin_fetches_total /{print $2}')

rps() { echo "${RES[$1]}" | cut -d' ' -f1; }
ratio() { python3 -c "print(f'{float(\"$(rps "$1")\")/float(\"$(rps "$2")\"):.2f}')"; }
TABLE=$(cat <<EOF
Last run: $(date -u '+%Y-%m-%d %H:%M UTC'), ferrocast $(git rev-parse --short HEAD), \`bench/edge-wrk.sh --duration $DURATION --connections $CONNS\`.
Machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1), load average before: $(cut -d' ' -f1-3 /proc/loadavg).
wrk -t2 -c$CONNS -d${DURATION}s on the same machine as the servers (it takes about half the CPU).
Segment: a finished 720×720 segment, $SEG_BYTES bytes; MPD: $MPD_BYTES bytes (edge caches it 1 s).
nginx: one worker, sendfile on, access log off; caching proxy with proxy_cache_lock on.

| server | object | req/s | transfer/s | p99 latency |
|---|---|---|---|---|
| ferrocast edge (cache hit) | segment | $(rps 'ferrocast edge') | $(echo "${RES['ferrocast edge']}" | cut -d' ' -f2) | $(echo "${RES['ferrocast edge']}" | cut -d' ' -f3) |
| nginx static | segment | $(rps 'nginx static') | $(echo "${RES['nginx static']}" | cut -d' ' -f2) | $(echo "${RES['nginx static']}" | cut -d' ' -f3) |
| nginx caching proxy | segment | $(rps 'nginx caching proxy') | $(echo "${RES['nginx caching proxy']}" | cut -d' ' -f2) | $(echo "${RES['nginx caching proxy']}" | cut -d' ' -f3) |
| ferrocast edge | MPD | $(rps 'ferrocast edge (MPD)') | $(echo "${RES['ferrocast edge (MPD)']}" | cut -d' ' -f2) | $(echo "${RES['ferrocast edge (MPD)']}" | cut -d' ' -f3) |
| nginx static | MPD | $(rps 'nginx static (MPD)') | $(echo "${RES['nginx static (MPD)']}" | cut -d' ' -f2) | $(echo "${RES['nginx static (MPD)']}" | cut -d' ' -f3) |

Ratios: edge / nginx static = **$(ratio 'ferrocast edge' 'nginx static')×** (segment), $(ratio 'ferrocast edge (MPD)' 'nginx static (MPD)')× (MPD); edge / nginx caching proxy = $(ratio 'ferrocast edge' 'nginx caching proxy')×. Edge hit ratio over the run: $hit; origin fetches: $fetches.
EOF
)
echo "$TABLE"
if ((WRITE)); then
  write_benchmarks_block edge-wrk "Cached segment serving: ferrocast edge vs nginx (wrk)" "$TABLE"
fi
