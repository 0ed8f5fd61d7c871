#!/usr/bin/env bash
# bench/run.sh — start-up time of `berth run IMAGE /bin/true` (and `run -D`)
# against runc, crun, systemd-nspawn, podman and a bare `unshare` floor,
# measured in the same run on the same tree; peak RSS; 50 runs at once.
#
# This is a benchmark, not a test: it exits 0 when targets are missed and
# non-zero only when a tool (or the fixture setup) failed to run at all.
# See bench/README.md for what it measures and what each line means.
#
# Environment:
#   RUNS=30             timed runs per tool (hyperfine --runs, split over ROUNDS)
#   WARMUP=3            untimed runs before each hyperfine (hyperfine --warmup)
#   ROUNDS=3            interleaved rounds (each tool runs RUNS/ROUNDS per round)
#   PARALLEL=50         containers started at once in the parallel check
#   BERTH=PATH          berth binary (default target/HOST/release/berth; rebuilt with
#                       `cargo build --release -p berth` when missing or older
#                       than the sources)
#   BENCH_CACHE=DIR     fixture cache shared with pull.sh (default /var/cache/berth-bench)
#   BENCH_TMP=DIR       scratch parent dir (default /var/tmp)
#   TOOLS="..."         subset of: berth-image berth-dir runc crun nspawn podman floor
#   KEEP_TMP=1          keep the scratch dir
set -Eeuo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap 'printf "[bench] internal error: line %s exited %s\n" "$LINENO" "$?" >&2' ERR

RUNS=${RUNS:-30}
WARMUP=${WARMUP:-3}
ROUNDS=${ROUNDS:-3}
PARALLEL=${PARALLEL:-50}
ALL_TOOLS="berth-image berth-dir runc crun nspawn podman floor"
TOOLS=${TOOLS:-$ALL_TOOLS}
SUITE=bookworm

ROOTFS=$BENCH_CACHE/rootfs-$SUITE-minbase
LAYOUT=$BENCH_CACHE/oci-$SUITE-minbase
IMAGE_PATH=bench/$SUITE
IMAGE=bench-$SUITE # the name berth's store gives the image (pull --name)


if [[ $(id -u) != 0 ]]; then die "run as root (containers need it)"; fi
[[ $RUNS =~ ^[1-9][0-9]*$ && $ROUNDS =~ ^[1-9][0-9]*$ && $WARMUP =~ ^[0-9]+$ && $PARALLEL =~ ^[1-9][0-9]*$ ]] \
    || die "RUNS, ROUNDS, PARALLEL must be positive integers, WARMUP a non-negative one"
((ROUNDS <= RUNS)) || ROUNDS=$RUNS
for t in $TOOLS; do [[ " $ALL_TOOLS " == *" $t "* ]] || die "unknown tool $t (known: $ALL_TOOLS)"; done

# ---------------------------------------------------------------- tools
need_pkgs=()
command -v umoci >/dev/null || need_pkgs+=(umoci)
command -v skopeo >/dev/null || need_pkgs+=(skopeo)
command -v docker-registry >/dev/null || need_pkgs+=(docker-registry)
command -v hyperfine >/dev/null || need_pkgs+=(hyperfine)
command -v jq >/dev/null || need_pkgs+=(jq)
command -v curl >/dev/null || need_pkgs+=(curl)
[[ -x /usr/bin/time ]] || need_pkgs+=(time)
if has_tool runc && ! command -v runc >/dev/null; then need_pkgs+=(runc); fi
if has_tool crun && ! command -v crun >/dev/null; then need_pkgs+=(crun); fi
if has_tool nspawn && ! command -v systemd-nspawn >/dev/null; then need_pkgs+=(systemd-container); fi
if has_tool podman && ! command -v podman >/dev/null; then need_pkgs+=(podman); fi
# podman runs its containers with runc here (crun refuses the hybrid layout)
if has_tool podman && ! command -v runc >/dev/null; then need_pkgs+=(runc); fi
if ((${#need_pkgs[@]})); then
    log "installing: ${need_pkgs[*]}"
    apt-get update -qq
    # --no-install-recommends: systemd-container would pull in libnss-mymachines,
    # which edits /etc/nsswitch.conf
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

# ---------------------------------------------------------------- scratch + cleanup
mkdir -p "$BENCH_TMP"
WORK=$(mktemp -d "$BENCH_TMP/berth-runbench.XXXXXX")
REG_PID=
SAMPLE_PID=
# state the peers create outside the scratch dir even with private roots:
# systemd-nspawn makes /run/systemd/nspawn/{locks,propagate}; podman (runc via
# conmon) makes /run/runc, /run/containers/networks and libpod_parent/conmon
# cgroups. What was not there before is removed at exit (if empty).
NEW_GLOBAL=()
for g in /run/systemd/nspawn /run/runc /run/crun /run/containers /run/libpod /var/lib/containers/storage \
    $(printf '%s/libpod_parent\n' /sys/fs/cgroup/* /sys/fs/cgroup); do
    [[ -e $g ]] || NEW_GLOBAL+=("$g")
done
umount_under() { # unmount anything mounted at or below $1 (podman's overlay driver leaves a private bind mount)
    local m
    while read -r m; do umount -l "$m" 2>/dev/null || true; done < <(findmnt -rn -o TARGET | awk -v p="$1" 'index($0, p) == 1' | sort -r)
}
kill_registry() {
    if [[ -n $REG_PID ]]; then kill "$REG_PID" 2>/dev/null || true; wait "$REG_PID" 2>/dev/null || true; REG_PID=; fi
}
cleanup() {
    kill_registry
    if [[ -n $SAMPLE_PID ]]; then kill "$SAMPLE_PID" 2>/dev/null || true; wait "$SAMPLE_PID" 2>/dev/null || true; fi
    # podman: containers are --rm; drop whatever a failed run left, then its storage
    if [[ -n ${PODMAN_BASE:-} && -d $WORK/podman/root ]]; then
        CONTAINERS_CONF=$WORK/containers.conf $PODMAN_BASE rm -af >/dev/null 2>&1 || true
    fi
    # runc/crun: a container a failed run left behind
    if [[ -d $WORK/runc-state ]]; then runc --root "$WORK/runc-state" delete -f berth-bench-runc >/dev/null 2>&1 || true; fi
    if [[ -d $WORK/crun-state ]]; then crun --root "$WORK/crun-state" delete -f berth-bench-crun >/dev/null 2>&1 || true; fi
    umount_under "$WORK"
    local g
    for g in "${NEW_GLOBAL[@]}"; do
        [[ -e $g ]] || continue
        # empty directories (and cgroups) only, deepest first
        find "$g" -depth -type d -exec rmdir {} \; 2>/dev/null || true
        [[ -e $g ]] && log "left in place (not empty): $g"
    done
    if [[ ${KEEP_TMP:-0} == 1 ]]; then log "scratch kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- berth binary
berth_ok=1
if has_tool berth-image || has_tool berth-dir; then
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
    if ((berth_ok)) && ! "$BERTH" run --help >/dev/null 2>&1; then log "$BERTH has no run command"; berth_ok=0; fi
    if ((berth_ok)); then
        # measure a copy, so a rebuild while the benchmark runs changes nothing
        BERTH_SRC=$BERTH
        BERTH_DESC="$("$BERTH" --version 2>/dev/null || echo berth), $BERTH_SRC built $(date -u -r "$BERTH_SRC" +%Y-%m-%dT%H:%M:%SZ)"
        cp "$BERTH_SRC" "$WORK/berth"
        BERTH=$WORK/berth
    fi
fi

# ---------------------------------------------------------------- fixture (shared with pull.sh)
if [[ ! -d $ROOTFS || ! -f $LAYOUT/index.json ]]; then
    log "fixture missing in $BENCH_CACHE: building it with bench/pull.sh (TOOLS=floor-gzip RUNS=1)"
    BENCH_CACHE=$BENCH_CACHE BENCH_TMP=$BENCH_TMP TOOLS=floor-gzip RUNS=1 bash "$ROOT_DIR/bench/pull.sh" >"$WORK/pull-fixture.log" 2>&1 \
        || { tail -n 20 "$WORK/pull-fixture.log" >&2; die "bench/pull.sh could not build the fixture"; }
fi
[[ -d $ROOTFS && -f $LAYOUT/index.json ]] || die "fixture still missing after bench/pull.sh"

# runc bundle; its rootfs is also the tree for `berth run -D`, nspawn and the floor,
# so the cached tree (which pull.sh packs) is never written to
BUNDLE=$WORK/bundle
TREE=$BUNDLE/rootfs
log "umoci unpack --image $LAYOUT:$SUITE $BUNDLE"
umoci unpack --image "$LAYOUT:$SUITE" "$BUNDLE" >"$WORK/umoci.log" 2>&1 || { tail -n 20 "$WORK/umoci.log" >&2; die "umoci unpack failed"; }
# raising RLIMIT_NOFILE is refused here (no CAP_SYS_RESOURCE): drop process.rlimits
jq 'del(.process.rlimits) | .process.args = ["/bin/true"] | .process.terminal = false' "$BUNDLE/config.json" >"$WORK/config.json"
mv "$WORK/config.json" "$BUNDLE/config.json"
[[ -x $TREE/bin/true ]] || die "$TREE/bin/true missing after umoci unpack"
nfiles=$(find "$TREE" -xdev | wc -l)
tree_mb=$(du -sm "$TREE" | cut -f1)

# ---------------------------------------------------------------- registry (only to import the image)
STORE=$WORK/store
REF=
if (has_tool berth-image && ((berth_ok))) || has_tool podman; then
    start_registry
    REF=127.0.0.1:$PORT/$IMAGE_PATH:latest
    log "registry on 127.0.0.1:$PORT; pushing $REF"
    skopeo copy -q --preserve-digests --dest-tls-verify=false "oci:$LAYOUT:$SUITE" "docker://$REF" || die "skopeo push failed"
fi

# ---------------------------------------------------------------- per-tool setup
declare -A STATUS NOTE CMD WRAP TIMES CPUSUM NCPU RSS MEDIAN MEAN SD MIN MAX
ACTIVE=()
failed=0
FAILED_TOOLS=()
mark_failed() { STATUS[$1]=${2:-failed}; failed=1; FAILED_TOOLS+=("$1"); }

# WRAP[t]: a command prefix that hyperfine and the RSS run are started under
# (crun's private mount namespace); empty for the others.
probe() { # name cmd... : one untimed run, log kept
    local t=$1; shift
    if "$@" >"$WORK/$t.probe.log" 2>&1; then return 0; fi
    log "$t: probe failed: $* :: $(tail -n 2 "$WORK/$t.probe.log" | tr '\n' ' ')"
    return 1
}

UNIFIED=$(findmnt -rn -t cgroup2 -o TARGET | head -n1 || true)
HAVE_V1=0; [[ -n $(findmnt -rn -t cgroup -o TARGET | head -n1 || true) ]] && HAVE_V1=1
CRUN_NS="unshare -m --propagation private sh -c 'umount $UNIFIED && exec \"\$@\"' sh"

setup_tool() {
    local t=$1
    STATUS[$t]=failed
    case $t in
        berth-image)
            ((berth_ok)) || { mark_failed "$t" "not runnable"; return; }
            log "berth pull (untimed) into $STORE"
            "$BERTH" --root "$STORE" pull -q --tls-verify=false --name "$IMAGE" "$REF" >"$WORK/berth-pull.log" 2>&1 \
                || { tail -n 5 "$WORK/berth-pull.log" >&2; log "berth pull failed"; mark_failed "$t"; return; }
            CMD[$t]="$BERTH --root $STORE run $IMAGE /bin/true"
            ;;
        berth-dir)
            ((berth_ok)) || { mark_failed "$t" "not runnable"; return; }
            mkdir -p "$STORE"
            CMD[$t]="$BERTH --root $STORE run -D $TREE /bin/true"
            ;;
        runc)
            CMD[$t]="runc --root $WORK/runc-state run -b $BUNDLE berth-bench-runc"
            ;;
        crun)
            CMD[$t]="crun --root $WORK/crun-state run -b $BUNDLE berth-bench-crun"
            if ! probe "$t" ${CMD[$t]} && grep -q 'hybrid' "$WORK/$t.probe.log" && [[ -n $UNIFIED ]] && ((HAVE_V1)); then
                WRAP[$t]=$CRUN_NS
                NOTE[$t]="crun refuses the hybrid cgroup layout: it runs (and hyperfine with it) in a private mount namespace where $UNIFIED is unmounted; the namespace is made once per hyperfine, outside the timing"
            fi
            ;;
        nspawn)
            CMD[$t]="systemd-nspawn --register=no --keep-unit -q -D $TREE /bin/true"
            ;;
        podman)
            printf '[containers]\ndefault_ulimits = []\n' >"$WORK/containers.conf"
            export CONTAINERS_CONF=$WORK/containers.conf
            local drv pulled=0
            for drv in overlay vfs; do
                umount_under "$WORK/podman"; rm -rf "$WORK/podman"; mkdir -p "$WORK/podman"
                PODMAN_BASE="podman --root $WORK/podman/root --runroot $WORK/podman/runroot --tmpdir $WORK/podman/tmp --storage-driver $drv --events-backend none --cgroup-manager cgroupfs"
                log "podman pull (untimed, --storage-driver $drv)"
                if $PODMAN_BASE pull -q --tls-verify=false "$REF" >"$WORK/podman-pull.log" 2>&1; then pulled=1; break; fi
                log "podman pull with $drv failed: $(tail -n 1 "$WORK/podman-pull.log")"
            done
            ((pulled)) || { mark_failed "$t"; return; }
            PODMAN_DRIVER=$drv
            # --network none: an empty network namespace, as the runc bundle has
            # (the default bridge adds netavark's setup, ~0.2 s here)
            CMD[$t]="$PODMAN_BASE run --rm --network none $REF /bin/true"
            if ! probe "$t" ${CMD[$t]}; then
                if grep -q 'hybrid' "$WORK/$t.probe.log"; then
                    CMD[$t]="$PODMAN_BASE run --rm --runtime runc --network none $REF /bin/true"
                    NOTE[$t]="podman's default OCI runtime (crun) refuses the hybrid cgroup layout: it runs with --runtime runc"
                fi
            fi
            ;;
        floor)
            CMD[$t]="unshare --fork --pid --mount --uts --ipc --net --root=$TREE /bin/true"
            ;;
    esac
    # one untimed run through the same wrapper as the timed ones
    if ! probe "$t" bash -c "${WRAP[$t]:-} ${CMD[$t]}"; then mark_failed "$t"; return; fi
    STATUS[$t]=ok
    log "$t: ${WRAP[$t]:+${WRAP[$t]} }${CMD[$t]}"
    ACTIVE+=("$t")
}

# leftovers of berth: mounts, scratch dirs, cgroups, processes
berth_state() { # -> file
    {
        echo "# mounts"
        # mount point, fs type, source; podman's own storage mounts are not berth's
        awk '{split($0, a, " - "); n = split(a[1], f, " "); split(a[2], g, " "); print f[5], g[1], g[2]}' /proc/self/mountinfo \
            | awk -v p="$WORK/podman" 'index($1, p) != 1' | sort
        echo "# scratch"
        find "$STORE/tmp" -mindepth 1 -maxdepth 1 -name 'run-*' 2>/dev/null | sort || true
        echo "# cgroups"
        find /sys/fs/cgroup -mindepth 2 -maxdepth 8 -type d \( -path '*/berth/*' -o -path '*/berth.slice/*' \) 2>/dev/null | sort || true
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
        / / {m++; next}
        /^\/sys\/fs\/cgroup\// {c++; next}
        {s++}
        END {printf "%d mount(s), %d run-* dir(s), %d cgroup dir(s), %d process(es)", m, s, c, p}'
    printf '%s\n' "$d" | head -n 10 | sed 's/^/    left: /' >&2
}

for t in $TOOLS; do setup_tool "$t"; done
kill_registry # the image is in berth's store and podman's; nothing else pulls

mkdir -p "$STORE"
berth_state "$WORK/state.0"

# ---------------------------------------------------------------- measure
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
# rounds interleave the tools, so drift of the machine hits every tool alike
per_round=$(((RUNS + ROUNDS - 1) / ROUNDS))
done_runs=0
for ((r = 1; r <= ROUNDS; r++)); do
    n=$per_round; ((done_runs + n > RUNS)) && n=$((RUNS - done_runs))
    ((n > 0)) || break
    log "round $r/$ROUNDS ($n runs per tool, $WARMUP warm-up)"
    for t in "${ACTIVE[@]}"; do
        [[ ${STATUS[$t]} == ok ]] || continue
        j=$WORK/$t.r$r.json
        if ! eval "${WRAP[$t]:-}" hyperfine -N --style basic --warmup "$WARMUP" --runs "$n" --export-json "$j" \
                -n "$t" "'${CMD[$t]}'" >"$WORK/$t.r$r.log" 2>&1; then
            tail -n 5 "$WORK/$t.r$r.log" >&2; log "$t failed in round $r"; mark_failed "$t"; continue
        fi
        TIMES[$t]+="$(jq -r '.results[0].times | map(tostring) | join(" ")' "$j") "
        CPUSUM[$t]=$(awk -v a="${CPUSUM[$t]:-0}" -v n="$n" -v u="$(jq -r '.results[0].user + .results[0].system' "$j")" 'BEGIN {print a + n * u}')
        NCPU[$t]=$((${NCPU[$t]:-0} + n))
    done
    done_runs=$((done_runs + n))
done
berth_state "$WORK/state.1"

# peak RSS: one extra run under /usr/bin/time (max over the tool and the
# children it reaps, as wait4 reports it — not a sum)
for t in "${ACTIVE[@]}"; do
    [[ ${STATUS[$t]} == ok ]] || continue
    if eval "${WRAP[$t]:-}" /usr/bin/time -f %M -o "$WORK/$t.rss" "${CMD[$t]}" >"$WORK/$t.rss.log" 2>&1; then
        RSS[$t]=$(awk '/^[0-9]+$/ {printf "%.1f", $1 / 1024}' "$WORK/$t.rss")
    else
        tail -n 3 "$WORK/$t.rss.log" >&2; log "$t failed in the RSS run"
    fi
done

# berth's two processes while a container runs: the host process and the
# container's PID 1 (a fork of berth); VmHWM each, and PSS (shared pages split)
SAMPLE=
if [[ ${STATUS[berth-image]:-} == ok ]]; then
    "$BERTH" --root "$STORE" run "$IMAGE" /bin/sleep 2 >"$WORK/sample.log" 2>&1 &
    SAMPLE_PID=$!
    child=
    for _ in $(seq 50); do
        sleep 0.05
        child=$(awk '{print $1}' "/proc/$SAMPLE_PID/task/$SAMPLE_PID/children" 2>/dev/null || true)
        [[ -n $child ]] && [[ -n $(cat "/proc/$child/task/$child/children" 2>/dev/null || true) ]] && break
    done
    if [[ -n $child ]]; then
        kb() { awk -v k="$2:" '$1 == k {print $2}' "$1" 2>/dev/null || true; }
        h_hwm=$(kb "/proc/$SAMPLE_PID/status" VmHWM); c_hwm=$(kb "/proc/$child/status" VmHWM)
        h_pss=$(kb "/proc/$SAMPLE_PID/smaps_rollup" Pss); c_pss=$(kb "/proc/$child/smaps_rollup" Pss)
        SAMPLE=$(awk -v a="$h_hwm" -v b="$c_hwm" -v c="$h_pss" -v d="$c_pss" 'BEGIN {
            printf "host process %.1f MB + container PID 1 %.1f MB (VmHWM; sum %.1f MB, PSS sum %.1f MB)", a / 1024, b / 1024, (a + b) / 1024, (c + d) / 1024}')
    fi
    wait "$SAMPLE_PID" 2>/dev/null || true
    SAMPLE_PID=
fi

# ---------------------------------------------------------------- parallel
PAR_LINE= PAR_LEFT= PAR_OK=
if [[ ${STATUS[berth-image]:-} == ok ]]; then
    log "$PARALLEL x berth run $IMAGE /bin/true at once"
    berth_state "$WORK/state.2"
    mkdir -p "$WORK/par"
    t0=$(date +%s%N)
    for ((i = 1; i <= PARALLEL; i++)); do
        ( rc=0; $BERTH --root "$STORE" run "$IMAGE" /bin/true >"$WORK/par/$i.log" 2>&1 || rc=$?; echo "$rc" >"$WORK/par/$i.rc" ) &
    done
    wait
    t1=$(date +%s%N)
    PAR_OK=$(cat "$WORK"/par/*.rc | grep -cx 0 || true)
    berth_state "$WORK/state.3"
    PAR_LINE=$(awk -v ok="$PAR_OK" -v n="$PARALLEL" -v ns=$((t1 - t0)) 'BEGIN {printf "%d/%d succeeded, wall %.0f ms (%.1f ms per container)", ok, n, ns / 1e6, ns / 1e6 / n}')
    if ((PAR_OK < PARALLEL)); then
        for f in "$WORK"/par/*.rc; do
            [[ $(cat "$f") == 0 ]] && continue
            log "parallel run ${f##*/} exited $(cat "$f"): $(tail -n 2 "${f%.rc}.log" | tr '\n' ' ')"
        done 2>/dev/null | head -n 5 >&2 || true
    fi
    PAR_LEFT=$(leftovers "$WORK/state.2" "$WORK/state.3")
fi
SEQ_LEFT=$(leftovers "$WORK/state.0" "$WORK/state.1")

# ---------------------------------------------------------------- stats
stats() { # times (s) on stdin -> median mean sd min max (ms)
    tr ' ' '\n' | grep . | sort -g | awk '{v[NR] = $1 * 1000; s += v[NR]} END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        mean = s / NR; for (i = 1; i <= NR; i++) q += (v[i] - mean) ^ 2
        sd = NR > 1 ? sqrt(q / (NR - 1)) : 0
        printf "%.2f %.2f %.2f %.2f %.2f\n", m, mean, sd, v[1], v[NR]}'
}
for t in "${ACTIVE[@]}"; do
    [[ ${STATUS[$t]} == ok && -n ${TIMES[$t]:-} ]] || continue
    read -r MEDIAN[$t] MEAN[$t] SD[$t] MIN[$t] MAX[$t] < <(stats <<<"${TIMES[$t]}")
done

# ---------------------------------------------------------------- report
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "" || b == "" || b == 0) print "n/a"; else printf "%.2f", a / b}'; }
label() {
    case $1 in
        berth-image) echo "berth run IMAGE" ;;
        berth-dir) echo "berth run -D TREE" ;;
        runc) echo "runc run" ;;
        crun) echo "crun run${WRAP[crun]:+ (cgroup2 unmounted)}" ;;
        nspawn) echo "systemd-nspawn -D TREE" ;;
        podman) echo "podman run --rm (${PODMAN_DRIVER:-?})" ;;
        floor) echo "floor: unshare --root" ;;
    esac
}
b=${MEDIAN[berth-image]:-}
echo
echo "berth run benchmark — $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs, kernel $(uname -r)"
echo "command: /bin/true; tree: debootstrap $SUITE minbase ($tree_mb MB, $nfiles entries), unpacked by umoci into the runc bundle;"
echo "  berth run IMAGE: ephemeral overlay over the store's layer; -D, nspawn and the floor use the bundle's rootfs in place"
echo "runs: $RUNS per tool in $ROUNDS interleaved rounds (hyperfine -N, $WARMUP warm-up per round), caches warm"
echo "load average: $LOAD_START before the runs, $(cut -d' ' -f1-3 /proc/loadavg) after (other work on the machine skews the numbers)"
[[ -n ${BERTH_DESC:-} ]] && echo "berth: $BERTH_DESC"
vers=()
has_tool runc && vers+=("runc $(runc --version 2>/dev/null | awk 'NR == 1 {print $3}')")
has_tool crun && vers+=("crun $(crun --version 2>/dev/null | awk 'NR == 1 {print $3}')")
has_tool nspawn && vers+=("systemd $(systemd-nspawn --version 2>/dev/null | awk 'NR == 1 {print $2}')")
has_tool podman && vers+=("podman $(podman --version 2>/dev/null | awk '{print $3}')")
vers+=("$(unshare --version 2>/dev/null | sed 's/^unshare from //')" "hyperfine $(hyperfine --version | awk '{print $2}')")
echo "peers: $(IFS=,; echo "${vers[*]}" | sed 's/,/, /g')"
echo "cgroups: $( [[ -n $UNIFIED ]] && ((HAVE_V1)) && echo "hybrid (v1 controllers + $UNIFIED)" || { [[ -n $UNIFIED ]] && echo "unified (v2)" || echo "v1"; })"
for t in $TOOLS; do [[ -n ${NOTE[$t]:-} ]] && echo "note: ${NOTE[$t]}"; done
echo
fmt='%-34s %9s %17s %13s %8s %8s %10s  %s\n'
printf "$fmt" tool "median ms" "mean ± sd ms" "min..max ms" "cpu ms" "RSS MB" "/ berth" status
for t in $TOOLS; do
    m=${MEDIAN[$t]:-}
    if [[ -n $m ]]; then
        cpu=$(awk -v s="${CPUSUM[$t]:-0}" -v n="${NCPU[$t]:-0}" 'BEGIN {if (n) printf "%.1f", s / n * 1000; else print "n/a"}')
        printf "$fmt" "$(label "$t")" "$m" "$(printf '%.2f ± %.2f' "${MEAN[$t]}" "${SD[$t]}")" \
            "$(printf '%.1f..%.1f' "${MIN[$t]}" "${MAX[$t]}")" "$cpu" "${RSS[$t]:-n/a}" "$(ratio "$m" "$b")" "${STATUS[$t]}"
    else
        printf "$fmt" "$(label "$t")" - - - - - - "${STATUS[$t]:-failed}"
    fi
done
echo
target() { # name value op limit
    local v=$2 r
    if [[ $v == n/a || -z $v ]]; then printf '%-44s %8s   (target %s %s)  n/a\n' "$1" "n/a" "$3" "$4"; return; fi
    if awk -v v="$v" -v l="$4" -v op="$3" 'BEGIN {exit !(op == "<=" ? v <= l : (op == "=" ? v == l : v < l))}'; then r=MET; else r=MISSED; fi
    printf '%-44s %8s   (target %s %s)  %s\n' "$1" "$v" "$3" "$4" "$r"
}
info() { printf '%-44s %8s\n' "$1" "$2"; }
target "berth(image) / runc            [median]" "$(ratio "$b" "${MEDIAN[runc]:-}")" "<=" 0.5
target "berth(image) / unshare floor   [median]" "$(ratio "$b" "${MEDIAN[floor]:-}")" "<=" 2.0
target "berth run peak RSS MB" "${RSS[berth-image]:-n/a}" "<=" 8
if [[ -n $PAR_OK ]]; then
    target "berth run x$PARALLEL in parallel: successes" "$PAR_OK" "=" "$PARALLEL"
fi
info "berth(-D) / systemd-nspawn     [median]" "$(ratio "${MEDIAN[berth-dir]:-}" "${MEDIAN[nspawn]:-}")"
info "berth(image) / crun            [median]" "$(ratio "$b" "${MEDIAN[crun]:-}")"
info "berth(image) / podman          [median]" "$(ratio "$b" "${MEDIAN[podman]:-}")"
echo
[[ -n ${RSS[berth-image]:-} ]] && echo "RSS: /usr/bin/time %M is the largest of berth, its container PID 1 (a fork of berth that it reaps) and /bin/true — a max, not a sum."
[[ -n $SAMPLE ]] && echo "     while \`berth run IMAGE /bin/sleep 2\` runs: $SAMPLE"
[[ -n $PAR_LINE ]] && echo "parallel: $PARALLEL x \`berth run $IMAGE /bin/true\` at once: $PAR_LINE; left behind: $PAR_LEFT"
if [[ ${STATUS[berth-image]:-} == ok || ${STATUS[berth-dir]:-} == ok ]]; then
    echo "left behind by the sequential berth runs (mounts, $STORE/tmp/run-*, berth cgroups, berth processes): $SEQ_LEFT"
fi
if ((failed)); then
    echo
    echo "failed to run: ${FAILED_TOOLS[*]}"
fi
exit "$failed"
