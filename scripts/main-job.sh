#!/usr/bin/env bash
# kod's main job on its built-in default: install the example Debian
# machine (examples/debian-vm) onto a new disk image and boot-check it.
#   1. kod plan: what the configuration asks for
#   2. kod install --image: GPT with an ESP and a Btrfs root, generation 0
#      with its kernel and initramfs, systemd-boot and generation 0's entry
#      on the ESP
#   3. kod vm --check: boot the image in qemu (UEFI firmware, software
#      emulation unless KVM works), wait for the guest's report, print the
#      generation that booted and whether systemd blessed the boot; inside,
#      the machine lists its generations and plans a rebuild of itself from
#      the configuration it keeps in /etc/kod (nothing to do)
#   scripts/main-job.sh [IMAGE]   (default /var/tmp/kod-main-job.img, remade)
set -euo pipefail
cd "$(dirname "$0")/.."
image=${1:-/var/tmp/kod-main-job.img}

scripts/deps.sh
cargo build --release --locked -p kod
kod=./target/release/kod
$kod -c examples/debian-vm plan

rm -f "$image" "$image.efivars"
$kod -c examples/debian-vm install --image "$image" --size 8G --yes
echo
sgdisk -p "$image"
echo
$kod generations list --image "$image"
echo
echo "booting $image (about a minute without KVM):"
$kod vm "$image" --check --run "kod generations list" \
    --run "/lib/systemd/systemd-networkd-wait-online --timeout=60" \
    --run "kod rebuild -n --dry-run"
