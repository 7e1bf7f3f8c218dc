"""Which tuning record a compile applies: the records' selection policy, in one place."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from woodpecker.records.db import RecordsDatabase, open_database

if TYPE_CHECKING:
    from woodpecker.lowering.model import Task
    from woodpecker.targets import Target


# A tuned schedule re-timed beside its default at the end of its session (woodpecker.tuner._Session._verify) is
# applied only if it was at least this much faster there: figures taken minutes apart on a shared VM differ by more
# than most schedules do, and a gain within that is as likely a loss in the model.
VERIFIED_MIN_SPEEDUP = 1.02


def best_knobs(tasks: Mapping[str, Task], db: Any, target: Target) -> dict[str, Mapping[str, int | str]]:
    """Knobs of the fastest record of each task for this device and toolchain, the configured timing mode first
    (tasks without records: none; db None: nothing). A fastest record whose side-by-side re-timing against the
    default (its verdict) showed less than VERIFIED_MIN_SPEEDUP leaves its task on the default schedule; records
    never re-timed (sessions before verdicts) apply as they are. A fastest record that is not a point of its task's
    space as it is now (a knob it lacks: a Winograd record from before `fuse_rows`; a value the space no longer
    offers: an outer order the tuner now leaves to the default, space.from_context) was chosen in another space,
    against another default: its task stays on the current default until tuned again.

    Within one timing mode only: hot-loop and cold-cache times of a task are not comparable. A mode whose best is
    the default schedule (a short session measures every default first) has tuned nothing: the next mode's tuned
    schedule serves. A record that is the default is reported as the default (left out here).
    """
    if db is None:
        return {}
    database = open_database(db)
    assert database is not None
    try:
        device, toolchains = target.device(), target.record_toolchains()
        out: dict[str, Mapping[str, int | str]] = {}
        for key, task in tasks.items():
            space = target.space(task)
            default = dict(space.default)
            for tools in toolchains:
                best = database.best(key, device, tools)
                if best is not None and dict(best.knobs) != default:
                    if space.violations(best.knobs):
                        break
                    verdict = database.verdict(key, device, tools, best.knobs)
                    if verdict is None or verdict >= VERIFIED_MIN_SPEEDUP:
                        out[key] = dict(best.knobs)
                    break
        return out
    finally:
        if not isinstance(db, RecordsDatabase):
            database.close()
