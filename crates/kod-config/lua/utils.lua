-- kod built-in module `utils`: lists and maps that join with `..`, and
-- conditional helpers. `list`, `map`, `If` and `IfElse` are also globals.

local list_mt, map_mt = {}, {}

local function list(items)
    local out = {}
    for _, v in ipairs(items or {}) do out[#out + 1] = v end
    return setmetatable(out, list_mt)
end

-- `a .. b` makes a new list: neither side is changed, so a module's list
-- can be joined into several places.
list_mt.__concat = function(a, b)
    local out = {}
    for _, v in ipairs(a or {}) do out[#out + 1] = v end
    for _, v in ipairs(b or {}) do out[#out + 1] = v end
    return setmetatable(out, list_mt)
end
list_mt.__tostring = function(t) return "list{" .. table.concat(t, ", ") .. "}" end

local function map(entries)
    local out = {}
    for k, v in pairs(entries or {}) do out[k] = v end
    return setmetatable(out, map_mt)
end

-- `a .. b` merges maps; on a shared key the right side wins.
map_mt.__concat = function(a, b)
    local out = {}
    for k, v in pairs(a or {}) do out[k] = v end
    for k, v in pairs(b or {}) do out[k] = v end
    return setmetatable(out, map_mt)
end

local function if_true(cond, value)
    if cond then return value end
    if type(value) == "table" then return getmetatable(value) == map_mt and map({}) or list({}) end
    return nil
end

local function if_else(cond, a, b)
    if cond then return a end
    return b
end

return {
    list = list,
    map = map,
    if_true = if_true,
    if_else = if_else,
}
