"""What the ONNX conformance tests run, shared by the two test modules and scripts/conformance_report.py.

Node tests: ONNX's own operator tests (onnx.backend.test), generated in memory by the installed onnx wheel. A node
test is "of a supported op type" when every node of its model is an operator the woodpecker frontend imports (a
default-domain op with a handler in woodpecker.frontend.onnx_ops); those are the tests included. Model-data
tests: the small models with stored inputs and outputs that ship in the wheel under
onnx/backend/test/data/{pytorch-converted,pytorch-operator,simple}.

Exclusions live in excluded.txt, one per line, each with its reason on the same line:

    PATTERN  # reason

PATTERN is a regular expression searched (re.search) in the test name: `test_add_uint8_cpu` for a node test,
`simple/test_sign_model` for a model-data test; the file has a [node] and a [model-data] section.

CI cost: every included test compiles one small model (0.1-0.8 s each; about 200 s for all on 2 cores). The suite
runs every included node test and every model-data test: none is left out of a run, and each excluded one shows
as skipped with its reason.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
import re

HERE = pathlib.Path(__file__).resolve().parent
EXCLUDED_FILE = HERE / "excluded.txt"
MODEL_DATA_KINDS = ("pytorch-converted", "pytorch-operator", "simple")


@dataclasses.dataclass(frozen=True)
class Exclusion:
    pattern: str
    reason: str
    line: int

    def matches(self, name: str) -> bool:
        return re.search(self.pattern, name) is not None


def read_exclusions(path: pathlib.Path = EXCLUDED_FILE) -> dict[str, list[Exclusion]]:
    """{"node": [...], "model-data": [...]}. A line without a reason is an error, not a silent skip."""
    sections: dict[str, list[Exclusion]] = {"node": [], "model-data": []}
    current = None
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
            if current not in sections:
                raise ValueError(f"{path.name}:{number}: unknown section {line}")
            continue
        if current is None:
            raise ValueError(f"{path.name}:{number}: exclusion before any [section]")
        pattern, sep, reason = line.partition("#")
        if not sep or not reason.strip() or not pattern.strip():
            raise ValueError(f"{path.name}:{number}: every exclusion needs a pattern and a reason: {line!r}")
        re.compile(pattern.strip())
        sections[current].append(Exclusion(pattern.strip(), reason.strip(), number))
    return sections


def excluded_by(name: str, exclusions: list[Exclusion]) -> Exclusion | None:
    return next((e for e in exclusions if e.matches(name)), None)


# ----------------------------------------------------------------------------------------------------------------
# node tests


@functools.lru_cache(maxsize=1)
def node_test_ops() -> dict[str, frozenset[str]]:
    """Every node test of the installed onnx: name (as BackendTest names it, with _cpu) -> its op types."""
    import warnings

    from onnx.backend.test.loader import load_model_tests

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the generators overflow casts on purpose
        cases = load_model_tests(kind="node")
    out = {}
    for case in cases:
        out[case.name + "_cpu"] = frozenset(
            (n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}") for n in case.model.graph.node)
    return out


def supported_ops() -> frozenset[str]:
    from woodpecker.frontend.handlers import HANDLERS

    return frozenset(HANDLERS)


def supported_node_tests() -> list[str]:
    """The node tests whose every op is one woodpecker imports: the denominator of the pass rate."""
    ops = supported_ops()
    return sorted(name for name, used in node_test_ops().items() if used and used <= ops)


# ----------------------------------------------------------------------------------------------------------------
# model-data tests


def model_data_root() -> pathlib.Path:
    import onnx

    return pathlib.Path(onnx.__file__).parent / "backend" / "test" / "data"


def model_data_cases() -> list[str]:
    """"kind/test_name" of every model directory with a model.onnx and stored test data."""
    root = model_data_root()
    out = []
    for kind in MODEL_DATA_KINDS:
        for d in sorted((root / kind).iterdir()):
            if (d / "model.onnx").is_file() and any(d.glob("test_data_set_*")):
                out.append(f"{kind}/{d.name}")
    return out
