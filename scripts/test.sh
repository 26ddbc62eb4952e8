#!/usr/bin/env bash
# One command to set up and pass all tests: installs the real clients the tests use (ffmpeg,
# rtmpdump, GStreamer, Chromium; dash.js and playwright-core from npm), runs the whole
# workspace's tests and the browser test, then a short bounded cargo-fuzz run of every fuzz
# target (FUZZ_SECONDS each, 0 to skip).
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_SECONDS="${FUZZ_SECONDS:-20}"
scripts/deps.sh test
npm ci --prefix web --no-audit --no-fund >/dev/null
cargo build --locked --workspace --all-targets
cargo test --locked --workspace
# The web player in Debian's headless Chromium (dash.js, while ffmpeg publishes).
node --test tests/browser/
if [[ "$FUZZ_SECONDS" != 0 ]]; then
  command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
  # cargo-fuzz wants nightly flags; the stable toolchain accepts them with RUSTC_BOOTSTRAP.
  export RUSTC_BOOTSTRAP=1
  (cd fuzz && cargo fuzz build -O)
  for target in $(cd fuzz && cargo fuzz list); do
    mkdir -p "fuzz/corpus/$target"
    echo "fuzzing $target for ${FUZZ_SECONDS}s" >&2
    (cd fuzz && cargo fuzz run -O "$target" "corpus/$target" "seeds/$target" -- \
      -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 -print_final_stats=0 2>&1 | tail -n 3)
  done
fi
echo "all tests passed"
