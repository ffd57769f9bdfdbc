//! qemu's command line for one boot, built from what the boot needs
//! (pure, so its tests read the exact arguments).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::Accel;

/// The qemu program.
pub const QEMU: &str = "qemu-system-x86_64";

/// A kernel booted by qemu itself (`-kernel`), under the firmware:
/// systemd-boot is skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectBoot {
    /// The kernel image.
    pub kernel: PathBuf,
    /// The initramfs image.
    pub initrd: PathBuf,
    /// The kernel's command line.
    pub append: String,
}

/// Where the first serial port, the guest's console, goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Console {
    /// To this file only.
    File(PathBuf),
    /// The terminal, multiplexed with qemu's monitor (`-serial mon:stdio`).
    Terminal,
}

/// One boot's machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// The disk image, the first virtio disk.
    pub image: PathBuf,
    /// OVMF's code, read-only.
    pub firmware_code: PathBuf,
    /// The variable store this boot uses.
    pub vars: PathBuf,
    /// KVM or TCG.
    pub accel: Accel,
    /// A direct kernel boot instead of the firmware's boot order.
    pub direct: Option<DirectBoot>,
    /// The check disk, a second virtio disk, read-only.
    pub check_disk: Option<PathBuf>,
    /// The console.
    pub console: Console,
    /// The file the report port (the second serial port) writes to.
    pub report_port: PathBuf,
}

impl Machine {
    /// qemu's arguments.
    pub fn args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut push = |items: &[&str]| a.extend(items.iter().map(OsString::from));
        push(&["-nodefaults", "-display", "none"]);
        // User-mode networking (NAT through the host): the guest reaches
        // what the host reaches, e.g. its mirror for `kod rebuild` inside.
        // No option ROM: OVMF drives virtio-net itself, and a PXE ROM would
        // only slow the firmware down.
        push(&[
            "-netdev",
            "user,id=net0",
            "-device",
            "virtio-net-pci,netdev=net0,romfile=",
        ]);
        push(&["-machine", "q35", "-smp", "2", "-m", "1024"]);
        match self.accel {
            Accel::Kvm => push(&["-accel", "kvm", "-cpu", "host"]),
            Accel::Tcg => push(&["-accel", "tcg"]),
        }
        // A guest panic (pvpanic) ends qemu with status 1; a reboot ends it too.
        push(&[
            "-device",
            "pvpanic",
            "-action",
            "panic=exit-failure",
            "-no-reboot",
        ]);
        let drive = |spec: String| [OsString::from("-drive"), OsString::from(spec)];
        a.extend(drive(format!(
            "if=pflash,format=raw,unit=0,readonly=on,file={}",
            escape(&self.firmware_code)
        )));
        a.extend(drive(format!(
            "if=pflash,format=raw,unit=1,file={}",
            escape(&self.vars)
        )));
        a.extend(drive(format!(
            "if=virtio,format=raw,file={}",
            escape(&self.image)
        )));
        if let Some(disk) = &self.check_disk {
            a.extend(drive(format!(
                "if=virtio,format=raw,readonly=on,file={}",
                escape(disk)
            )));
        }
        // ttyS0, the console; then ttyS1, the report port.
        match &self.console {
            Console::File(log) => {
                a.push("-chardev".into());
                a.push(format!("file,id=console,path={}", escape(log)).into());
                a.push("-serial".into());
                a.push("chardev:console".into());
            }
            Console::Terminal => {
                a.push("-serial".into());
                a.push("mon:stdio".into());
            }
        }
        a.push("-chardev".into());
        a.push(format!("file,id=report,path={}", escape(&self.report_port)).into());
        a.push("-serial".into());
        a.push("chardev:report".into());
        if let Some(d) = &self.direct {
            a.push("-kernel".into());
            a.push(d.kernel.clone().into());
            a.push("-initrd".into());
            a.push(d.initrd.clone().into());
            a.push("-append".into());
            a.push(d.append.clone().into());
        }
        a
    }
}

/// A path inside a qemu option list, where `,` separates options and
/// `,,` stands for a comma.
pub(crate) fn escape(path: &Path) -> String {
    path.display().to_string().replace(',', ",,")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> Machine {
        Machine {
            image: "/var/tmp/vm.img".into(),
            firmware_code: "/usr/share/OVMF/OVMF_CODE_4M.fd".into(),
            vars: "/var/tmp/vm.img.efivars".into(),
            accel: Accel::Tcg,
            direct: None,
            check_disk: Some("/tmp/kod-vm-x/checks.img".into()),
            console: Console::File("/tmp/kod-vm-x/console.log".into()),
            report_port: "/tmp/kod-vm-x/report".into(),
        }
    }

    fn line(m: &Machine) -> String {
        m.args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn a_checked_boot_under_tcg() {
        assert_eq!(
            line(&machine()),
            "-nodefaults -display none -netdev user,id=net0 -device virtio-net-pci,netdev=net0,romfile= -machine q35 -smp 2 -m 1024 -accel tcg \
             -device pvpanic -action panic=exit-failure -no-reboot \
             -drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \
             -drive if=pflash,format=raw,unit=1,file=/var/tmp/vm.img.efivars \
             -drive if=virtio,format=raw,file=/var/tmp/vm.img \
             -drive if=virtio,format=raw,readonly=on,file=/tmp/kod-vm-x/checks.img \
             -chardev file,id=console,path=/tmp/kod-vm-x/console.log -serial chardev:console \
             -chardev file,id=report,path=/tmp/kod-vm-x/report -serial chardev:report"
        );
    }

    #[test]
    fn interactive_direct_boot_under_kvm() {
        let m = Machine {
            accel: Accel::Kvm,
            check_disk: None,
            console: Console::Terminal,
            direct: Some(DirectBoot {
                kernel: "/tmp/d/linux".into(),
                initrd: "/tmp/d/initrd".into(),
                append: "root=UUID=x rw quiet".into(),
            }),
            ..machine()
        };
        let args = m.args();
        let l = line(&m);
        assert!(l.contains(" -accel kvm -cpu host "), "{l}");
        assert!(!l.contains("checks.img"), "{l}");
        assert!(
            l.contains(" -serial mon:stdio -chardev file,id=report,"),
            "{l}"
        );
        // The command line is one argument, spaces and all.
        assert_eq!(
            args[args.len() - 2..],
            ["-append".into(), OsString::from("root=UUID=x rw quiet")]
        );
        assert!(
            l.contains("-kernel /tmp/d/linux -initrd /tmp/d/initrd"),
            "{l}"
        );
    }

    #[test]
    fn commas_in_paths_are_doubled() {
        let m = Machine {
            image: "/tmp/a,b.img".into(),
            ..machine()
        };
        assert!(line(&m).contains("file=/tmp/a,,b.img "));
    }
}
