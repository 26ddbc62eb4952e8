#!/usr/bin/env bash
# One command to set up and pass all tests: installs the real clients the tests use (ffmpeg,
# rtmpdump, GStreamer, Chromium; dash.js and playwright-core from npm), checks formatting
# (cargo fmt) and lints (clippy, warnings are errors), runs the whole workspace's tests and
# the browser tests, then a short bounded cargo-fuzz run of every fuzz target (FUZZ_SECONDS
# each, 0 to skip).
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_SECONDS="${FUZZ_SECONDS:-20}"
scripts/deps.sh test
npm ci --prefix web --no-audit --no-fund >/dev/null
# Style and lints first: they fail in seconds where the tests take minutes.
for tool in rustfmt clippy; do
  cargo "${tool/rustfmt/fmt}" --version >/dev/null 2>&1 || rustup component add "$tool"
done
cargo fmt --all --check
(cd fuzz && cargo fmt --check)
cargo clippy --locked --workspace --all-targets -- -D warnings
cargo build --locked --workspace --all-targets
# One test at a time: each crate's integration tests are one binary now, and two of its
# heavy scenarios at once (a cluster failover beside the 1,000-request edge burst) on a
# 2-core box time requests out that pass alone.
RUST_TEST_THREADS=1 cargo test --locked --workspace
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
