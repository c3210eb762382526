"""The command line: the app object and options, one module per command group, views and output."""
