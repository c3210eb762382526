"""One database's jobs, combining the rest: status and migrate with retries, mark, reset, provision."""
