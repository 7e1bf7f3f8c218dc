"""Search spaces: the knobs of each kernel family, resolved against a task's loop structure."""

from woodpecker.space.space import Knob, Point, SearchSpace, space_for_task

__all__ = ["Knob", "Point", "SearchSpace", "space_for_task"]
