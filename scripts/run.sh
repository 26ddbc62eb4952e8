#!/usr/bin/env bash
# One command to set up and run ferrocast on this machine: installs ffmpeg if missing,
# builds the release binary and starts `ferrocast serve` (extra arguments are passed on).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh run
# dash.js for the web player (/watch/NAME), pinned in web/package-lock.json.
npm ci --prefix web --omit=dev --no-audit --no-fund >/dev/null
cargo build --release --locked -p ferrocast
exec target/release/ferrocast serve "$@"
