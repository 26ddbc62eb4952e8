#!/usr/bin/env bash
# Glass-to-glass read from the pixels: `ferrocast serve` on free 127.0.0.1 ports, one
# `ferrocast-g2g publish` (1280×720 30 fps, the capture time stamped into every frame), then,
# one after the other, SECS seconds of each player reading the stamp of every frame it shows:
#   rtmp    ffmpeg playing RTMP (-fflags nobuffer -flags low_delay), ferrocast-g2g read-rtmp
#   dashjs  the server's /watch/NAME page (dash.js) in headless Chromium
#   shaka   Shaka Player (lowLatencyMode) on the MPD, in headless Chromium
#   hlsjs   hls.js (lowLatencyMode) on /live/NAME/master.m3u8, in headless Chromium
#   whep    a plain RTCPeerConnection playing /whep/NAME (WebRTC, the source), in headless Chromium
# and prints one Markdown table. --whip publishes the same picture over WHIP instead of RTMP
# (ffmpeg 9's `whip` muxer, H.264 baseline + Opus; $FFMPEG_WHIP or the one scripts/deps.sh
# fetches), so every player reads a WebRTC broadcaster's stream. --edge also plays each browser player through a
# `ferrocast edge` in front of the server (rows "… via edge"). --write puts it into
# BENCHMARKS.md ("Glass-to-glass (from the pixels)").
#   bench/g2g.sh [--secs 60] [--players "rtmp dashjs shaka hlsjs"] [--whip] [--edge] [--release] [--write] [--keep-tmp]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
SECS=60; PLAYERS="rtmp dashjs shaka hlsjs"; PROFILE=debug; WRITE=0; KEEP_TMP=0; EDGE=0; WHIP=0
while (($#)); do case "$1" in
  --secs) SECS=$2; shift 2;;
  --players) PLAYERS=$2; shift 2;;
  --edge) EDGE=1; shift;;
  --whip) WHIP=1; shift;;
  --release) PROFILE=release; shift;;
  --write) WRITE=1; shift;;
  --keep-tmp) KEEP_TMP=1; shift;;
  *) echo "usage: bench/g2g.sh [--secs 60] [--players \"rtmp dashjs shaka hlsjs\"] [--whip] [--edge] [--release] [--write] [--keep-tmp]" >&2; exit 2;;
esac; done

log() { echo "[g2g $(date +%T)] $*" >&2; }
PIDS=(); TMP=$(mktemp -d /tmp/ferrocast-g2g.XXXXXX)
trap cleanup EXIT

ensure_pkgs chromium ffmpeg
[[ -d web/node_modules/shaka-player && -d web/node_modules/hls.js ]] || npm ci --prefix web --no-audit --no-fund >/dev/null
log "building ferrocast and ferrocast-g2g ($PROFILE)"
flags=(); [[ $PROFILE == release ]] && flags=(--release)
cargo build "${flags[@]}" -p ferrocast -p g2g >/dev/null 2>&1 || cargo build "${flags[@]}" -p ferrocast -p g2g
# Copies, so that another build into a shared target dir cannot swap them mid-run.
TARGET=${CARGO_TARGET_DIR:-target}
cp "$TARGET/$PROFILE/ferrocast" "$TARGET/$PROFILE/ferrocast-g2g" "$TMP/"

read -r RTMP RTMPS HTTP UDP EDGE_HTTP < <(free_ports 5)
BASE=http://127.0.0.1:$HTTP
STREAM=g2g
FERROCAST_WEB_DIR=$PWD/web "$TMP/ferrocast" serve --data-dir "$TMP/data" --rtmp-addr "127.0.0.1:$RTMP" \
  --rtmps-addr "127.0.0.1:$RTMPS" --http-addr "127.0.0.1:$HTTP" --webrtc-addr "127.0.0.1:$UDP" >"$TMP/server.log" 2>&1 &
PIDS+=($!); SERVER=$!
wait_port "$HTTP" ferrocast "$SERVER" "$TMP/server.log"
if ((EDGE)); then
  "$TMP/ferrocast" edge --origin "$BASE" --http-addr "127.0.0.1:$EDGE_HTTP" >"$TMP/edge.log" 2>&1 &
  PIDS+=($!); EDGE_PID=$!
  wait_port "$EDGE_HTTP" "ferrocast edge" "$EDGE_PID" "$TMP/edge.log"
fi
if ((WHIP)); then
  FFMPEG_WHIP=${FFMPEG_WHIP:-$HOME/.cache/ferrocast/ffmpeg-whip}
  [[ -x $FFMPEG_WHIP ]] || scripts/deps.sh test
  # Open mode (no keys): the server takes any Bearer token.
  FFMPEG=$FFMPEG_WHIP "$TMP/ferrocast-g2g" publish "$BASE/whip/$STREAM" --key g2g >"$TMP/publish.log" 2>&1 &
  PUBLISHED_BY="WHIP by ffmpeg $("$FFMPEG_WHIP" -version | awk 'NR==1{print $3}') (H.264 constrained baseline, Opus)"
else
  "$TMP/ferrocast-g2g" publish "rtmp://127.0.0.1:$RTMP/live/$STREAM" >"$TMP/publish.log" 2>&1 &
  PUBLISHED_BY="RTMP, AAC"
fi
PIDS+=($!); PUBLISHER=$!
# The players join an established stream: wait until two whole segments are made (the HLS
# media playlist lists finished segments; the MPD addresses them by duration, from the clock).
log "publishing; waiting for 2 finished segments"
for i in $(seq 150); do
  alive_or_die publisher "$PUBLISHER" "$TMP/publish.log"
  n=$(curl -sf "$BASE/live/$STREAM/v720/index.m3u8" 2>/dev/null | grep -c '^#EXTINF' || true)
  ((${n:-0} >= 2)) && break
  ((i == 150)) && { echo "no 2 finished segments after 30 s" >&2; tail -20 "$TMP/server.log" >&2; exit 1; }
  sleep 0.2
done

OUT=$TMP/results.jsonl
for p in $PLAYERS; do
  log "$p: $SECS s"
  alive_or_die ferrocast "$SERVER" "$TMP/server.log"
  alive_or_die publisher "$PUBLISHER" "$TMP/publish.log"
  if [[ $p == rtmp ]]; then
    timeout $((SECS + 60)) "$TMP/ferrocast-g2g" read-rtmp "rtmp://127.0.0.1:$RTMP/live/$STREAM" --secs "$SECS" --quiet \
      2>>"$TMP/read-rtmp.log" | tail -1 | python3 -c 'import json,sys; d=json.load(sys.stdin); d["player"]="rtmp"; print(json.dumps(d))' >>"$OUT" \
      || echo "{\"player\":\"rtmp\",\"error\":\"read-rtmp failed\"}" >>"$OUT"
  else
    timeout $((SECS + 120)) node tests/browser/g2g.mjs --base "$BASE" --stream "$STREAM" --player "$p" --secs "$SECS" \
      2>>"$TMP/browser.log" >>"$OUT" || true
    if ((EDGE)) && [[ $p != whep ]]; then
      log "$p via the edge: $SECS s"
      timeout $((SECS + 120)) node tests/browser/g2g.mjs --base "http://127.0.0.1:$EDGE_HTTP" --stream "$STREAM" --player "$p" --secs "$SECS" \
        2>>"$TMP/browser.log" | python3 -c 'import json,sys
for l in sys.stdin:
    d=json.loads(l); d["player"] += "@edge"; print(json.dumps(d))' >>"$OUT" || true
    fi
  fi
  tail -1 "$OUT" | cut -c1-400 >&2
done

# The server's own latency breakdown (median of its last minute, from /metrics): capture of a
# frame (the stream's capture clock) → ingest, → written to the transcoder, → its CMAF chunk
# complete, per rendition. What a player adds on top is its buffer.
BREAKDOWN=$(curl -sf "$BASE/metrics" | python3 -c '
import re, sys
med = {}
for line in sys.stdin:
    m = re.match(r"ferrocast_latency_(\w+)_seconds\{(?:rendition=\"(\w+)\",)?quantile=\"0.5\"\} (\S+)", line)
    if m:
        stage, rend, v = m.groups()
        med[stage + (" " + rend if rend else "")] = float(v)
names = [("ingest", "capture → ingest (above the fastest frame)"), ("transcoder_in", "capture → transcoder input"),
         ("chunk v720", "capture → chunk complete, 720"), ("chunk v400", "capture → chunk complete, 400"),
         ("chunk a64", "capture → chunk complete, audio")]
print("| stage (median, server side) | s |")
print("|---|---|")
for k, n in names:
    if k in med:
        print(f"| {n} | {med[k]:.3f} |")
' || echo "(no /metrics breakdown)")
echo "$BREAKDOWN" >&2

# The publisher first, so that its ffmpeg does not see the server go away.
kill -TERM "$PUBLISHER" 2>/dev/null || true
wait "$PUBLISHER" 2>/dev/null || true

TABLE=$(python3 - "$OUT" <<'PY'
import json, sys
names = {"rtmp": "RTMP, ffmpeg (`-fflags nobuffer -flags low_delay`)", "dashjs": "dash.js (`/watch` page)",
         "shaka": "Shaka (lowLatencyMode, MPD)", "hlsjs": "hls.js (lowLatencyMode, master.m3u8)",
         "whep": "WHEP (RTCPeerConnection, `/whep/NAME`)"}
f = lambda v: "–" if v is None else f"{v:.2f} s"
out = ["| player | median | p90 | first frame | stalls (gaps > 0.5 s) | frames read / misread | player's own estimate |",
       "|---|---|---|---|---|---|---|"]
for line in open(sys.argv[1]):
    d = json.loads(line)
    player, _, via = d["player"].partition("@")
    d["player"] = player
    name = names.get(player, player) + (" via `ferrocast edge`" if via else "")
    if "error" in d:
        out.append(f"| {name} | failed: {d['error'][:80]} | | | | | |")
        continue
    stalls = str(d["stalls"]) + (f" (longest {d['longest_gap_s']:.2f} s)" if d["stalls"] else "")
    own = f(d.get("player_latency_s")) if d["player"] != "rtmp" else "–"
    heights = d.get("heights")
    rend = f" ({'/'.join(sorted(heights, key=int))}p)" if heights else ""
    first = f(d['first_frame_s'])
    if (d.get("whep") or {}).get("first_frame_after_post_s") is not None:
        first += f" ({f(d['whep']['first_frame_after_post_s'])} after the POST)"
    out.append(f"| {name}{rend} | **{f(d['median_s'])}** | {f(d['p90_s'])} | {first} | {stalls} | "
               f"{d['samples']} / {d['misreads']} | {own} |")
print("\n".join(out))
PY
)
FLAGS=""; ((WHIP)) && FLAGS+=" --whip"; ((EDGE)) && FLAGS+=" --edge"
CPU=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)
TABLE="Last run: $(date -u '+%Y-%m-%d %H:%M UTC'), ferrocast $(git rev-parse --short HEAD) ($PROFILE build), \`bench/g2g.sh --secs $SECS$FLAGS\`; $(nproc) cores ($CPU), load average $(cut -d' ' -f1-3 /proc/loadavg) at the end.
Publisher \`ferrocast-g2g publish\`: 1280×720 30 fps moving test picture, x264 veryfast zerolatency 2.5 Mbit/s, keyframe every 2 s, audio on the same clock; published over $PUBLISHED_BY; one ladder transcoding (720/400). Each player measured for $SECS s after its first frame, one after the other, on the same stream.
Chromium $(chromium --version 2>/dev/null | awk '{print $2}') headless; dash.js $(node -p "require('./web/node_modules/dashjs/package.json').version"), Shaka $(node -p "require('./web/node_modules/shaka-player/package.json').version"), hls.js $(node -p "require('./web/node_modules/hls.js/package.json').version"); ffmpeg $(ffmpeg -version | awk 'NR==1{print $3}').

$TABLE

$BREAKDOWN

Glass-to-glass: capture (the publisher's clock when it made the frame) → the frame's display time (browser: \`requestVideoFrameCallback\`'s expectedDisplayTime; RTMP: when ffmpeg has decoded it), read from the stamp in the frame's pixels, median and p90 over every frame shown. First frame: page navigation (browser) or ffmpeg start (RTMP) → first frame shown. \"Player's own estimate\": the player's live latency (dash.js \`getCurrentLiveLatency\`, Shaka \`getStats().liveLatency\`, hls.js \`latency\`), median of one sample every 2 s."
echo "$TABLE"
if ((WRITE)); then write_benchmarks_block g2g "Glass-to-glass (from the pixels)" "$TABLE"; fi
