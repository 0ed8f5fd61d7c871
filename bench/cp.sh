#!/usr/bin/env bash
# bench/cp.sh — `berth cp` into and out of a stopped and a running machine
# against what people do by hand: `cp -a` into the machine's overlay upper
# directory (stopped) and a `tar | tar` pipe through `berth exec` (running),
# on the same tree (/usr of debootstrap bookworm minbase, ~120 MB, ~5k
# entries), in the same run, interleaved.
#
# This is a benchmark, not a test: it exits 0 when berth is slower and
# non-zero only when a tool (or the fixture) fails.
#
# Environment:
#   RUNS=3           timed runs of each tool (one per interleaved round)
#   BERTH=PATH       berth binary (default target/HOST/release/berth, built
#                    with `cargo build --release -p berth` when missing)
#   BENCH_CACHE=DIR  fixture cache shared with pull.sh (default /var/cache/berth-bench)
#   BENCH_TMP=DIR    scratch parent dir (default /var/tmp)
#   KEEP_TMP=1       keep the scratch dir
set -Eeuo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap 'printf "[bench] internal error: line %s exited %s\n" "$LINENO" "$?" >&2' ERR

RUNS=${RUNS:-3}
ROOTFS=$BENCH_CACHE/rootfs-bookworm-minbase
TOOLS="berth-in-stopped cp-a-upper berth-out-stopped cp-a-out berth-in-running tar-exec-in berth-out-running tar-exec-out"

[[ $(id -u) == 0 ]] || die "run as root"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer"
command -v hyperfine >/dev/null || die "hyperfine is missing: apt-get install hyperfine"
if [[ ! -x $BERTH ]]; then
    log "building $BERTH"
    (cd "$ROOT_DIR" && cargo build --release -p berth >&2)
fi
if [[ ! -d $ROOTFS/usr ]]; then
    log "building the fixture tree (debootstrap bookworm minbase) in $ROOTFS"
    mkdir -p "$BENCH_CACHE"
    debootstrap --variant=minbase bookworm "$ROOTFS.tmp" "$(find_mirror)" >"$BENCH_CACHE/debootstrap.log" 2>&1 \
        || die "debootstrap failed: see $BENCH_CACHE/debootstrap.log"
    mv "$ROOTFS.tmp" "$ROOTFS"
fi

WORK=$(mktemp -d "$BENCH_TMP/berth-bench-cp.XXXXXX")
S=$WORK/store
B() { "$BERTH" --root "$S" "$@"; }
cleanup() {
    B kill live -s KILL >/dev/null 2>&1 || true
    sleep 0.5
    [[ ${KEEP_TMP:-} == 1 ]] && { log "kept $WORK"; return; }
    rm -rf "$WORK"
}
trap cleanup EXIT

# A machine to copy into and out of (stopped), one running, both from the
# tree; /usr of the tree is what gets copied.
B import "$ROOTFS" base -q >/dev/null
B create base cold
B create base warm
B run -d --name live base sleep 100000 >/dev/null 2>&1 || B run -d -M warm sleep 100000 >/dev/null
LIVE=live
B ps | grep -q "^live " || LIVE=warm
UPPER=$S/machines/cold/upper
OUT=$WORK/out

declare -A CMD PREP
CMD[berth-in-stopped]="$BERTH --root $S cp $ROOTFS/usr cold:/copied"
PREP[berth-in-stopped]="rm -rf $UPPER/copied"
CMD[cp-a-upper]="cp -a $ROOTFS/usr $UPPER/copied"
PREP[cp-a-upper]="rm -rf $UPPER/copied"
CMD[berth-out-stopped]="$BERTH --root $S cp -a cold:/usr $OUT"
PREP[berth-out-stopped]="rm -rf $OUT"
CMD[cp-a-out]="cp -a $ROOTFS/usr $OUT"
PREP[cp-a-out]="rm -rf $OUT"
CMD[berth-in-running]="$BERTH --root $S cp $ROOTFS/usr $LIVE:/copied"
PREP[berth-in-running]="$BERTH --root $S exec $LIVE rm -rf /copied"
# (into the root, as berth cp writes: the machine's /tmp is a tmpfs)
CMD[tar-exec-in]="sh -c 'tar -C $ROOTFS -c usr | $BERTH --root $S exec $LIVE sh -c \"mkdir -p /tarred && tar -C /tarred -x\"'"
PREP[tar-exec-in]="$BERTH --root $S exec $LIVE rm -rf /tarred"
CMD[berth-out-running]="$BERTH --root $S cp -a $LIVE:/usr $OUT"
PREP[berth-out-running]="rm -rf $OUT"
CMD[tar-exec-out]="sh -c 'mkdir -p $OUT && $BERTH --root $S exec $LIVE tar -C / -c usr | tar -C $OUT -x'"
PREP[tar-exec-out]="rm -rf $OUT"

declare -A SUM
for r in $(seq "$RUNS"); do
    for t in $TOOLS; do
        hyperfine --runs 1 --style none --export-json "$WORK/$t-$r.json" --prepare "${PREP[$t]}" "${CMD[$t]}" >/dev/null 2>"$WORK/$t-$r.log" \
            || { cat "$WORK/$t-$r.log" >&2; die "$t failed"; }
        s=$(jq '.results[0].mean' "$WORK/$t-$r.json")
        SUM[$t]=$(echo "${SUM[$t]:-0} + $s" | bc -l)
    done
    log "round $r of $RUNS done"
done
mean() { echo "scale=3; ${SUM[$1]} / $RUNS" | bc -l; }
ratio() { echo "scale=2; ${SUM[$1]} / ${SUM[$2]}" | bc -l; }
printf '%-20s %8s   %s\n' tool "mean s" "vs peer"
for pair in "berth-in-stopped cp-a-upper" "berth-out-stopped cp-a-out" "berth-in-running tar-exec-in" "berth-out-running tar-exec-out"; do
    set -- $pair
    printf '%-20s %8s   %sx %s\n' "$1" "$(mean "$1")" "$(ratio "$1" "$2")" "$2"
    printf '%-20s %8s\n' "$2" "$(mean "$2")"
done
