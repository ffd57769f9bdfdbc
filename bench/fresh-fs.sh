# Sourced by the bench scripts: `fresh_fs DIR` mounts a new, empty ext4
# file system (an image file beside DIR) on DIR and unmounts it on exit.
#
# Why: on a host file system that has seen many files created and deleted
# (this project's test machines), ext4's inode allocator spends most of the
# time of creating a root in `recently_deleted` checks (perf: over half of
# kod's samples; mmdebstrap pays it too). A fresh file system measures the
# tools rather than the host disk's history. KOD_BENCH_HOST_FS=1 keeps the
# host's file system instead.
fresh_fs() {
    local dir=$1
    mkdir -p "$dir"
    [ "${KOD_BENCH_HOST_FS:-0}" = 1 ] && return 0
    # Allocated up front: a sparse image would time the host file system's
    # block allocation instead.
    fallocate -l "${KOD_BENCH_FS_SIZE:-8G}" "$dir.img"
    mkfs.ext4 -q -F "$dir.img"
    mount -o loop "$dir.img" "$dir"
    fresh_fs_dirs+=("$dir")
}

fresh_fs_dirs=()
fresh_fs_cleanup() {
    local d
    for d in "${fresh_fs_dirs[@]}"; do
        umount -R "$d" 2>/dev/null || umount -l "$d" 2>/dev/null || true
        rm -f "$d.img"
    done
}
