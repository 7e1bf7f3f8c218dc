"""Graph -> DSL: every fused group of the optimized graph becomes one readable DSL kernel (a Task)."""
