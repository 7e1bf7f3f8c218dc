"""Random search: uniform valid points never measured before. The floor every other searcher must beat."""

from __future__ import annotations

from woodpecker.search.base import SearcherBase, register
from woodpecker.space.space import Point


@register("random")
class RandomSearcher(SearcherBase):
    name = "random"

    def propose(self, n: int) -> list[Point]:
        return self.random_fill(self.default_first(), n)
