"""TIR node -> every node below it, pre-order. TVM 0.27 exposes no Python stmt functor (post_order_visit and
substitute are gone from `tvm.tirx`), so this walks the reflected fields of each node instead."""

from __future__ import annotations

from collections.abc import Iterator

# Field values that are leaves for a walk over statements and expressions (buffers and loop variables are
# reached through the accesses and expressions that use them).
_LEAVES = {
    "Buffer",
    "Op",
    "String",
    "str",
    "int",
    "float",
    "bool",
    "NoneType",
    "Map",
    "dict",
    "GlobalVar",
    "IterVar",
    "DataType",
    "PrimType",
    "PointerType",
    "Target",
    "Range",
}


def fields(node) -> list[str]:
    info = getattr(type(node), "__tvm_ffi_type_info__", None)
    return [f.name for f in info.fields] if info else []


def nodes(root) -> Iterator:
    """Pre-order: `root`, then the nodes of each field in declaration order (Var leaves included)."""
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        children = []
        for name in fields(node):
            value = getattr(node, name)
            items = value if type(value).__name__ in ("Array", "list", "tuple") else (value,)
            for item in items:
                if type(item).__name__ not in _LEAVES:
                    children.append(item)
        stack.extend(reversed(children))


def is_load(node) -> bool:
    """A buffer read (`TensorLoad` in 0.27, `BufferLoad` before)."""
    return type(node).__name__ in ("TensorLoad", "BufferLoad")


def load_buffer(node):
    return node.source if hasattr(node, "source") else node.buffer
