#!/bin/sh
# By-hand benchmark of kod-unpack against a loop of `dpkg-deb -x` and against
# mmdebstrap's extract phase (`dpkg-deb --fsys-tarfile | tar
# --keep-directory-symlink -x` per package, in a merged-/usr root), over the
# .deb files in DEBDIR (e.g. bookworm's minbase set: run
#   mmdebstrap --variant=minbase --skip=essential/unlink --skip=cleanup bookworm R
# and take R/var/cache/apt/archives/*.deb).
#
# usage: bench/unpack.sh DEBDIR WORKDIR [ROUNDS]
# Needs a release build of the example: cargo build --release -p kod-unpack --example unpack
# Trees are kept until the end: on ext4, creating files right after deleting
# many others is slowed by the inode allocator (recently_deleted), which
# would skew whichever tool runs second.
set -eu
debs=$1
work=$2
rounds=${3:-3}
bin=${UNPACK_BIN:-${CARGO_TARGET_DIR:-target}/release/examples/unpack}
mkdir -p "$work"
t() { /usr/bin/time -f "%e s wall, %U s user, %S s sys" "$@"; }
for i in $(seq "$rounds"); do
    sync
    echo "round $i: kod-unpack (merged /usr)"
    t "$bin" --merged-usr amd64 "$work/kod-$i" "$debs"/*.deb
    sync
    echo "round $i: mmdebstrap extract phase (dpkg-deb --fsys-tarfile | tar --keep-directory-symlink -x)"
    mkdir -p "$work/mm-$i"
    for d in bin sbin lib lib64; do mkdir -p "$work/mm-$i/usr/$d"; ln -s "usr/$d" "$work/mm-$i/$d"; done
    t sh -c 'for f in "$1"/*.deb; do dpkg-deb --fsys-tarfile "$f" | tar -C "$2" --keep-directory-symlink -xf -; done' sh "$debs" "$work/mm-$i"
    sync
    echo "round $i: dpkg-deb -x loop"
    mkdir -p "$work/x-$i"
    t sh -c 'for f in "$1"/*.deb; do dpkg-deb -x "$f" "$2"; done' sh "$debs" "$work/x-$i"
done
echo "trees kept in $work (remove them yourself)"
