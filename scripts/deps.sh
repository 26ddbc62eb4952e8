#!/usr/bin/env bash
# Installs the Debian packages ferrocast needs (run) or its tests need (test), only if missing.
# Usage: scripts/deps.sh run|test
set -euo pipefail
want=(ffmpeg)
if [[ "${1:-run}" == test ]]; then
  want+=(redis-server curl chromium openssl rtmpdump gstreamer1.0-tools gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-libav vlc-bin vlc-plugin-base)
fi
# npm (for dash.js and, in tests, playwright-core): use the machine's Node if it has one,
# else Debian's.
command -v npm >/dev/null || want+=(nodejs npm)
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  echo "installing: ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The WHIP test's publisher: ffmpeg 9 with the `whip` muxer (Debian's 5.1 has none), the static
# build inside the PyPI wheel imageio-ffmpeg, unpacked to ~/.cache/ferrocast/ffmpeg-whip.
WHIP_FFMPEG="$HOME/.cache/ferrocast/ffmpeg-whip"
if [[ "${1:-run}" == test ]] && [[ ! -x "$WHIP_FFMPEG" ]]; then
  echo "fetching ffmpeg 9 (imageio-ffmpeg 0.8.1 wheel) for the WHIP test" >&2
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp" imageio-ffmpeg==0.8.1
  mkdir -p "$(dirname "$WHIP_FFMPEG")"
  python3 - "$tmp" "$WHIP_FFMPEG" <<'PY'
import glob, shutil, sys, zipfile
z = zipfile.ZipFile(glob.glob(sys.argv[1] + "/imageio_ffmpeg-*.whl")[0])
name = next(n for n in z.namelist() if "/binaries/ffmpeg-" in n)
with z.open(name) as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  chmod +x "$WHIP_FFMPEG"
  rm -rf "$tmp"
fi
# The cluster test's S3 server: s3s-fs (an S3 API over a directory, in Rust) from crates.io.
if [[ "${1:-run}" == test ]] && ! command -v s3s-fs >/dev/null && [[ ! -x "$HOME/.cargo/bin/s3s-fs" ]]; then
  echo "installing s3s-fs (S3-compatible server for the cluster test) with cargo" >&2
  cargo install --quiet --locked s3s-fs@0.14.1 --features binary
fi
