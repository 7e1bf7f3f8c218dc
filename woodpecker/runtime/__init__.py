"""Runtime: executes a compiled model (a list of kernel calls over preallocated, reused buffers)."""
