"""Loop structure of a DSL kernel as the schedules see it: the anchor statement, its spatial and reduction axes,
and the statements before (producers such as padding) and after it (the fused epilogue)."""

from __future__ import annotations

import dataclasses

from woodpecker.dsl import ast


@dataclasses.dataclass(frozen=True)
class Axis:
    name: str
    extent: int


@dataclasses.dataclass(frozen=True)
class KernelStructure:
    anchor: str  # statement (TIR block) that carries the main loop nest
    spatial: tuple[Axis, ...]  # its output axes, in order
    reduction: tuple[Axis, ...]  # its reduction axes, in order
    producers: tuple[str, ...]  # statements before the anchor
    consumers: tuple[str, ...]  # statements after the anchor (the last one is the output)
    reducing_producers: tuple[str, ...]  # producers that are reductions themselves (e.g. an average-pool divisor)
    output: tuple[Axis, ...] = ()  # the axes of the kernel's last statement (its result)

    def extent(self, name: str) -> int:
        for a in self.spatial + self.reduction:
            if a.name == name:
                return a.extent
        raise KeyError(name)


def analyze(kernel: ast.Kernel) -> KernelStructure:
    computes = kernel.computes
    reducing = [i for i, s in enumerate(computes) if isinstance(s.value, ast.Reduce)]
    idx = reducing[-1] if reducing else len(computes) - 1
    anchor = computes[idx]
    spatial = tuple(Axis(a.name, int(a.extent.value)) for a in anchor.axes)  # type: ignore[union-attr]
    red = ()
    if isinstance(anchor.value, ast.Reduce):
        red = tuple(Axis(a.name, int(a.extent.value)) for a in anchor.value.axes)  # type: ignore[union-attr]
    producers = tuple(s.name for s in computes[:idx])
    return KernelStructure(
        anchor=anchor.name,
        spatial=spatial,
        reduction=red,
        producers=producers,
        consumers=tuple(s.name for s in computes[idx + 1 :]),
        reducing_producers=tuple(s.name for s in computes[:idx] if isinstance(s.value, ast.Reduce)),
        output=tuple(Axis(a.name, int(a.extent.value)) for a in computes[-1].axes),  # type: ignore[union-attr]
    )
