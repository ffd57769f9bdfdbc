-- Command-line tools for the example system.
return list({ "less", "vim-tiny", "iproute2" })
