#!/usr/bin/env bash
# bench/machines.sh — `berth create` and `berth clone` against `cp -a` and
# `btrfs subvolume snapshot`, and `berth export` / `berth import` throughput
# against `tar` piped through `zstd` / `xz`, measured in the same run on the
# same tree (debootstrap bookworm minbase, ~200 MB).
#
# This is a benchmark, not a test: it exits 0 when targets are missed and
# non-zero only when a tool (or the fixture setup) failed to run.
# See bench/README.md for what it measures and what each line means.
#
# Environment:
#   RUNS=3              timed runs of each slow tool (cp -a, export, import), one
#                       per interleaved round; also the number of rounds
#   FAST_RUNS=30        timed runs of each create/clone/snapshot tool, split over
#                       the RUNS rounds (hyperfine --parameter-scan: one name per run)
#   XZ_RUNS=1           timed runs of the xz export pair (xz -6 on one thread takes
#                       about 75 s per run here)
#   BERTH=PATH          berth binary (default target/HOST/release/berth; rebuilt with
#                       `cargo build --release -p berth` when missing or older
#                       than the sources)
#   BENCH_CACHE=DIR     fixture cache shared with pull.sh (default /var/cache/berth-bench)
#   BENCH_TMP=DIR       scratch parent dir (default /var/tmp); the "ext4" store lives
#                       there, whatever its filesystem is
#   BENCH_TREE=DIR      measure on this tree instead of the minbase fixture (e.g. the
#                       nginx-like machine of issue 10: debootstrap --variant=minbase
#                       --include=systemd,systemd-sysv,dbus,nginx bookworm DIR)
#   BTRFS_SIZE=2G       size of the btrfs loop file
#   TOOLS="..."         subset of the tools below (default: all)
#   KEEP_TMP=1          keep the scratch dir (hyperfine JSON, logs); the btrfs
#                       loop is still unmounted and detached
set -Eeuo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap 'printf "[bench] internal error: line %s exited %s\n" "$LINENO" "$?" >&2' ERR

RUNS=${RUNS:-3}
FAST_RUNS=${FAST_RUNS:-30}
XZ_RUNS=${XZ_RUNS:-1}
BTRFS_SIZE=${BTRFS_SIZE:-2G}
MACHINE_TOOLS="berth-create berth-create-tiny berth-clone cp berth-create-btrfs berth-clone-btrfs snapshot cp-btrfs"
EXPORT_TOOLS="berth-export-zst tar-zstd berth-export-xz tar-xz tar-xz-t0"
IMPORT_TOOLS="berth-import-zst zstd-tar berth-import-xz xz-tar"
ALL_TOOLS="$MACHINE_TOOLS $EXPORT_TOOLS $IMPORT_TOOLS"
TOOLS=${TOOLS:-$ALL_TOOLS}
SUITE=bookworm
ROOTFS=${BENCH_TREE:-$BENCH_CACHE/rootfs-$SUITE-minbase}
IMAGE=bench # berth import ROOTFS bench -> localhost/bench:latest
TINY=tiny   # a one-file image: create must cost the same

has_any() { local t; for t; do has_tool "$t" && return 0; done; return 1; }

if [[ $(id -u) != 0 ]]; then die "run as root (berth's store, mount, losetup and btrfs need it)"; fi
[[ $RUNS =~ ^[1-9][0-9]*$ && $FAST_RUNS =~ ^[1-9][0-9]*$ && $XZ_RUNS =~ ^[0-9]+$ ]] \
    || die "RUNS and FAST_RUNS must be positive integers, XZ_RUNS a non-negative one"
for t in $TOOLS; do [[ " $ALL_TOOLS " == *" $t "* ]] || die "unknown tool $t (known: $ALL_TOOLS)"; done

# ---------------------------------------------------------------- tools
need_pkgs=()
command -v hyperfine >/dev/null || need_pkgs+=(hyperfine)
command -v jq >/dev/null || need_pkgs+=(jq)
command -v zstd >/dev/null || need_pkgs+=(zstd)
command -v xz >/dev/null || need_pkgs+=(xz-utils)
command -v mkfs.btrfs >/dev/null || need_pkgs+=(btrfs-progs)
if ((${#need_pkgs[@]})); then
    log "installing: ${need_pkgs[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

# ---------------------------------------------------------------- scratch + cleanup
mkdir -p "$BENCH_TMP"
WORK=$(mktemp -d "$BENCH_TMP/berth-machbench.XXXXXX")
BMNT=$WORK/btrfs
LOOP=
umount_under() { # unmount anything mounted at or below $1, deepest first
    local m
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done \
        < <(findmnt -rn -o TARGET | awk -v p="$1" 'index($0, p) == 1' | sort -r)
}
cleanup() {
    umount_under "$WORK"
    if [[ -n $LOOP ]]; then losetup -d "$LOOP" 2>/dev/null || log "could not detach $LOOP"; fi
    if [[ ${KEEP_TMP:-0} == 1 ]]; then
        rm -f "$WORK/btrfs.img"
        log "scratch kept in $WORK (without the btrfs image)"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

declare -A STATUS CMD REF RUNS_OF TIMES CPUS MEDIAN MIN MAX CPU NOTE
failed=0
FAILED_TOOLS=()
mark_failed() { # tool [status]
    STATUS[$1]=${2:-failed}
    [[ ${2:-failed} == skipped* ]] && return 0
    failed=1; FAILED_TOOLS+=("$1")
}

# ---------------------------------------------------------------- berth binary
berth_ok=1
if [[ $BERTH == "$ROOT_DIR/target/$HOST_TUPLE/release/berth" ]]; then
    stale=
    if [[ ! -x $BERTH ]]; then
        stale="missing"
    elif [[ -n $(find "$ROOT_DIR/crates" "$ROOT_DIR/Cargo.toml" "$ROOT_DIR/Cargo.lock" -newer "$BERTH" \
        \( -name '*.rs' -o -name 'Cargo.toml' -o -name 'Cargo.lock' \) -print -quit 2>/dev/null) ]]; then
        stale="older than the sources"
    fi
    if [[ -n $stale ]]; then
        # cargo waits by itself when another build holds the lock
        log "building berth ($stale): cargo build --release -p berth"
        (cd "$ROOT_DIR" && cargo build --release -p berth) >"$WORK/cargo.log" 2>&1 || {
            tail -n 20 "$WORK/cargo.log" >&2; log "berth build failed"; berth_ok=0; }
    fi
fi
[[ -x $BERTH ]] || { log "berth binary $BERTH is not executable"; berth_ok=0; }
if ((berth_ok)) && ! "$BERTH" clone --help >/dev/null 2>&1; then log "$BERTH has no clone command"; berth_ok=0; fi
BERTH_DESC=
if ((berth_ok)); then
    # time a copy, so a rebuild while the benchmark runs changes nothing
    BERTH_DESC="$("$BERTH" --version 2>/dev/null || echo berth), $BERTH built $(date -u -r "$BERTH" +%Y-%m-%dT%H:%M:%SZ)"
    cp "$BERTH" "$WORK/berth"
    BERTH=$WORK/berth
fi

# ---------------------------------------------------------------- fixture (shared with pull.sh and run.sh)
[[ -z ${BENCH_TREE:-} || -d $BENCH_TREE ]] || die "BENCH_TREE=$BENCH_TREE is not a directory"
if [[ ! -d $ROOTFS ]]; then
    log "fixture missing in $BENCH_CACHE: building it with bench/pull.sh (TOOLS=floor-gzip RUNS=1)"
    BENCH_CACHE=$BENCH_CACHE BENCH_TMP=$BENCH_TMP TOOLS=floor-gzip RUNS=1 bash "$ROOT_DIR/bench/pull.sh" >"$WORK/pull-fixture.log" 2>&1 \
        || { tail -n 20 "$WORK/pull-fixture.log" >&2; die "bench/pull.sh could not build the fixture"; }
fi
[[ -x $ROOTFS/usr/bin/bash ]] || die "fixture $ROOTFS has no usr/bin/bash; delete it to rebuild"
TREE=$ROOTFS # only ever read
nfiles=$(find "$TREE" -xdev | wc -l)
tree_mb=$(du -sm "$TREE" | cut -f1)
# reading the whole tree once also warms the page cache for every tool alike
TAR_BYTES=$(tar -C "$TREE" -c . | wc -c)
tar_mb=$(awk -v b="$TAR_BYTES" 'BEGIN {printf "%.1f", b / 1e6}')
WORK_FS=$(findmnt -n -o FSTYPE -T "$WORK" || echo '?')

# ---------------------------------------------------------------- stores (untimed)
STORE=$WORK/store
BSTORE=$BMNT/store
EXT_OK=0 BT_OK=0 BT_WHY=
M0_CHANGES='echo "changed by the berth bench" >/etc/motd
rm -f /etc/issue.net
mkdir -p /opt/bench && cp /usr/bin/ls /opt/bench/ls
head -c 1048576 /dev/urandom >/root/blob
echo "export BENCH=1" >>/root/.bashrc'
make_m0() { # store -> machine m0 of the image with a few changed files
    local s=$1
    "$BERTH" --root "$s" create "$IMAGE" m0 >>"$WORK/setup.log" 2>&1 || return 1
    if ! "$BERTH" --root "$s" run -M m0 /bin/sh -c "$M0_CHANGES" >>"$WORK/setup.log" 2>&1; then
        # the change only has to exist; write it into the machine's upper dir
        log "berth run -M m0 failed in $s; writing m0's changes into its upper dir directly"
        NOTE[m0]="berth run -M failed: m0's changes were written into its upper dir directly"
        local u=$s/machines/m0/upper
        mkdir -p "$u/etc" "$u/opt/bench" "$u/root"
        echo "changed by the berth bench" >"$u/etc/motd"
        cp /usr/bin/ls "$u/opt/bench/ls"
        head -c 1048576 /dev/urandom >"$u/root/blob"
        cp "$TREE/root/.bashrc" "$u/root/.bashrc" && echo "export BENCH=1" >>"$u/root/.bashrc"
    fi
}
upper_desc() { # store -> "N entries, K KB" of m0's own changes
    local u=$1/machines/m0/upper
    [[ -d $u ]] || { echo "?"; return; }
    echo "$(find "$u" -mindepth 1 | wc -l) entries, $(du -sk "$u" | cut -f1) KB"
}

if ((berth_ok)); then
    log "berth import $TREE $IMAGE (untimed, store on $WORK_FS)"
    mkdir -p "$WORK/tiny"; echo hello >"$WORK/tiny/hello"
    if "$BERTH" --root "$STORE" import -q "$TREE" "$IMAGE" >>"$WORK/setup.log" 2>&1 \
        && "$BERTH" --root "$STORE" import -q "$WORK/tiny" "$TINY" >>"$WORK/setup.log" 2>&1 \
        && make_m0 "$STORE"; then
        EXT_OK=1
    else
        tail -n 5 "$WORK/setup.log" >&2; log "setting up the $WORK_FS store failed"
    fi
fi

if has_any berth-create-btrfs berth-clone-btrfs snapshot cp-btrfs; then
    log "btrfs: $BTRFS_SIZE loop file, mkfs.btrfs, mount at $BMNT"
    if ! grep -qw btrfs /proc/filesystems && ! modprobe btrfs 2>/dev/null; then
        BT_WHY="the kernel has no btrfs"
    elif ! truncate -s "$BTRFS_SIZE" "$WORK/btrfs.img" || ! LOOP=$(losetup -f --show "$WORK/btrfs.img" 2>>"$WORK/setup.log"); then
        LOOP=; BT_WHY="no loop device"
    elif ! mkfs.btrfs -q -f "$LOOP" >>"$WORK/setup.log" 2>&1 || ! mkdir -p "$BMNT" || ! mount "$LOOP" "$BMNT" 2>>"$WORK/setup.log"; then
        BT_WHY="mkfs.btrfs or mount failed (see the log)"
    else
        # the snapshot's source: the same tree in a subvolume
        if btrfs subvolume create "$BMNT/src" >>"$WORK/setup.log" 2>&1 && cp -a "$TREE/." "$BMNT/src/" && mkdir -p "$BMNT/snaps"; then
            BT_OK=1
        else
            BT_WHY="copying the tree into a subvolume failed"
        fi
        if ((BT_OK && berth_ok)); then
            log "berth import $TREE $IMAGE (untimed, store on btrfs)"
            if ! "$BERTH" --root "$BSTORE" import -q "$TREE" "$IMAGE" >>"$WORK/setup.log" 2>&1 || ! make_m0 "$BSTORE"; then
                tail -n 5 "$WORK/setup.log" >&2; log "setting up the btrfs store failed"; BT_OK=2
            fi
        fi
        sync
    fi
    [[ -n $BT_WHY ]] && log "btrfs tools skipped: $BT_WHY"
fi

# ---------------------------------------------------------------- tools
# Fast tools (create, clone, snapshot) take a name per run: CMD holds {i},
# hyperfine --parameter-scan gives each run its own i, and what they made is
# removed between rounds (untimed). Slow tools (cp -a, export, import) write
# into $WORK/t/TOOL (or a fixed path), emptied by an untimed prepare script.
per_round=$(((FAST_RUNS + RUNS - 1) / RUNS))
IN_ZST=$WORK/in/tree.tar.zst
IN_XZ=$WORK/in/tree.tar.xz
is_fast() { case $1 in berth-create|berth-create-tiny|berth-clone|berth-create-btrfs|berth-clone-btrfs|snapshot) return 0 ;; esac; return 1; }
tool_dir() { case $1 in cp-btrfs) echo "$BMNT/cp" ;; *) echo "$WORK/t/$1" ;; esac; }

setup_tool() {
    local t=$1 d
    d=$(tool_dir "$t")
    STATUS[$t]=failed
    case $t in
        berth-*) ((berth_ok)) || { mark_failed "$t" "not runnable"; return; } ;;
    esac
    case $t in
        berth-create|berth-create-tiny|berth-clone|berth-export-*)
            ((EXT_OK)) || { mark_failed "$t"; return; } ;;
        berth-create-btrfs|berth-clone-btrfs)
            ((BT_OK == 1)) || { if ((BT_OK == 2)); then mark_failed "$t"; else mark_failed "$t" "skipped (${BT_WHY:-no btrfs})"; fi; return; } ;;
        snapshot|cp-btrfs)
            ((BT_OK)) || { mark_failed "$t" "skipped (${BT_WHY:-no btrfs})"; return; } ;;
    esac
    case $t in
        berth-create)       CMD[$t]="$BERTH --root $STORE create $IMAGE cr{i}"; REF[$t]=$t ;;
        berth-create-tiny)  CMD[$t]="$BERTH --root $STORE create $TINY ct{i}"; REF[$t]=berth-create ;;
        berth-clone)        CMD[$t]="$BERTH --root $STORE clone m0 cl{i}"; REF[$t]=$t ;;
        cp)                 CMD[$t]="cp -a $TREE $d/dst"; REF[$t]=berth-create ;;
        berth-create-btrfs) CMD[$t]="$BERTH --root $BSTORE create $IMAGE cr{i}"; REF[$t]=$t ;;
        berth-clone-btrfs)  CMD[$t]="$BERTH --root $BSTORE clone m0 cl{i}"; REF[$t]=$t ;;
        snapshot)           CMD[$t]="btrfs subvolume snapshot $BMNT/src $BMNT/snaps/s{i}"; REF[$t]=berth-create-btrfs ;;
        cp-btrfs)           CMD[$t]="cp -a $BMNT/src $d/dst"; REF[$t]=berth-create-btrfs ;;
        berth-export-zst)   CMD[$t]="$BERTH --root $STORE export $IMAGE $d/out.tar.zst"; REF[$t]=$t ;;
        tar-zstd)           CMD[$t]="tar -C $TREE -c . | zstd -3 -T1 -q >$d/out.tar.zst"; REF[$t]=berth-export-zst ;;
        berth-export-xz)    CMD[$t]="$BERTH --root $STORE export $IMAGE $d/out.tar.xz"; REF[$t]=$t ;;
        tar-xz)             CMD[$t]="tar -C $TREE -c . | xz -6 -T1 >$d/out.tar.xz"; REF[$t]=berth-export-xz ;;
        tar-xz-t0)          CMD[$t]="tar -C $TREE -c . | xz -6 -T0 >$d/out.tar.xz"; REF[$t]=berth-export-xz ;;
        berth-import-zst)   CMD[$t]="$BERTH --root $d/store import -q $IN_ZST imported"; REF[$t]=$t ;;
        zstd-tar)           CMD[$t]="zstd -dc $IN_ZST | tar -x -C $d/x"; REF[$t]=berth-import-zst ;;
        berth-import-xz)    CMD[$t]="$BERTH --root $d/store import -q $IN_XZ imported"; REF[$t]=$t ;;
        xz-tar)             CMD[$t]="xz -dc $IN_XZ | tar -x -C $d/x"; REF[$t]=berth-import-xz ;;
    esac
    case $t in
        berth-export-xz|tar-xz|tar-xz-t0) RUNS_OF[$t]=$XZ_RUNS ;;
        *) RUNS_OF[$t]=$RUNS ;;
    esac
    if ! is_fast "$t"; then
        # untimed before every run: an empty output dir, then sync, so the next
        # timed run doesn't pay for the last run's deletion or writeback
        printf 'rm -rf %q\nmkdir -p %q\nsync\n' "$d" "$d/x" >"$WORK/$t.prep.sh"
        printf 'set -e -o pipefail\n%s\n' "${CMD[$t]}" >"$WORK/$t.cmd.sh"
    fi
    STATUS[$t]=ok
    log "$t: ${CMD[$t]}"
}

# remove what fast tool T made with names A..B (untimed, between rounds)
fast_cleanup() {
    local t=$1 a=$2 b=$3 i names=()
    case $t in
        berth-create|berth-create-btrfs) for ((i = a; i <= b; i++)); do names+=("cr$i"); done ;;
        berth-create-tiny) for ((i = a; i <= b; i++)); do names+=("ct$i"); done ;;
        berth-clone|berth-clone-btrfs) for ((i = a; i <= b; i++)); do names+=("cl$i"); done ;;
    esac
    case $t in
        berth-create|berth-create-tiny|berth-clone)
            "$BERTH" --root "$STORE" rm "${names[@]}" >>"$WORK/$t.rm.log" 2>&1 || log "$t: berth rm failed (see $WORK/$t.rm.log)" ;;
        berth-create-btrfs|berth-clone-btrfs)
            "$BERTH" --root "$BSTORE" rm "${names[@]}" >>"$WORK/$t.rm.log" 2>&1 || log "$t: berth rm failed (see $WORK/$t.rm.log)" ;;
        snapshot)
            for ((i = a; i <= b; i++)); do
                [[ -d $BMNT/snaps/s$i ]] && btrfs subvolume delete "$BMNT/snaps/s$i" >/dev/null 2>&1
            done
            true ;;
    esac
    # deleted subvolumes are cleaned up by a kernel thread after the next
    # commit (up to 30 s away): commit now, then wait for the cleaner
    case $t in *-btrfs|snapshot)
        btrfs filesystem sync "$BMNT" >/dev/null 2>&1 || true
        btrfs subvolume sync "$BMNT" >/dev/null 2>&1 || true ;;
    esac
    sync
}

check() { # tool -> warns when the tool's output doesn't look right (after its last run)
    local t=$1 d ok=1
    d=$(tool_dir "$t")
    case $t in
        cp|cp-btrfs) [[ -x $d/dst/usr/bin/bash ]] || ok=0 ;;
        tar-zstd|berth-export-zst) [[ -s $d/out.tar.zst ]] && zstd -t -q "$d/out.tar.zst" || ok=0 ;;
        tar-xz|tar-xz-t0|berth-export-xz) [[ -s $d/out.tar.xz ]] && xz -t "$d/out.tar.xz" || ok=0 ;;
        berth-import-*) "$BERTH" --root "$d/store" images 2>/dev/null | grep -q imported || ok=0 ;;
        zstd-tar|xz-tar) [[ -x $d/x/usr/bin/bash ]] || ok=0 ;;
    esac
    ((ok)) || log "warning: $t's output doesn't look right (in $d)"
}

# time_fast TOOL ROUND A B: runs A..B, one hyperfine run each, sync before each
time_fast() {
    local t=$1 r=$2 a=$3 b=$4 j=$WORK/$1.r$2.json
    if ! hyperfine -N --runs 1 --style basic --prepare sync --export-json "$j" \
            --parameter-scan i "$a" "$b" -n "$t-{i}" "${CMD[$t]}" >"$WORK/$t.r$r.log" 2>&1; then
        tail -n 5 "$WORK/$t.r$r.log" >&2; log "$t failed in round $r"; mark_failed "$t"
        fast_cleanup "$t" "$a" "$b"; return 1
    fi
    TIMES[$t]+="$(jq -r '[.results[].times[]] | map(tostring) | join(" ")' "$j") "
    CPUS[$t]+="$(jq -r '[.results[] | .user + .system] | map(tostring) | join(" ")' "$j") "
    fast_cleanup "$t" "$a" "$b"
}

# time_slow TOOL ROUND: one hyperfine run, its prepare untimed
time_slow() {
    local t=$1 r=$2 j=$WORK/$1.r$2.json
    if ! hyperfine -N --runs 1 --style basic --prepare "bash $WORK/$t.prep.sh" --export-json "$j" \
            -n "$t" "bash $WORK/$t.cmd.sh" >"$WORK/$t.r$r.log" 2>&1; then
        tail -n 5 "$WORK/$t.r$r.log" >&2; log "$t failed in round $r"; mark_failed "$t"; return 1
    fi
    TIMES[$t]+="$(jq -r '.results[0].times[0]' "$j") "
    CPUS[$t]+="$(jq -r '.results[0].user + .results[0].system' "$j") "
}

# run_phase TOOLS...: interleaved rounds; round r runs every tool once
# (a fast tool: per_round names), so drift of the machine hits all alike
run_phase() {
    local phase=("$@") t r max=0 a b
    for t in "${phase[@]}"; do ((${RUNS_OF[$t]:-0} > max)) && max=${RUNS_OF[$t]}; done
    for ((r = 1; r <= max; r++)); do
        log "round $r/$max: ${phase[*]}"
        for t in "${phase[@]}"; do
            [[ ${STATUS[$t]} == ok ]] && ((r <= RUNS_OF[$t])) || continue
            if is_fast "$t"; then
                a=$(((r - 1) * per_round + 1)); b=$((r * per_round)); ((b > FAST_RUNS)) && b=$FAST_RUNS
                ((a <= b)) || continue
                time_fast "$t" "$r" "$a" "$b" || true
            else
                time_slow "$t" "$r" || true
            fi
        done
    done
    for t in "${phase[@]}"; do
        [[ ${STATUS[$t]} == ok ]] && ! is_fast "$t" && check "$t"
    done
    true
}

phase_tools() { local t; for t in $1; do if has_tool "$t"; then echo "$t"; fi; done; }

# make the import inputs: the pipeline's own export output when it ran, else built here (untimed)
make_input() { # ext pipeline-tool out compress...
    local ext=$1 t=$2 out=$3; shift 3
    mkdir -p "$WORK/in"
    if [[ ${STATUS[$t]:-} == ok && -s $WORK/t/$t/out.tar.$ext ]]; then
        mv "$WORK/t/$t/out.tar.$ext" "$out"
    else
        log "making the import input $out (untimed): tar -c | $*"
        tar -C "$TREE" -c . | "$@" >"$out"
    fi
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
T_START=$(date +%s)

mapfile -t M < <(phase_tools "$MACHINE_TOOLS")
mapfile -t E < <(phase_tools "$EXPORT_TOOLS")
mapfile -t I < <(phase_tools "$IMPORT_TOOLS")
for t in "${M[@]}" "${E[@]}"; do setup_tool "$t"; done
((${#M[@]})) && run_phase "${M[@]}"
rm -rf "$WORK/t/cp" "$BMNT/cp" 2>/dev/null || true
((${#E[@]})) && run_phase "${E[@]}"

SIZE_ZST= SIZE_XZ=
if ((${#I[@]})); then
    if has_any berth-import-zst zstd-tar; then make_input zst tar-zstd "$IN_ZST" zstd -3 -T1 -q; SIZE_ZST=$(stat -c %s "$IN_ZST"); fi
    if has_any berth-import-xz xz-tar; then make_input xz tar-xz "$IN_XZ" xz -6 -T1; SIZE_XZ=$(stat -c %s "$IN_XZ"); fi
fi
# the export outputs' sizes, before they go
declare -A OUT_MB
for t in "${E[@]}"; do
    case $t in tar-zstd) f=$IN_ZST ;; tar-xz) f=$IN_XZ ;; *) f=$(ls "$WORK/t/$t"/out.tar.* 2>/dev/null | head -n1 || true) ;; esac
    [[ -n $f && -f $f ]] && OUT_MB[$t]=$(awk -v b="$(stat -c %s "$f")" 'BEGIN {printf "%.1f", b / 1e6}')
done
for t in "${E[@]}"; do rm -rf "$WORK/t/$t"; done
for t in "${I[@]}"; do setup_tool "$t"; done
((${#I[@]})) && run_phase "${I[@]}"
for t in "${I[@]}"; do rm -rf "$WORK/t/$t"; done
T_END=$(date +%s)

# ---------------------------------------------------------------- stats
stats() { # times (s) on stdin -> median min max (ms)
    tr ' ' '\n' | grep . | sort -g | awk '{v[NR] = $1 * 1000} END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%.3f %.3f %.3f\n", m, v[1], v[NR]}'
}
declare -A NRUN
for t in $TOOLS; do
    [[ ${STATUS[$t]:-} == ok && -n ${TIMES[$t]:-} ]] || continue
    read -r MEDIAN[$t] MIN[$t] MAX[$t] < <(stats <<<"${TIMES[$t]}")
    read -r CPU[$t] _ _ < <(stats <<<"${CPUS[$t]}")
    NRUN[$t]=$(wc -w <<<"${TIMES[$t]}")
done

# ---------------------------------------------------------------- report
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "" || b == "" || b == 0) print "n/a"; else printf (a / b < 0.1 ? "%.4f" : "%.2f"), a / b}'; }
ms() { awk -v v="$1" 'BEGIN {printf (v < 100 ? "%.1f" : "%.0f"), v}'; }
op() {
    case $1 in
        berth-create|berth-create-tiny) echo "create  $WORK_FS" ;;
        berth-clone) echo "clone   $WORK_FS" ;;
        cp) echo "copy    $WORK_FS" ;;
        berth-create-btrfs) echo "create  btrfs" ;;
        berth-clone-btrfs) echo "clone   btrfs" ;;
        snapshot|cp-btrfs) echo "copy    btrfs" ;;
        berth-export-zst|tar-zstd) echo "export  tar.zst" ;;
        berth-export-xz|tar-xz|tar-xz-t0) echo "export  tar.xz" ;;
        berth-import-zst|zstd-tar) echo "import  tar.zst" ;;
        berth-import-xz|xz-tar) echo "import  tar.xz" ;;
    esac
}
label() {
    case $1 in
        berth-create|berth-create-btrfs) echo "berth create $IMAGE mN" ;;
        berth-create-tiny) echo "berth create $TINY mN (1-file image)" ;;
        berth-clone|berth-clone-btrfs) echo "berth clone m0 mN (m0 changed)" ;;
        cp) echo "cp -a TREE DST" ;;
        snapshot) echo "btrfs subvolume snapshot SRC DST" ;;
        cp-btrfs) echo "cp -a SRC DST (reflinks, cp's default)" ;;
        berth-export-zst) echo "berth export $IMAGE F.tar.zst" ;;
        tar-zstd) echo "tar -c | zstd -3 -T1" ;;
        berth-export-xz) echo "berth export $IMAGE F.tar.xz" ;;
        tar-xz) echo "tar -c | xz -6 -T1" ;;
        tar-xz-t0) echo "tar -c | xz -6 -T0" ;;
        berth-import-zst) echo "berth import F.tar.zst NAME" ;;
        zstd-tar) echo "zstd -dc | tar -x" ;;
        berth-import-xz) echo "berth import F.tar.xz NAME" ;;
        xz-tar) echo "xz -dc | tar -x" ;;
    esac
}
mbps() { # tool -> MB/s of the uncompressed tar, for export and import
    case $1 in
        *export*|tar-zstd|tar-xz|tar-xz-t0|*import*|zstd-tar|xz-tar)
            [[ -n ${MEDIAN[$1]:-} ]] && awk -v b="$TAR_BYTES" -v m="${MEDIAN[$1]}" 'BEGIN {printf "%.1f", b / 1e6 / (m / 1000)}' || echo - ;;
        *) echo - ;;
    esac
}

echo
echo "berth machines benchmark — $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs, kernel $(uname -r)"
echo "tree: ${BENCH_TREE:+BENCH_TREE}${BENCH_TREE:-debootstrap $SUITE minbase} ($tree_mb MB, $nfiles entries; as a tar $tar_mb MB) at $TREE"
if [[ -n $LOOP || -n $BT_WHY ]]; then
    echo "stores: $WORK_FS ($WORK) and btrfs (${BTRFS_SIZE} loop file${LOOP:+ on $LOOP}${BT_WHY:+: not used, $BT_WHY})"
else
    echo "store: $WORK_FS ($WORK)"
fi
echo "m0 (the clone source): $IMAGE plus a few changed files, its own changes $(upper_desc "$STORE") ($WORK_FS)$( ((BT_OK == 1)) && echo ", $(upper_desc "$BSTORE") (btrfs)")"
echo "runs: create/clone/snapshot $FAST_RUNS per tool (one name each, $per_round per round), cp -a, export and import $RUNS (xz export $XZ_RUNS),"
echo "  in $RUNS interleaved rounds (hyperfine -N, sync before each run, removal between rounds untimed), caches warm"
echo "load average: $LOAD_START before, $(cut -d' ' -f1-3 /proc/loadavg) after; measuring took $((T_END - T_START)) s"
[[ -n $BERTH_DESC ]] && echo "berth: $BERTH_DESC"
echo "peers: $(cp --version | head -n1 | sed 's/ (GNU coreutils)//'), $(btrfs --version 2>/dev/null | head -n1 || echo 'btrfs-progs ?'), $(tar --version | head -n1 | sed 's/ (GNU tar)//'), zstd $(zstd -V | grep -o 'v[0-9.]*' | head -n1), $(xz --version | head -n1 | sed 's/ (XZ Utils)//'), hyperfine $(hyperfine --version | awk '{print $2}')"
[[ -n $SIZE_ZST ]] && echo "import inputs: $(awk -v z="$SIZE_ZST" 'BEGIN {printf "%.1f", z / 1e6}') MB tar.zst${SIZE_XZ:+, $(awk -v x="$SIZE_XZ" 'BEGIN {printf "%.1f", x / 1e6}') MB tar.xz} (the pipelines' export outputs)"
for t in m0 $TOOLS; do [[ -n ${NOTE[$t]:-} ]] && echo "note: ${NOTE[$t]}"; done
echo
fmt='%-16s %-40s %10s %17s %8s %7s %8s  %s\n'
printf "$fmt" operation tool "median ms" "min..max ms" "cpu ms" "MB/s" "/ berth" status
for t in $TOOLS; do
    m=${MEDIAN[$t]:-}
    if [[ -n $m ]]; then
        printf "$fmt" "$(op "$t")" "$(label "$t")" "$(ms "$m")" "$(ms "${MIN[$t]}")..$(ms "${MAX[$t]}")" \
            "$(ms "${CPU[$t]}")" "$(mbps "$t")" "$(ratio "$m" "${MEDIAN[${REF[$t]}]:-}")" "${STATUS[$t]} (${NRUN[$t]} run$( ((NRUN[$t] == 1)) || echo s))"
    else
        printf "$fmt" "$(op "$t")" "$(label "$t")" - - - - - "${STATUS[$t]:-failed}"
    fi
done
echo
target() { # name value op limit
    local v=$2 r
    if [[ $v == n/a || -z $v ]]; then printf '%-48s %8s   (target %s %s)  n/a\n' "$1" "n/a" "$3" "$4"; return; fi
    if awk -v v="$v" -v l="$4" -v op="$3" 'BEGIN {exit !(op == "<=" ? v <= l : v < l)}'; then r=MET; else r=MISSED; fi
    printf '%-48s %8s   (target %s %s)  %s\n' "$1" "$v" "$3" "$4" "$r"
}
info() { printf '%-48s %8s\n' "$1" "$2"; }
med() { [[ -n ${MEDIAN[$1]:-} ]] && ms "${MEDIAN[$1]}" || echo n/a; }
target "berth create ($WORK_FS)            [median ms]" "$(med berth-create)" "<=" 20
target "berth clone ($WORK_FS)             [median ms]" "$(med berth-clone)" "<=" 20
target "berth create (btrfs)           [median ms]" "$(med berth-create-btrfs)" "<=" 20
target "berth clone (btrfs)            [median ms]" "$(med berth-clone-btrfs)" "<=" 20
target "berth / pipeline, export tar.zst [time]" "$(ratio "${MEDIAN[berth-export-zst]:-}" "${MEDIAN[tar-zstd]:-}")" "<=" 1.11
target "berth / xz -T1 pipeline, export tar.xz [time]" "$(ratio "${MEDIAN[berth-export-xz]:-}" "${MEDIAN[tar-xz]:-}")" "<=" 0.6
info "berth / xz -T0 pipeline, export tar.xz [time]" "$(ratio "${MEDIAN[berth-export-xz]:-}" "${MEDIAN[tar-xz-t0]:-}")"
target "berth / pipeline, import tar.zst [time]" "$(ratio "${MEDIAN[berth-import-zst]:-}" "${MEDIAN[zstd-tar]:-}")" "<=" 1.11
target "berth / pipeline, import tar.xz  [time]" "$(ratio "${MEDIAN[berth-import-xz]:-}" "${MEDIAN[xz-tar]:-}")" "<=" 1.11
info "berth create / cp -a ($WORK_FS)        [median]" "$(ratio "${MEDIAN[berth-create]:-}" "${MEDIAN[cp]:-}")"
info "berth clone / cp -a ($WORK_FS)         [median]" "$(ratio "${MEDIAN[berth-clone]:-}" "${MEDIAN[cp]:-}")"
info "berth create / btrfs snapshot    [median]" "$(ratio "${MEDIAN[berth-create-btrfs]:-}" "${MEDIAN[snapshot]:-}")"
info "berth clone / btrfs snapshot     [median]" "$(ratio "${MEDIAN[berth-clone-btrfs]:-}" "${MEDIAN[snapshot]:-}")"
info "berth create: 200 MB image / 1-file image  [median]" "$(ratio "${MEDIAN[berth-create]:-}" "${MEDIAN[berth-create-tiny]:-}")"
outs=()
for t in "${E[@]}"; do [[ -n ${OUT_MB[$t]:-} ]] && outs+=("$(label "$t"): ${OUT_MB[$t]} MB"); done
((${#outs[@]})) && { echo; echo "export output sizes: $(IFS=';'; echo "${outs[*]}" | sed 's/;/; /g')"; }
if ((failed)); then
    echo
    echo "failed to run: ${FAILED_TOOLS[*]}"
fi
exit "$failed"
