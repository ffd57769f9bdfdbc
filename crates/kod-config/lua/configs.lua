-- kod built-in module `configs`: configuration helpers.
--
-- A helper returns an action: { name, stages, packages, config, command }. kod calls
-- `command(ctx, config, program, init)` while it evaluates the configuration,
-- with a recording context: nothing runs then. What the command asks for
-- (files, commands, units) is recorded and carried out later, in the stages
-- listed, as the user the action belongs to. Context methods:
--   ctx:run({argv...})                 run a program (no shell)
--   ctx:execute("shell command")       run a shell command (KodOS style)
--   ctx:write_file(path, text [, mode]) write a file ("~/" is the user's home)
--   ctx:copy_file(source, target)      copy a file from the configuration dir
--   ctx:git_checkout(url, dir)         clone, or pull when already cloned
--   ctx:enable_unit(name)              enable a systemd system unit
--   ctx:enable_user_unit(name)         enable a systemd user unit
-- and fields ctx.user, ctx.home.

local function sorted_keys(t)
    local keys = {}
    for k in pairs(t) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    return keys
end

local function action(name, stages, packages, config, command)
    return { name = name, stages = stages, packages = packages, config = config, command = command }
end

-- Dotfiles with GNU stow: clone (or pull) the repository once, then link
-- each program's directory into the target.
local function stow(config)
    return action("stow", { "install", "rebuild-user" }, { "stow", "git" }, config, function(ctx, c, program, init)
        local source = c.source_dir or "~/.dotfiles"
        local target = c.target_dir or "~/"
        if init and c.repo_url then
            ctx:git_checkout(c.repo_url, source)
        end
        if program then
            ctx:run({ "stow", "-R", "-t", target, "-d", source, program })
        end
    end)
end

-- `git config --global` for each field; `user_name` becomes `user.name`.
local function git(config)
    return action("git", { "install", "rebuild-user" }, { "git" }, config, function(ctx, c)
        for _, field in ipairs(sorted_keys(c)) do
            local key = string.gsub(field, "_", ".")
            ctx:run({ "git", "config", "--global", key, tostring(c[field]) })
        end
    end)
end

local function gvariant(v)
    if type(v) == "string" then
        return "'" .. string.gsub(v, "'", "\\'") .. "'"
    end
    return tostring(v)
end

-- GNOME settings through gsettings: { ["org/gnome/x"] = { key_name = value } }.
local function dconf(config)
    return action("dconf", { "rebuild-user" }, {}, config, function(ctx, c)
        for _, root in ipairs(sorted_keys(c)) do
            local schema = string.gsub(root, "/", ".")
            local values = c[root]
            for _, field in ipairs(sorted_keys(values)) do
                local key = string.gsub(field, "_", "-")
                local v = values[field]
                if type(v) == "table" and type(v[1]) == "string" then
                    local items = {}
                    for i, item in ipairs(v) do items[i] = gvariant(item) end
                    ctx:run({ "gsettings", "set", schema, key, "[" .. table.concat(items, ", ") .. "]" })
                elseif type(v) == "table" then
                    for _, sub in ipairs(sorted_keys(v)) do
                        for _, k in ipairs(sorted_keys(v[sub])) do
                            ctx:run({ "gsettings", "set", schema .. "." .. key .. ":" .. sub, k,
                                      gvariant(v[sub][k]) })
                        end
                    end
                else
                    ctx:run({ "gsettings", "set", schema, key, gvariant(v) })
                end
            end
        end
    end)
end

-- Syncthing as a systemd user service.
local function syncthing(config)
    return action("syncthing", { "rebuild-user" }, { "syncthing" }, config, function(ctx, c)
        local name = c.service_name or "syncthing"
        ctx:write_file("~/.config/systemd/user/" .. name .. ".service", table.concat({
            "[Unit]",
            "Description=Syncthing - Open Source Continuous File Synchronization",
            "Documentation=man:syncthing(1)",
            "After=network.target",
            "",
            "[Service]",
            "ExecStart=/usr/bin/syncthing " .. (c.options or ""),
            "PrivateUsers=true",
            "",
            "[Install]",
            "WantedBy=default.target",
            "",
        }, "\n"))
        ctx:enable_user_unit(name .. ".service")
    end)
end

-- copy_file(source, target) or copy_file{ source = ..., target = ... }.
local function copy_file(source, target)
    local c = type(source) == "table" and source or { source = source, target = target }
    return action("copy_file", { "install", "rebuild-user" }, {}, c, function(ctx, cc)
        ctx:copy_file(cc.source, cc.target)
    end)
end

-- A systemd .mount unit (and .automount when automount = true).
local function mount(config)
    for _, field in ipairs({ "name", "what", "where" }) do
        if type(config) ~= "table" or config[field] == nil then
            error("configs.mount needs `" .. field .. "`", 2)
        end
    end
    return action("mount", { "install", "rebuild" }, {}, config, function(ctx, c)
        if c.enable == false then return end
        local name = c.name
        local lines = {
            "[Unit]",
            "Description=" .. (c.description or name),
        }
        if c.after then lines[#lines + 1] = "After=" .. c.after end
        local unit = table.concat(lines, "\n") .. "\n\n" .. table.concat({
            "[Mount]",
            "What=" .. c.what,
            "Where=" .. c.where,
            "Type=" .. (c.type or "auto"),
            "Options=" .. (c.options or "defaults"),
            "",
            "[Install]",
            "WantedBy=" .. (c.wanted_by or "multi-user.target"),
            "",
        }, "\n")
        ctx:write_file("/etc/systemd/system/" .. name .. ".mount", unit)
        if c.automount then
            ctx:write_file("/etc/systemd/system/" .. name .. ".automount", table.concat({
                "[Unit]",
                "Description=" .. (c.description or name),
                "",
                "[Automount]",
                "Where=" .. c.where,
                c.automount_config or "",
                "",
                "[Install]",
                "WantedBy=" .. (c.wanted_by or "multi-user.target"),
                "",
            }, "\n"))
            ctx:enable_unit(name .. ".automount")
        else
            ctx:enable_unit(name .. ".mount")
        end
    end)
end

return {
    stow = stow,
    git = git,
    dconf = dconf,
    syncthing = syncthing,
    copy_file = copy_file,
    mount = mount,
}
