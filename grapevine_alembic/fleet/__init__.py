"""Many databases: which ones (targets), fanned out with bounded parallelism per server, behind breakers."""
