-- kod built-in module `repos`: package sources. Each function returns a
-- plain table with a `type`; writing such a table by hand works the same.

local function words(s)
    local out = {}
    for w in string.gmatch(s or "", "%S+") do out[#out + 1] = w end
    return out
end

-- KodOS form: deb_repo("MIRROR [SUITE [COMPONENT...]]").
local function deb_repo(spec)
    local w = words(spec)
    local components = {}
    for i = 3, #w do components[#components + 1] = w[i] end
    return {
        type = "debian",
        mirror = w[1],
        suite = w[2] or "stable",
        components = (#components > 0) and components or nil,
    }
end

local function debian_repo(opts)
    opts = opts or {}
    return {
        type = "debian",
        mirror = opts.mirror,
        suite = opts.suite,
        components = opts.components,
        signed_by = opts.signed_by,
        trusted = opts.trusted,
    }
end

local function arch_repo(mirror)
    if type(mirror) == "table" and mirror.mirror ~= nil then
        local o = mirror
        return { type = "arch", mirror = o.mirror, repositories = o.repositories,
                 signed_by = o.signed_by, trusted = o.trusted }
    end
    return { type = "arch", mirror = mirror }
end

local function rpm_family(kind)
    return function(opts)
        opts = opts or {}
        return {
            type = kind,
            release = opts.release,
            mirror = opts.mirror,
            repositories = opts.repositories,
            signed_by = opts.signed_by,
            trusted = opts.trusted,
        }
    end
end

local function alpine_repo(opts)
    opts = opts or {}
    return {
        type = "alpine",
        release = opts.release or opts.branch,
        mirror = opts.mirror,
        repositories = opts.repositories,
        signed_by = opts.signed_by,
        trusted = opts.trusted,
    }
end

local function aur_repo(helper, helper_url, build_cmd)
    return { type = "aur", helper = helper, helper_url = helper_url, build_cmd = build_cmd }
end

local function flatpak_repo(remote, url)
    return { type = "flatpak", remote = remote or "flathub", url = url }
end

return {
    deb_repo = deb_repo,
    debian_repo = debian_repo,
    arch_repo = arch_repo,
    fedora_repo = rpm_family("fedora"),
    centos_repo = rpm_family("centos"),
    opensuse_repo = rpm_family("opensuse"),
    alpine_repo = alpine_repo,
    aur_repo = aur_repo,
    flatpak_repo = flatpak_repo,
}
