"""Which tuning record a compile applies: the records' selection policy, in one place."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from woodpecker.records.db import RecordsDatabase, open_database

if TYPE_CHECKING:
    from woodpecker.lowering.model import Task
    from woodpecker.targets import Target


def best_knobs(tasks: Mapping[str, Task], db: Any, target: Target) -> dict[str, Mapping[str, int | str]]:
    """Knobs of the fastest record of each task for this device and toolchain, the configured timing mode first
    (tasks without records: none; db None: nothing).

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
            default = dict(target.space(task).default)
            for tools in toolchains:
                best = database.best(key, device, tools)
                if best is not None and dict(best.knobs) != default:
                    out[key] = dict(best.knobs)
                    break
        return out
    finally:
        if not isinstance(db, RecordsDatabase):
            database.close()
