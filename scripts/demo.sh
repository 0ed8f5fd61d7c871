#!/usr/bin/env bash
# berth's main job on a machine without Docker Hub: start a local registry,
# push a busybox-static image to it, and pull it with berth.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo.sh: run as root (berth mounts and owns files)" >&2; exit 1; }
bash scripts/deps.sh
cargo build --release -q -p berth
berth=$PWD/target/$(rustc --print host-tuple)/release/berth
work=$(mktemp -d /tmp/berth-demo.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() { mountpoint -q "$work/mnt" && umount "$work/mnt"; [ -n "${reg:-}" ] && kill "$reg" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
cat > "$work/registry.yml" <<YML
version: 0.1
storage: { filesystem: { rootdirectory: $work/registry } }
http: { addr: 127.0.0.1:$port }
YML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 & reg=$!
# A busybox-static root filesystem, packed as an OCI image by umoci.
umoci init --layout "$work/oci" >/dev/null
umoci new --image "$work/oci:busybox" >/dev/null
umoci unpack --image "$work/oci:busybox" "$work/bundle" >/dev/null
mkdir -p "$work/bundle/rootfs/bin" "$work/bundle/rootfs/etc"
cp /bin/busybox "$work/bundle/rootfs/bin/"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$work/bundle/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$work/bundle/rootfs/etc/passwd"
umoci repack --image "$work/oci:busybox" "$work/bundle" >/dev/null
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
skopeo copy -q --dest-tls-verify=false "oci:$work/oci:busybox" "docker://127.0.0.1:$port/demo/busybox:latest"

set -x
"$berth" --root "$work/store" pull --tls-verify=false "127.0.0.1:$port/demo/busybox:latest"
"$berth" --root "$work/store" images
"$berth" --root "$work/store" inspect "127.0.0.1:$port/demo/busybox"
mkdir "$work/mnt"
"$berth" --root "$work/store" mount "127.0.0.1:$port/demo/busybox" "$work/mnt"
ls "$work/mnt/bin" | head -5
"$berth" --root "$work/store" unmount "$work/mnt"
echo hello | "$berth" --root "$work/store" run "127.0.0.1:$port/demo/busybox" sh -c 'cat; hostname; id; ps'
"$berth" --root "$work/store" run --name demo "127.0.0.1:$port/demo/busybox" sh -c 'echo kept > /state'
"$berth" --root "$work/store" run -M demo cat /state
"$berth" --root "$work/store" machines
