"""Operator fusion: an anchor (convolution, dense, pooling, ...) absorbs the elementwise ops after it (bias,
activation, residual add), and the remaining elementwise ops merge into chains. Each group becomes one `fused`
node, lowered later to one DSL program and one kernel.

Growth rule. Starting from a seed node, the group takes the next elementwise consumers of its current result, in
topological order, as long as the extended group still has a single escaping value: every value produced inside
it, except the last, is used only inside it. A plain chain grows one node at a time; a diamond such as
x * sigmoid(x) (two users of x that meet again) is taken whole. Members must produce the seed's output shape, so
a small value broadcast into a larger one ends the group rather than being recomputed per element.
"""

from __future__ import annotations

from woodpecker.ir import ops
from woodpecker.ir.graph import Graph, Node, frozen_attrs

MAX_LOOKAHEAD = 8  # nodes examined when looking for a diamond that closes
# Ops a group ends with: rounding into a narrow type (float16, float8...) is integer arithmetic on the bits that
# reads its argument several times, so a chain of rounded ops fused into one expression grows exponentially
# (ONNX's celu_float16_expanded took minutes to compile); each rounded op closes its kernel instead.
CHAIN_ENDS = frozenset({"to_format"})

# A fused group is one expression: each member's argument is substituted wherever the member reads it, and TVM's
# passes and code generator walk the expression as a tree. Ops lowered to polynomial forms (dsl/lower_te.py's fast
# exp/erf/tanh/sigmoid) read their argument tens of times, so a nested chain of them grows exponentially: the fuzz
# campaign's Tanh(c - Selu(Sin(Erf(Tanh(c * x))))) compiled for minutes (binding the argument once in a Let does
# not help: TVM's code generator substitutes Let values back while analysing them). So a group is cut where its
# expression would hold more than MAX_EXPANDED copies of a leaf. READS: how many times an op's lowering reads each
# argument (default 1), counted on the lowered forms; GELU-erf and Mish fit (26 and about 1,900), a third nested
# polynomial does not.
READS = {"exp": 30, "tanh": 30, "sigmoid": 30, "erf": 25, "softplus": 62, "elu": 32, "gelu": 26,
         "leaky_relu": 3, "hard_swish": 2}
MAX_EXPANDED = 4096


# Ops whose reads depend on the element type (lowering/program.py): the most any one argument is read. Float
# floor-mod reads (x, y) 4 and 6 times; integer Div truncating towards zero 4 and 9; integer Mod 5 and 11.
TYPED_READS = {("mod", True): 6, ("div", False): 9, ("mod", False): 11}


def _reads(node: Node, graph: Graph) -> int:
    if node.op == "gelu" and node.attrs.get("approximate", "none") == "tanh":
        return 121  # 0.5 * x * (1 + tanh(c * (x + 0.044715 * x * x * x))): x four times, under tanh
    if node.op in ("mod", "div"):
        is_float = graph.types[node.inputs[0]].dtype.startswith("float")
        return TYPED_READS.get((node.op, is_float), 1)
    return READS.get(node.op, 1)


def _expanded(nodes: list[Node], sizes: dict[str, int], graph: Graph) -> bool:
    """Adds the expanded size of each node's value to `sizes` (values from outside count 1); False once one is
    over MAX_EXPANDED."""
    for n in nodes:
        size = _reads(n, graph) * max(1, sum(sizes.get(v, 1) for v in n.inputs))
        if size > MAX_EXPANDED:
            return False
        sizes[n.outputs[0]] = size
    return True


def _eligible(node: Node, graph: Graph, shape: tuple[int, ...]) -> bool:
    return (
        node.op in ops.ELEMENTWISE_OPS
        and len(node.outputs) == 1
        and graph.types[node.outputs[0]].shape == shape
    )


def _grow(seed: Node, graph: Graph, order: dict[str, int], consumers: dict[str, list[Node]], taken: set[str]) -> list[Node]:
    outputs = set(graph.outputs)
    shape = graph.types[seed.outputs[0]].shape
    members = [seed]
    produced = set(seed.outputs)
    sizes: dict[str, int] = {}
    _expanded([seed], sizes, graph)
    while True:
        final = members[-1].outputs[0]
        if final in outputs or members[-1].op in CHAIN_ENDS:
            break
        # candidate region: eligible nodes reachable from the group's values, in graph order
        region: list[Node] = []
        frontier = [final]
        seen: set[str] = set()
        while frontier and len(region) < MAX_LOOKAHEAD:
            value = frontier.pop()
            for user in consumers.get(value, []):
                if user.name in seen or user.name in taken or not _eligible(user, graph, shape):
                    continue
                seen.add(user.name)
                region.append(user)
                frontier.append(user.outputs[0])
        region.sort(key=lambda n: order[n.name])
        extension = None
        for end in range(1, len(region) + 1):
            trial = region[:end]
            if any(n.op in CHAIN_ENDS for n in trial[:-1]) or not _expanded(trial, dict(sizes), graph):
                break
            inside = produced | {n.outputs[0] for n in trial}
            names = {n.name for n in members} | {n.name for n in trial}
            # Region nodes are in graph order, so a prefix reads only group values, earlier prefix nodes and
            # values computed outside; it is a valid extension when only its last value escapes.
            escaping = [v for v in inside if v in outputs or any(u.name not in names for u in consumers.get(v, []))]
            if escaping == [trial[-1].outputs[0]]:
                extension = trial
                break
        if not extension:
            break
        members.extend(extension)
        produced.update(n.outputs[0] for n in extension)
        _expanded(extension, sizes, graph)
    return members


def _fused_node(members: list[Node], graph: Graph) -> Node:
    produced = {n.outputs[0] for n in members}
    inputs: list[str] = []
    for n in members:
        for v in n.inputs:
            if v not in produced and v not in inputs:
                inputs.append(v)
    return Node(
        name="fused_" + members[0].name,
        op="fused",
        inputs=tuple(inputs),
        outputs=(members[-1].outputs[0],),
        attrs=frozen_attrs({"anchor": members[0].op}),
        body=tuple(members),
    )


def _apply(graph: Graph, groups: list[list[Node]]) -> Graph:
    last = {g[-1].name: g for g in groups}
    member_names = {n.name for g in groups for n in g}
    nodes = []
    for node in graph.nodes:
        if node.name in last:
            nodes.append(_fused_node(last[node.name], graph))
        elif node.name not in member_names:
            nodes.append(node)
    result = graph.replace(nodes=tuple(nodes))
    result.validate()
    return result


def _fuse(graph: Graph, seed_kinds: tuple[str, ...]) -> Graph:
    order = {n.name: i for i, n in enumerate(graph.nodes)}
    consumers = graph.consumers()
    taken: set[str] = set()
    groups = []
    for node in graph.nodes:
        if node.op == "fused" or node.name in taken:
            continue
        kind = ops.get(node.op).kind
        if kind not in seed_kinds or len(node.outputs) != 1:
            continue
        members = _grow(node, graph, order, consumers, taken)
        if len(members) > 1:
            taken.update(n.name for n in members)
            groups.append(members)
    return _apply(graph, groups) if groups else graph


def fuse_epilogues(graph: Graph) -> Graph:
    """Anchors and injective ops absorb the elementwise ops that follow them."""
    return _fuse(graph, ("anchor", "injective"))


def fuse_elementwise(graph: Graph) -> Graph:
    """Remaining elementwise ops merge into chains (one kernel per chain)."""
    return _fuse(graph, ("elementwise",))
