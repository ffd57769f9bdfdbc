#!/usr/bin/env bash
# Installs the Debian packages kod's build, tests and main job use.
# Idempotent; needs root. Sourced by test.sh and main-job.sh.
set -euo pipefail

KOD_APT_PACKAGES=(
    ca-certificates gcc make pkg-config    # building (mlua builds Lua from source)
    binutils xz-utils zstd gzip            # ar/tar formats in fixtures
    dpkg-dev gpg gpgv debian-archive-keyring  # Debian fixtures, signatures, keyring
    mmdebstrap apt                         # the peer kod is compared with
    btrfs-progs e2fsprogs                  # Btrfs snapshots, filefrag (reflinks) in tests
    uidmap                                 # newuidmap/newgidmap: personal environments without root
    gdisk fdisk util-linux                 # kod-disk: sgdisk/sfdisk (tests), wipefs, blkid, losetup
    dosfstools mtools xfsprogs             # kod-disk: mkfs.vfat, FAT without mounting, mkfs.xfs
    qemu-system-x86 ovmf                   # kod vm: qemu and its UEFI firmware
    linux-image-amd64 busybox-static cpio systemd-boot-efi  # kod-vm's vm tests: a tiny guest booted under OVMF
)

if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/deps.sh: run as root (it installs packages with apt-get)" >&2
    exit 1
fi
missing=()
for p in "${KOD_APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
if ! command -v cargo >/dev/null; then
    echo "scripts/deps.sh: cargo is missing: install the Rust toolchain (1.95 or later)" >&2
    exit 1
fi
if ! cargo nextest --version >/dev/null 2>&1; then
    cargo install --locked cargo-nextest
fi
