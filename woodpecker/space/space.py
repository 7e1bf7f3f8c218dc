"""SearchSpace: knobs with concrete candidate values for one task, constraints, and the default point.

A point is a complete knob dict (the family's defaults overridden by the searched knobs), the same dict the
schedule templates take. Searchers work on index vectors (one index per knob), which `to_indices` and
`from_indices` convert; `is_valid` checks the constraints without building anything.

A knob marked `from_context = true` in its file keeps the default's value only: its best value depends on the
kernels around it in a model (the outer order decides which rows each core computes, and the kernel before decided
which rows each core wrote), which a kernel timed alone cannot see.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
import pathlib
import random
import tomllib
from collections.abc import Mapping
from typing import Any

from woodpecker.data import data_dir
from woodpecker.errors import WoodpeckerError
from woodpecker.space.expr import ExprError, compile_expr, evaluate

Point = dict[str, Any]
KINDS = ("tile", "choice", "order")


@dataclasses.dataclass(frozen=True)
class Knob:
    name: str
    values: tuple[Any, ...]
    doc: str = ""


@dataclasses.dataclass(frozen=True)
class Constraint:
    expr: str
    why: str


@dataclasses.dataclass(frozen=True)
class SpaceFile:
    family: str
    target_class: str
    template: str
    knobs: tuple[Mapping[str, Any], ...]  # raw knob tables, each with "name"
    constraints: tuple[Constraint, ...]
    source: str


class SpaceError(WoodpeckerError):
    pass


@functools.lru_cache(maxsize=64)
def load_space_file(family: str, target_class: str) -> SpaceFile | None:
    path = data_dir("search_spaces") / target_class / f"{family}.toml"
    if not path.exists():
        return None
    return parse_space_file(path)


def parse_space_file(path: pathlib.Path) -> SpaceFile:
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise SpaceError(f"search space {path.name} is malformed: {err}") from None
    for field in ("family", "target_class", "template", "knobs"):
        if field not in data:
            raise SpaceError(f"search space {path.name} is malformed: missing field '{field}'")
    knobs = []
    for name, table in data["knobs"].items():
        kind = table.get("kind")
        if kind not in KINDS:
            raise SpaceError(f"search space {path.name}: knob {name} has kind {kind!r}, expected one of {KINDS}")
        if not isinstance(table.get("values"), list) or not table["values"]:
            raise SpaceError(f"search space {path.name}: knob {name} needs a non-empty 'values' list")
        if kind == "tile" and "axis" not in table:
            raise SpaceError(f"search space {path.name}: tile knob {name} needs an 'axis'")
        knobs.append({"name": name, **table})
    constraints = []
    for c in data.get("constraints", []):
        try:
            compile_expr(c["expr"])
        except (KeyError, ExprError) as err:
            raise SpaceError(f"search space {path.name}: bad constraint {c!r}: {err}") from None
        constraints.append(Constraint(c["expr"], c.get("why", "")))
    return SpaceFile(data["family"], data["target_class"], data["template"], tuple(knobs), tuple(constraints), path.name)


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    family: str
    knobs: tuple[Knob, ...]
    constraints: tuple[Constraint, ...]
    default: Mapping[str, Any]  # complete default knob dict (the untuned schedule)
    env: Mapping[str, Any]  # names constraints may use besides knobs: ext_<axis>, lanes, vector_registers

    @property
    def size(self) -> int:
        n = 1
        for k in self.knobs:
            n *= len(k.values)
        return n

    def point(self, values: Mapping[str, Any]) -> Point:
        p = dict(self.default)
        p.update(values)
        return p

    def violations(self, point: Mapping[str, Any]) -> list[str]:
        for k in self.knobs:
            if point.get(k.name) not in k.values:
                return [f"{k.name}={point.get(k.name)!r} is not one of {list(k.values)}"]
        env = {**self.env, **point}
        out = []
        for c in self.constraints:
            try:
                ok = evaluate(_compiled(c.expr), env)
            except (ExprError, ZeroDivisionError, TypeError) as err:
                raise SpaceError(f"constraint {c.expr!r} cannot be evaluated for {self.family}: {err}") from None
            if not ok:
                out.append(f"{c.expr} ({c.why})")
        return out

    def is_valid(self, point: Mapping[str, Any]) -> bool:
        return not self.violations(point)

    def to_indices(self, point: Mapping[str, Any]) -> tuple[int, ...]:
        return tuple(k.values.index(point[k.name]) for k in self.knobs)

    def from_indices(self, indices) -> Point:
        return self.point({k.name: k.values[int(i)] for k, i in zip(self.knobs, indices)})

    def random_point(self, rng: random.Random, tries: int = 1000) -> Point | None:
        for _ in range(tries):
            p = self.from_indices([rng.randrange(len(k.values)) for k in self.knobs])
            if self.is_valid(p):
                return p
        return None

    def all_points(self, limit: int = 100_000):
        """Every valid point (small spaces only; used by tests and exhaustive checks)."""
        for combo in itertools.islice(itertools.product(*[range(len(k.values)) for k in self.knobs]), limit):
            p = self.from_indices(combo)
            if self.is_valid(p):
                yield p


@functools.lru_cache(maxsize=256)
def _compiled(expr: str):
    return compile_expr(expr)


def point_key(point: Mapping[str, Any]) -> str:
    """Stable hash of a complete knob dict: the identity of a candidate within a workload."""
    return hashlib.sha256(canonical_json(point).encode()).hexdigest()[:16]


def canonical_json(point: Mapping[str, Any]) -> str:
    return json.dumps(dict(point), sort_keys=True, separators=(",", ":"))


def _resolve_values(spec: Mapping[str, Any], axes: Mapping[str, int], reduction: tuple[str, ...]) -> list[Any]:
    kind = spec["kind"]
    raw = list(spec["values"])
    if kind == "choice":
        return raw
    if kind == "tile":
        extent = axes.get(spec["axis"])
        if extent is None:
            return []  # this task has no such axis; the knob is left out
        out = []
        for v in raw:
            v = extent if v == "full" else int(v)
            if 1 <= v <= extent and v not in out:
                out.append(v)
        return out or [1]
    # order: keep the permutations of this kernel's reduction axes
    out = []
    for v in raw:
        if v == "default" or sorted(v.split(",")) == sorted(reduction):
            out.append(v)
    return out


def space_for_task(task, target_class: str = "cpu", lanes: int | None = None,
                   limits: Mapping[str, int] | None = None, vector_registers: int | None = None) -> SearchSpace:
    """The search space of a task: its family's knob file resolved against its loop structure.

    For target_class "gpu", `limits` are the device limits constraints may name (TVM's CUDA target names:
    max_threads_per_block, max_shared_memory_per_block, registers_per_block, thread_warp_size; a profile's
    [target] table can be passed as is); without them, the limits every supported GPU meets. The GPU templates
    also contribute derived constraints (the shared memory of the staged operand tiles, from the kernel's
    accesses).
    """
    from woodpecker.schedule.apply import default_knobs
    from woodpecker.schedule.structure import analyze

    if lanes is None or vector_registers is None:
        # the host's register file, as the CPU default schedule assumes (woodpecker.schedule.cpu_defaults.host_register_tile)
        from woodpecker.schedule.cpu_defaults import host_vector_file

        host_lanes, host_registers = host_vector_file() if target_class == "cpu" else (8, 32)
        lanes = host_lanes if lanes is None else lanes
        vector_registers = host_registers if vector_registers is None else vector_registers
    st = analyze(task.kernel)
    default = default_knobs(task, target_class)
    axes = {a.name: a.extent for a in st.spatial + st.reduction}
    env = {f"ext_{k}": v for k, v in axes.items()}
    env["lanes"] = lanes
    env["vector_registers"] = vector_registers
    derived: tuple[Constraint, ...] = ()
    if target_class == "gpu":
        from woodpecker.schedule import gpu

        env.update(gpu.space_env(st, task.kernel, limits))
        derived = tuple(Constraint(e, why) for e, why in gpu.space_constraints(task.family, st, task.kernel))
    spec = load_space_file(task.family, target_class)
    if spec is None:
        return SearchSpace(task.family, (), (), default, env)
    knobs = []
    for raw in spec.knobs:
        values = _resolve_values(raw, axes, tuple(a.name for a in st.reduction))
        if not values:
            continue
        default_value = default.get(raw["name"])
        if raw.get("from_context") and default_value is not None:
            # which core computes which part of the output: its best value depends on how the kernel before split
            # the same tensor, which a kernel timed alone cannot see; the model-wide default rule decides
            values = [default_value]
        if default_value is not None and default_value not in values:
            values.append(default_value)  # the untuned schedule is always a point of the space
        if default_value is None:
            default = {**default, raw["name"]: values[0]}
        knobs.append(Knob(raw["name"], tuple(values), raw.get("doc", "")))
    names = {k.name for k in knobs}
    known = names | set(env) | set(default)
    constraints = tuple(c for c in spec.constraints + derived if _names_known(c.expr, known))
    space = SearchSpace(task.family, tuple(knobs), constraints, dict(default), env)
    return space


def _names_known(expr: str, names: set[str]) -> bool:
    import ast as pyast

    used = {n.id for n in pyast.walk(_compiled(expr)) if isinstance(n, pyast.Name)} - {"ceil", "min", "max"}
    return used <= names
