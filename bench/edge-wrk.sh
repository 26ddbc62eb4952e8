#!/usr/bin/env bash
# The caching edge against nginx, in one run, in front of the same live origin:
# 1. cached segment and MPD serving with wrk: `ferrocast edge` vs nginx serving the same bytes
#    as static files vs nginx as a caching proxy (proxy_cache_lock on);
# 2. a burst of 10,000 requests for a fresh segment (`ferrocast-bench http-burst`): origin
#    fetches (edge: its /metrics delta; nginx: upstream requests in its access log) and
#    latency, for a segment just finished and for the next one, still being made;
# 3. memory per DASH viewer: `ferrocast-bench dash-play` players through the edge (edge and
#    origin RSS before → end), then the same through the nginx caching proxy.
# Prints Markdown; --write puts it into BENCHMARKS.md (blocks edge-wrk, edge-burst, dash-viewers).
#
#   bench/edge-wrk.sh [--duration 10] [--connections 100] [--burst 10000]
#                     [--burst-connections 1000] [--viewers 500] [--viewer-seconds 30]
#                     [--skip-wrk] [--write]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
DURATION=10
CONNS=100
BURST=10000
BURST_CONNS=1000
VIEWERS=500
VIEWER_SECS=30
SKIP_WRK=0
WRITE=0
ARGS="$*"
while (($#)); do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    --burst) BURST=$2; shift 2 ;;
    --burst-connections) BURST_CONNS=$2; shift 2 ;;
    --viewers) VIEWERS=$2; shift 2 ;;
    --viewer-seconds) VIEWER_SECS=$2; shift 2 ;;
    --skip-wrk) SKIP_WRK=1; shift ;;
    --write) WRITE=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

ensure_pkgs nginx wrk ffmpeg curl
build_release
cargo build --release --locked -p loadgen >/dev/null 2>&1 || cargo build --release -p loadgen
BIN=target/release/ferrocast
BENCH=target/release/ferrocast-bench
# Thousands of connections at once: the tool, the edge and nginx need the descriptors (a
# container may cap the hard limit: take what is allowed).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)

TMP=$(mktemp -d /tmp/ferrocast-edge-wrk.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT

RTMP=$(free_port); RTMPS=$(free_port); ORIGIN=$(free_port); EDGE=$(free_port); NGX=$(free_port); NGXP=$(free_port)

"$BIN" serve --data-dir "$TMP/data" --rtmp-addr 127.0.0.1:$RTMP --rtmps-addr 127.0.0.1:$RTMPS \
  --http-addr 127.0.0.1:$ORIGIN 2>"$TMP/serve.log" & PIDS+=($!)
ORIGIN_PID=$!
"$BIN" edge --origin http://127.0.0.1:$ORIGIN --http-addr 127.0.0.1:$EDGE 2>"$TMP/edge.log" & PIDS+=($!)
EDGE_PID=$!
sleep 1
# Live for as long as the script needs (stopped on exit).
ffmpeg -hide_banner -loglevel error -re -f lavfi -i testsrc2=size=1280x720:rate=30 \
  -f lavfi -i sine=frequency=440:sample_rate=48000 -t 900 -c:v libx264 -preset veryfast \
  -tune zerolatency -g 60 -b:v 2500k -c:a aac -f flv rtmp://127.0.0.1:$RTMP/live/bench \
  </dev/null >/dev/null 2>&1 & PIDS+=($!)

# Wait for three finished segments; take a finished 720 one (~0.75 MB) and the MPD.
for _ in $(seq 1 120); do
  compgen -G "$TMP/data/store/live/bench/*/v720/2.m4s" >/dev/null && break
  sleep 0.5
done
# Segment URLs carry the presentation id (the store's directory under the stream).
PRES=$(basename "$(dirname "$(dirname "$(compgen -G "$TMP/data/store/live/bench/*/v720/2.m4s" | head -1)")")")
SEG=/live/bench/$PRES/v720/1.m4s
MPD=/live/bench/manifest.mpd
mkdir -p "$TMP/www/live/bench/$PRES/v720"
cp "$TMP/data/store$SEG" "$TMP/www$SEG"
curl -s "http://127.0.0.1:$ORIGIN$MPD" > "$TMP/www/live/bench/manifest.mpd"
SEG_BYTES=$(stat -c %s "$TMP/www$SEG")
MPD_BYTES=$(stat -c %s "$TMP/www/live/bench/manifest.mpd")

mkdir -p "$TMP/nginx/logs" "$TMP/nginx/cache"
cat > "$TMP/nginx/nginx.conf" <<EOF
$( [[ $(id -u) -eq 0 ]] && echo "user root;" )
worker_processes 1;
worker_rlimit_nofile $NOFILE;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/logs/error.log warn;
events { worker_connections $((NOFILE * 3 / 4)); }
http {
  access_log off;
  sendfile on;
  keepalive_requests 100000;
  log_format up '\$request_uri \$status \$upstream_cache_status \$upstream_addr \$request_time';
  proxy_cache_path $TMP/nginx/cache keys_zone=seg:10m max_size=1g inactive=10m;
  server { listen 127.0.0.1:$NGX; root $TMP/www; types { video/mp4 m4s; application/dash+xml mpd; } }
  server {
    listen 127.0.0.1:$NGXP;
    proxy_cache seg; proxy_cache_lock on; proxy_ignore_headers Cache-Control; proxy_http_version 1.1;
    location / { proxy_pass http://127.0.0.1:$ORIGIN; proxy_cache_valid 200 10m; }
    # The MPD changes every update period: cache it 1 s, as the edge does.
    location ~ \.mpd\$ { proxy_pass http://127.0.0.1:$ORIGIN; proxy_cache_valid 200 1s; }
    # Segment requests of the bursts are logged: upstream_addr shows which went to the origin.
    location /live/bench/$PRES/v720/ {
      proxy_pass http://127.0.0.1:$ORIGIN; proxy_cache_valid 200 10m;
      access_log $TMP/nginx/logs/proxy.log up buffer=256k flush=1s;
    }
  }
}
EOF
nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" & PIDS+=($!)
NGINX_PID=$!
sleep 1

metric() { curl -s "http://127.0.0.1:$EDGE/metrics" | awk -v n="$1" '$1==n {print $2}'; }
jq_py() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }

# ---------------------------------------------------------------- 1. wrk on cached objects
if ((SKIP_WRK == 0)); then
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
hit=$(metric ferrocast_edge_hit_ratio)
fetches=$(metric ferrocast_edge_origin_fetches_total)

rps() { echo "${RES[$1]}" | cut -d' ' -f1; }
ratio() { python3 -c "print(f'{float(\"$(rps "$1")\")/float(\"$(rps "$2")\"):.2f}')"; }
TABLE=$(cat <<EOF
Last run: $(date -u '+%Y-%m-%d %H:%M UTC'), ferrocast $(git rev-parse --short HEAD), \`bench/edge-wrk.sh $ARGS\`.
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
fi

# ---------------------------------------------------------------- 2. burst on a fresh segment
STORE="$TMP/data/store/live/bench/$PRES/v720"
latest_done() { find "$STORE" -name '[0-9]*.m4s' -printf '%f\n' | sed 's/\.m4s$//' | sort -n | tail -1; }
# Waits until a segment newer than $1 is finished (in the origin's store); prints its number.
next_done() {
  local n
  for _ in $(seq 1 100); do
    n=$(latest_done)
    if ((n > $1)); then echo "$n"; return 0; fi
    sleep 0.1
  done
  echo "no new segment after $1" >&2; return 1
}
burst() { # name url [metrics-url] → json file
  local out="$TMP/burst-$1.json"
  "$BENCH" --quiet http-burst --url "$2" --requests "$BURST" --connections "$BURST_CONNS" --timeout 120 \
    ${3:+--metrics "$3"} --json "$out" >&2 || true
  echo "$out"
}
upstream_count() { # path → requests nginx sent upstream for it
  sleep 1.5 # the access log buffer flushes every second
  awk -v p="$1" '$1==p && $4!="-" {n++} END {print n+0}' "$TMP/nginx/logs/proxy.log"
}
row() { # label server json upstream
  python3 - "$@" <<'PY'
import json, sys
label, server, path, up = sys.argv[1:5]
d = json.load(open(path))
t = d.get("total_ms") or {}
h = d.get("ttfb_ms") or {}
xc = ", ".join(f"{k} {v}" for k, v in sorted(d["x_cache"].items()))
failed = sum(d["errors"].values()) + sum(v for k, v in d["statuses"].items() if k != "200")
f = lambda x: "–" if x is None else f"{x:.0f}"
print(f"| {label} | {server} | {d['ok']} / {d['requests']} | {failed} | {d['distinct_bodies']} | **{up}** | "
      f"{f(h.get('p50'))} / {f(h.get('p99'))} | {f(t.get('p50'))} / {f(t.get('p90'))} / {f(t.get('p99'))} / {f(t.get('max'))} | {xc} |")
PY
}
LOAD_BURST=$(cut -d' ' -f1-3 /proc/loadavg)
# a) just finished: nobody asked for it yet, the origin has it whole.
N=$(next_done "$(latest_done)")
E1=$(burst edge-done "http://127.0.0.1:$EDGE/live/bench/$PRES/v720/$N.m4s" "http://127.0.0.1:$EDGE/metrics")
E1_UP=$(jq_py "$E1" 'int(d["metrics_delta"].get("ferrocast_edge_origin_fetches_total", -1))')
N2=$(next_done "$(latest_done)")
G1=$(burst nginx-done "http://127.0.0.1:$NGXP/live/bench/$PRES/v720/$N2.m4s")
G1_UP=$(upstream_count "/live/bench/$PRES/v720/$N2.m4s")
# b) still being made: the one after the newest finished segment (starts now, ends ~4 s later).
N3=$(next_done "$(latest_done)") # just finished, so N3 + 1 has just started
E2=$(burst edge-next "http://127.0.0.1:$EDGE/live/bench/$PRES/v720/$((N3 + 1)).m4s" "http://127.0.0.1:$EDGE/metrics")
E2_UP=$(jq_py "$E2" 'int(d["metrics_delta"].get("ferrocast_edge_origin_fetches_total", -1))')
N4=$(next_done "$(latest_done)")
G2=$(burst nginx-next "http://127.0.0.1:$NGXP/live/bench/$PRES/v720/$((N4 + 1)).m4s")
G2_UP=$(upstream_count "/live/bench/$PRES/v720/$((N4 + 1)).m4s")
BURST_TABLE=$(cat <<EOF
Last run: $(date -u '+%Y-%m-%d %H:%M UTC'), ferrocast $(git rev-parse --short HEAD), \`bench/edge-wrk.sh $ARGS\`.
Machine: $(nproc) cores, load average before the bursts: $LOAD_BURST.
\`ferrocast-bench http-burst --requests $BURST --connections $BURST_CONNS\`: $BURST_CONNS connections are opened first, then each sends
$((BURST / BURST_CONNS)) requests back to back, all starting at the same instant, for a 720×720 segment (~$SEG_BYTES bytes) that
no one has asked the cache for. Origin fetches: the edge's \`ferrocast_edge_origin_fetches_total\` before → after; nginx
(\`proxy_cache_lock on\`, default lock timeout 5 s): lines of its access log for that URL with an \`\$upstream_addr\`.
Latency is per request, from sending it: to the response head, and to the last body byte; the client, the servers and
the publisher share the 2 cores.

| segment | server | 200 OK | failed | distinct bodies | origin fetches | head p50 / p99 (ms) | complete p50 / p90 / p99 / max (ms) | X-Cache |
|---|---|---|---|---|---|---|---|---|
$(row "finished" "ferrocast edge" "$E1" "$E1_UP")
$(row "finished" "nginx caching proxy" "$G1" "$G1_UP")
$(row "being made" "ferrocast edge" "$E2" "$E2_UP")
$(row "being made" "nginx caching proxy" "$G2" "$G2_UP")
EOF
)
echo "$BURST_TABLE"
if ((WRITE)); then
  write_benchmarks_block edge-burst "Burst of requests for a fresh segment: ferrocast edge vs nginx proxy_cache_lock" "$BURST_TABLE"
fi

# ---------------------------------------------------------------- 3. memory per DASH viewer
view() { # name url pid... → json (after the report on stderr)
  local name=$1 url=$2; shift 2
  local out="$TMP/dash-$name.json" pids=()
  for p in "$@"; do pids+=(--server-pid "$p"); done
  "$BENCH" --quiet dash-play --url "$url" --clients "$VIEWERS" --duration "$VIEWER_SECS" --ramp-ms 10 \
    "${pids[@]}" --server-self-only --json "$out" >&2 || true
  echo "$out"
}
LOAD_VIEW=$(cut -d' ' -f1-3 /proc/loadavg)
CACHE0=$(metric ferrocast_edge_cache_bytes)
DE=$(view edge "http://127.0.0.1:$EDGE/live/bench/manifest.mpd" "$EDGE_PID" "$ORIGIN_PID")
CACHE1=$(metric ferrocast_edge_cache_bytes)
NGINX_WORKER=$(cat "/proc/$NGINX_PID/task/$NGINX_PID/children" | awk '{print $1}')
DN=$(view nginx "http://127.0.0.1:$NGXP/live/bench/manifest.mpd" "$NGINX_WORKER" "$ORIGIN_PID")
VIEW_TABLE=$(python3 - "$DE" "$DN" "$CACHE0" "$CACHE1" <<'PY'
import json, sys
de, dn = (json.load(open(p)) for p in sys.argv[1:3])
cache_kib = (float(sys.argv[4]) - float(sys.argv[3])) / 1024
def line(label, d, i, extra=""):
    s = d["servers"][i] if len(d["servers"]) > i else None
    if s is None:
        return f"| {label} | – | – | – | – | – |"
    per = d["server_rss_per_viewer_kib"][i]
    per = float("nan") if per is None else per
    active = d["clients"] - d["errors"]
    return (f"| {label} | {s['rss_before_kib']/1024:.1f} → {s['rss_end_kib']/1024:.1f} MiB | "
            f"{per:.1f}{extra} | {s['cpu_pct_of_core']:.1f} % | {active} | {d['stalls']} ({d['viewers_with_stalls']}) |")
def hit(d):
    x = d["x_cache"]; n = sum(x.values())
    return sum(v for k, v in x.items() if k in ("HIT", "COALESCED", "STALE")) / n if n else 0
per_adj = ((de["servers"][0]["rss_end_kib"] - de["servers"][0]["rss_before_kib"]) - cache_kib) / max(1, de["clients"] - de["errors"])
print(f"| server (process) | RSS before → end | KiB per viewer | CPU (last {de['window_s']:.0f} s) | viewers playing | stalls (viewers) |")
print("|---|---|---|---|---|---|")
print(line("ferrocast edge", de, 0, f" ({per_adj:.1f} without the {cache_kib/1024:.1f} MiB the cache grew)"))
print(line("ferrocast origin (serve, without its ffmpeg)", de, 1))
print(line("nginx caching proxy (worker)", dn, 0))
print(line("ferrocast origin behind nginx", dn, 1))
print()
for name, d in (("edge", de), ("nginx", dn)):
    su = d.get("startup_s") or {}
    errs = sum(d['http_errors'].values())
    print(f"Through {'the edge' if name == 'edge' else 'nginx'}: {d['segments']} segments, {d['total_mbps']:.0f} Mbit/s in all, startup p50 {su.get('p50', 0):.2f} s / max {su.get('max', 0):.2f} s, "
          f"latency p50 {(d.get('latency_s') or {}).get('p50', 0):.1f} s, rendition switches up/down {d['switches'][0]}/{d['switches'][1]}, "
          f"HTTP errors {errs} ({d['segment_errors']} on segments, {errs - d['segment_errors']} on MPD refreshes: {', '.join(f'{k} {v}' for k, v in sorted(d['http_errors'].items())) or 'none'}), X-Cache {', '.join(f'{k} {v}' for k, v in sorted(d['x_cache'].items()))}"
          + (f" (hit ratio seen by the players {hit(d):.4f}), {d['object_misses']} origin fetches for {d['objects']} segment URLs" if name == "edge" else "")
          + f"; segment responses slower than 1 s: {', '.join(f'{k} {v}' for k, v in sorted(d['slow'].items())) or 'none'}.")
PY
)
VIEW_TABLE=$(cat <<EOF
Last run: $(date -u '+%Y-%m-%d %H:%M UTC'), ferrocast $(git rev-parse --short HEAD), \`bench/edge-wrk.sh $ARGS\`.
Machine: $(nproc) cores, load average before: $LOAD_VIEW.
\`ferrocast-bench dash-play --clients $VIEWERS --duration $VIEWER_SECS --ramp-ms 10\` (simulated players, start 8 s behind live, v400 → v720 by
throughput, 2 s MPD refresh), first through the edge, then through the nginx caching proxy, on the same live origin.
RSS: the process alone (\`--server-self-only\`: the origin's ffmpeg transcoder is not counted), before the first
player → at the end with all of them connected; per viewer = the growth / players playing. CPU over the run after the
ramp and 3 s.

$VIEW_TABLE
EOF
)
echo "$VIEW_TABLE"
if ((WRITE)); then
  write_benchmarks_block dash-viewers "Memory per DASH viewer: edge and origin with 500 simulated players" "$VIEW_TABLE"
fi
# The full reports (every request's and every player's numbers) outlive the temp dir.
mkdir -p /tmp/ferrocast-edge-wrk-last && cp "$TMP"/*.json /tmp/ferrocast-edge-wrk-last/ 2>/dev/null || true
echo "JSON reports: /tmp/ferrocast-edge-wrk-last/" >&2
