"""A lowered model -> what the runtime executes: the call list (Program), the constants it reads, and the kernels'
descriptions (KernelInfo). Lowering owns this conversion; the runtime knows nothing of tasks or graphs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from woodpecker.lowering.model import KernelCall, LoweredModel, SliceStep
from woodpecker.runtime.compiled import KernelInfo
from woodpecker.runtime.executor import CallSpec, Program, TensorSpec


def to_program(lowered: LoweredModel) -> tuple[Program, dict[str, np.ndarray]]:
    """(Program, constants): the kernel calls and view steps in order, every value's shape and dtype, and the
    constants the calls read (only those used)."""
    graph = lowered.graph
    calls, views, view_steps, slices = [], [], [], []
    used: set[str] = set()
    for step in lowered.steps:
        if isinstance(step, KernelCall):
            task = lowered.tasks[step.task]
            calls.append(CallSpec(task.name, tuple(zip(step.args, task.param_shapes, strict=True))))
            used.update(step.args)
        elif isinstance(step, SliceStep):
            slices.append((step.part, step.whole, step.offset_bytes))
            used.update((step.part, step.whole))
        else:
            views.append((step.src, step.dst))
            view_steps.append(len(calls))
            used.update((step.src, step.dst))
    used.update(graph.inputs)
    used.update(graph.outputs)
    constants = {v: graph.constants[v] for v in used if v in graph.constants}
    values = {v: (graph.types[v].shape, graph.types[v].dtype) for v in used if v not in graph.constants}
    names = graph.output_names or graph.outputs
    program = Program(
        inputs=tuple(TensorSpec(v, graph.types[v].shape, graph.types[v].dtype, graph.narrow_io.get(v, ""))
                     for v in graph.inputs),
        outputs=tuple(TensorSpec(n, graph.types[v].shape, graph.types[v].dtype, graph.narrow_io.get(n, ""))
                      for n, v in zip(names, graph.outputs, strict=True)),
        output_values=tuple(graph.outputs),
        values=values,
        calls=tuple(calls),
        views=tuple(views),
        view_steps=tuple(view_steps),
        slices=tuple(slices),
    )
    return program, constants


def kernel_infos(lowered: LoweredModel, chosen: Mapping[str, tuple[Mapping[str, Any], str]]) -> list[KernelInfo]:
    """One KernelInfo per task: `chosen` maps a task key to (the knobs it was built with, their origin)."""
    counts = lowered.occurrences()
    return [KernelInfo(t.key, t.name, t.family, t.flops, dict(chosen[t.key][0]), chosen[t.key][1], t.source,
                       counts.get(t.key, 0)) for t in lowered.tasks.values()]
