#!/usr/bin/env bash
# The web player in headless Chromium (tests/browser/watch.test.mjs), N runs with low latency
# on and M with it off (?ll=0); prints each run's JSON summary and the medians. --write puts
# the table into BENCHMARKS.md.
#   bench/browser.sh [--ll 3] [--no-ll 2] [--write]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
LL=3; NOLL=2; WRITE=0
while (($#)); do case "$1" in --ll) LL=$2; shift 2;; --no-ll) NOLL=$2; shift 2;; --write) WRITE=1; shift;; *) exit 2;; esac; done
ensure_pkgs chromium ffmpeg
npm ci --prefix web --no-audit --no-fund >/dev/null
cargo build -p ferrocast >/dev/null 2>&1
OUT=$(mktemp)
run() { # label, env...
  local label=$1; shift
  env "$@" node --test tests/browser/ 2>/dev/null | sed -n 's/^# \({"first_frame_s".*\)$/\1/p' | sed "s/^/$label /" >> "$OUT" || true
}
for _ in $(seq "$LL"); do run ll; done
for _ in $(seq "$NOLL"); do run noll WATCH_QUERY=ll=0 WATCH_SEGMENTS=6; done
cat "$OUT" >&2
TABLE=$(python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    label, js = line.split(" ", 1)
    rows.setdefault(label, []).append(json.loads(js))
out = ["| mode | runs | first frame (page load → playing), median [min–max] | live latency (dash.js getCurrentLiveLatency), median [min–max] | stalls per run | ended by |", "|---|---|---|---|---|---|"]
names = {"ll": "low latency (chunked CMAF, target 2.5 s)", "noll": "low latency off (?ll=0)"}
for k in ("ll", "noll"):
    r = rows.get(k, [])
    if not r:
        continue
    ff = [x["first_frame_s"] for x in r]; lat = [x["latency_s"] for x in r]
    out.append(f"| {names[k]} | {len(r)} | {statistics.median(ff):.2f} s [{min(ff):.2f}–{max(ff):.2f}] | {statistics.median(lat):.2f} s [{min(lat):.2f}–{max(lat):.2f}] | {', '.join(str(x['stalls']) for x in r)} | {', '.join(sorted(set(x['ended_by'] or '-' for x in r)))} |")
print("\n".join(out))
PY
)
TABLE="Last run: $(date -u '+%Y-%m-%d %H:%M UTC'), ferrocast $(git rev-parse --short HEAD), \`bench/browser.sh --ll $LL --no-ll $NOLL\`; load average $(cut -d' ' -f1-3 /proc/loadavg) on 2 cores.
Chromium $(chromium --version 2>/dev/null | awk '{print $2}') headless, dash.js $(node -p "require('./web/node_modules/dashjs/package.json').version"), publisher ffmpeg testsrc2 1280×720@30 on the same machine.

$TABLE"
echo "$TABLE"
rm -f "$OUT"
if ((WRITE)); then write_benchmarks_block browser "Browser playback: first frame and live latency (dash.js in Chromium)" "$TABLE"; fi
