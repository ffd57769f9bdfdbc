#!/bin/sh
# By-hand benchmark of kod-install (not a timed assertion).
#
#  1. bootstrap: kod-install's whole pipeline from .deb files to a configured
#     root (kod-unpack, registration, preinsts, one `dpkg --configure -a`,
#     commit) over DEBDIR (e.g. bookworm's minbase set: the .deb files of
#       mmdebstrap --variant=minbase --skip=cleanup/apt/cache --skip=essential/unlink bookworm R
#     from R/var/cache/apt/archives);
#  2. install: GITDEBDIR (git and what apt would install with it into that
#     root) with kod-install into a copy of the root, against
#     apt-get in another copy of the same root
#     (`apt-get install /tmp/*.deb`: the same .deb files, no download, no
#     package lists needed).
#
# usage: bench/install.sh DEBDIR GITDEBDIR WORKDIR [ROUNDS]     (as root)
# Needs: cargo build --release -p kod-install --examples
# Trees are kept until the end (ext4 slows creating files right after
# deleting many); remove WORKDIR yourself.
set -eu
debs=$1
gitdebs=$2
work=$3
rounds=${4:-3}
bin=${KOD_INSTALL_BIN:-${CARGO_TARGET_DIR:-target}/release/examples}
arch=$(dpkg --print-architecture)
for b in bootstrap pkg; do
    [ -x "$bin/$b" ] || { echo "no $bin/$b: build the examples, or set KOD_INSTALL_BIN" >&2; exit 1; }
done
mkdir -p "$work"
t() { /usr/bin/time -f "    %e s wall, %U s user, %S s sys, %M KB max RSS" "$@"; }
# inroot ROOT CMD...: CMD chrooted into ROOT with /proc, /sys and /dev
# mounted in a private mount namespace (what kod-install does).
inroot='r=$1; shift
    mount -t proc proc "$r/proc" && mount -t sysfs sysfs "$r/sys" && mount --rbind /dev "$r/dev" &&
    exec chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive "$@"'
for i in $(seq "$rounds"); do
    sync
    echo "round $i: kod-install bootstrap of $(ls "$debs"/*.deb | wc -l) packages"
    t "$bin/bootstrap" -v "$work/root-$i" "$arch" "$debs"/*.deb 2>&1 |
        grep -E '^  (unpacked|registered)|packages,|wall'
    cp -a "$work/root-$i" "$work/kod-git-$i"
    cp -a "$work/root-$i" "$work/apt-git-$i"
    cp "$gitdebs"/*.deb "$work/apt-git-$i/tmp/"
    cp "$gitdebs"/*.deb "$work/kod-git-$i/tmp/"
    sync
    echo "round $i: kod-install install of $(ls "$gitdebs"/*.deb | wc -l) packages (git)"
    t "$bin/pkg" install "$work/kod-git-$i" "$work/kod-git-$i"/tmp/*.deb 2>&1 | grep -E 'new,|wall'
    sync
    echo "round $i: apt-get install of the same .deb files"
    t unshare --mount --propagation private sh -c "$inroot" sh "$work/apt-git-$i" \
        sh -c 'apt-get install -y -q /tmp/*.deb >/dev/null'
done
echo "trees kept in $work"
