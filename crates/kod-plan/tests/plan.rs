//! Plans of the examples and of focused configurations, checked against
//! package sets written out by hand from the configurations' text.

use std::path::{Path, PathBuf};

use kod_config::{Effect, Stage};
use kod_plan::{Plan, PlanError};
use kod_testkit::assert_contains;

fn example(name: &str) -> PathBuf {
    kod_testkit::fixtures::examples_dir()
        .join(name)
        .join("configuration.lua")
}

fn plan_file(file: &Path) -> Result<Plan, PlanError> {
    let config = kod_config::load(file, &Default::default()).unwrap();
    kod_plan::plan(&config)
}

fn plan_text(lua: &str) -> Result<Plan, PlanError> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("configuration.lua");
    std::fs::write(&file, lua).unwrap();
    plan_file(&file)
}

fn sorted(items: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = items.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[test]
fn kodos_readme_example_package_sets() {
    let plan = plan_file(&example("kodos-readme")).unwrap();
    assert_eq!(
        plan.packages.keys().collect::<Vec<_>>(),
        ["arch", "aur", "flatpak"]
    );
    let arch = &plan.packages["arch"];
    assert_eq!(arch.kind, "arch");
    assert_eq!(
        arch.install,
        sorted(&[
            // boot
            "linux-lts",
            "memtest86+",
            // hardware
            "bluez",
            "pipewire",
            "pipewire-alsa",
            "pipewire-pulse",
            // users.demo-user: programs, dotfile manager (stow needs stow and git)
            "git",
            "zsh",
            "zsh-autosuggestions",
            "zsh-completions",
            "neovim",
            "stow",
            // desktop: display manager, gnome and its extras, minus excluded
            "gdm",
            "gnome",
            "gnome-tweaks",
            "gnome-shell-extension-appindicator",
            // fonts
            "ttf-firacode-nerd",
            "ttf-nerd-fonts-symbols",
            "ttf-nerd-fonts-symbols-common",
            "ttf-sourcecodepro-nerd",
            "ttf-fira-sans",
            "ttf-fira-code",
            "ttf-liberation",
            "noto-fonts-emoji",
            "adobe-source-serif-fonts",
            "ttf-ubuntu-font-family",
            // packages
            "htop",
            "uv",
            "neofetch",
            // services
            "fwupd",
            "networkmanager",
            "openssh",
            "cups",
            "gutenprint",
            // what the aur and flatpak sources need in the target
            "flatpak",
            "base-devel",
        ])
    );
    assert_eq!(arch.remove, sorted(&["gnome-tour", "yelp"]));
    assert_eq!(
        plan.packages["aur"].install,
        sorted(&[
            "floorp-bin",
            "gnome-shell-extension-dash-to-dock",
            "ttf-work-sans"
        ])
    );
    assert_eq!(plan.packages["flatpak"].install, ["com.visualstudio.code"]);

    // Disabled desktops bring nothing.
    for absent in ["kde-applications", "plasma", "cosmic", "cosmic-greeter"] {
        assert!(
            !arch.install.iter().any(|p| p == absent),
            "{absent} planned"
        );
    }
    // The user's syncthing service is disabled: no package, no unit.
    assert!(!arch.install.iter().any(|p| p == "syncthing"));
    assert!(plan.services.user.is_empty());
    assert_eq!(
        plan.services.system.keys().collect::<Vec<_>>(),
        ["NetworkManager", "cups", "fwupd", "gdm", "sshd"]
    );
    assert_eq!(plan.services.system["gdm"], ["desktop.display_manager"]);
    assert_eq!(plan.boot.kernel_package.as_deref(), Some("linux-lts"));
    assert_eq!(plan.boot.timeout, Some(10));
    assert_eq!(plan.users["demo-user"].password, "plain");
    assert_eq!(plan.users["root"].password, "none");
}

#[test]
fn kodos_readme_reasons_name_every_origin() {
    let plan = plan_file(&example("kodos-readme")).unwrap();
    let git = &plan.packages["arch"].reasons["git"];
    assert_eq!(
        git,
        &[
            "packages",
            "users[\"demo-user\"].dotfile_manager",
            "users[\"demo-user\"].programs.git",
            "users[\"demo-user\"].programs.git.config",
            "repos.aur",
        ]
    );
}

#[test]
fn kodos_readme_helpers_per_stage() {
    let plan = plan_file(&example("kodos-readme")).unwrap();
    assert_eq!(
        plan.stages.keys().copied().collect::<Vec<_>>(),
        [Stage::Install, Stage::RebuildUser]
    );
    let install = &plan.stages[&Stage::Install];
    assert_eq!(install.len(), 7, "{install:#?}");
    assert!(
        matches!(&install[0].effect, Effect::GitCheckout { dir, .. } if dir == "/home/demo-user/.dotfiles")
    );
    let stowed: Vec<&str> = install
        .iter()
        .filter_map(|s| match &s.effect {
            Effect::Run { argv, .. } if argv[0] == "stow" => Some(argv[6].as_str()),
            _ => None,
        })
        .collect();
    // Programs with deploy_config (sorted), then deploy_configs in order.
    assert_eq!(stowed, ["neovim", "zsh", "home", "gtk"]);
    // The disabled syncthing service writes no unit anywhere.
    let all = serde_json::to_string(&plan.stages).unwrap();
    assert!(!all.contains("syncthing"), "{all}");
}

#[test]
fn debian_vm_example() {
    let plan = plan_file(&example("debian-vm")).unwrap();
    assert_eq!(plan.base_distribution, kod_config::Distribution::Debian);
    assert_eq!(plan.packages.keys().collect::<Vec<_>>(), ["official"]);
    let official = &plan.packages["official"];
    assert_eq!(official.kind, "debian");
    assert_eq!(
        official.install,
        sorted(&[
            "linux-image-amd64",
            "systemd-sysv",
            "sudo",
            "less",
            "vim-tiny",
            "iproute2",
            "systemd",
            "systemd-resolved",
            "locales",
            "console-setup",
            "tzdata",
            "initramfs-tools",
            "zstd",
            "systemd-boot",
            "dbus"
        ])
    );
    // Packages a setting needs name that setting as their reason.
    for (package, why) in [
        ("locales", "locale.locale"),
        ("console-setup", "locale.keymap"),
        ("tzdata", "locale.timezone"),
        ("systemd-resolved", "network"),
        ("initramfs-tools", "boot.kernel"),
        ("zstd", "boot.kernel"),
        ("systemd-boot", "boot.loader"),
        ("dbus", "boot.loader.tries"),
    ] {
        assert_eq!(official.reasons[package], [why], "{package}");
    }
    assert!(official.remove.is_empty());
    // ssh is `enable = false`: neither its package nor its unit.
    assert!(!official.install.iter().any(|p| p == "openssh-server"));
    assert_eq!(
        plan.services.system.keys().collect::<Vec<_>>(),
        ["systemd-networkd"]
    );
    assert_eq!(plan.users["kod"].password, "hashed");
    assert_eq!(plan.users["kod"].groups, ["sudo"]);
    assert_eq!(plan.network.hostname, "kod-vm");
    let disk = &plan.devices["disk0"];
    assert_eq!(disk.partitions.len(), 2, "no swap size was given");
    // disk_definition says /boot; the plan mounts every ESP at /efi.
    let esp = &disk.partitions[0];
    assert_eq!(esp.kind, kod_config::PartitionKind::Esp);
    assert_eq!(esp.mountpoint.as_deref(), Some("/efi"));
}

#[test]
fn passwords_never_reach_the_plan() {
    for name in ["kodos-readme", "debian-vm"] {
        let plan = plan_file(&example(name)).unwrap();
        let json = serde_json::to_string(&plan).unwrap();
        assert!(
            !json.contains("changme"),
            "{name}: plain password in the plan"
        );
        assert!(!json.contains("$6$"), "{name}: password hash in the plan");
        assert!(
            json.contains("\"password\":"),
            "{name}: password kind missing"
        );
    }
}

#[test]
fn disabled_services_bring_nothing() {
    let plan = plan_text(
        r#"return {
            repos = { official = { type = "debian", suite = "bookworm" } },
            services = {
                cups = { enable = false, extra_packages = { "printer-driver-gutenprint" } },
                ssh = { enable = true, package = "openssh-server" },
                avahi = { package = "avahi-daemon" },
            },
        }"#,
    )
    .unwrap();
    let official = &plan.packages["official"].install;
    for absent in ["cups", "printer-driver-gutenprint", "avahi-daemon"] {
        assert!(!official.iter().any(|p| p == absent), "{absent} planned");
    }
    assert!(official.iter().any(|p| p == "openssh-server"));
    assert_eq!(plan.services.system.keys().collect::<Vec<_>>(), ["ssh"]);
}

#[test]
fn desktop_display_manager_and_exclusions() {
    let plan = plan_text(
        r#"return {
            repos = { official = { type = "debian", suite = "bookworm" } },
            packages = { "yelp" },
            desktop = { desktop_manager = {
                gnome = { enable = true, package = "gnome-core", display_manager = "gdm3",
                          extra_packages = { "gnome-tweaks", "gnome-tour" },
                          exclude_packages = { "gnome-tour", "yelp", "totem" } },
                kde = { enable = false, display_manager = "sddm" },
            } },
        }"#,
    )
    .unwrap();
    let set = &plan.packages["official"];
    assert_eq!(
        set.install,
        sorted(&[
            "gnome-core",
            "gnome-tweaks",
            "gdm3",
            "yelp",
            "linux-image-amd64",
            "systemd",
            "systemd-resolved",
            "initramfs-tools",
            "zstd",
            "systemd-boot",
            "dbus"
        ])
    );
    // yelp is excluded by gnome but asked for explicitly: it stays.
    assert_eq!(set.remove, sorted(&["gnome-tour", "totem"]));
    assert_eq!(
        plan.services.system["gdm3"],
        ["desktop.desktop_manager.gnome.display_manager"]
    );
    assert!(!set.install.iter().any(|p| p == "sddm"));
}

#[test]
fn conflicting_display_managers_are_an_error() {
    let err = plan_text(
        r#"return {
            repos = { official = { type = "debian", suite = "bookworm" } },
            desktop = { desktop_manager = {
                gnome = { enable = true, display_manager = "gdm3" },
                plasma = { enable = true, display_manager = "sddm" },
            } },
        }"#,
    )
    .unwrap_err();
    let text = err.to_string();
    assert_contains(&text, "gdm3, sddm");
    assert_contains(&text, "set desktop.display_manager");
}

#[test]
fn plans_are_deterministic() {
    let a = serde_json::to_string(&plan_file(&example("kodos-readme")).unwrap()).unwrap();
    let b = serde_json::to_string(&plan_file(&example("kodos-readme")).unwrap()).unwrap();
    assert_eq!(a, b);
}

#[test]
fn kernel_package_false_plans_no_kernel() {
    let plan = plan_text(
        r#"return { repos = { official = { type = "debian", suite = "bookworm" } },
                    boot = { kernel = { package = false } }, packages = { "less" } }"#,
    )
    .unwrap();
    assert_eq!(plan.boot.kernel_package, None);
    // No kernel, so none of what booting one needs either.
    assert_eq!(plan.packages["official"].install, ["less", "systemd"]);
}

#[test]
fn default_kernel_follows_the_distribution() {
    let plan = plan_text(
        r#"return { repos = { official = { type = "arch", mirror = "https://mirror.invalid/archlinux" } } }"#,
    )
    .unwrap();
    assert_eq!(plan.boot.kernel_package.as_deref(), Some("linux"));
    assert_eq!(
        plan.packages["official"].reasons["linux"],
        ["boot.kernel.package"]
    );
}
