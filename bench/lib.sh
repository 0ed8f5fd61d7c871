# Helpers shared by the benchmark scripts (sourced, not run).

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 2; }
has_tool() { [[ " $TOOLS " == *" $1 "* ]]; }

# The Debian mirror from APT's sources (deb822 or one-line), for debootstrap.
find_mirror() {
    local f url
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] || continue
        url=$(awk '/^URIs:/ {print $2}' "$f" | grep -E '/debian/?$' | head -n1 || true)
        [[ -n $url ]] && { echo "$url"; return; }
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f $f ]] || continue
        url=$(awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}' "$f" | grep -E '/debian/?$' | head -n1 || true)
        [[ -n $url ]] && { echo "$url"; return; }
    done
    echo http://deb.debian.org/debian
}

# Starts Debian's docker-registry on a free loopback port with storage
# under $WORK/registry; sets PORT and REG_PID, dies if it does not answer.
start_registry() {
    PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    mkdir -p "$WORK/registry"
    cat >"$WORK/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/registry
http:
  addr: 127.0.0.1:$PORT
EOF
    docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
    REG_PID=$!
    for _ in $(seq 100); do
        curl -fsS "http://127.0.0.1:$PORT/v2/" >/dev/null 2>&1 && break
        kill -0 "$REG_PID" 2>/dev/null || { cat "$WORK/registry.log" >&2; die "docker-registry exited"; }
        sleep 0.1
    done
    curl -fsS "http://127.0.0.1:$PORT/v2/" >/dev/null || die "docker-registry did not answer on 127.0.0.1:$PORT"
}

# cargo builds for the host tuple (.cargo/config.toml): the default berth
# binary is target/$HOST_TUPLE/release/berth.
HOST_TUPLE=$(rustc --print host-tuple 2>/dev/null) || HOST_TUPLE=$(uname -m)-unknown-linux-gnu

# What every script shares; each may be set in the environment.
ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BERTH=${BERTH:-$ROOT_DIR/target/$HOST_TUPLE/release/berth}
BENCH_CACHE=${BENCH_CACHE:-/var/cache/berth-bench}
BENCH_TMP=${BENCH_TMP:-/var/tmp}
