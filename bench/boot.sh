#!/usr/bin/env bash
# bench/boot.sh — boot time of a Debian machine with systemd: from `berth start`
# until `systemctl is-system-running` inside says running/degraded, against
# `systemd-nspawn -b --register=no --keep-unit -D DIR` on the same tree,
# measured in the same run; and the wall time of `berth ps` with 50 machines
# running.
#
# This is a benchmark, not a test: it exits 0 when it ran, whatever the
# numbers, and non-zero only when a tool (or the fixture setup) failed.
# See bench/README.md for what it measures and what each line means.
#
# Environment:
#   RUNS=5              timed boots per tool (interleaved: berth, nspawn, berth, …)
#   WARMUP=1            untimed boots per tool first
#   PS_MACHINES=50      machines running while `berth ps` is timed (0 skips it)
#   PS_RUNS=30          timed `berth ps` runs (hyperfine -N)
#   POLL_MS=50          readiness poll interval
#   BOOT_TIMEOUT=60     seconds a boot may take before the run counts as failed
#   BERTH=PATH          berth binary (default target/HOST/release/berth; rebuilt with
#                       `cargo build --release -p berth` when missing or older
#                       than the sources)
#   BOOT_TREE=DIR       bootable tree (default: the test cache
#                       /var/cache/berth-test/bookworm-systemd, else
#                       /var/cache/berth-dev/bookworm-systemd, else
#                       BENCH_CACHE/rootfs-bookworm-systemd, built with debootstrap)
#   BENCH_CACHE=DIR     where a tree is built when none exists (default /var/cache/berth-bench)
#   BENCH_TMP=DIR       scratch parent dir (default /var/tmp)
#   TOOLS="..."         subset of: berth nspawn
#   RAISE_INOTIFY=1     raise fs.inotify.max_user_instances for the PS_MACHINES run when it is
#                       too low (each booted systemd takes ~7; the default 128 runs out near 18
#                       machines and systemd then fails "Too many open files"); restored at exit.
#                       0 leaves it alone.
#   MIRROR=URL          Debian mirror for debootstrap (default: from apt sources)
#   KEEP_TMP=1          keep the scratch dir
set -Eeuo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap 'printf "[bench] internal error: line %s exited %s\n" "$LINENO" "$?" >&2' ERR

RUNS=${RUNS:-5}
WARMUP=${WARMUP:-1}
PS_MACHINES=${PS_MACHINES:-50}
PS_RUNS=${PS_RUNS:-30}
POLL_MS=${POLL_MS:-50}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-60}
ALL_TOOLS="berth nspawn"
TOOLS=${TOOLS:-$ALL_TOOLS}
SUITE=bookworm


if [[ $(id -u) != 0 ]]; then die "run as root (containers need it)"; fi
[[ $RUNS =~ ^[1-9][0-9]*$ && $WARMUP =~ ^[0-9]+$ && $PS_MACHINES =~ ^[0-9]+$ && $PS_RUNS =~ ^[1-9][0-9]*$ \
    && $POLL_MS =~ ^[1-9][0-9]*$ && $BOOT_TIMEOUT =~ ^[1-9][0-9]*$ ]] \
    || die "RUNS, PS_RUNS, POLL_MS, BOOT_TIMEOUT must be positive integers, WARMUP and PS_MACHINES non-negative ones"
for t in $TOOLS; do [[ " $ALL_TOOLS " == *" $t "* ]] || die "unknown tool $t (known: $ALL_TOOLS)"; done
POLL=$(awk -v ms="$POLL_MS" 'BEGIN {printf "%.3f", ms / 1000}')

# ---------------------------------------------------------------- tools
need_pkgs=()
command -v hyperfine >/dev/null || need_pkgs+=(hyperfine)
command -v jq >/dev/null || need_pkgs+=(jq)
command -v nsenter >/dev/null || need_pkgs+=(util-linux)
if has_tool nspawn && ! command -v systemd-nspawn >/dev/null; then need_pkgs+=(systemd-container); fi
if ((${#need_pkgs[@]})); then
    log "installing: ${need_pkgs[*]}"
    apt-get update -qq
    # --no-install-recommends: systemd-container would pull in libnss-mymachines,
    # which edits /etc/nsswitch.conf
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

# ---------------------------------------------------------------- scratch + cleanup
mkdir -p "$BENCH_TMP"
WORK=$(mktemp -d "$BENCH_TMP/berth-bootbench.XXXXXX")
STORE=$WORK/store
# berth's state and console logs go here, not to /run/berth
export BERTH_RUN_DIR=$WORK/run
mkdir -p "$BERTH_RUN_DIR"
NSPAWN_PID=
INOTIFY_OLD=
NEW_GLOBAL=()
for g in /run/systemd/nspawn; do [[ -e $g ]] || NEW_GLOBAL+=("$g"); done
umount_under() {
    local m
    while read -r m; do umount -l "$m" 2>/dev/null || true; done < <(findmnt -rn -o TARGET | awk -v p="$1" 'index($0, p) == 1' | sort -r)
}
running_berth_machines() { # names with a state file
    local d
    for d in "$BERTH_RUN_DIR"/*/; do [[ -f $d/state.json ]] && basename "$d"; done 2>/dev/null || true
}
cleanup() {
    if [[ -n $NSPAWN_PID ]]; then
        kill -TERM "$NSPAWN_PID" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$NSPAWN_PID" 2>/dev/null || true
        wait "$NSPAWN_PID" 2>/dev/null || true
    fi
    if [[ -x ${BERTH:-} && -d $STORE ]]; then
        local n
        for n in $(running_berth_machines); do "$BERTH" --root "$STORE" terminate "$n" >/dev/null 2>&1 || true; done
    fi
    umount_under "$WORK"
    if [[ -n $INOTIFY_OLD ]]; then echo "$INOTIFY_OLD" >/proc/sys/fs/inotify/max_user_instances || true; fi
    local g
    for g in "${NEW_GLOBAL[@]}"; do
        [[ -e $g ]] || continue
        find "$g" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
    if [[ ${KEEP_TMP:-0} == 1 ]]; then log "scratch kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- berth binary
berth_ok=1
if [[ $BERTH == "$ROOT_DIR/target/$HOST_TUPLE/release/berth" ]]; then
    stale=
    if [[ ! -x $BERTH ]]; then
        stale="missing"
    elif [[ -n $(find "$ROOT_DIR/crates" "$ROOT_DIR/Cargo.toml" "$ROOT_DIR/Cargo.lock" -newer "$BERTH" \
        \( -name '*.rs' -o -name 'Cargo.toml' -o -name 'Cargo.lock' \) -not -path '*/tests/*' -print -quit 2>/dev/null) ]]; then
        stale="older than the sources"
    fi
    if [[ -n $stale ]]; then
        log "building berth ($stale): cargo build --release -p berth"
        (cd "$ROOT_DIR" && cargo build --release -p berth) >"$WORK/cargo.log" 2>&1 || {
            tail -n 20 "$WORK/cargo.log" >&2; log "berth build failed"; berth_ok=0; }
    fi
fi
[[ -x $BERTH ]] || { log "berth binary $BERTH is not executable"; berth_ok=0; }
if ((berth_ok)) && ! "$BERTH" start --help >/dev/null 2>&1; then log "$BERTH has no start command"; berth_ok=0; fi
if ((berth_ok)); then
    # measure a copy, so a rebuild while the benchmark runs changes nothing
    BERTH_DESC="$("$BERTH" --version 2>/dev/null || echo berth), $BERTH built $(date -u -r "$BERTH" +%Y-%m-%dT%H:%M:%SZ)"
    cp "$BERTH" "$WORK/berth"
    BERTH=$WORK/berth
fi

# ---------------------------------------------------------------- fixture: a bootable tree
tree_ok() { [[ -x $1/usr/lib/systemd/systemd && -e $1/usr/bin/dbus-daemon && -x $1/usr/bin/systemctl && -L $1/sbin/init ]]; }
if [[ -z ${BOOT_TREE:-} ]]; then
    for c in /var/cache/berth-test/bookworm-systemd /var/cache/berth-dev/bookworm-systemd "$BENCH_CACHE/rootfs-$SUITE-systemd"; do
        if tree_ok "$c"; then BOOT_TREE=$c; break; fi
    done
fi
if [[ -z ${BOOT_TREE:-} ]]; then
    BOOT_TREE=$BENCH_CACHE/rootfs-$SUITE-systemd
    command -v debootstrap >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
    MIRROR=${MIRROR:-$(find_mirror)}
    mkdir -p "$BENCH_CACHE"
    log "debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus $SUITE from $MIRROR (1-2 minutes)"
    rm -rf "$BOOT_TREE.tmp"
    debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus "$SUITE" "$BOOT_TREE.tmp" "$MIRROR" \
        >"$BENCH_CACHE/debootstrap-systemd.log" 2>&1 || die "debootstrap failed; see $BENCH_CACHE/debootstrap-systemd.log"
    umount_under "$BOOT_TREE.tmp"
    mv "$BOOT_TREE.tmp" "$BOOT_TREE"
fi
tree_ok "$BOOT_TREE" || die "$BOOT_TREE is not a bootable tree (needs systemd, dbus, /sbin/init)"
tree_mb=$(du -sm "$BOOT_TREE" | cut -f1)
nfiles=$(find "$BOOT_TREE" -xdev | wc -l)
SYSTEMD_VERSION=$(chroot "$BOOT_TREE" /usr/lib/systemd/systemd --version 2>/dev/null | awk 'NR == 1 {print $2}' || true)

# ---------------------------------------------------------------- timing helpers
now_ms() { local t=$EPOCHREALTIME; echo "${t%.*}${t#*.}" | awk '{printf "%.1f", $1 / 1000}'; }
ms_since() { awk -v a="$1" -v b="$(now_ms)" 'BEGIN {printf "%.1f", b - a}'; }
is_up() { [[ $1 == running || $1 == degraded ]]; }

declare -A STATUS TIMES STARTRET STATES
ACTIVE=()
failed=0
FAILED_TOOLS=()
mark_failed() { STATUS[$1]=failed; failed=1; FAILED_TOOLS+=("$1"); }

# ---------------------------------------------------------------- berth setup
MACHINE=bench-boot
if has_tool berth; then
    if ((berth_ok)); then
        log "berth import $BOOT_TREE (untimed) into $STORE; create $MACHINE"
        if "$BERTH" --root "$STORE" import -q "$BOOT_TREE" bench-boot-img >"$WORK/berth-import.log" 2>&1 \
            && "$BERTH" --root "$STORE" create bench-boot-img "$MACHINE" >>"$WORK/berth-import.log" 2>&1; then
            STATUS[berth]=ok; ACTIVE+=(berth)
        else
            tail -n 5 "$WORK/berth-import.log" >&2; mark_failed berth
        fi
    else
        STATUS[berth]="not runnable"; failed=1; FAILED_TOOLS+=(berth)
    fi
fi

# One boot with berth: prints "ms-until-up ms-until-start-returned state" or fails.
berth_boot() {
    local t0 ret s= deadline
    t0=$(now_ms)
    "$BERTH" --root "$STORE" start "$MACHINE" >"$WORK/berth-start.log" 2>&1 || { log "berth start failed: $(tail -n 2 "$WORK/berth-start.log")"; return 1; }
    ret=$(ms_since "$t0")
    deadline=$((SECONDS + BOOT_TIMEOUT))
    while :; do
        s=$("$BERTH" --root "$STORE" exec "$MACHINE" systemctl is-system-running 2>/dev/null || true)
        if is_up "$s"; then break; fi
        if ((SECONDS > deadline)); then log "berth: not running after ${BOOT_TIMEOUT}s (last: ${s:-nothing})"; berth_halt; return 1; fi
        sleep "$POLL"
    done
    echo "$(ms_since "$t0") $ret $s"
    berth_halt
}
berth_halt() {
    "$BERTH" --root "$STORE" stop "$MACHINE" >"$WORK/berth-stop.log" 2>&1 || log "berth stop failed: $(tail -n 2 "$WORK/berth-stop.log")"
}

# ---------------------------------------------------------------- nspawn setup
NSPAWN_TREE=$WORK/nspawn-tree
if has_tool nspawn; then
    log "copying the tree for systemd-nspawn (it writes into it): $NSPAWN_TREE"
    if cp -a --reflink=auto "$BOOT_TREE" "$NSPAWN_TREE"; then
        STATUS[nspawn]=ok; ACTIVE+=(nspawn)
    else
        mark_failed nspawn
    fi
fi
NSPAWN_CMD="systemd-nspawn -b --register=no --keep-unit -q --console=read-only -D $NSPAWN_TREE"

# The container's PID 1: the child of systemd-nspawn that is PID 1 of its own pid namespace.
nspawn_leader() {
    local c
    for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
        if awk '/^NSpid:/ {exit !(NF >= 3 && $NF == 1)}' "/proc/$c/status" 2>/dev/null; then echo "$c"; return 0; fi
    done
    return 1
}
nspawn_boot() {
    local t0 s= leader= deadline
    t0=$(now_ms)
    $NSPAWN_CMD >"$WORK/nspawn-console.log" 2>&1 &
    NSPAWN_PID=$!
    deadline=$((SECONDS + BOOT_TIMEOUT))
    while :; do
        [[ -z $leader ]] && leader=$(nspawn_leader "$NSPAWN_PID" || true)
        if [[ -n $leader ]]; then
            s=$(nsenter -t "$leader" -a systemctl is-system-running 2>/dev/null || true)
            if is_up "$s"; then break; fi
        fi
        if ! kill -0 "$NSPAWN_PID" 2>/dev/null; then
            log "systemd-nspawn exited early: $(tail -n 3 "$WORK/nspawn-console.log" | tr '\n' ' ')"; wait "$NSPAWN_PID" || true; NSPAWN_PID=; return 1
        fi
        if ((SECONDS > deadline)); then log "nspawn: not running after ${BOOT_TIMEOUT}s (last: ${s:-nothing})"; nspawn_halt; return 1; fi
        sleep "$POLL"
    done
    echo "$(ms_since "$t0") - $s"
    nspawn_halt
}
nspawn_halt() {
    # SIGTERM: nspawn asks the container's systemd to halt (SIGRTMIN+3)
    kill -TERM "$NSPAWN_PID" 2>/dev/null || true
    wait "$NSPAWN_PID" 2>/dev/null || true
    NSPAWN_PID=
}

boot_once() { # tool -> "ms ret state"
    case $1 in
        berth) berth_boot ;;
        nspawn) nspawn_boot ;;
    esac
}

# ---------------------------------------------------------------- leftovers (berth)
berth_state() { # -> file
    {
        echo "# mounts"
        awk '{split($0, a, " - "); n = split(a[1], f, " "); split(a[2], g, " "); print f[5], g[1], g[2]}' /proc/self/mountinfo \
            | awk -v p="$NSPAWN_TREE" 'index($1, p) != 1' | sort
        echo "# cgroups"
        find /sys/fs/cgroup -mindepth 2 -maxdepth 8 -type d \( -path '*/berth/bench-*' -o -path '*/berth.slice/bench-*' \) 2>/dev/null | sort || true
        echo "# state"
        find "$BERTH_RUN_DIR" -name state.json 2>/dev/null | sort || true
        echo "# processes"
        local p
        for p in /proc/[0-9]*; do
            [[ $(readlink "$p/exe" 2>/dev/null) == "$BERTH" ]] && echo "berth pid ${p#/proc/}"
        done
        true
    } >"$1"
}
leftovers() { # before after -> one line
    local d
    d=$(diff "$1" "$2" | grep '^>' | cut -c3- || true)
    if [[ -z $d ]]; then echo "none"; return; fi
    printf '%s\n' "$d" | awk '
        /^berth pid/ {p++; next}
        /^\/sys\/fs\/cgroup\// {c++; next}
        /state.json$/ {s++; next}
        {m++}
        END {printf "%d mount(s), %d cgroup dir(s), %d state file(s), %d process(es)", m, c, s, p}'
    printf '%s\n' "$d" | head -n 10 | sed 's/^/    left: /' >&2
}

# ---------------------------------------------------------------- measure boots
berth_state "$WORK/state.0"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
for t in "${ACTIVE[@]}"; do
    for ((w = 1; w <= WARMUP; w++)); do
        log "$t: warm-up boot $w/$WARMUP"
        boot_once "$t" >/dev/null || { log "$t failed its warm-up boot"; mark_failed "$t"; }
    done
done
for ((r = 1; r <= RUNS; r++)); do
    for t in "${ACTIVE[@]}"; do
        [[ ${STATUS[$t]} == ok ]] || continue
        if out=$(boot_once "$t"); then
            read -r ms ret st <<<"$out"
            TIMES[$t]+="$ms "
            [[ $ret != - ]] && STARTRET[$t]+="$ret "
            STATES[$t]+="$st "
            log "$t: boot $r/$RUNS: $st after $ms ms"
        else
            log "$t: boot $r/$RUNS failed"; mark_failed "$t"
        fi
    done
done
berth_state "$WORK/state.1"
BOOT_LEFT=$(leftovers "$WORK/state.0" "$WORK/state.1")

# cost of one readiness probe on a running machine (the poll's own resolution)
PROBE_BERTH= PROBE_NSPAWN=
if [[ ${STATUS[berth]:-} == ok ]] && "$BERTH" --root "$STORE" start "$MACHINE" >/dev/null 2>&1; then
    for _ in $(seq $((BOOT_TIMEOUT * 10))); do
        is_up "$("$BERTH" --root "$STORE" exec "$MACHINE" systemctl is-system-running 2>/dev/null || true)" && break; sleep 0.1
    done
    hyperfine -N --style none --warmup 2 --runs 20 -i --export-json "$WORK/probe-berth.json" \
        "$BERTH --root $STORE exec $MACHINE systemctl is-system-running" >/dev/null 2>&1 \
        && PROBE_BERTH=$(jq -r '.results[0].median * 1000 * 10 | floor / 10' "$WORK/probe-berth.json")
    berth_halt
fi
if [[ ${STATUS[nspawn]:-} == ok ]]; then
    $NSPAWN_CMD >"$WORK/nspawn-console.log" 2>&1 &
    NSPAWN_PID=$!
    leader=
    for _ in $(seq $((BOOT_TIMEOUT * 10))); do
        [[ -z $leader ]] && leader=$(nspawn_leader "$NSPAWN_PID" || true)
        [[ -n $leader ]] && is_up "$(nsenter -t "$leader" -a systemctl is-system-running 2>/dev/null || true)" && break
        sleep 0.1
    done
    if [[ -n $leader ]]; then
        hyperfine -N --style none --warmup 2 --runs 20 -i --export-json "$WORK/probe-nspawn.json" \
            "nsenter -t $leader -a systemctl is-system-running" >/dev/null 2>&1 \
            && PROBE_NSPAWN=$(jq -r '.results[0].median * 1000 * 10 | floor / 10' "$WORK/probe-nspawn.json")
    fi
    nspawn_halt
fi

# ---------------------------------------------------------------- berth ps with many machines
PS_LINE= PS_EMPTY= PS_FULL= PS_JSON= PS_LEFT= PS_NOTE= PS_INOTIFY=
if ((PS_MACHINES > 0)) && [[ ${STATUS[berth]:-} == ok ]]; then
    hyperfine -N --style none --warmup 3 --runs "$PS_RUNS" --export-json "$WORK/ps-0.json" "$BERTH --root $STORE ps" >/dev/null 2>&1 \
        && PS_EMPTY=$(jq -r '.results[0] | "\(.median * 1000) \(.mean * 1000) \(.stddev * 1000)"' "$WORK/ps-0.json")
    log "cloning $MACHINE into $PS_MACHINES machines"
    names=()
    for ((i = 1; i <= PS_MACHINES; i++)); do
        n=$MACHINE-ps$i; names+=("$n")
        "$BERTH" --root "$STORE" clone "$MACHINE" "$n" >>"$WORK/clone.log" 2>&1 || { log "clone $n failed: $(tail -n 1 "$WORK/clone.log")"; }
    done
    berth_state "$WORK/state.2"
    inotify_now=$(cat /proc/sys/fs/inotify/max_user_instances)
    inotify_need=$((PS_MACHINES * 10 + 256))
    if ((inotify_now < inotify_need)); then
        if [[ ${RAISE_INOTIFY:-1} == 1 ]]; then
            INOTIFY_OLD=$inotify_now
            echo "$inotify_need" >/proc/sys/fs/inotify/max_user_instances
            PS_INOTIFY="fs.inotify.max_user_instances raised from $inotify_now to $inotify_need for this run (restored at exit): every booted systemd takes ~7 inotify instances"
        else
            PS_INOTIFY="fs.inotify.max_user_instances is $inotify_now (RAISE_INOTIFY=0): machines past ~$(((inotify_now - 2) / 7)) fail to boot with \"Too many open files\""
        fi
    fi
    log "starting $PS_MACHINES machines at once"
    mkdir -p "$WORK/ps-start"
    t0=$(now_ms)
    for n in "${names[@]}"; do
        ( rc=0; "$BERTH" --root "$STORE" start "$n" >"$WORK/ps-start/$n.log" 2>&1 || rc=$?; echo "$rc" >"$WORK/ps-start/$n.rc" ) &
    done
    wait
    started_ms=$(ms_since "$t0")
    started=$(cat "$WORK"/ps-start/*.rc | grep -cx 0 || true)
    # all booted (running/degraded), polled round-robin
    pending=("${names[@]}")
    dead=()
    deadline=$((SECONDS + BOOT_TIMEOUT * 2))
    while ((${#pending[@]})) && ((SECONDS <= deadline)); do
        rest=()
        for n in "${pending[@]}"; do
            s=$("$BERTH" --root "$STORE" exec "$n" systemctl is-system-running 2>&1 || true)
            is_up "$s" && continue
            # its init gave up (berth cleaned the state): it will not come up
            [[ $s == *"not running"* ]] && { dead+=("$n"); continue; }
            rest+=("$n")
        done
        pending=("${rest[@]}")
        ((${#pending[@]})) && sleep 0.2
    done
    up_ms=$(ms_since "$t0")
    up=$((PS_MACHINES - ${#pending[@]} - ${#dead[@]}))
    ((${#dead[@]})) && log "machines whose init exited during boot: ${dead[*]} (see $BERTH_RUN_DIR/NAME/console.log)"
    listed=$("$BERTH" --root "$STORE" ps --json | jq length)
    hyperfine -N --style none --warmup 3 --runs "$PS_RUNS" --export-json "$WORK/ps-n.json" "$BERTH --root $STORE ps" >/dev/null 2>&1 \
        && PS_FULL=$(jq -r '.results[0] | "\(.median * 1000) \(.mean * 1000) \(.stddev * 1000) \(.min * 1000) \(.max * 1000)"' "$WORK/ps-n.json")
    hyperfine -N --style none --warmup 3 --runs "$PS_RUNS" --export-json "$WORK/ps-json.json" "$BERTH --root $STORE ps --json" >/dev/null 2>&1 \
        && PS_JSON=$(jq -r '.results[0].median * 1000' "$WORK/ps-json.json")
    hyperfine -N --style none --warmup 2 --runs 10 --export-json "$WORK/status.json" "$BERTH --root $STORE status ${names[0]}" >/dev/null 2>&1 \
        && PS_STATUS=$(jq -r '.results[0].median * 1000' "$WORK/status.json")
    # machines whose systemd gave up (PID 1 exited) are not running any more
    alive=$("$BERTH" --root "$STORE" ps --json | jq length)
    log "stopping $PS_MACHINES machines at once"
    t0=$(now_ms)
    mkdir -p "$WORK/ps-stop"
    for n in "${names[@]}"; do
        ( rc=0; "$BERTH" --root "$STORE" stop "$n" >"$WORK/ps-stop/$n.log" 2>&1 || rc=$?; echo "$rc" >"$WORK/ps-stop/$n.rc" ) &
    done
    wait
    stopped_ms=$(ms_since "$t0")
    stopped=$(cat "$WORK"/ps-stop/*.rc | grep -cx 0 || true)
    killed=$(grep -l 'killing it' "$WORK"/ps-stop/*.log 2>/dev/null | wc -l || true)
    berth_state "$WORK/state.3"
    PS_LEFT=$(leftovers "$WORK/state.2" "$WORK/state.3")
    PS_NOTE="$started/$PS_MACHINES started (all \`start\`s returned after $(awk -v x="$started_ms" 'BEGIN {printf "%.1f", x / 1000}') s), $up/$PS_MACHINES running/degraded after $(awk -v x="$up_ms" 'BEGIN {printf "%.1f", x / 1000}') s (${#dead[@]} whose init exited), \`ps\` listed $listed when timed ($alive after the timing); $stopped/$PS_MACHINES stopped in $(awk -v x="$stopped_ms" 'BEGIN {printf "%.1f", x / 1000}') s ($killed needed SIGKILL)"
fi

# ---------------------------------------------------------------- stats + report
stats() { # ms values on stdin -> median mean sd min max
    tr ' ' '\n' | grep . | sort -g | awk '{v[NR] = $1; s += $1} END {
        if (NR == 0) exit 1
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        mean = s / NR; for (i = 1; i <= NR; i++) q += (v[i] - mean) ^ 2
        sd = NR > 1 ? sqrt(q / (NR - 1)) : 0
        printf "%.1f %.1f %.1f %.1f %.1f\n", m, mean, sd, v[1], v[NR]}'
}
declare -A MEDIAN MEAN SD MIN MAX
for t in "${ACTIVE[@]}"; do
    [[ -n ${TIMES[$t]:-} ]] || continue
    read -r MEDIAN[$t] MEAN[$t] SD[$t] MIN[$t] MAX[$t] < <(stats <<<"${TIMES[$t]}")
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "" || b == "" || b == 0) print "n/a"; else printf "%.2f", a / b}'; }
label() {
    case $1 in
        berth) echo "berth start → running" ;;
        nspawn) echo "systemd-nspawn -b → running" ;;
    esac
}
count() { tr ' ' '\n' | grep -c "^$1\$" || true; }

echo
echo "berth boot benchmark — $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs, kernel $(uname -r)"
echo "tree: $BOOT_TREE (debootstrap $SUITE minbase + systemd, systemd-sysv, dbus; $tree_mb MB, $nfiles entries; systemd ${SYSTEMD_VERSION:-?})"
echo "  berth: \`berth import\` of the tree, one machine (overlay over the image) booted again each run;"
echo "  nspawn: a plain copy of the tree, booted again each run (--register=no --keep-unit --console=read-only)"
echo "timed: from just before \`berth start M\` / \`$NSPAWN_CMD\` is run until \`systemctl is-system-running\` inside"
echo "  prints running or degraded, polled every $POLL_MS ms: \`berth exec M systemctl is-system-running\` for berth,"
echo "  \`nsenter -t LEADER -a systemctl is-system-running\` for nspawn (LEADER: nspawn's child that is PID 1 of its pid namespace)"
echo "runs: $RUNS per tool, interleaved, after $WARMUP warm-up boot(s) each; the machine is stopped (untimed) after each boot"
echo "load average: $LOAD_START before, $(cut -d' ' -f1-3 /proc/loadavg) after"
[[ -n ${BERTH_DESC:-} ]] && echo "berth: $BERTH_DESC"
has_tool nspawn && echo "peer: systemd-nspawn $(systemd-nspawn --version 2>/dev/null | awk 'NR == 1 {print $2}')"
echo
fmt='%-30s %10s %17s %15s %9s %9s  %s\n'
printf "$fmt" tool "median ms" "mean ± sd ms" "min..max ms" "/ berth" "states" status
b=${MEDIAN[berth]:-}
for t in $TOOLS; do
    if [[ -n ${MEDIAN[$t]:-} ]]; then
        states="$(count running <<<"${STATES[$t]}")r/$(count degraded <<<"${STATES[$t]}")d"
        printf "$fmt" "$(label "$t")" "${MEDIAN[$t]}" "$(printf '%.1f ± %.1f' "${MEAN[$t]}" "${SD[$t]}")" \
            "$(printf '%.1f..%.1f' "${MIN[$t]}" "${MAX[$t]}")" "$(ratio "${MEDIAN[$t]}" "$b")" "$states" "${STATUS[$t]}"
    else
        printf "$fmt" "$(label "$t")" - - - - - "${STATUS[$t]:-failed}"
    fi
done
echo
printf '%-46s %8s\n' "berth / systemd-nspawn   [median boot]" "$(ratio "$b" "${MEDIAN[nspawn]:-}")"
if [[ -n ${STARTRET[berth]:-} ]]; then
    read -r sr_med _ < <(stats <<<"${STARTRET[berth]}")
    printf '%-46s %8s\n' "berth start returns after  [median ms]" "$sr_med"
fi
printf '%-46s %8s\n' "one probe, berth exec ...  [median ms]" "${PROBE_BERTH:-n/a}"
printf '%-46s %8s\n' "one probe, nsenter ...     [median ms]" "${PROBE_NSPAWN:-n/a}"
if [[ -n $PS_FULL ]]; then
    read -r pm pmean psd pmin pmax <<<"$PS_FULL"
    echo
    printf '%-46s %8.1f   (mean %.1f ± %.1f, min..max %.1f..%.1f, %d runs)\n' \
        "berth ps, $PS_MACHINES machines running [median ms]" "$pm" "$pmean" "$psd" "$pmin" "$pmax" "$PS_RUNS"
    [[ -n $PS_JSON ]] && printf '%-46s %8.1f\n' "berth ps --json, $PS_MACHINES machines   [median ms]" "$PS_JSON"
    [[ -n $PS_EMPTY ]] && printf '%-46s %8.1f\n' "berth ps, no machine running   [median ms]" "$(awk '{print $1}' <<<"$PS_EMPTY")"
    [[ -n ${PS_STATUS:-} ]] && printf '%-46s %8.1f\n' "berth status M, $PS_MACHINES running   [median ms]" "$PS_STATUS"
    echo "$PS_MACHINES machines: $PS_NOTE; left behind: $PS_LEFT"
    [[ -n $PS_INOTIFY ]] && echo "note: $PS_INOTIFY"
elif ((PS_MACHINES > 0)); then
    echo
    echo "berth ps with $PS_MACHINES machines: not measured"
fi
[[ ${STATUS[berth]:-} == ok ]] && echo "left behind by the timed berth boots (mounts, berth/bench-* cgroups, state files, berth processes): $BOOT_LEFT"
if ((failed)); then
    echo
    echo "failed to run: ${FAILED_TOOLS[*]}"
fi
exit "$failed"
