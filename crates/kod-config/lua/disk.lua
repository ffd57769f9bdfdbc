-- kod built-in module `disk`: partition layouts.

local function disk_definition(device, swap_size)
    local partitions = {
        { name = "Boot", size = "1GB", type = "esp", mountpoint = "/boot", format = true },
    }
    if swap_size then
        partitions[#partitions + 1] = {
            name = "Swap", size = swap_size, type = "linux-swap", resume_device = true,
        }
    end
    partitions[#partitions + 1] = {
        name = "Root", size = "100%", type = "btrfs", mountpoint = "/", format = true,
    }
    return { device = device, type = "gpt", efi = true, wipe = true, partitions = partitions }
end

return { disk_definition = disk_definition }
