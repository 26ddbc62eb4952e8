#!/usr/bin/env bash
# A ferrocast cluster on one machine (127.0.0.1): Redis, an S3-compatible server (s3s-fs),
# two encoders, one gateway, one edge.
#
#   scripts/cluster.sh demo [--streams N]   start it, publish N test streams over RTMPS to the
#                                           edge, play each one's DASH through the edge with
#                                           ffprobe, show where each stream landed, tear down
#   scripts/cluster.sh up [--dir DIR]       start it and keep it running until Ctrl-C (or
#                                           `scripts/cluster.sh down --dir DIR`); the ports are
#                                           written to DIR/cluster.env
#   scripts/cluster.sh down --dir DIR       stop a cluster started with `up`
#
# CLUSTER_ENCODER_ARGS adds flags to both encoders (e.g. "--publish-key cam=SECRET").
#
# Installs what is missing (redis-server and ffmpeg from apt, s3s-fs with cargo). Uses
# $FERROCAST_BIN, else builds and uses target/debug/ferrocast.
set -euo pipefail
cd "$(dirname "$0")/.."

cmd=${1:-demo}
shift || true
dir=""
streams=4
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir=$2; shift 2 ;;
    --streams) streams=$2; shift 2 ;;
    *) echo "unknown option $1 (see the top of $0)" >&2; exit 2 ;;
  esac
done

S3S_VERSION=0.14.1
sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

need() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v ffmpeg >/dev/null || missing+=(ffmpeg)
  command -v curl >/dev/null || missing+=(curl)
  if [ ${#missing[@]} -gt 0 ]; then
    sudo_ apt-get update -q && sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
  fi
  export PATH="$HOME/.cargo/bin:$PATH"
  if ! command -v s3s-fs >/dev/null; then
    echo "installing s3s-fs $S3S_VERSION (an S3 server over a local directory) with cargo…" >&2
    cargo install --quiet --locked "s3s-fs@$S3S_VERSION" --features binary
  fi
  if [ -z "${FERROCAST_BIN:-}" ]; then
    cargo build --quiet --locked -p ferrocast
    FERROCAST_BIN=$PWD/target/debug/ferrocast
  fi
}

free_port() {
  python3 -c 'import random,socket
while True:
    p=random.randint(20000,40000); s=socket.socket()
    try: s.bind(("127.0.0.1",p)); s.close(); print(p); break
    except OSError: pass'
}

wait_http() { # URL what
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.2
  done
  echo "cluster: $2 did not come up ($1); its log: $dir/$2.log" >&2
  tail -20 "$dir/$2.log" >&2 || true
  return 1
}

start() { # name command...
  local name=$1; shift
  "$@" >"$dir/$name.log" 2>&1 &
  echo $! >"$dir/$name.pid"
}

up() {
  need
  [ -n "$dir" ] || dir=$(mktemp -d /tmp/ferrocast-cluster.XXXXXX)
  mkdir -p "$dir/s3/ferrocast"
  REDIS_PORT=$(free_port); S3_PORT=$(free_port)
  ENC1_RTMP=$(free_port); ENC1_HTTP=$(free_port); ENC2_RTMP=$(free_port); ENC2_HTTP=$(free_port)
  GW_RTMP=$(free_port); GW_HTTP=$(free_port)
  EDGE_RTMP=$(free_port); EDGE_RTMPS=$(free_port); EDGE_HTTP=$(free_port)
  REDIS_URL=redis://127.0.0.1:$REDIS_PORT
  export AWS_ENDPOINT_URL=http://127.0.0.1:$S3_PORT AWS_ACCESS_KEY_ID=ferrocast AWS_SECRET_ACCESS_KEY=ferrocast-secret AWS_REGION=us-east-1
  export RUST_LOG=${RUST_LOG:-info}

  start redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no
  start s3 s3s-fs --host 127.0.0.1 --port "$S3_PORT" --access-key "$AWS_ACCESS_KEY_ID" --secret-key "$AWS_SECRET_ACCESS_KEY" "$dir/s3"
  for _ in $(seq 1 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  for _ in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$S3_PORT/" && break; sleep 0.1; done
  start encoder-1 "$FERROCAST_BIN" encoder --redis "$REDIS_URL" --store s3://ferrocast --id enc-1 \
    --rtmp-addr 127.0.0.1:$ENC1_RTMP --http-addr 127.0.0.1:$ENC1_HTTP --data-dir "$dir/encoder-1" ${CLUSTER_ENCODER_ARGS:-}
  start encoder-2 "$FERROCAST_BIN" encoder --redis "$REDIS_URL" --store s3://ferrocast --id enc-2 \
    --rtmp-addr 127.0.0.1:$ENC2_RTMP --http-addr 127.0.0.1:$ENC2_HTTP --data-dir "$dir/encoder-2" ${CLUSTER_ENCODER_ARGS:-}
  start gateway "$FERROCAST_BIN" gateway --redis "$REDIS_URL" \
    --rtmp-addr 127.0.0.1:$GW_RTMP --http-addr 127.0.0.1:$GW_HTTP --data-dir "$dir/gateway"
  start edge "$FERROCAST_BIN" edge --redis "$REDIS_URL" --gateway rtmp://127.0.0.1:$GW_RTMP \
    --rtmp-addr 127.0.0.1:$EDGE_RTMP --rtmps-addr 127.0.0.1:$EDGE_RTMPS --http-addr 127.0.0.1:$EDGE_HTTP --data-dir "$dir/edge"
  wait_http "http://127.0.0.1:$ENC1_HTTP/healthz" encoder-1
  wait_http "http://127.0.0.1:$ENC2_HTTP/healthz" encoder-2
  wait_http "http://127.0.0.1:$GW_HTTP/healthz" gateway
  wait_http "http://127.0.0.1:$EDGE_HTTP/healthz" edge
  cat >"$dir/cluster.env" <<EOF
CLUSTER_DIR=$dir
FERROCAST_BIN=$FERROCAST_BIN
S3S_BIN=$(command -v s3s-fs)
REDIS_PORT=$REDIS_PORT
REDIS_URL=$REDIS_URL
S3_PORT=$S3_PORT
AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL
AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID
AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
AWS_REGION=$AWS_REGION
ENC1_RTMP=$ENC1_RTMP
ENC1_HTTP=$ENC1_HTTP
ENC2_RTMP=$ENC2_RTMP
ENC2_HTTP=$ENC2_HTTP
GW_RTMP=$GW_RTMP
GW_HTTP=$GW_HTTP
EDGE_RTMP=$EDGE_RTMP
EDGE_RTMPS=$EDGE_RTMPS
EDGE_HTTP=$EDGE_HTTP
EOF
  echo "cluster up in $dir (logs: $dir/*.log)"
  echo "  publish: ffmpeg … -f flv rtmps://127.0.0.1:$EDGE_RTMPS/live/NAME   (or rtmp://127.0.0.1:$EDGE_RTMP/live/NAME)"
  echo "  watch:   http://127.0.0.1:$EDGE_HTTP/live/NAME/manifest.mpd   (edge cache; origins: encoders)"
  echo "  health:  http://127.0.0.1:$EDGE_HTTP/healthz  http://127.0.0.1:$GW_HTTP/healthz  http://127.0.0.1:$ENC1_HTTP/healthz"
}

down() {
  [ -n "$dir" ] && [ -d "$dir" ] || { echo "down: --dir DIR of a running cluster is required" >&2; exit 2; }
  for name in edge gateway encoder-1 encoder-2 publisher-1 publisher-2 publisher-3 publisher-4 s3 redis; do
    [ -f "$dir/$name.pid" ] && kill "$(cat "$dir/$name.pid")" 2>/dev/null || true
  done
  sleep 1
  for f in "$dir"/*.pid; do [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null || true; done
  echo "cluster in $dir stopped"
}

demo() {
  up
  trap 'down' EXIT
  local names=()
  for i in $(seq 1 "$streams"); do
    names+=("cam$i")
    start "publisher-$i" ffmpeg -hide_banner -loglevel error -re -f lavfi -i "testsrc2=size=320x240:rate=15" \
      -f lavfi -i "sine=frequency=440:sample_rate=48000" -t 40 -c:v libx264 -preset ultrafast -tune zerolatency -g 30 \
      -c:a aac -f flv "rtmps://127.0.0.1:$EDGE_RTMPS/live/cam$i"
  done
  local ok=0
  for n in "${names[@]}"; do
    local mpd="http://127.0.0.1:$EDGE_HTTP/live/$n/manifest.mpd"
    for _ in $(seq 1 150); do curl -fsS -o /dev/null "$mpd" 2>/dev/null && break; sleep 0.2; done
    local where="?"
    # Each stream is live on one encoder and a hot-standby copy on the other.
    curl -fsS "http://127.0.0.1:$ENC1_HTTP/api/streams" | grep -q "\"name\":\"$n\",\"state\":\"live\"" && where="enc-1 (standby enc-2)"
    curl -fsS "http://127.0.0.1:$ENC2_HTTP/api/streams" | grep -q "\"name\":\"$n\",\"state\":\"live\"" && where="enc-2 (standby enc-1)"
    local probe
    probe=$(ffprobe -v error -show_entries stream=codec_name,width,height -of csv=p=0 "$mpd" 2>&1 | sort -u | tr '\n' ' ')
    echo "$n: on $where; DASH through the edge: $probe"
    case "$probe" in *h264,720,720*h264,400,400*|*h264,400,400*h264,720,720*) ok=$((ok + 1)) ;; esac
  done
  echo "edge cache: $(curl -fsS "http://127.0.0.1:$EDGE_HTTP/metrics" | grep -E '^ferrocast_edge_(hits|misses|origin_fetches)_total' | tr '\n' ' ')"
  if [ "$ok" = "$streams" ]; then echo "demo ok: $ok/$streams streams played through the edge"; trap 'down; rm -rf "$dir"' EXIT; else echo "demo FAILED: $ok/$streams streams played (logs in $dir)" >&2; exit 1; fi
}

case "$cmd" in
  up) up; if [ -z "${CLUSTER_DETACH:-}" ]; then trap down EXIT; echo "Ctrl-C stops it"; wait; fi ;;
  down) down ;;
  demo) demo ;;
  *) echo "usage: $0 demo|up|down [--dir DIR] [--streams N]" >&2; exit 2 ;;
esac
