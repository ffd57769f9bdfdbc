//! The host name (`/etc/hostname`, `/etc/hosts`) and the network:
//! one systemd-networkd `.network` file matching every ethernet link,
//! with IPv4 and IPv6 as configured.

use kod_config::IpConfig;

use crate::Input;
use crate::error::Error;
use crate::planner::Planner;

/// Whether `name` is a valid host name (RFC 1123 labels, at most 253
/// characters in all).
fn valid_hostname(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// Plans /etc/hostname and /etc/hosts.
pub(crate) fn plan(p: &mut Planner, input: &Input) -> Result<(), Error> {
    const KEY: &str = "network.hostname";
    let name = &input.plan.network.hostname;
    if !valid_hostname(name) {
        return Err(Error::BadValue {
            key: KEY.into(),
            value: name.clone(),
            reason: "is no host name: letters, digits and `-`, in labels of at most 63 \
                     characters separated by dots"
                .into(),
        });
    }
    p.write(KEY, "/etc/hostname", format!("{name}\n"), 0o644, (0, 0))?;
    p.write(KEY, "/etc/hosts", hosts(name), 0o644, (0, 0))?;
    Ok(())
}

/// Debian's /etc/hosts for `name`.
pub fn hosts(name: &str) -> String {
    let short = name.split('.').next().unwrap_or(name);
    let names = if short == name {
        name.to_string()
    } else {
        format!("{name} {short}")
    };
    format!(
        "127.0.0.1\tlocalhost\n127.0.1.1\t{names}\n\n\
         # The following lines are desirable for IPv6 capable hosts\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         ff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
    )
}

/// Where the network file goes.
pub const NETWORK_FILE: &str = "/etc/systemd/network/50-kod-ethernet.network";

fn check_static(key: &str, ip: &IpConfig, v6: bool) -> Result<(), Error> {
    let IpConfig::Static {
        address,
        gateway,
        dns,
    } = ip
    else {
        return Ok(());
    };
    let ok = |a: &str| {
        if v6 {
            a.parse::<std::net::Ipv6Addr>().is_ok()
        } else {
            a.parse::<std::net::Ipv4Addr>().is_ok()
        }
    };
    let family = if v6 { "IPv6" } else { "IPv4" };
    let (addr, prefix) = address.split_once('/').unwrap_or((address, ""));
    let max = if v6 { 128 } else { 32 };
    if !ok(addr) || prefix.parse::<u32>().map_or(true, |n| n > max) {
        return Err(Error::BadValue {
            key: format!("{key}.address"),
            value: address.clone(),
            reason: format!("is no {family} address with a prefix length (`ADDRESS/PREFIX`)"),
        });
    }
    for (k, a) in gateway
        .iter()
        .map(|g| ("gateway", g))
        .chain(dns.iter().map(|d| ("dns", d)))
    {
        let valid = if k == "dns" {
            a.parse::<std::net::IpAddr>().is_ok()
        } else {
            ok(a)
        };
        if !valid {
            return Err(Error::BadValue {
                key: format!("{key}.{k}"),
                value: a.clone(),
                reason: format!("is no {family} address"),
            });
        }
    }
    Ok(())
}

/// The .network file for `ipv4` and `ipv6`.
pub fn network_file(ipv4: &IpConfig, ipv6: &IpConfig) -> String {
    let mut net = Vec::new();
    let dhcp = matches!(ipv4, IpConfig::Automatic);
    net.push(format!("DHCP={}", if dhcp { "ipv4" } else { "no" }));
    net.push(format!(
        "IPv6AcceptRA={}",
        if matches!(ipv6, IpConfig::Automatic) {
            "yes"
        } else {
            "no"
        }
    ));
    let link_local = match (ipv4, ipv6) {
        (IpConfig::Disabled, IpConfig::Disabled) => "no",
        (IpConfig::Disabled, _) => "ipv6",
        (_, IpConfig::Disabled) => "no",
        _ => "ipv6",
    };
    net.push(format!("LinkLocalAddressing={link_local}"));
    for ip in [ipv4, ipv6] {
        if let IpConfig::Static {
            address,
            gateway,
            dns,
        } = ip
        {
            net.push(format!("Address={address}"));
            if let Some(g) = gateway {
                net.push(format!("Gateway={g}"));
            }
            for d in dns {
                net.push(format!("DNS={d}"));
            }
        }
    }
    format!(
        "# Written by kod from the configuration's network settings.\n\
         [Match]\nType=ether\n\n[Network]\n{}\n",
        net.join("\n")
    )
}

/// Plans the systemd-networkd file.
pub(crate) fn plan_network(p: &mut Planner, input: &Input) -> Result<(), Error> {
    const KEY: &str = "network";
    let n = &input.plan.network;
    check_static("network.ipv4", &n.ipv4, false)?;
    check_static("network.ipv6", &n.ipv6, true)?;
    p.dirs(
        KEY,
        std::path::Path::new("/etc/systemd/network"),
        0o755,
        (0, 0),
    )?;
    p.write(
        KEY,
        NETWORK_FILE,
        network_file(&n.ipv4, &n.ipv6),
        0o644,
        (0, 0),
    )?;
    Ok(())
}
