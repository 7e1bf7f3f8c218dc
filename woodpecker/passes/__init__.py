"""Graph optimizer: one pass per module, each Graph -> Graph; `pipeline.optimize` runs them in order."""
