#!/usr/bin/env bash
# bench/pull.sh — wall time and peak RSS of `berth pull` against peers,
# measured in the same run against the same local registry and image.
#
# This is a benchmark, not a test: it exits 0 when targets are missed and
# non-zero only when a tool (or the fixture/registry setup) failed.
# See bench/README.md for what it measures and what each line means.
#
# Environment:
#   RUNS=3              timed runs per tool (hyperfine --runs)
#   BERTH=PATH          berth binary (default target/HOST/release/berth; built
#                       with `cargo build --release -p berth` when missing)
#   BENCH_CACHE=DIR     fixture cache (default /var/cache/berth-bench)
#   BENCH_TMP=DIR       scratch parent dir (default /var/tmp)
#   TOOLS="..."         subset of: berth skopeo-umoci podman floor-gzip floor-pigz
#   DROP_CACHES=1       `sync; echo 3 > /proc/sys/vm/drop_caches` before each run
#   PODMAN_DRIVER=X     overlay | vfs (default: overlay if it works, else vfs)
#   MIRROR=URL          Debian mirror for debootstrap (default: from apt sources)
#   KEEP_TMP=1          keep the scratch dir
set -Eeuo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap 'printf "[bench] internal error: line %s exited %s\n" "$LINENO" "$?" >&2' ERR

RUNS=${RUNS:-3}
TOOLS=${TOOLS:-berth skopeo-umoci podman floor-gzip floor-pigz}
DROP_CACHES=${DROP_CACHES:-0}
PODMAN_DRIVER=${PODMAN_DRIVER:-}
SUITE=bookworm

ROOTFS=$BENCH_CACHE/rootfs-$SUITE-minbase
LAYOUT=$BENCH_CACHE/oci-$SUITE-minbase
IMAGE_PATH=bench/$SUITE
REGCONF=/etc/containers/registries.conf.d/berth-bench.conf


if [[ $(id -u) != 0 ]]; then die "run as root (debootstrap, umoci unpack and podman need it)"; fi

# ---------------------------------------------------------------- tools
need_pkgs=()
command -v debootstrap >/dev/null || need_pkgs+=(debootstrap)
command -v skopeo >/dev/null || need_pkgs+=(skopeo)
command -v umoci >/dev/null || need_pkgs+=(umoci)
command -v docker-registry >/dev/null || need_pkgs+=(docker-registry)
command -v hyperfine >/dev/null || need_pkgs+=(hyperfine)
command -v jq >/dev/null || need_pkgs+=(jq)
command -v curl >/dev/null || need_pkgs+=(curl)
[[ -x /usr/bin/time ]] || need_pkgs+=(time)
if [[ " $TOOLS " == *" podman "* ]] && ! command -v podman >/dev/null; then need_pkgs+=(podman); fi
if ((${#need_pkgs[@]})); then
    log "installing: ${need_pkgs[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi
HAVE_PIGZ=0; command -v pigz >/dev/null && HAVE_PIGZ=1

# ---------------------------------------------------------------- scratch + cleanup
mkdir -p "$BENCH_TMP"
WORK=$(mktemp -d "$BENCH_TMP/berth-bench.XXXXXX")
REG_PID=
umount_under() { # unmount anything mounted at or below $1 (podman's overlay driver leaves a private bind mount)
    local m
    while read -r m; do umount -l "$m" 2>/dev/null || true; done < <(findmnt -rn -o TARGET | awk -v p="$1" 'index($0, p) == 1' | sort -r)
}
cleanup() {
    if [[ -n $REG_PID ]]; then kill "$REG_PID" 2>/dev/null || true; wait "$REG_PID" 2>/dev/null || true; fi
    rm -f "$REGCONF"
    umount_under "$WORK"
    if [[ ${KEEP_TMP:-0} == 1 ]]; then log "scratch kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- fixture: debootstrap tree

mkdir -p "$BENCH_CACHE"
if [[ ! -d $ROOTFS ]]; then
    MIRROR=${MIRROR:-$(find_mirror)}
    log "debootstrap --variant=minbase $SUITE from $MIRROR (about a minute)"
    rm -rf "$ROOTFS.tmp"
    debootstrap --variant=minbase "$SUITE" "$ROOTFS.tmp" "$MIRROR" >"$BENCH_CACHE/debootstrap.log" 2>&1 \
        || die "debootstrap failed; see $BENCH_CACHE/debootstrap.log"
    mv "$ROOTFS.tmp" "$ROOTFS"
fi

# ---------------------------------------------------------------- fixture: one-layer OCI layout
if [[ ! -f $LAYOUT/index.json ]]; then
    log "building one-layer OCI layout in $LAYOUT"
    T=$LAYOUT.tmp
    rm -rf "$T"; mkdir -p "$T/blobs/sha256"
    tar --numeric-owner --xattrs -C "$ROOTFS" -c . >"$T/layer.tar"
    diff_id=$(sha256sum <"$T/layer.tar" | cut -d' ' -f1)
    tar_size=$(stat -c %s "$T/layer.tar")
    if ((HAVE_PIGZ)); then pigz -n -6 <"$T/layer.tar" >"$T/layer.tar.gz"; else gzip -n -6 <"$T/layer.tar" >"$T/layer.tar.gz"; fi
    rm -f "$T/layer.tar"
    layer_digest=$(sha256sum <"$T/layer.tar.gz" | cut -d' ' -f1)
    layer_size=$(stat -c %s "$T/layer.tar.gz")
    mv "$T/layer.tar.gz" "$T/blobs/sha256/$layer_digest"
    arch=$(dpkg --print-architecture)
    created=$(date -u -r "$ROOTFS/etc/debian_version" +%Y-%m-%dT%H:%M:%SZ)
    jq -cn --arg arch "$arch" --arg created "$created" --arg diff "sha256:$diff_id" '{
        created: $created, architecture: $arch, os: "linux",
        config: {Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], Cmd: ["/bin/bash"]},
        rootfs: {type: "layers", diff_ids: [$diff]},
        history: [{created: $created, created_by: "debootstrap --variant=minbase bookworm (berth bench fixture)"}]
    }' >"$T/config.json"
    config_digest=$(sha256sum <"$T/config.json" | cut -d' ' -f1)
    config_size=$(stat -c %s "$T/config.json")
    mv "$T/config.json" "$T/blobs/sha256/$config_digest"
    jq -cn --arg cd "sha256:$config_digest" --argjson cs "$config_size" \
        --arg ld "sha256:$layer_digest" --argjson ls "$layer_size" '{
        schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $cd, size: $cs},
        layers: [{mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: $ld, size: $ls}]
    }' >"$T/manifest.json"
    manifest_digest=$(sha256sum <"$T/manifest.json" | cut -d' ' -f1)
    manifest_size=$(stat -c %s "$T/manifest.json")
    mv "$T/manifest.json" "$T/blobs/sha256/$manifest_digest"
    printf '{"imageLayoutVersion":"1.0.0"}' >"$T/oci-layout"
    jq -cn --arg md "sha256:$manifest_digest" --argjson ms "$manifest_size" --arg tag "$SUITE" '{
        schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
        manifests: [{mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $md, size: $ms,
                     annotations: {"org.opencontainers.image.ref.name": $tag}}]
    }' >"$T/index.json"
    printf '%s\n' "$tar_size" >"$T/../oci-$SUITE-minbase.tar-size"
    rm -rf "$LAYOUT"; mv "$T" "$LAYOUT"
fi
manifest_digest=$(jq -r '.manifests[0].digest' "$LAYOUT/index.json")
LAYER_DIGEST=$(jq -r '.layers[0].digest' "$LAYOUT/blobs/sha256/${manifest_digest#sha256:}")
LAYER=$LAYOUT/blobs/sha256/${LAYER_DIGEST#sha256:}
[[ -f $LAYER ]] || die "layer blob $LAYER missing; delete $LAYOUT to rebuild"
layer_mb=$(awk -v b="$(stat -c %s "$LAYER")" 'BEGIN {printf "%.1f", b / 1048576}')
tar_mb=$(awk -v b="$(cat "$BENCH_CACHE/oci-$SUITE-minbase.tar-size" 2>/dev/null || echo 0)" 'BEGIN {printf "%.1f", b / 1048576}')
nfiles=$(find "$ROOTFS" -xdev | wc -l)

# ---------------------------------------------------------------- registry
start_registry
REF=127.0.0.1:$PORT/$IMAGE_PATH:latest
log "registry on 127.0.0.1:$PORT; pushing $REF"
skopeo copy -q --preserve-digests --dest-tls-verify=false "oci:$LAYOUT:$SUITE" "docker://$REF" \
    || die "skopeo push failed"
# the registry must serve our gzip blob byte for byte (no recompression by skopeo)
pushed_layer=$(curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://127.0.0.1:$PORT/v2/$IMAGE_PATH/manifests/latest" | jq -r '.layers[0].digest')
[[ $pushed_layer == "$LAYER_DIGEST" ]] || die "registry layer $pushed_layer != fixture layer $LAYER_DIGEST"

# podman: mark the registry insecure (removed again at exit)
if [[ " $TOOLS " == *" podman "* ]]; then
    mkdir -p "$(dirname "$REGCONF")"
    printf '[[registry]]\nlocation = "127.0.0.1:%s"\ninsecure = true\n' "$PORT" >"$REGCONF"
fi

# ---------------------------------------------------------------- berth binary
berth_ok=1
if [[ " $TOOLS " == *" berth "* ]]; then
    if [[ ! -x $BERTH ]]; then
        if [[ $BERTH == "$ROOT_DIR/target/$HOST_TUPLE/release/berth" ]]; then
            log "building berth (cargo build --release -p berth)"
            (cd "$ROOT_DIR" && cargo build --release -p berth) >"$WORK/cargo.log" 2>&1 || {
                tail -n 20 "$WORK/cargo.log" >&2; log "berth build failed"; berth_ok=0; }
        else
            log "BERTH=$BERTH is not executable"; berth_ok=0
        fi
    fi
fi

# ---------------------------------------------------------------- tool commands
# Each tool writes only below $WORK/<tool>; `prep` empties it before every run.
drop=""
if [[ $DROP_CACHES == 1 ]]; then
    if sync && echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then
        drop="echo 3 > /proc/sys/vm/drop_caches"
    else
        log "DROP_CACHES=1 but /proc/sys/vm/drop_caches is not writable here; runs are warm-cache"
    fi
fi

PODMAN_DRIVER_USED=
podman_cmd() { # $1 = dir
    echo "podman --root $1/root --runroot $1/runroot --tmpdir $1/tmp --storage-driver $PODMAN_DRIVER_USED --events-backend none --cgroup-manager cgroupfs pull -q --tls-verify=false $REF"
}
pick_podman_driver() {
    local d
    for d in ${PODMAN_DRIVER:-overlay vfs}; do
        PODMAN_DRIVER_USED=$d
        umount_under "$WORK/podman"; rm -rf "$WORK/podman"; mkdir -p "$WORK/podman"
        if sh -c "$(podman_cmd "$WORK/podman")" >"$WORK/podman-probe.log" 2>&1; then
            log "podman storage driver: $d"; return 0
        fi
        log "podman with --storage-driver $d failed: $(tail -n1 "$WORK/podman-probe.log")"
    done
    return 1
}

# cmd_<tool> DIR  -> shell command for a timed run
# rss_<tool> DIR  -> shell command for the RSS run; writes one KB number per process to DIR.rss*
cmd_berth() { echo "$BERTH --root $1/store pull -q --tls-verify=false $REF"; }
rss_berth() { echo "/usr/bin/time -f %M -o $1.rss1 $(cmd_berth "$1")"; }
check_berth() { find "$1/store" -path '*/usr/bin/bash' -print -quit 2>/dev/null | grep -q .; }

cmd_skopeo_umoci() { echo "skopeo copy -q --src-tls-verify=false docker://$REF oci:$1/layout:latest && umoci unpack --image $1/layout:latest $1/bundle"; }
rss_skopeo_umoci() { echo "/usr/bin/time -f %M -o $1.rss1 skopeo copy -q --src-tls-verify=false docker://$REF oci:$1/layout:latest && /usr/bin/time -f %M -o $1.rss2 umoci unpack --image $1/layout:latest $1/bundle"; }
check_skopeo_umoci() { [[ -x $1/bundle/rootfs/usr/bin/bash ]]; }

cmd_podman() { podman_cmd "$1"; }
rss_podman() { echo "/usr/bin/time -f %M -o $1.rss1 $(podman_cmd "$1")"; }
check_podman() { find "$1/root" -path '*/usr/bin/bash' -print -quit 2>/dev/null | grep -q .; }

cmd_floor_gzip() { echo "gzip -dc $LAYER | tar -x -C $1/x"; }
rss_floor_gzip() { echo "/usr/bin/time -f %M -o $1.rss1 gzip -dc $LAYER | /usr/bin/time -f %M -o $1.rss2 tar -x -C $1/x"; }
check_floor_gzip() { [[ -x $1/x/usr/bin/bash ]]; }

cmd_floor_pigz() { echo "pigz -dc $LAYER | tar -x -C $1/x"; }
rss_floor_pigz() { echo "/usr/bin/time -f %M -o $1.rss1 pigz -dc $LAYER | /usr/bin/time -f %M -o $1.rss2 tar -x -C $1/x"; }
check_floor_pigz() { [[ -x $1/x/usr/bin/bash ]]; }

# how the per-process RSS numbers combine: sequential steps -> max, pipeline -> sum
rss_combine_berth=max; rss_combine_skopeo_umoci=max; rss_combine_podman=max
rss_combine_floor_gzip=sum; rss_combine_floor_pigz=sum

declare -A MEDIAN MIN MAX CPU RSS STATUS TIMES CPUS
ACTIVE=()
failed=0

# setup_tool NAME: decide whether the tool can run; write its prepare and command scripts
setup_tool() {
    local t=$1 f=${1//-/_} d=$WORK/$1
    STATUS[$t]=failed
    case $t in
        berth) ((berth_ok)) || { STATUS[$t]="not runnable"; return 1; } ;;
        podman) pick_podman_driver || return 1 ;;
        floor-pigz) ((HAVE_PIGZ)) || { STATUS[$t]="skipped (no pigz)"; return 0; } ;;
        skopeo-umoci|floor-gzip) ;;
        *) log "unknown tool $t"; return 1 ;;
    esac
    # prepare (untimed): unmount what podman left below the dir, start from an
    # empty dir, then sync so the deletion's writeback is not paid by the next
    # timed run (and drop caches when asked)
    {
        echo "findmnt -rn -o TARGET | awk -v p='$d' 'index(\$0, p) == 1' | sort -r | while read -r m; do umount -l \"\$m\"; done"
        echo "rm -rf '$d' '$d'.rss*"
        echo "mkdir -p '$d/x'"
        echo "sync"
        echo "$drop"
    } >"$WORK/$t.prep.sh"
    printf 'set -e -o pipefail\n%s\n' "$(cmd_"$f" "$d")" >"$WORK/$t.cmd.sh"
    log "$t: $(cmd_"$f" "$d")"
    STATUS[$t]=ok
    ACTIVE+=("$t")
}

# time_tool NAME ROUND: one timed run (hyperfine --runs 1, prepare untimed)
time_tool() {
    local t=$1 r=$2 j=$WORK/$1.run$2.json
    if ! hyperfine -N --runs 1 --style basic --prepare "bash $WORK/$t.prep.sh" --export-json "$j" \
            -n "$t" "bash $WORK/$t.cmd.sh" >"$WORK/$t.run$r.log" 2>&1; then
        cat "$WORK/$t.run$r.log" >&2
        log "$t failed in round $r"; STATUS[$t]=failed; return 1
    fi
    TIMES[$t]+="$(jq -r '.results[0].times[0]' "$j") "
    CPUS[$t]+="$(jq -r '.results[0].user + .results[0].system' "$j") "
}

# rss_tool NAME: one extra untimed run under /usr/bin/time -f %M, then a sanity check
rss_tool() {
    local t=$1 f=${1//-/_} d=$WORK/$1 rc=0 comb
    bash "$WORK/$t.prep.sh"
    bash -o pipefail -c "$(rss_"$f" "$d")" >"$WORK/$t.rss.log" 2>&1 || rc=$?
    if ((rc)); then cat "$WORK/$t.rss.log" >&2; log "$t failed in the RSS run"; STATUS[$t]=failed; return 1; fi
    comb=rss_combine_$f
    RSS[$t]=$(cat "$d".rss* | awk -v how="${!comb}" '/^[0-9]+$/ {s += $1; if ($1 > m) m = $1} END {printf "%.1f", (how == "sum" ? s : m) / 1024}')
    check_"$f" "$d" || log "warning: $t left no usr/bin/bash under $d (did it really unpack?)"
    bash "$WORK/$t.prep.sh"
}

median() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

for t in $TOOLS; do setup_tool "$t" || failed=1; done

# rounds interleave the tools, so drift of the machine (page cache, reclaim,
# neighbours) hits every tool alike instead of whichever ran last
for ((r = 1; r <= RUNS; r++)); do
    log "round $r/$RUNS"
    for t in "${ACTIVE[@]}"; do
        [[ ${STATUS[$t]} == ok ]] || continue
        time_tool "$t" "$r" || failed=1
    done
done
for t in "${ACTIVE[@]}"; do
    [[ ${STATUS[$t]} == ok ]] || continue
    rss_tool "$t" || failed=1
    MEDIAN[$t]=$(median <<<"${TIMES[$t]}")
    CPU[$t]=$(median <<<"${CPUS[$t]}")
    MIN[$t]=$(tr ' ' '\n' <<<"${TIMES[$t]}" | grep . | sort -g | head -n1)
    MAX[$t]=$(tr ' ' '\n' <<<"${TIMES[$t]}" | grep . | sort -g | tail -n1)
done

# ---------------------------------------------------------------- report
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "" || b == "" || b == 0) print "n/a"; else printf "%.2f", a / b}'; }
label() {
    case $1 in
        berth) echo "berth pull" ;;
        skopeo-umoci) echo "skopeo copy + umoci unpack" ;;
        podman) echo "podman pull ($PODMAN_DRIVER_USED)" ;;
        floor-gzip) echo "floor: gzip -dc | tar -x" ;;
        floor-pigz) echo "floor: pigz -dc | tar -x" ;;
    esac
}
b=${MEDIAN[berth]:-}
echo
echo "berth pull benchmark — $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs, kernel $(uname -r)"
echo "image: debootstrap $SUITE minbase, 1 gzip layer ${layer_mb} MB (tar ${tar_mb} MB, $nfiles entries), local registry 127.0.0.1:$PORT (http)"
echo "runs: $RUNS per tool in interleaved rounds (hyperfine), fresh dirs each run, caches $([[ -n $drop ]] && echo "dropped before each run" || echo "warm")"
echo
fmt='%-30s %9s %13s %9s %12s %13s  %s\n'
printf "$fmt" tool "median s" "min..max s" "cpu s" "peak RSS MB" "time / berth" status
for t in $TOOLS; do
    m=${MEDIAN[$t]:-}
    if [[ -n $m ]]; then
        printf "$fmt" "$(label "$t")" "$(printf %.3f "$m")" "$(printf '%.2f..%.2f' "${MIN[$t]}" "${MAX[$t]}")" \
            "$(printf %.2f "${CPU[$t]}")" "${RSS[$t]:-n/a}" "$(ratio "$m" "$b")" "${STATUS[$t]}"
    else
        printf "$fmt" "$(label "$t")" - - - - - "${STATUS[$t]:-failed}"
    fi
done
echo
target() { # name value op limit
    local v=$2
    if [[ $v == n/a ]]; then printf '%-40s %8s   (target %s %s)  n/a\n' "$1" "$v" "$3" "$4"; return; fi
    if awk -v v="$v" -v l="$4" -v op="$3" 'BEGIN {exit !(op == "<=" ? v <= l : v < l)}'; then r=MET; else r=MISSED; fi
    printf '%-40s %8s   (target %s %s)  %s\n' "$1" "$v" "$3" "$4" "$r"
}
target "berth / (skopeo+umoci)  [time]" "$(ratio "$b" "${MEDIAN[skopeo-umoci]:-}")" "<=" 0.5
target "berth / floor(gzip|tar) [time]" "$(ratio "$b" "${MEDIAN[floor-gzip]:-}")" "<=" 1.0
target "berth peak RSS MB" "${RSS[berth]:-n/a}" "<" 64
exit "$failed"
