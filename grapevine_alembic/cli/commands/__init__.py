"""One module per command or command group: parse its options, call the layers, print, exit."""
