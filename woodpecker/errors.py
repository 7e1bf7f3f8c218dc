"""User-facing errors: every failure a user can cause is one of these, with a one-line message naming the culprit.

The CLI prints `error: <message>` and exits non-zero; a raw traceback is shown only with `--debug`. Anything that is
not a WoodpeckerError is a bug in woodpecker and is reported as such.
"""

from __future__ import annotations


class WoodpeckerError(Exception):
    """Base class. `str(err)` is a single line that names the file, node or field at fault."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        # Keep messages on one line: they are printed as `error: ...` by the CLI.
        super().__init__(" ".join(str(message).split()))


class ModelLoadError(WoodpeckerError):
    """The model file is missing, truncated, corrupt or not an ONNX model."""


class UnsupportedOpError(WoodpeckerError):
    """The model uses an operator (or an attribute value) that woodpecker cannot compile."""


class ShapeError(WoodpeckerError):
    """Shapes do not agree, or a shape is not static where it has to be."""


class DSLError(WoodpeckerError):
    """A DSL program is malformed. Carries the source position."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None, source: str = "<dsl>"):
        self.line, self.column, self.source = line, column, source
        where = f"{source}:{line}:{column}: " if line is not None else f"{source}: "
        super().__init__(where + message)


class TargetError(WoodpeckerError):
    """Unknown target name, or a malformed hardware profile."""


class ArtifactError(WoodpeckerError):
    """A .wpk artifact is corrupt, foreign, of an unknown version, or fails its content hashes."""


class InputError(WoodpeckerError):
    """Run-time inputs have a wrong name, shape or dtype."""


class DatabaseError(WoodpeckerError):
    """The records database is corrupt or of an unknown schema version."""


class BudgetError(WoodpeckerError):
    """A tuning budget or trial count that makes no sense."""


class BuildError(WoodpeckerError):
    """TVM failed to build a kernel (a bug in a schedule or in lowering; reported with the kernel name)."""


class ClusterError(WoodpeckerError):
    """A Ray cluster or TVM RPC tracker that cannot be reached, or that has no usable node or device."""
