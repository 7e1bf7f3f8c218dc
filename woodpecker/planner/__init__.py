"""The planner: for every kernel call of a compiled model, time each implementation in place and keep the fastest."""
