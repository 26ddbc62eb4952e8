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
write_benchmarks_block() { # NAME HEADING TEXT
  python3 - "$1" "$2" "$3" <<'PY'
import sys, re
name, heading, text = sys.argv[1:4]
p = "BENCHMARKS.md"; s = open(p).read()
b, e = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
block = f"{b}\n{text}\n{e}"
s = re.sub(re.escape(b) + ".*?" + re.escape(e), lambda m: block, s, flags=re.S) if b in s else s + f"\n## {heading}\n\n{block}\n"
open(p, "w").write(s)
PY
}
