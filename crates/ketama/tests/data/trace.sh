#!/usr/bin/env bash
# Regenerates libketama.tsv, the oracle of tests/libketama.rs: the placements that the real
# libketama (last.fm's C library, built from the `ketama` package on PyPI, which bundles its
# ketama.c and md5.c) gives to a few rings and many keys.
#
# Needs python3 with venv, a C compiler and the Python headers. Runs offline except for the
# one `pip install`; libketama keeps its continuum in SysV shared memory, which it creates
# and drops itself.
#
#   bash crates/ketama/tests/data/trace.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet ketama==0.1.1
cd "$work"
"$work/venv/bin/python" - "$here/libketama.tsv" <<'PY'
import hashlib, random, sys
from ketama import Ketama

# Each ring: an id and (name, weight) pairs. libketama takes names of at most 21 bytes
# without blanks and weights >= 1.
RINGS = [
    # The set pinned in the ring's unit tests.
    ("origins4", [(f"origin-{c}:8080", 1) for c in "abcd"]),
    ("local3", [(f"127.0.0.1:{7000 + i}", 1) for i in range(1, 4)]),
    # 7 equal nodes: the single-precision share arithmetic gives 40 digests each (all in
    # double it would be 39).
    ("local7", [(f"127.0.0.1:{7000 + i}", 1) for i in range(1, 8)]),
    # What a gateway names its encoders.
    ("encoders10", [(f"encoder-{i}", 1) for i in range(1, 11)]),
    ("local11", [(f"127.0.0.1:{7000 + i}", 1) for i in range(1, 12)]),
    # libketama's own example of weights (megabytes of memory per server).
    ("weighted3", [("127.0.0.1:1", 400), ("127.0.0.1:2", 600), ("127.0.0.1:3", 600)]),
    ("weighted5", [(f"127.0.0.1:{7000 + i}", i) for i in range(1, 6)]),
    ("weighted9", [(f"127.0.0.1:{8100 + i}", w) for i, w in enumerate([7, 100, 3, 64, 64, 1, 900, 12, 5], 1)]),
]

KEYS_PER_RING = 600
rng = random.Random(14)


def hashi(key: bytes) -> int:
    return int.from_bytes(hashlib.md5(key).digest()[:4], "little")


def keys_for(points):
    hi = points[-1][0]
    keys = ["", "x", "cam1", "cam2", "live/news"]
    keys += [f"stream-{i}" for i in range(200)]
    keys += [f"live/cam{i % 7}/v720/{i}.m4s" for i in range(200)]
    # Keys hashing past the last point: they wrap to the first one.
    wrap = []
    while len(wrap) < 10:
        k = f"wrap-{rng.getrandbits(48):012x}"
        h = hashi(k.encode())
        if h > hi:
            wrap.append(k)
    keys += wrap
    while len(keys) < KEYS_PER_RING:
        keys.append(f"{rng.getrandbits(64):016x}")
    return keys


with open(sys.argv[1], "w") as out:
    out.write("# The real libketama's placements (trace.sh beside this file made it: do not edit).\n")
    out.write("# ring<TAB>id<TAB>point count<TAB>name=weight,...   then per key: id<TAB>point landed on<TAB>node<TAB>key\n")
    for ring_id, nodes in RINGS:
        conf = f"{ring_id}.conf"
        with open(conf, "w") as f:
            for name, weight in nodes:
                f.write(f"{name}\t{weight}\n")
        k = Ketama(conf)
        points = k.get_points()
        spec = ",".join(f"{n}={w}" for n, w in nodes)
        out.write(f"ring\t{ring_id}\t{len(points)}\t{spec}\n")
        for key in keys_for(points):
            # The point the key lands on (the first >= its hash, or the first of the ring).
            point, node = k.get_server(key)
            out.write(f"{ring_id}\t{point}\t{node}\t{key}\n")
        # One continuum alive at a time: the binding's destructor frees every continuum
        # of the process (dropping one while another is in use crashes).
        del k
PY
echo "wrote $here/libketama.tsv"
