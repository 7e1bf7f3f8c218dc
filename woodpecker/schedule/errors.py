"""Which errors mean "this schedule step does not apply here" (and only those).

A template tries some steps that may not apply to every kernel (inline a producer, vectorize a loop, move a
block under another's loop); TVM refuses an illegal primitive with a ScheduleError and leaves the schedule
usable, so the template skips the step. Anything else (a TypeError, a KeyError, an AttributeError) is a bug in
the template and must propagate: caught, it would silently turn into a default schedule or a knob with no
effect. TVM is imported only when a step has failed, so importing the templates does not load TVM.
"""

from __future__ import annotations


def not_applicable() -> tuple[type[BaseException], ...]:
    """The exception classes for `except not_applicable():` around a step that may not apply."""
    from tvm.s_tir.schedule import ScheduleError

    return (ScheduleError,)
