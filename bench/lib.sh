# Shared by the bench scripts: source it after `cd` to the repo root.

# Installs Debian packages that are missing (apt-get update first, only if needed).
ensure_pkgs() {
  local missing=()
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
  ((${#missing[@]})) || return 0
  local sudo=""; [[ $(id -u) -ne 0 ]] && sudo=sudo
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Builds target/release/ferrocast (locked if the lock file allows).
build_release() {
  cargo build --release --locked -p ferrocast >/dev/null 2>&1 || cargo build --release -p ferrocast
}

# A free TCP port on 127.0.0.1, below the kernel's ephemeral range (so that no outgoing
# connection grabs it between the check and the bind).
free_port() {
  python3 -c 'import random,socket
while True:
    p=random.randint(20000,30000); s=socket.socket()
    try: s.bind(("127.0.0.1",p)); s.close(); print(p); break
    except OSError: pass'
}

# Replaces the block between <!-- NAME:begin --> and <!-- NAME:end --> in BENCHMARKS.md with
# TEXT, or appends it under HEADING.
write_benchmarks_block() { # NAME HEADING TEXT [NOTE]
  # Replaces the block between <!-- NAME:begin ... --> and <!-- NAME:end --> in BENCHMARKS.md;
  # without one, puts it under "## HEADING" (or appends both). NOTE goes into the begin marker.
  python3 - "$1" "$2" "$3" "${4:-}" "$(dirname "${BASH_SOURCE[0]}")/../BENCHMARKS.md" <<'PY'
import os, re, sys
name, heading, text, note, p = sys.argv[1:6]
s = open(p).read() if os.path.exists(p) else "# Benchmarks\n"
b = f"<!-- {name}:begin ({note}) -->" if note else f"<!-- {name}:begin -->"
e = f"<!-- {name}:end -->"
block = f"{b}\n{text}\n{e}"
old = re.compile(re.escape(f"<!-- {name}:begin") + r"[^>]*-->.*?" + re.escape(e), re.S)
h = f"## {heading}"
if old.search(s):
    s = old.sub(lambda m: block, s, count=1)
elif h in s:
    i = s.index(h) + len(h)
    s = s[:i] + "\n\n" + block + "\n" + s[i:]
else:
    s = s.rstrip("\n") + f"\n\n{h}\n\n{block}\n"
open(p, "w").write(s if s.endswith("\n") else s + "\n")
PY
}

# Process bookkeeping for scripts that start servers: add each PID to PIDS, set TMP (and
# KEEP_TMP=1 to keep it), define log(), then `trap cleanup EXIT`. On exit everything in PIDS
# gets SIGTERM, then SIGKILL after 5 s; TMP is removed unless the run failed or KEEP_TMP=1.
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for _ in $(seq 50); do
        local alive=0
        for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [[ $alive == 0 ]] && break
        sleep 0.1
    done
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ $KEEP_TMP == 1 || $rc != 0 ]]; then
        log "logs kept in $TMP"
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}

alive_or_die() { # NAME PID LOG
    kill -0 "$2" 2>/dev/null || { echo "$1 exited early; last log lines:" >&2; tail -20 "$3" >&2; exit 1; }
}

wait_port() { # PORT NAME PID LOG
    local i
    for i in $(seq 100); do
        alive_or_die "$2" "$3" "$4"
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "$2 is not listening on 127.0.0.1:$1 after 10 s" >&2; tail -20 "$4" >&2; exit 1
}

# N distinct free loopback ports below the ephemeral range, on one line. Port 0 would hand
# out ports from the kernel's ephemeral range, where any outgoing connection on the machine may
# take one between our check and the server's bind; so pick random ports below that range
# (bound together so they differ, then released).
free_ports() { # N
python3 - "$1" <<'EOF'
import random, socket, sys
lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
ports, socks = [], []
while len(ports) < int(sys.argv[1]):
    p = random.randrange(10000, max(10001, lo))
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        s.close()
        continue
    socks.append(s)
    ports.append(p)
print(*ports)
EOF
}
