-- A small Debian system for a virtual machine: kod's own example, which
-- CI plans, installs onto a disk image and boots.
--
-- The mirror is not written here: kod takes it from KOD_DEBIAN_MIRROR or
-- from the host's apt sources. To pin one, add `mirror = "http://..."`.

local disk = require("disk")
local repos = require("repos")
local tools = require("tools") -- a package list next to this file

return {
    repos = {
        official = repos.debian_repo({ suite = "bookworm", components = { "main" } }),
    },

    devices = {
        disk0 = disk.disk_definition("/dev/vda"),
    },

    boot = {
        kernel = {
            package = "linux-image-amd64",
            modules = { "virtio_pci", "virtio_blk", "virtio_scsi", "btrfs" },
            -- The kernel's console on the first serial port, where `kod vm`
            -- reads it.
            options = { "console=ttyS0,115200" },
        },
        loader = {
            type = "systemd-boot",
            timeout = 3,
        },
    },

    locale = {
        locale = { default = "en_US.UTF-8 UTF-8" },
        keymap = "us",
        timezone = "UTC",
    },

    network = {
        hostname = "kod-vm",
        ipv4 = true,
        ipv6 = false,
    },

    users = {
        root = { no_password = true, shell = "/bin/bash" },
        kod = {
            name = "kod demo user",
            -- the password is "kod": `openssl passwd -6 -salt kodsalt kod`
            hashed_password = "$6$kodsalt$0HaucfEgSj9tgRFdmzl1rIeiM5KJ8yK/gMKfthfPRBKLPCKMOyIeC2gPiuSMPEF3nXGY4kX3ugwk2NvZ0x1Su/",
            shell = "/bin/bash",
            extra_groups = { "sudo" },
        },
    },

    packages = list({ "systemd-sysv", "sudo" }) .. tools,

    services = {
        networkd = {
            enable = true,
            package = "systemd",
            service_name = "systemd-networkd",
        },
        -- Switched off: brings no package and is not enabled.
        ssh = {
            enable = false,
            package = "openssh-server",
        },
    },
}
