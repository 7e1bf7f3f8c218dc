"""Optimized Graph -> LoweredModel: the unique DSL programs (Tasks) and the ordered steps that run the model.

A Task is keyed by its workload: a hash of its canonical DSL text (kernel name blanked) plus the scalar functions
it calls, so that the same operator with the same shapes in any model shares one key, one build and one set of
tuning records.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping

from woodpecker.dsl import ast, printer
from woodpecker.dsl.library import Library, default_library
from woodpecker.dsl.transform import flops
from woodpecker.ir import ops
from woodpecker.ir.graph import Graph, Node
from woodpecker.lowering.program import ProgramBuilder
from woodpecker.passes.concat_in_place import slice_offsets


@dataclasses.dataclass(frozen=True)
class Task:
    key: str  # workload key (hex sha256 prefix)
    name: str  # symbol of the kernel in the compiled library
    family: str  # schedule family: a template's @family, or "injective"
    kernel: ast.Kernel  # the concrete DSL program (its name is `name`)
    source: str  # printed DSL program, with the scalar functions it uses
    flops: int  # floating-point operations of one run
    param_shapes: tuple[tuple[int, ...], ...]  # shapes of the kernel's parameters, output last

    @property
    def gflop(self) -> float:
        return self.flops / 1e9


@dataclasses.dataclass(frozen=True)
class KernelCall:
    task: str  # Task.key
    node: str  # graph node it implements
    args: tuple[str, ...]  # graph values bound to the kernel's parameters, output last


@dataclasses.dataclass(frozen=True)
class ViewStep:
    """`dst` is `src` with another shape (reshape): same buffer, no kernel."""

    src: str
    dst: str


@dataclasses.dataclass(frozen=True)
class SliceStep:
    """`part` is written in place at `offset_bytes` into `whole`'s buffer (an in-place concat's input,
    woodpecker.passes.concat_in_place): no kernel."""

    part: str
    whole: str
    offset_bytes: int


Step = KernelCall | ViewStep | SliceStep


@dataclasses.dataclass(frozen=True)
class LoweredModel:
    graph: Graph
    tasks: Mapping[str, Task]
    steps: tuple[Step, ...]
    # one graph node per task (its first occurrence): the numpy reference of a candidate kernel is computed from it
    nodes: Mapping[str, Node] = dataclasses.field(default_factory=dict)

    def example(self, task_key: str) -> tuple[Node, KernelCall]:
        """The first call of a task and its graph node (where its reference inputs and output come from)."""
        node = self.nodes[task_key]
        for step in self.steps:
            if isinstance(step, KernelCall) and step.node == node.name:
                return node, step
        raise KeyError(task_key)

    def occurrences(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for step in self.steps:
            if isinstance(step, KernelCall):
                counts[step.task] = counts.get(step.task, 0) + 1
        return counts


def _used_fns(kernel: ast.Kernel, lib: Library) -> list[ast.FnDef]:
    seen: dict[str, ast.FnDef] = {}

    def visit(e: ast.Expr) -> None:
        for sub in ast.walk(e):
            if isinstance(sub, ast.Call) and sub.func in lib.fns and sub.func not in seen:
                seen[sub.func] = lib.fns[sub.func]
                visit(lib.fns[sub.func].body)

    for s in kernel.computes:
        visit(s.value)
    return [seen[k] for k in sorted(seen)]


def workload_key(kernel: ast.Kernel, lib: Library) -> str:
    canonical = dataclasses.replace(kernel, name="_")
    text = printer.kernel(canonical) + "\n" + "\n".join(printer.fn(f) for f in _used_fns(kernel, lib))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _group_name(nodes: tuple[Node, ...]) -> str:
    ops_ = [n.op for n in nodes]
    compact = []
    for op in ops_:
        if not compact or compact[-1] != op:
            compact.append(op)
    name = "_".join(compact[:5])
    return ("fused_" + name) if len(nodes) > 1 else name


def build_program(node: Node, graph: Graph, lib: Library) -> tuple[ast.Kernel, list[str], str]:
    members = node.body if node.op == "fused" else (node,)
    builder = ProgramBuilder(graph.types, graph.constants, lib)
    first = members[0]
    rest = members[1:]
    if ops.get(first.op).kind == "anchor":
        builder.anchor(first, has_epilogue=bool(rest))
    else:
        rest = members
    for member in rest:
        builder.member(member)
    kernel, args, _ = builder.finish(_group_name(members), node.outputs[0])
    return kernel, args, builder.family


def lower_graph(graph: Graph, lib: Library | None = None) -> LoweredModel:
    lib = lib or default_library()
    tasks: dict[str, Task] = {}
    nodes: dict[str, Node] = {}
    names: dict[str, str] = {}
    steps: list[Step] = []
    for node in graph.nodes:
        if ops.is_view(node):
            steps.append(ViewStep(node.inputs[0], node.outputs[0]))
            continue
        if node.op == "concat" and node.attr("in_place"):
            steps.extend(SliceStep(v, node.outputs[0], off) for v, off in zip(node.inputs, slice_offsets(node, graph)))
            continue
        kernel, args, family = build_program(node, graph, lib)
        key = workload_key(kernel, lib)
        if key not in tasks:
            name = kernel.name
            i = 1
            while name in names.values():
                name, i = f"{kernel.name}_{i}", i + 1
            names[key] = name
            kernel = dataclasses.replace(kernel, name=name)
            fns = _used_fns(kernel, lib)
            source = ("\n".join(printer.fn(f) for f in fns) + "\n\n" if fns else "") + printer.kernel(kernel) + "\n"
            shapes = tuple(tuple(int(d.value) for d in p.shape) for p in kernel.params)  # type: ignore[union-attr]
            out_shape = tuple(int(a.extent.value) for a in kernel.statement(kernel.output).axes)  # type: ignore[union-attr]
            tasks[key] = Task(key, name, family, kernel, source, flops(kernel), shapes + (out_shape,))
            nodes[key] = node
        steps.append(KernelCall(key, node.name, tuple(args)))
    return LoweredModel(graph, tasks, tuple(steps), nodes)
