"""Data-movement inlining: an op that only moves data (transpose, slice, concat, pad, expand, a layout transform, a
reshape between them) is computed inside each consumer that reads its inputs through an index map, instead of in
a kernel of its own that writes a copy.

Why: a channel shuffle (concat -> reshape -> transpose -> reshape -> slice, ShuffleNet) or the head split of an
attention block is a chain of copies, one kernel and one full pass over memory each, where the data only needs
to be read once, at its final place. After this pass the chain is one expression over the consumer's output
indices: ShuffleNetV2's two slices of a shuffled concat read straight from the concat's inputs (in NCHW, as on a
GPU; the CPU's blocked layout makes the shuffle one channel_shuffle_nchwc instead, see woodpecker.passes.layout).

Rule. A plain data-movement node is inlined when its value is not a graph output and every consumer reads its
inputs lazily (a data-movement node, an elementwise chain, a fused group without an anchor; an anchor's template
takes whole tensors). A reshape is inlined whenever its consumers are lazy too (it costs nothing either way).
Inlining recomputes nothing but index arithmetic: each output element still reads one input element. A chain that
would grow past MAX_MEMBERS stays a kernel, which bounds the expression a deep shuffle network builds up.
"""

from __future__ import annotations

from woodpecker.ir import ops
from woodpecker.ir.graph import Graph, Node, frozen_attrs

MAX_MEMBERS = 12  # members of one inlined chain (its nested index maps), counting the consumer's own
MOVES = ("injective", "view")  # op kinds that only move data
# Data movement that stays a kernel of its own: a blocked channel shuffle reads every source in every lane (a
# vectorized select loads all its branches), so one inlined into the next (ShuffleNetV2's passthrough half into
# the next unit's shuffle) would read all the earlier units' sources again in each lane.
MATERIALIZED = frozenset({"channel_shuffle_nchwc"})


def _reads_lazily(node: Node) -> bool:
    """Whether the node's kernel reads its inputs element by element (through index maps), not as whole tensors."""
    if len(node.outputs) != 1:
        return False  # one kernel computes one value
    if node.op == "fused":
        return ops.get(node.body[0].op).kind != "anchor"
    return ops.get(node.op).kind in ("injective", "elementwise", "view")


def _members(node: Node) -> tuple[Node, ...]:
    return node.body if node.op == "fused" else (node,)


def inline_injective(graph: Graph) -> Graph:
    consumers = graph.consumers()
    outputs = set(graph.outputs)
    order: dict[str, float] = {}
    for i, node in enumerate(graph.nodes):
        order[node.name] = i
        for j, m in enumerate(node.body):  # a fused node's members keep their order among themselves
            order[m.name] = i + (j + 1) / (len(node.body) + 1)

    # Which nodes' values can be inlined, from the consumers' side (reverse order: a reshape is lazy for its
    # producer only if it is inlined itself, which depends on its own consumers).
    lazy_consumer: dict[str, bool] = {}
    for node in reversed(graph.nodes):
        if ops.is_view(node):
            users = consumers.get(node.outputs[0], [])
            lazy_consumer[node.name] = (node.outputs[0] not in outputs and bool(users)
                                        and all(lazy_consumer[u.name] for u in users))
        else:
            lazy_consumer[node.name] = _reads_lazily(node)

    chains: dict[str, tuple[Node, ...]] = {}  # inlined value -> the members that compute it, in graph order
    nodes: list[Node] = []
    for node in graph.nodes:
        produced_by_chain = [v for v in node.inputs if v in chains]
        own = _members(node)
        members = _merge([chains[v] for v in produced_by_chain] + [own], order) if produced_by_chain else own
        value = node.outputs[0] if len(node.outputs) == 1 else None
        users = consumers.get(value, []) if value else []
        inline = (value is not None and ops.kind_of(node) in MOVES and node.op not in MATERIALIZED
                  and value not in outputs and bool(users)
                  and all(lazy_consumer[u.name] for u in users)
                  and (ops.is_view(node) or len(members) < MAX_MEMBERS))
        if inline:
            chains[value] = members
            continue
        if not produced_by_chain:
            nodes.append(node)
            continue
        inputs: list[str] = []
        inside = {o for m in members for o in m.outputs}
        for m in members:
            inputs.extend(v for v in m.inputs if v not in inside and v not in inputs)
        nodes.append(Node(name=node.name if node.op == "fused" else "fused_" + node.name, op="fused",
                          inputs=tuple(inputs), outputs=node.outputs,
                          attrs=frozen_attrs({"anchor": members[0].op}), body=members))
    if not chains:
        return graph
    result = graph.replace(nodes=tuple(nodes))
    result.validate()
    return result


def _merge(parts: list[tuple[Node, ...]], order: dict[str, float]) -> tuple[Node, ...]:
    """The members of several chains and a consumer, each once, in graph order (a chain shared by two inputs of
    the consumer is computed once)."""
    seen: dict[str, Node] = {}
    for part in parts:
        for m in part:
            seen.setdefault(m.name, m)
    return tuple(sorted(seen.values(), key=lambda m: order[m.name]))
