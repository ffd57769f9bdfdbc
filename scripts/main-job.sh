#!/usr/bin/env bash
# kod's main job on its built-in default. Today: plan the Debian example,
# install it onto a new disk image (`kod install --image`: GPT with an ESP
# and a Btrfs root, generation 0 with its kernel), show the partition table,
# then mount the image's Btrfs root to show what was made and rebuild it
# from the copy of the configuration it keeps in /etc/kod (nothing changed:
# no new generation). The boot loader and the boot check (kod vm) come
# with the boot issue.
#   scripts/main-job.sh [IMAGE]   (default /var/tmp/kod-main-job.img, remade)
set -euo pipefail
cd "$(dirname "$0")/.."
image=${1:-/var/tmp/kod-main-job.img}

scripts/deps.sh
cargo build --release --locked -p kod
kod=./target/release/kod
$kod -c examples/debian-vm plan

top=$(mktemp -d /var/tmp/kod-main-job.XXXXXX)
cleanup() {
    umount "$top" 2>/dev/null || true
    rmdir "$top" 2>/dev/null || true
}
trap cleanup EXIT
rm -f "$image"
$kod -c examples/debian-vm install --image "$image" --size 8G --yes
echo
sgdisk -p "$image"
# The Btrfs root: the partition of the x86-64 root type.
read -r offset size < <(sfdisk --json "$image" | python3 -c '
import json, sys
t = json.load(sys.stdin)["partitiontable"]
p = next(p for p in t["partitions"] if p["type"] == "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709")
print(p["start"] * t.get("sectorsize", 512), p["size"] * t.get("sectorsize", 512))')
mount -o "loop,offset=$offset,sizelimit=$size" "$image" "$top"
echo
echo "generation 0 of examples/debian-vm in $image:"
ls "$top/generations/0"
echo "fstab:"; grep -v "^#" "$top/generations/0/rootfs/etc/fstab"
echo "default: $(grep '^default' "$top/generations/default")"
echo "packages: $(wc -l < "$top/generations/0/packages.lock"), enabled: $(tr '\n' ' ' < "$top/generations/0/enabled_services")"
chroot "$top/generations/0/rootfs" sh -c '. /etc/os-release; echo "os-release: $PRETTY_NAME ($VARIANT_ID, image version $IMAGE_VERSION)"'
echo
echo "rebuilding from the configuration the machine keeps (/etc/kod):"
$kod -c "$top/generations/0/rootfs/etc/kod" rebuild -n --target "$top"
$kod generations list --target "$top"
