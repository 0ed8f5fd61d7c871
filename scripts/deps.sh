#!/usr/bin/env bash
# Installs what berth's tests, demo and benchmarks use, from Debian's
# packages. Idempotent; needs root.
set -euo pipefail
pkgs=(docker-registry skopeo umoci busybox-static btrfs-progs debootstrap
      apache2-utils zstd xz-utils bzip2 attr pigz hyperfine runc iproute2
      nftables util-linux e2fsprogs ca-certificates fdisk qemu-utils tmux
      openssl python3 strace systemd squashfs-tools erofs-utils
      gcc libc6-dev gpg gpgv dpkg-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
