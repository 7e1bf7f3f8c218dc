"""The operator library: kernel templates and scalar functions parsed from the DSL sources in `kernels/`."""

from __future__ import annotations

import dataclasses
import functools

from woodpecker.data import data_dir
from woodpecker.dsl import ast
from woodpecker.dsl.check import check_fn, check_kernel
from woodpecker.dsl.parser import parse
from woodpecker.errors import DSLError


@dataclasses.dataclass(frozen=True)
class Library:
    templates: dict[str, ast.Kernel]
    fns: dict[str, ast.FnDef]
    sources: dict[str, str]  # kernel or fn name -> file it came from

    def template(self, name: str) -> ast.Kernel:
        try:
            return self.templates[name]
        except KeyError:
            raise DSLError(f"no kernel template named {name} in the operator library") from None


def load_library(directory=None) -> Library:
    directory = directory or data_dir("kernels")
    templates: dict[str, ast.Kernel] = {}
    fns: dict[str, ast.FnDef] = {}
    sources: dict[str, str] = {}
    files = sorted(directory.glob("*.wpl"))
    modules = [(f.name, parse(f.read_text(), f.name)) for f in files]
    for fname, module in modules:
        for fn in module.fns:
            if fn.name in fns:
                raise DSLError(f"fn {fn.name} is defined twice (also in {sources[fn.name]})", *fn.pos, fname)
            fns[fn.name] = fn
            sources[fn.name] = fname
    for fname, module in modules:
        for fn in module.fns:
            check_fn(fn, fns, fname)
        for k in module.kernels:
            if k.name in templates:
                raise DSLError(f"kernel {k.name} is defined twice (also in {sources[k.name]})", *k.pos, fname)
            check_kernel(k, fns, fname)
            templates[k.name] = k
            sources[k.name] = fname
    return Library(templates, fns, sources)


@functools.lru_cache(maxsize=1)
def default_library() -> Library:
    return load_library()
