-- The configuration example of KodOS's README, as kod runs it.
-- Changes from the original: the user key `demo-user` is quoted (the
-- original `demo-user = {` is not valid Lua: it reads as `demo - user`),
-- and host names are replaced with `.invalid` ones.
-- Helper scripts 
disk = require("disk") 
repos = require("repos")
dotmgr = require("dotfile_manager")
configs = require("configs")

return {
    repos = {
        -- The following package sources are defined by script functions freom repo 
        arch = repos.arch_repo("https://mirror.invalid/archlinux");
        -- Uses yay as package manager for AUR
        aur = repos.aur_repo("yay", "https://aur.invalid/yay-bin.git");
        flatpak = repos.flatpak_repo("flathub");
    },

    devices = {
        -- disk0 is a disk partition layout (boot, swap (optional), and rootfs) over the /dev/vda device, created using a script function 
        -- The swap size (3GB in this case) is optional
        disk0 = disk.disk_definition("/dev/vda", "3GB");
    };

    boot = {
        kernel = {
            package = "linux-lts",
            modules = { "xhci_pci", "ohci_pci", "ehci_pci", "virtio_pci", "ahci", "usbhid", "sr_mod", "virtio_blk" },
        },
        loader = {
            type = "systemd-boot",
            timeout = 10,
            include = { "memtest86+" },
        },
    },


    hardware = {
        bluetooth = {
            enable = true,
            package = "bluez",
        };

        pipewire = {
            enable = true,
            extra_packages = {
                "pipewire-alsa",
                "pipewire-pulse",
            },
        },
    };

    locale = {
        locale = {
            default = "en_CA.UTF-8 UTF-8";
            extra_generate = {
                "en_US.UTF-8 UTF-8", "en_GB.UTF-8 UTF-8"
            };
            extra_settings = {
                LC_ADDRESS = "en_CA.UTF-8",
                LC_IDENTIFICATION = "en_CA.UTF-8",
                LC_MEASUREMENT = "en_CA.UTF-8",
                LC_MONETARY = "en_CA.UTF-8",
                LC_NAME = "en_CA.UTF-8",
                LC_NUMERIC = "en_CA.UTF-8",
                LC_PAPER = "en_CA.UTF-8",
                LC_TELEPHONE = "en_CA.UTF-8",
                LC_TIME = "en_CA.UTF-8",
            },
        };
        keymap = "us";
        timezone = "America/Edmonton";
    };

    network = {
        hostname = "testvm",
        ipv6 = false
    };

    users = {
        root = {
            no_password = true,
            shell = "/bin/bash",
        };
        ["demo-user"] = {
            name = "Demo User";
            password = "changme";
            -- or use a hash version of the passward 
            -- hashed_password = "$6$q5r7h6qJ8nRats.X$twRR8mUf5y/oKae4doeb6.aXhPhh4Z1ZcAz5RJG38MtPRpyFjuN8eCt9GW.a20yZK1O8OvVPtJusVHZ9I8Nk/.",
            shell = "/bin/zsh",

            -- Specify if a program to hadle dotfiles is used. In this case stow
            dotfile_manager = dotmgr.stow({
                    source_dir = "~/.dotfiles",
                    target_dir = "~/",
                    repo_url = "http://git.homecloud.invalid/demouser/dotconfig.git",
                });

            -- Programs used for the user. This programs aree installed at the system level and are available for all the users
            programs = {
                git = {
                    enable = true,
                    -- Uses a script function to configure .gitconfig
                    config = configs.git({
                        user_name = "Demo User",
                        user_email = "demo.user@example.org",
                    })
                };

                zsh = {
                    enable = true,
                    deploy_config = true,
                    extra_packages = {
                        "zsh-autosuggestions",
                        "zsh-completions",
                    }
                };

                neovim = {
                    enable = true,
                    -- This option instruct the dotfile manager to deply the configuration for neovim
                    deploy_config = true,
                };
            };

            -- Configuration to deploy using the defined dotfile manager not associated to any program in particular
            deploy_configs = {
                "home", -- General config for home directory (face, background, etc.)
                "gtk", -- GTK themes
            },

            -- Services enabled at the user level
            services = {
                syncthing = {
                    enable = false,
                    config = configs.syncthing({
                        service_name = "syncthing",
                        options = "'--no-browser' '--no-restart' '--logflags=0' '--gui-address=0.0.0.0:8384' '--no-default-folder'",
                    }),
                }
            }
        },
    };

    desktop = {
        -- General display manager to use. Use this option if multiple desktop managers wants to be  installed.
        -- IF it is not used, each desktop manager could define it own display manager. 
        display_manager = "gdm";

        desktop_manager = {
            gnome = {
                enable = true,
                exclude_packages = {
                    "gnome-tour", "yelp"
                },
                extra_packages = {
                    "gnome-tweaks",
                    "gnome-shell-extension-appindicator",
                    "aur:gnome-shell-extension-dash-to-dock"
                },
            };
    
            plasma = {
                enable = false,
                extra_packages = {
                    "kde-applications",
                },
            };

            cosmic = {
                enable = false,
                display_manager = "cosmic-greeter",
            },
        }
    },

    fonts = {
        font_dir = true,
        packages = {
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
            "aur:ttf-work-sans",
        },
    };

    -- System packages to install
    packages = {
        "neovim",
        "htop",
        "uv",
        "git",
        "neofetch",
        -- AUR packages,
        "aur:floorp-bin",
        -- Flatpak packages
        "flatpak:com.visualstudio.code",
    };

    -- System services
    services = {
        -- Firmware update
        fwupd = { enable = true },
        
        networkmanager = {
            enable = true,
            service_name = "NetworkManager",
        };
        
        openssh = {
            enable = true,
            service_name = "sshd",
            settings = {
                PermitRootLogin = false,
            }
        };

        cups = {
            enable = true,
            extra_packages = { "gutenprint" },
        };
    }
}
