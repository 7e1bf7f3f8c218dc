"""Command line: `woodpecker compile | run | lower | targets | zoo`. Argument parsing and printing only.

Every user error is printed as one line, `error: <what and where>`, with exit status 1; a traceback is shown only
with --debug (or WOODPECKER_DEBUG=1). Anything else is a bug, reported as such with exit status 3.
"""

from __future__ import annotations

import pathlib
import sys
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True, help="woodpecker: hardware-aware inference compiler and autotuner")
console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)
_state = {"debug": False}


@app.callback()
def _main(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False) -> None:
    from woodpecker import config

    _state["debug"] = debug or config.get().debug


def _model_arg(spec: str):
    """A model on the command line: a path to an .onnx file, or zoo:<name>[?key=value&...] for a built-in one."""
    if spec.startswith("zoo:"):
        from woodpecker import models

        name, _, query = spec[4:].partition("?")
        kwargs = {}
        for part in filter(None, query.split("&")):
            key, _, value = part.partition("=")
            kwargs[key] = int(value) if value.isdigit() else value
        return models.build(name, **kwargs)
    return spec


def _parse_shapes(items: list[str] | None) -> dict[str, list[int]] | None:
    from woodpecker.errors import ShapeError

    if not items:
        return None
    shapes = {}
    for item in items:
        name, sep, dims = item.rpartition("=")
        if not sep or not name:
            raise ShapeError(f"--input-shape {item!r}: expected NAME=D1,D2,...")
        try:
            shapes[name] = [int(d) for d in dims.split(",")]
        except ValueError:
            raise ShapeError(f"--input-shape {item!r}: dimensions must be integers") from None
    return shapes


@app.command("compile")
def compile_cmd(
    model: Annotated[str, typer.Argument(help="ONNX file, or zoo:<name> (e.g. zoo:resnet50)")],
    target: Annotated[str, typer.Option("--target", "-t", help="hardware profile (see `woodpecker targets`)")] = "host",
    output: Annotated[Optional[pathlib.Path], typer.Option("--output", "-o", help="artifact to write (.wpk)")] = None,
    input_shape: Annotated[Optional[list[str]], typer.Option("--input-shape", help="NAME=D1,D2,... for symbolic inputs")] = None,
) -> None:
    """Compile a model into a runnable artifact."""
    import time

    import woodpecker

    t0 = time.perf_counter()
    cm = woodpecker.compile(_model_arg(model), target=target, input_shapes=_parse_shapes(input_shape))
    elapsed = time.perf_counter() - t0
    out = output or pathlib.Path(pathlib.Path(model.split("?")[0].replace("zoo:", "")).stem + ".wpk")
    cm.save(out)
    origins = {}
    for k in cm.kernels:
        origins[k.origin] = origins.get(k.origin, 0) + 1
    console.print(
        f"compiled {cm.metadata['model']} for {cm.metadata['target']['profile']} in {elapsed:.1f} s: "
        f"{len(cm.kernels)} kernels ({', '.join(f'{n} {o}' for o, n in sorted(origins.items()))}), "
        f"{sum(k.calls for k in cm.kernels)} launches, {cm.gflop:.2f} GFLOP per run -> {out}"
    )


@app.command("run")
def run_cmd(
    artifact: Annotated[pathlib.Path, typer.Argument(help="compiled model (.wpk)")],
    inputs: Annotated[Optional[pathlib.Path], typer.Option("--inputs", "-i", help=".npz with one array per input (random if omitted)")] = None,
    output: Annotated[Optional[pathlib.Path], typer.Option("--output", "-o", help="write the outputs to this .npz")] = None,
    repeat: Annotated[int, typer.Option("--repeat", "-n", min=1, help="timed runs")] = 1,
    print_time: Annotated[bool, typer.Option("--print-time", help="print latency (median, min, max)")] = False,
) -> None:
    """Run a compiled model."""
    import numpy as np

    import woodpecker
    from woodpecker.errors import InputError

    cm = woodpecker.load(artifact)
    if inputs is not None:
        try:
            with np.load(inputs, allow_pickle=False) as npz:
                feed = {k: npz[k] for k in npz.files}
        except (OSError, ValueError) as err:
            raise InputError(f"{inputs}: cannot read inputs ({err})") from None
    else:
        feed = cm.random_inputs()
    outs = cm.run(feed)
    if output is not None:
        np.savez(output, **outs)
    for name, value in outs.items():
        console.print(f"{name}: {value.dtype}{list(value.shape)}  mean {float(np.mean(value)):.6g}  "
                      f"max |x| {float(np.max(np.abs(value))) if value.size else 0:.6g}")
    if print_time:
        stats = cm.benchmark(feed, repeat=repeat, warmup=min(5, repeat))
        console.print(f"latency over {repeat} runs: median {stats['median_ms']:.3f} ms  "
                      f"(min {stats['min_ms']:.3f}, max {stats['max_ms']:.3f})")


@app.command("lower")
def lower_cmd(
    model: Annotated[str, typer.Argument(help="ONNX file, or zoo:<name>")],
    input_shape: Annotated[Optional[list[str]], typer.Option("--input-shape")] = None,
    no_layout: Annotated[bool, typer.Option("--no-layout", help="keep NCHW (skip the blocked layout pass)")] = False,
) -> None:
    """Print the DSL program of every (fused) operator."""
    from woodpecker.api import import_model
    from woodpecker.lowering.model import lower_graph
    from woodpecker.passes.pipeline import PassOptions, optimize

    graph = import_model(_model_arg(model), _parse_shapes(input_shape))
    lowered = lower_graph(optimize(graph, PassOptions(blocked_layout=not no_layout)))
    counts = lowered.occurrences()
    for task in lowered.tasks.values():
        console.print(f"# {task.name}: {task.family}, {counts[task.key]} call(s), {task.flops / 1e6:.2f} MFLOP, "
                      f"workload {task.key}", markup=False)
        console.print(task.source, markup=False)


@app.command("targets")
def targets_cmd() -> None:
    """List hardware profiles and how a schedule is measured on each."""
    from woodpecker.hw.profile import list_profiles

    table = Table("target", "aliases", "kind", "measured by", "description")
    for p in list_profiles():
        how = "real timing on this machine" if p.measurement == "real" else p.measurement.replace("simulated:", "simulated: ")
        table.add_row(p.id, ", ".join(p.aliases), p.kind, how, p.name)
    console.print(table)


@app.command("zoo")
def zoo_cmd(
    name: Annotated[Optional[str], typer.Argument(help="model name; omit to list them")] = None,
    output: Annotated[Optional[pathlib.Path], typer.Option("--output", "-o")] = None,
    image_size: Annotated[Optional[int], typer.Option(help="input resolution of CNNs")] = None,
) -> None:
    """List the built-in models, or write one as an ONNX file."""
    import onnx

    from woodpecker import models

    if name is None:
        for key in models.ZOO:
            console.print(key)
        return
    kwargs = {"image_size": image_size} if image_size else {}
    proto = models.build(name, **kwargs)
    out = output or pathlib.Path(f"{name}.onnx")
    onnx.save(proto, out)
    console.print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")


def main() -> None:
    from woodpecker.errors import WoodpeckerError

    try:
        app(standalone_mode=False)
    except WoodpeckerError as err:
        if _state["debug"]:
            raise
        err_console.print(f"error: {err}", markup=False)
        sys.exit(err.exit_code)
    except (typer.Exit, SystemExit) as err:
        code = getattr(err, "exit_code", getattr(err, "code", 0))
        sys.exit(code or 0)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except Exception as err:  # click's usage errors carry their own message and exit code
        import click

        if isinstance(err, click.ClickException):
            err.show()
            sys.exit(err.exit_code)
        if _state["debug"]:
            raise
        err_console.print(f"internal error: {type(err).__name__}: {err} (a woodpecker bug; rerun with --debug "
                          "for the traceback)", markup=False)
        sys.exit(3)


if __name__ == "__main__":
    main()
