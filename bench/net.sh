#!/usr/bin/env bash
# bench/net.sh — what a network link costs: start-up time of
# `berth run --rm -n IMAGE /bin/true` minus `berth run --rm IMAGE /bin/true`,
# next to systemd-nspawn --network-veth (minus --private-network) and podman
# --network bridge (minus --network none; CNI, runc) in the same run, and TCP
# throughput into a machine through a published port
# (127.0.0.1:PORT, nftables DNAT) against straight to its address on the bridge.
#
# This is a benchmark, not a test: it exits 0 when targets are missed and
# non-zero only when a tool (or the fixture setup) failed to run at all.
#
# Environment:
#   RUNS=40             timed runs per command (hyperfine --runs)
#   BYTES=2000000000    bytes sent per throughput run (3 runs each way)
#   BERTH=PATH          berth binary (default target/HOST/release/berth, built when missing)
#   BENCH_CACHE=DIR     fixture cache shared with pull.sh (default /var/cache/berth-bench)
#   BENCH_TMP=DIR       scratch parent dir (default /var/tmp)
#   PODMAN_RUNS=10      timed runs per podman command (each takes 0.2-0.6 s)
#   TOOLS="..."         subset of: berth nspawn podman throughput
set -Eeuo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap 'printf "[bench] internal error: line %s exited %s\n" "$LINENO" "$?" >&2' ERR

RUNS=${RUNS:-40}
BYTES=${BYTES:-2000000000}
ALL_TOOLS="berth nspawn podman throughput"
PODMAN_RUNS=${PODMAN_RUNS:-10}
TOOLS=${TOOLS:-$ALL_TOOLS}
ROOTFS=$BENCH_CACHE/rootfs-bookworm-minbase

[[ $(id -u) == 0 ]] || die "run as root"
need=()
command -v hyperfine >/dev/null || need+=(hyperfine)
command -v jq >/dev/null || need+=(jq)
if has_tool nspawn && ! command -v systemd-nspawn >/dev/null; then need+=(systemd-container); fi
if has_tool podman && ! command -v podman >/dev/null; then need+=(podman containernetworking-plugins runc); fi
if ((${#need[@]})); then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [[ ! -x $BERTH ]]; then
    log "building berth: cargo build --release -p berth"
    (cd "$ROOT_DIR" && cargo build --release -p berth) >/dev/null 2>&1 || die "berth build failed"
fi
if [[ ! -d $ROOTFS ]]; then
    log "fixture missing: building it with bench/pull.sh (TOOLS=floor-gzip RUNS=1)"
    TOOLS=floor-gzip RUNS=1 bash "$ROOT_DIR/bench/pull.sh" >/dev/null 2>&1 || die "bench/pull.sh could not build the fixture"
fi

WORK=$(mktemp -d "$BENCH_TMP/berth-netbench.XXXXXX")
export BERTH_NET_DIR=$WORK/net BERTH_NETWORK=bnb$$
STORE=$WORK/store
B=("$BERTH" --root "$STORE")
# podman's bridge (CNI) is made on first use: removed again if it was
# not there before, with the iptables tables CNI made.
PODMAN_BRIDGE_BEFORE=0
[[ -e /sys/class/net/cni-podman0 ]] && PODMAN_BRIDGE_BEFORE=1
NFT_BEFORE=$(nft list tables 2>/dev/null)
cleanup() {
    if [[ -n ${P[*]:-} ]]; then "${P[@]}" rmi -a -f >/dev/null 2>&1 || true; fi
    if [[ $PODMAN_BRIDGE_BEFORE == 0 && -e /sys/class/net/cni-podman0 ]]; then
        ip link del cni-podman0 || true
        for t in "ip nat" "ip filter"; do
            grep -qx "table $t" <<<"$NFT_BEFORE" || nft delete table $t 2>/dev/null || true
        done
    fi
    "${B[@]}" kill sink -s KILL >/dev/null 2>&1 || true
    sleep 0.5
    "${B[@]}" rm sink >/dev/null 2>&1 || true
    "$BERTH" network rm "$BERTH_NETWORK" >/dev/null 2>&1 || true
    if [[ ${KEEP_TMP:-0} == 1 ]]; then log "scratch kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "berth import $ROOTFS bench (untimed)"
"${B[@]}" import -q "$ROOTFS" bench >/dev/null
"${B[@]}" run --rm -n bench /bin/true # makes the network (untimed)

declare -A MEAN
time_it() { # name command...
    local name=$1; shift
    hyperfine -N --warmup 3 --runs "${TIME_RUNS:-$RUNS}" --style none --export-json "$WORK/$name.json" "$*" >/dev/null 2>&1 \
        || { log "$name failed: $*"; MEAN[$name]=; return; }
    MEAN[$name]=$(jq '.results[0].mean * 1000' "$WORK/$name.json")
}
if has_tool berth; then
    time_it berth-plain "${B[*]} run --rm bench /bin/true"
    time_it berth-veth "${B[*]} run --rm -n bench /bin/true"
fi
if has_tool nspawn; then
    # the tree read-only: nspawn writes nothing into the fixture
    NS="systemd-nspawn -q --register=no --keep-unit --read-only -D $ROOTFS"
    time_it nspawn-private "$NS --private-network /bin/true"
    time_it nspawn-veth "$NS --network-veth /bin/true"
fi
if has_tool podman; then
    # a private configuration and store: crun refuses this hybrid cgroup
    # host, so runc; cgroupfs, no ulimits (see ../shared/PEERS.md)
    printf '[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = "cgroupfs"\n' >"$WORK/containers.conf"
    export CONTAINERS_CONF=$WORK/containers.conf
    P=(podman --root "$WORK/podman" --runroot "$WORK/podman-run" --runtime runc)
    tar -C "$ROOTFS" -c . | "${P[@]}" import -q - berth-netbench >/dev/null
    "${P[@]}" run --rm --network bridge berth-netbench /bin/true # makes its bridge (untimed)
    TIME_RUNS=$PODMAN_RUNS time_it podman-none "${P[*]} run --rm --network none berth-netbench /bin/true"
    TIME_RUNS=$PODMAN_RUNS time_it podman-bridge "${P[*]} run --rm --network bridge berth-netbench /bin/true"
fi

echo
echo "berth net benchmark — $(date -u +%FT%TZ), $(nproc) CPUs, kernel $(uname -r)"
echo "start-up, mean of $RUNS runs (hyperfine -N, warm caches)"
printf '%-48s %10s\n' "command" "ms"
for k in berth-plain berth-veth nspawn-private nspawn-veth podman-none podman-bridge; do
    [[ -n ${MEAN[$k]+x} ]] && printf '%-48s %10.2f\n' "$k" "${MEAN[$k]:-nan}"
done
if [[ -n ${MEAN[berth-veth]:-} && -n ${MEAN[berth-plain]:-} ]]; then
    d=$(awk -v a="${MEAN[berth-veth]}" -v b="${MEAN[berth-plain]}" 'BEGIN {printf "%.2f", a - b}')
    printf '%-48s %10s   (target <= 5)  %s\n' "berth: veth minus plain" "$d" "$(awk -v d="$d" 'BEGIN {print (d <= 5) ? "MET" : "MISSED"}')"
fi
if [[ -n ${MEAN[nspawn-veth]:-} && -n ${MEAN[nspawn-private]:-} ]]; then
    printf '%-48s %10.2f\n' "nspawn: veth minus private-network" \
        "$(awk -v a="${MEAN[nspawn-veth]}" -v b="${MEAN[nspawn-private]}" 'BEGIN {print a - b}')"
fi

if [[ -n ${MEAN[podman-bridge]:-} && -n ${MEAN[podman-none]:-} ]]; then
    printf '%-48s %10.2f\n' "podman: bridge minus none" \
        "$(awk -v a="${MEAN[podman-bridge]}" -v b="${MEAN[podman-none]}" 'BEGIN {print a - b}')"
fi

if has_tool throughput; then
    # a sink in the machine: busybox nc from the host, bound in read-only
    PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("0.0.0.0", 0)); print(s.getsockname()[1])')
    "${B[@]}" run -d --name sink -p "$PORT:5001" --bind-ro /bin/busybox:/busybox bench \
        /bin/sh -c 'while :; do /busybox nc -l -p 5001 >/dev/null; done' >/dev/null
    ADDR=$("$BERTH" network ls --json | jq -r --arg n "$BERTH_NETWORK" '.[] | select(.name == $n) | .leases[0].address' | cut -d/ -f1)
    for _ in $(seq 100); do # until the sink listens
        python3 -c "import socket; socket.create_connection(('$ADDR', 5001), timeout=1).close()" 2>/dev/null && break
        sleep 0.1
    done
    sleep 0.2
    send() { # host port -> MB/s
        python3 - "$1" "$2" "$BYTES" <<'PY'
import socket, sys, time
host, port, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
buf = b"\0" * (1 << 20)
s = socket.create_connection((host, port), timeout=10)
t = time.monotonic(); sent = 0
while sent < total:
    sent += s.send(buf)
s.shutdown(socket.SHUT_WR); s.recv(1); s.close()
print(f"{sent / (time.monotonic() - t) / 1e6:.0f}")
PY
    }
    echo
    echo "TCP into the machine, $BYTES bytes per run, MB/s (3 runs, alternating)"
    direct=() published=()
    for _ in 1 2 3; do
        direct+=("$(send "$ADDR" 5001)"); sleep 0.2
        published+=("$(send 127.0.0.1 "$PORT")"); sleep 0.2
    done
    printf '%-48s %s\n' "straight to $ADDR:5001" "${direct[*]}"
    printf '%-48s %s\n' "published 127.0.0.1:$PORT (DNAT)" "${published[*]}"
fi
