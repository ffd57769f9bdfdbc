-- kod built-in module `dotfile_manager`: the same stow helper as configs.stow.
return { stow = require("configs").stow }
