"""Searchers: ask/tell optimizers over a task's knob space (random, genetic algorithm, reinforcement learning)."""

from woodpecker.search.base import SEARCHERS, Searcher, SearchContext, create

__all__ = ["SEARCHERS", "SearchContext", "Searcher", "create"]
