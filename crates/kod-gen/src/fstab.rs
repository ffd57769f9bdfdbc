//! The fstab of a generation: on Btrfs everything by the file system's
//! UUID; on the directory backend nothing to mount (see
//! [`Top::fstab`](crate::Top::fstab)).

/// The store directories bound into every generation's root: (the path on
/// the top level, the mount point in the root). The root needs the mount
/// points as directories.
pub const STORE_BINDS: [(&str, &str); 5] = [
    ("store/root", "/root"),
    ("store/var/log", "/var/log"),
    ("store/var/tmp", "/var/tmp"),
    ("store/var/cache", "/var/cache"),
    ("store/var/kod", "/var/kod"),
];

/// The `/etc/fstab` text of generation `n` on the Btrfs file system
/// `uuid` (as `kod_root::btrfs::fs_uuid` gives it): `/` is the
/// generation's root subvolume, `/kod` the top level (subvolid=5, so an
/// installed machine can rebuild itself), `/home` the shared
/// `store/home` subvolume, then bind mounts of the store directories
/// ([`STORE_BINDS`]) that wait for `/kod`; then `extra` lines as given
/// (swap, the ESP at `/efi`: they come from the disk).
pub fn fstab(uuid: &str, n: u64, extra: &[String]) -> String {
    let mut s = format!(
        "# /etc/fstab of generation {n}, written by kod.\n\
         # <file system> <mount point> <type> <options> <dump> <pass>\n\
         UUID={uuid} / btrfs subvol=generations/{n}/rootfs 0 0\n\
         UUID={uuid} /kod btrfs subvolid=5 0 0\n\
         UUID={uuid} /home btrfs subvol=store/home 0 0\n"
    );
    for (store, at) in STORE_BINDS {
        s.push_str(&format!(
            "/kod/{store} {at} none bind,x-systemd.requires-mounts-for=/kod 0 0\n"
        ));
    }
    for line in extra {
        s.push_str(line.trim_end_matches('\n'));
        s.push('\n');
    }
    s
}

/// The `/etc/fstab` text of generation `n` on the directory backend:
/// comments that say why no line mounts `/`, `/kod` or the store, then
/// `extra` lines as given.
pub(crate) fn directory_fstab(n: u64, extra: &[String]) -> String {
    let mut s = format!(
        "# /etc/fstab of generation {n}, written by kod.\n\
         # This generation is a directory on kod's directory backend: it does not\n\
         # boot (a boot entry needs rootflags=subvol, which only Btrfs has), so no\n\
         # line mounts /. kod binds the machine's shared store (/home, /root,\n\
         # /var/log, /var/tmp, /var/cache, /var/kod) into it for its transactions.\n"
    );
    for line in extra {
        s.push_str(line.trim_end_matches('\n'));
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fstab_of_a_generation_names_its_root_the_top_level_home_and_the_binds() {
        let u = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
        let text = fstab(u, 12, &["UUID=ABCD-0123 /efi vfat umask=0077 0 2\n".into()]);
        let lines: Vec<Vec<&str>> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split_whitespace().collect())
            .collect();
        let want: Vec<Vec<&str>> = [
            "UUID=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0 / btrfs subvol=generations/12/rootfs 0 0",
            "UUID=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0 /kod btrfs subvolid=5 0 0",
            "UUID=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0 /home btrfs subvol=store/home 0 0",
            "/kod/store/root /root none bind,x-systemd.requires-mounts-for=/kod 0 0",
            "/kod/store/var/log /var/log none bind,x-systemd.requires-mounts-for=/kod 0 0",
            "/kod/store/var/tmp /var/tmp none bind,x-systemd.requires-mounts-for=/kod 0 0",
            "/kod/store/var/cache /var/cache none bind,x-systemd.requires-mounts-for=/kod 0 0",
            "/kod/store/var/kod /var/kod none bind,x-systemd.requires-mounts-for=/kod 0 0",
            "UUID=ABCD-0123 /efi vfat umask=0077 0 2",
        ]
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
        assert_eq!(lines, want);
        assert!(text.ends_with("0 2\n"), "{text}");
        // Every line has the six fields fstab(5) wants.
        assert!(lines.iter().all(|l| l.len() == 6), "{text}");
    }

    #[test]
    fn the_fstab_of_a_directory_generation_mounts_nothing_and_says_why() {
        let text = directory_fstab(4, &["/dev/sdb1 none swap sw 0 0".into()]);
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(lines, ["/dev/sdb1 none swap sw 0 0"]);
        assert!(text.contains("generation 4"), "{text}");
        assert!(text.contains("does not\n# boot"), "{text}");
        assert!(text.contains("rootflags=subvol"), "{text}");
    }
}
