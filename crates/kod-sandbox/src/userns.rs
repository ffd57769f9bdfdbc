//! Why a host may refuse unprivileged user namespaces, and how to allow them.

use std::fmt;
use std::path::Path;

/// The kernel settings that decide whether an ordinary user may create a
/// user namespace. `None`: the setting does not exist on this kernel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sysctls {
    /// `kernel.unprivileged_userns_clone` (Debian's and Arch's older
    /// kernels): 0 forbids.
    pub unprivileged_userns_clone: Option<u64>,
    /// `user.max_user_namespaces`: 0 forbids.
    pub max_user_namespaces: Option<u64>,
    /// `kernel.apparmor_restrict_unprivileged_userns` (Ubuntu 23.10 on): 1
    /// lets a process create the namespace but strips its capabilities in
    /// it unless an AppArmor profile allows `userns`.
    pub apparmor_restrict_unprivileged_userns: Option<u64>,
}

impl Sysctls {
    /// Reads the settings from /proc/sys.
    pub fn read() -> Sysctls {
        Sysctls::read_from(Path::new("/proc/sys"))
    }

    /// Reads the settings from a /proc/sys-like directory.
    pub fn read_from(proc_sys: &Path) -> Sysctls {
        let get = |rel: &str| -> Option<u64> {
            std::fs::read_to_string(proc_sys.join(rel))
                .ok()
                .and_then(|s| s.trim().parse().ok())
        };
        Sysctls {
            unprivileged_userns_clone: get("kernel/unprivileged_userns_clone"),
            max_user_namespaces: get("user/max_user_namespaces"),
            apparmor_restrict_unprivileged_userns: get(
                "kernel/apparmor_restrict_unprivileged_userns",
            ),
        }
    }
}

/// A setting that forbids unprivileged user namespaces, and how to allow
/// them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    /// The sysctl name, e.g. `user.max_user_namespaces`.
    pub setting: &'static str,
    /// Its current value.
    pub value: u64,
    /// What to run (as root) to allow them.
    pub fix: String,
}

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "this host forbids unprivileged user namespaces ({} = {}); {}",
            self.setting, self.value, self.fix
        )
    }
}

fn persist(setting: &str, value: &str) -> String {
    format!(
        "to allow them, run as root `sysctl -w {setting}={value}` and keep it across reboots with \
         `echo {setting}={value} > /etc/sysctl.d/90-kod-userns.conf`"
    )
}

/// The setting that forbids unprivileged user namespaces, if one does.
pub fn diagnose(s: &Sysctls) -> Option<Blocked> {
    if s.unprivileged_userns_clone == Some(0) {
        return Some(Blocked {
            setting: "kernel.unprivileged_userns_clone",
            value: 0,
            fix: persist("kernel.unprivileged_userns_clone", "1"),
        });
    }
    if s.max_user_namespaces == Some(0) {
        return Some(Blocked {
            setting: "user.max_user_namespaces",
            value: 0,
            fix: persist("user.max_user_namespaces", "15000"),
        });
    }
    if let Some(v @ 1..) = s.apparmor_restrict_unprivileged_userns {
        return Some(Blocked {
            setting: "kernel.apparmor_restrict_unprivileged_userns",
            value: v,
            fix: format!(
                "{}; or, keeping the restriction for other programs, give kod an AppArmor \
                 profile that allows them: write /etc/apparmor.d/kod with\n  \
                 abi <abi/4.0>,\n  include <tunables/global>\n  \
                 profile kod /usr/bin/kod flags=(unconfined) {{\n    userns,\n  }}\n\
                 (with kod's real path) and load it with `apparmor_parser -r /etc/apparmor.d/kod`",
                persist("kernel.apparmor_restrict_unprivileged_userns", "0")
            ),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_hosts_are_not_blocked() {
        assert_eq!(diagnose(&Sysctls::default()), None);
        let open = Sysctls {
            unprivileged_userns_clone: Some(1),
            max_user_namespaces: Some(63000),
            apparmor_restrict_unprivileged_userns: Some(0),
        };
        assert_eq!(diagnose(&open), None);
    }

    #[test]
    fn each_forbidding_setting_is_named_with_its_fix() {
        let b = diagnose(&Sysctls {
            unprivileged_userns_clone: Some(0),
            ..Sysctls::default()
        })
        .unwrap();
        assert_eq!(b.setting, "kernel.unprivileged_userns_clone");
        assert!(
            b.fix
                .contains("sysctl -w kernel.unprivileged_userns_clone=1")
        );

        let b = diagnose(&Sysctls {
            max_user_namespaces: Some(0),
            ..Sysctls::default()
        })
        .unwrap();
        assert_eq!(b.setting, "user.max_user_namespaces");
        assert!(b.fix.contains("sysctl -w user.max_user_namespaces=15000"));

        let b = diagnose(&Sysctls {
            max_user_namespaces: Some(1000),
            apparmor_restrict_unprivileged_userns: Some(1),
            ..Sysctls::default()
        })
        .unwrap();
        assert_eq!(b.setting, "kernel.apparmor_restrict_unprivileged_userns");
        assert!(b.fix.contains("apparmor_restrict_unprivileged_userns=0"));
        assert!(b.fix.contains("userns,"));
        assert!(b.to_string().contains("= 1"));
    }

    #[test]
    fn settings_are_read_from_a_proc_sys_tree() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("kernel")).unwrap();
        std::fs::create_dir_all(dir.path().join("user")).unwrap();
        std::fs::write(dir.path().join("user/max_user_namespaces"), "0\n").unwrap();
        std::fs::write(
            dir.path()
                .join("kernel/apparmor_restrict_unprivileged_userns"),
            "1\n",
        )
        .unwrap();
        let s = Sysctls::read_from(dir.path());
        assert_eq!(
            s,
            Sysctls {
                unprivileged_userns_clone: None,
                max_user_namespaces: Some(0),
                apparmor_restrict_unprivileged_userns: Some(1),
            }
        );
        // The first forbidding setting in the kernel's order is reported.
        assert_eq!(diagnose(&s).unwrap().setting, "user.max_user_namespaces");
    }
}
