#!/usr/bin/env bash
# kod's main job on its built-in default. Today: plan the Debian example,
# then install it (generation 0, with its kernel) onto a Btrfs file system
# in an image file, mounted through a loop device, show what was made, and
# rebuild it from the copy of the configuration it keeps in /etc/kod
# (nothing changed: no new generation).
# Partitioning the image, the boot loader and the boot check come with the
# disks and boot issues, and will replace the plain Btrfs image.
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
truncate -s 8G "$image"
mkfs.btrfs -q "$image"
mount -o loop "$image" "$top"
$kod -c examples/debian-vm install --target "$top"
echo
echo "generation 0 of examples/debian-vm in $image:"
ls "$top/generations/0"
echo "default: $(grep '^default' "$top/generations/default")"
echo "packages: $(wc -l < "$top/generations/0/packages.lock"), enabled: $(tr '\n' ' ' < "$top/generations/0/enabled_services")"
chroot "$top/generations/0/rootfs" sh -c '. /etc/os-release; echo "os-release: $PRETTY_NAME ($VARIANT_ID, image version $IMAGE_VERSION)"'
echo
echo "rebuilding from the configuration the machine keeps (/etc/kod):"
$kod -c "$top/generations/0/rootfs/etc/kod" rebuild -n --target "$top"
$kod generations list --target "$top"
