"""The runtime: every process, loop, pool and runner, and every hand-off between them."""
