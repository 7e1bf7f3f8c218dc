"""Command line: `woodpecker compile | run | lower | targets | zoo`. Argument parsing and printing only.

Every user error is printed as one line, `error: <what and where>`, with exit status 1; a traceback is shown only
with --debug (or WOODPECKER_DEBUG=1). Anything else is a bug, reported as such with exit status 3.
"""

from __future__ import annotations

import contextlib
import pathlib
import sys
from collections.abc import Sequence
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

# Plain click help (rich_markup_mode=None): typer 0.29's rich help prints a type for every option, flags included
# (`--debug <bool>`, `--help <bool>`), which reads as if the flag took a value.
app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="woodpecker: hardware-aware inference compiler and autotuner")
console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)
_state = {"debug": False}
SHAPE_METAVAR = "NAME=D1,D2,..."
SHAPE_HELP = "shape of an input with symbolic dimensions, e.g. input=1,3,224,224 (repeat for several inputs)"


def _short_kernel(name: str) -> str:
    """A kernel's name for a narrow terminal: without the `fused_` prefix every fused kernel's name starts with (its
    operators and index remain: conv2d_nchwc_add_relu_4)."""
    return name[len("fused_"):] if name.startswith("fused_") else name


def _print_table(columns: Sequence[str], rows: Sequence[Sequence[str]], title: str | None = None,
                 caption: str | None = None, left: Sequence[str] = ()) -> None:
    """A table on stdout. On a terminal, rich's, with long cells wrapped onto more lines, never cut; piped or
    redirected, plain rows padded to the widest cell, so that every name is whole (rich would fit the table to 80
    columns and cut names to `fused_...`) and the output greps and splits on runs of spaces."""
    if console.is_terminal:
        table = Table(title=title, caption=caption)
        for col in columns:
            table.add_column(col, overflow="fold", justify="left" if col in left else "right")
        for row in rows:
            table.add_row(*row)
        console.print(table)
        return
    cells = [list(columns), *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    if title:
        console.print(title, markup=False, highlight=False)
    for r in cells:
        console.print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip(), markup=False, highlight=False,
                      crop=False, soft_wrap=True)
    if caption:
        console.print(caption, markup=False, highlight=False)


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
    db: Annotated[Optional[pathlib.Path], typer.Option("--db", help="apply the best tuning records of this database")] = None,
    trials: Annotated[Optional[int], typer.Option("--trials", "-n", help="tune first with this many measurements")] = None,
    searcher: Annotated[str, typer.Option("--searcher", "-s", help="searcher for --trials: ga | rl | random")] = "ga",
    vendor: Annotated[bool, typer.Option("--vendor/--no-vendor", help="let the planner pick vendor libraries per operator")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress display (it is shown only on a terminal)")] = False,
) -> None:
    """Compile a model into a runnable artifact."""
    import time

    import woodpecker
    from woodpecker.errors import DatabaseError

    if db is not None and trials is None and not db.exists():
        raise DatabaseError(f"{db}: no such records database (tune first, or drop --db)")
    out = output or pathlib.Path(pathlib.Path(model.split("?")[0].replace("zoo:", "")).stem + ".wpk")
    if not out.parent.is_dir():  # say so now, not after a compile that can take minutes
        from woodpecker.errors import ArtifactError

        raise ArtifactError(f"{out}: cannot write the artifact (no folder {out.parent})")
    t0 = time.perf_counter()
    with _progress(quiet) as progress:
        cm = woodpecker.compile(_model_arg(model), target=target, input_shapes=_parse_shapes(input_shape),
                                db=str(db) if db else None, trials=trials, searcher=searcher, vendor=vendor,
                                progress=progress)
    elapsed = time.perf_counter() - t0
    cm.save(out)
    origins = {}
    for k in cm.kernels:
        origins[k.origin] = origins.get(k.origin, 0) + 1
    simulated = " (simulated: no such device attached)" if cm.metadata["target"].get("measurement") == "simulated" else ""
    console.print(
        f"compiled {cm.metadata['model']} for {cm.metadata['target']['profile']}{simulated} in {elapsed:.1f} s: "
        f"{len(cm.kernels)} kernels ({', '.join(f'{n} {o}' for o, n in sorted(origins.items()))}), "
        f"{sum(k.calls for k in cm.kernels)} launches, {cm.gflop:.2f} GFLOP per run -> {out}"
    )
    for line in _plan_summary(cm):
        console.print(line)


@contextlib.contextmanager
def _progress(quiet: bool):
    """A live status line on a terminal ('[ 41.2 s] planning: call 14/53 (...)'); nothing when piped or quiet."""
    import time

    if quiet or not err_console.is_terminal:
        yield False
        return
    t0 = time.perf_counter()
    with err_console.status("starting") as status:
        def update(msg: str) -> None:
            status.update(f"[{time.perf_counter() - t0:6.1f} s] {msg}")
            if not msg.startswith(("planning: call", "whole builds: timing")):  # stages stay on screen, steps do not
                err_console.print(f"[{time.perf_counter() - t0:6.1f} s] {msg}", markup=False)

        yield update


def _tune_view(p) -> Table:
    """Progress table of a tuning session (the live view on a terminal): the tasks that weigh most in the model's
    latency. The kernel column carries the name without `fused_` and wraps rather than cuts (the family column it
    used to share the width with repeated the name's first operator)."""
    table = Table(title=None, expand=False)
    for col in ("kernel", "calls", "trials", "default us", "best us", "speedup", "GFLOP/s", ""):
        table.add_column(col, justify="right" if col not in ("kernel", "") else "left",
                         overflow="fold", min_width=12 if col == "kernel" else None)
    rows = sorted(p.tasks, key=lambda s: -(s.calls * (s.best_us or s.default_us or 0.0)))
    for s in rows[:16]:
        speed = f"{s.default_us / s.best_us:.2f}x" if s.default_us and s.best_us else "-"
        gf = f"{s.task.flops / (s.best_us * 1e3):.1f}" if s.best_us and s.task.flops else "-"
        table.add_row(_short_kernel(s.task.name), str(s.calls), str(s.previous + s.trials),
                      f"{s.default_us:.1f}" if s.default_us else "-", f"{s.best_us:.1f}" if s.best_us else "-",
                      speed, gf, s.done)
    if len(rows) > 16:
        table.add_row(f"... {len(rows) - 16} more", "", "", "", "", "", "", "")
    eta = f"{p.eta_s / 60:.1f} min" if p.eta_s is not None else "-"
    budget = f"/{p.trial_budget}" if p.trial_budget else ""
    table.caption = (f"trials {p.trials}{budget} ({_trial_split(p.defaults, p.searched)})   elapsed {p.elapsed_s / 60:.1f} min   ETA {eta}   "
                     f"model estimate {p.model_ms:.2f} ms")
    return table


def _trial_split(defaults: int, searched: int) -> str:
    """How a session's trials divide: the default schedules count against --trials, which surprised users."""
    return f"{defaults} defaults measured, {searched} trials searched"


def _print_tune_report(report) -> None:
    console.print(f"tuning {report.stopped} after {report.trials} trials ({_trial_split(report.defaults, report.searched)}) "
                  f"in {report.seconds / 60:.1f} min; records in {report.db_path}")
    if report.stopped == "budget" and report.defaults and report.searched < report.defaults:
        console.print(f"note: the default schedules took {report.defaults} of the {report.trials} trials; a rerun "
                      "with the same --db measures them no more, so all of its trials search")
    improved = [t for t in report.tasks if t.speedup and t.speedup > 1.001]
    for t in sorted(improved, key=lambda t: -(t.calls * (t.default_us - t.best_us))):
        side = f"; side by side {t.verified:.2f}x" if t.verified is not None else ""
        console.print(f"  {t.name}: {t.default_us:.1f} -> {t.best_us:.1f} us ({t.speedup:.2f}x, {t.trials} trials"
                      f"{side})")
    if report.default_ms:
        console.print(f"model kernels: {report.default_ms:.2f} ms default -> {report.best_ms:.2f} ms tuned "
                      f"({report.default_ms / report.best_ms:.2f}x, figures taken minutes apart)")
    verified = [t for t in report.tasks if t.verified is not None]
    if verified:
        from woodpecker.records.select import VERIFIED_MIN_SPEEDUP

        kept = sum(1 for t in verified if t.verified >= VERIFIED_MIN_SPEEDUP)
        console.print(f"re-timed beside their defaults: {kept} of {len(verified)} tuned kernels at least "
                      f"{VERIFIED_MIN_SPEEDUP:.2f}x faster; compile applies those, the rest keep their default")


@app.command("tune")
def tune_cmd(
    model: Annotated[str, typer.Argument(help="ONNX file, or zoo:<name>")],
    target: Annotated[str, typer.Option("--target", "-t", help="hardware profile (see `woodpecker targets`)")] = "host",
    searcher: Annotated[str, typer.Option("--searcher", "-s", help="ga | rl | random")] = "ga",
    trials: Annotated[Optional[int], typer.Option("--trials", "-n", help="measurements in this session; each "
                                                   "kernel's default schedule is measured first and counts")] = None,
    budget: Annotated[Optional[str], typer.Option("--budget", "-b", help="wall-clock budget: 90s, 15m, 8h")] = None,
    db: Annotated[Optional[pathlib.Path], typer.Option("--db", help="records database (default: per-user cache)")] = None,
    seed: Annotated[int, typer.Option(help="random seed of the searchers")] = 0,
    batch: Annotated[int, typer.Option(help="candidates measured per round")] = 8,
    cost_model: Annotated[bool, typer.Option("--cost-model/--no-cost-model", help="rank candidates with a learned model")] = False,
    early_stop: Annotated[int, typer.Option(help="stop a kernel after N trials without 1% gain (0: never)")] = 64,
    input_shape: Annotated[Optional[list[str]], typer.Option("--input-shape", metavar=SHAPE_METAVAR, help=SHAPE_HELP)] = None,
    cluster: Annotated[Optional[str], typer.Option("--cluster", help="build and time on Ray: ray://HOST:PORT, HOST:PORT "
                                                   "or local-ray")] = None,
    rpc_tracker: Annotated[Optional[str], typer.Option("--rpc-tracker", help="time on a device of this TVM RPC "
                                                       "tracker: HOST:PORT")] = None,
    rpc_key: Annotated[Optional[str], typer.Option("--rpc-key", help="device key of --rpc-tracker")] = None,
    timing: Annotated[Optional[str], typer.Option("--timing", help="CPU timing: cold-cache (single runs after a "
                                                  "cache flush, as in a model) or hot-loop; default: cold-cache "
                                                  "unless WOODPECKER_COLD_CACHE=0")] = None,
) -> None:
    """Tune the kernels of a model; every measurement is kept in the records database. Rerun to resume."""
    from rich.live import Live

    from woodpecker.tuner import parse_duration, tune

    budget_s = parse_duration(budget) if budget else None
    measure_options = _measure_options(timing)
    if timing is not None and not _timed_on_host_cpu(target):
        console.print(f"note: --timing applies to CPU targets; {target} is timed one way")
    live = Live(console=console, refresh_per_second=2, transient=False) if console.is_terminal else None
    last_print = [0.0]

    def progress(p) -> None:
        import time

        if live is not None:
            live.update(_tune_view(p))
        elif time.monotonic() - last_print[0] > 15 or p.trials == 0:
            last_print[0] = time.monotonic()
            eta = f"{p.eta_s / 60:.1f} min" if p.eta_s is not None else "-"
            console.print(f"[{p.elapsed_s / 60:5.1f} min] trials {p.trials} ({_trial_split(p.defaults, p.searched)})  model estimate {p.model_ms:.3f} ms  "
                          f"ETA {eta}  last: {p.last_task}")

    if live is not None:
        live.start()
    try:
        report = tune(_model_arg(model), target, searcher=searcher, trials=trials, budget_s=budget_s,
                      db=str(db) if db else None, seed=seed, batch_size=batch, cost_model=cost_model,
                      early_stop=early_stop, input_shapes=_parse_shapes(input_shape), progress=progress,
                      cluster=cluster, rpc_tracker=rpc_tracker, rpc_key=rpc_key, measure_options=measure_options)
    finally:
        if live is not None:
            live.stop()
    _print_tune_report(report)
    if report.stopped == "interrupted":
        raise typer.Exit(130)


def _measure_options(timing: str | None):
    """--timing as MeasureOptions (None: the configured default, WOODPECKER_COLD_CACHE)."""
    from woodpecker.measure.measurer import MeasureOptions

    if timing is None:
        return None
    modes = {"cold-cache": True, "hot-loop": False}
    if timing not in modes:
        raise typer.BadParameter(f"--timing must be one of {', '.join(modes)}, got {timing!r}")
    return MeasureOptions(cold_cache=modes[timing])


db_app = typer.Typer(help="Inspect and share tuning records.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("stats")
def db_stats(path: Annotated[pathlib.Path, typer.Argument(help="records database")]) -> None:
    """Records per kernel and device, with the best latency found."""
    from woodpecker.errors import DatabaseError
    from woodpecker.records.db import RecordsDatabase

    if not path.exists():
        raise DatabaseError(f"{path}: no such file")
    with RecordsDatabase(path) as db:
        rows = db.stats()
        _print_table(("kernel", "family", "device", "timing", "records", "failed", "best us", "GFLOP/s"),
                     [(r["name"] or r["workload"], r["family"], r["device"], _timing_label(r), str(r["records"]),
                       str(r["failed"]), f"{r['best_us']:.1f}" if r["best_us"] else "-",
                       f"{r['gflops']:.1f}" if r["gflops"] else "-") for r in rows],
                     left=("kernel", "family", "device", "timing"))
        console.print(f"{db.count()} records, {len(rows)} (kernel, device, timing) rows")


def _timed_on_host_cpu(target: str) -> bool:
    from woodpecker.errors import WoodpeckerError
    from woodpecker.hw.profile import load_profile

    try:
        return load_profile(target).target_class == "cpu"
    except WoodpeckerError:
        return False  # an unknown target: tune reports it


def _timing_label(row) -> str:
    """How a stats row's records were timed: real CPU records without the cold-cache tag timed hot loops; GPU and
    simulated records have one way of timing."""
    if row["timing"]:
        return row["timing"]
    profile_id, _, rest = row["device"].partition(":")
    return "hot-loop" if rest.endswith(":real") and _timed_on_host_cpu(profile_id) else "-"


@db_app.command("export")
def db_export(path: Annotated[pathlib.Path, typer.Argument(help="records database")], out: Annotated[pathlib.Path, typer.Argument(help=".jsonl to write")]) -> None:
    """Write every record as JSON lines (to share between machines)."""
    from woodpecker.errors import DatabaseError
    from woodpecker.records.db import RecordsDatabase

    if not path.exists():
        raise DatabaseError(f"{path}: no such file")
    with RecordsDatabase(path) as db:
        n = db.export_jsonl(out)
    console.print(f"exported {n} records to {out}")


@db_app.command("import")
def db_import(path: Annotated[pathlib.Path, typer.Argument(help="records database (created if missing)")],
              source: Annotated[pathlib.Path, typer.Argument(help=".jsonl written by `db export`")]) -> None:
    """Add the records of a JSON lines file (records already present are kept once)."""
    from woodpecker.records.db import RecordsDatabase

    with RecordsDatabase(path) as db:
        n = db.import_jsonl(source)
    console.print(f"imported {n} new records into {path}")


def _plan_summary(cm) -> list[str]:
    from woodpecker.planner.summary import plan_lines

    return plan_lines(cm.metadata.get("plan"))


@app.command("bench")
def bench_cmd(
    model: Annotated[str, typer.Argument(help="ONNX file, or zoo:<name>")],
    target: Annotated[str, typer.Option("--target", "-t", help="hardware profile (see `woodpecker targets`)")] = "host",
    baselines: Annotated[str, typer.Option(help="comma-separated: onnxruntime, torch, tvm-metaschedule, cudnn (an NVIDIA GPU)")] = "onnxruntime,torch",
    db: Annotated[Optional[pathlib.Path], typer.Option("--db", help="also bench the model tuned with these records")] = None,
    trials: Annotated[Optional[int], typer.Option("--trials", "-n", help="tune woodpecker with this budget first "
                                                   "(MetaSchedule gets the same)")] = None,
    rounds: Annotated[int, typer.Option(min=1, help="interleaved timing rounds (each contender runs 5 timed runs "
                                        "a round)")] = 10,
    out: Annotated[pathlib.Path, typer.Option("--out", "-o", help="folder for report.json/.png/.html")] = pathlib.Path("bench-report"),
    vendor: Annotated[bool, typer.Option("--vendor/--no-vendor", help="let the planner pick vendor libraries per "
                                         "operator")] = True,
) -> None:
    """Compare woodpecker with other runtimes on the same machine, in the same run; write JSON, PNG and HTML."""
    from woodpecker.bench.report import PLOT_HINT, plotting_available, run_bench, write_outputs

    if not plotting_available():  # said before the minutes of work, not after them
        err_console.print(f"note: {PLOT_HINT}", markup=False)
    report = run_bench(_model_arg(model), target, [b.strip() for b in baselines.split(",") if b.strip()],
                       str(db) if db else None, trials, rounds, vendor=vendor,
                       progress=lambda msg: err_console.print(f"[bench] {msg}", markup=False))
    rows = []
    best = min((c["median_ms"] for c in report["contenders"] if c["median_ms"]), default=None)
    for c in report["contenders"]:
        if c["median_ms"]:
            rows.append((c["name"], f"{c['median_ms']:.3f}", f"{c['p25_ms']:.3f}-{c['p75_ms']:.3f}",
                         f"{c['median_ms'] / best:.2f}x", f"{c['setup_s']:.1f}", c["note"] or ""))
        else:
            rows.append((c["name"], "-", "-", "-", "-", c["error"] or ""))
    _print_table(("contender", "median ms", "IQR ms", "vs fastest", "setup s", "note"), rows, left=("contender", "note"))
    for variant, ops in report["operators"].items():
        top = sorted(ops, key=lambda o: -o["us"])[:12]
        _print_table(("kernel", "impl", "us", "GFLOP/s", "of peak", "choices (us)"),
                     [(_short_kernel(o["kernel"]) if console.is_terminal else o["kernel"], o["implementation"],
                       f"{o['us']:.1f}", f"{o['gflops']:.1f}", f"{100 * o['gflops'] / report['peak']['gflops']:.0f}%",
                       ", ".join(f"{k} {v:.0f}" for k, v in o["alternatives_us"].items())) for o in top],
                     title=f"slowest operators: {variant} (us: {report.get('operator_timing', 'per call')})",
                     left=("kernel", "impl", "choices (us)"))
    for variant, error in (report.get("operator_errors") or {}).items():
        console.print(f"operators of {variant}: {error}", markup=False)
    paths = write_outputs(report, out)
    console.print(f"peak {report['peak']['gflops']:.0f} GFLOP/s (measured); reports: "
                  f"{', '.join(str(p) for p in paths.values())}")


@app.command("run")
def run_cmd(
    artifact: Annotated[pathlib.Path, typer.Argument(help="compiled model (.wpk)")],
    inputs: Annotated[Optional[pathlib.Path], typer.Option("--inputs", "-i", help=".npz with one array per input (random if omitted)")] = None,
    output: Annotated[Optional[pathlib.Path], typer.Option("--output", "-o", help="write the outputs to this .npz")] = None,
    repeat: Annotated[int, typer.Option("--repeat", "-n", min=1, help="timed runs")] = 1,
    print_time: Annotated[bool, typer.Option("--print-time", help="print latency (median, min, max) over --repeat runs")] = False,
) -> None:
    """Run a compiled model."""
    import numpy as np

    import woodpecker
    from woodpecker.errors import InputError

    cm = woodpecker.load(artifact)
    if inputs is not None:
        import zipfile

        try:
            loaded = np.load(inputs, allow_pickle=False)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:  # an .npz is a zip: it can be a broken one
            raise InputError(f"{inputs}: cannot read inputs ({err})") from None
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a bare .npy holds one array without a name
            raise InputError(f"{inputs}: not an .npz archive of named arrays (write one with numpy.savez)")
        try:
            with loaded as npz:
                feed = {k: npz[k] for k in npz.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
            raise InputError(f"{inputs}: cannot read inputs ({err})") from None
    else:
        feed = cm.random_inputs()
    outs = cm.run(feed)
    if output is not None:
        from woodpecker.errors import WoodpeckerError
        from woodpecker.runtime.artifact import write_npz

        # np.savez(output, **outs) fails on an output named `file` and drops one named `allow_pickle`
        path = output if output.suffix == ".npz" else output.with_name(output.name + ".npz")
        try:
            path.write_bytes(write_npz(outs))
        except OSError as err:
            raise WoodpeckerError(f"{path}: cannot write the outputs ({err.strerror or err})") from None
    for name, value in outs.items():
        console.print(f"{name}: {value.dtype}{list(value.shape)}  mean {float(np.mean(value)):.6g}  "
                      f"max |x| {float(np.max(np.abs(value))) if value.size else 0:.6g}")
    if cm.backend == "riscv":
        _report_simulated(cm, feed, outs)
        return
    if print_time:
        stats = cm.benchmark(feed, repeat=repeat, warmup=min(5, repeat))
        console.print(f"latency over {repeat} runs: median {stats['median_ms']:.3f} ms  "
                      f"(min {stats['min_ms']:.3f}, max {stats['max_ms']:.3f})")


def _report_simulated(cm, feed, outs) -> None:
    """A RISC-V/MCU model ran under qemu: print the cycle model's estimate and compare with the host."""
    import numpy as np

    run = cm.last_run
    console.print(f"simulated on {cm.profile_id} (qemu + cycle model): {run.seconds * 1e3:.3f} ms, "
                  f"{run.cycles:,.0f} cycles, {run.counts.get('insns', 0):,} instructions counted "
                  f"({run.sim_secs:.1f} s of simulation)")
    if cm.reference_onnx is None:
        return
    from woodpecker.runtime.vendors import ort_session

    ref = ort_session(cm.reference_onnx, 1).run(None, {t.name: np.asarray(feed[t.name]) for t in cm.inputs})
    from woodpecker.measure.correctness import RTOL, relative_error

    worst = max((relative_error(outs[spec.name], expected) for spec, expected in zip(cm.outputs, ref, strict=True)),
                default=0.0)
    verdict = "match" if worst <= RTOL else "DIFFER"
    console.print(f"host (onnxruntime) and simulated outputs {verdict}: max relative error {worst:.2e}")


@app.command("lower")
def lower_cmd(
    model: Annotated[str, typer.Argument(help="ONNX file, or zoo:<name>")],
    input_shape: Annotated[Optional[list[str]], typer.Option("--input-shape", metavar=SHAPE_METAVAR, help=SHAPE_HELP)] = None,
    no_layout: Annotated[bool, typer.Option("--no-layout", help="keep NCHW (skip the blocked layout pass)")] = False,
) -> None:
    """Print the DSL program of every (fused) operator."""
    from woodpecker.frontend.source import import_model
    from woodpecker.lowering.model import lower_graph
    from woodpecker.passes.pipeline import optimize
    from woodpecker.targets import resolve

    graph = import_model(_model_arg(model), _parse_shapes(input_shape))
    # the host's passes, so the kernels printed are the ones a host compile builds
    lowered = lower_graph(optimize(graph, resolve("host").pass_options(blocked_layout=not no_layout)))
    counts = lowered.occurrences()
    for task in lowered.tasks.values():
        console.print(f"# {task.name}: {task.family}, {counts[task.key]} call(s), {task.flops / 1e6:.2f} MFLOP, "
                      f"workload {task.key}", markup=False)
        console.print(task.source, markup=False)


@app.command("targets")
def targets_cmd() -> None:
    """List hardware profiles and how a schedule is measured on each."""
    from woodpecker.hw.profile import list_profiles

    rows = []
    for p in list_profiles():
        how = "real timing on this machine" if p.measurement == "real" else p.measurement.replace("simulated:", "simulated: ")
        rows.append((p.id, ", ".join(p.aliases), p.kind, how, p.name))
    _print_table(("target", "aliases", "kind", "measured by", "description"), rows,
                 left=("target", "aliases", "kind", "measured by", "description"))


@app.command("zoo")
def zoo_cmd(
    name: Annotated[Optional[str], typer.Argument(help="model name; omit to list them")] = None,
    output: Annotated[Optional[pathlib.Path], typer.Option("--output", "-o", help="ONNX file to write (default: "
                                                            "NAME.onnx)")] = None,
    image_size: Annotated[Optional[int], typer.Option(help="input resolution of CNNs")] = None,
) -> None:
    """List the built-in models, or write one as an ONNX file."""
    import onnx

    from woodpecker import models

    if name is None:
        for key in models.ZOO:
            console.print(key)
        return
    kwargs = {"image_size": image_size} if image_size is not None else {}  # --image-size 0 is an error, not ignored
    proto = models.build(name, **kwargs)
    out = output or pathlib.Path(f"{name}.onnx")
    try:
        onnx.save(proto, out)
    except OSError as err:
        from woodpecker.errors import WoodpeckerError

        raise WoodpeckerError(f"{out}: cannot write the model ({err.strerror or err})") from None
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
    except Exception as err:
        # click's usage errors carry their own message and exit code. Recognized by shape, not by class: recent
        # typer vendors click as typer._click (`import click` fails there), older typer uses click itself.
        if callable(getattr(err, "show", None)) and isinstance(getattr(err, "exit_code", None), int):
            err.show()
            sys.exit(err.exit_code)
        if _state["debug"]:
            raise
        err_console.print(f"internal error: {type(err).__name__}: {err} (a woodpecker bug; rerun with --debug "
                          "for the traceback)", markup=False)
        sys.exit(3)


def entry() -> None:
    """Console-script entry point. Commands that never need PyTorch make `import torch` fail fast, which takes
    1.5 s off TVM's import (tvm_ffi imports torch eagerly)."""
    argv = sys.argv[1:]
    command = next((a for a in argv if not a.startswith("-")), "")
    # compile and run may use PyTorch kernels chosen by the planner; tune may use the RL searcher; bench baselines
    if command in ("targets", "lower", "db", "zoo"):
        from woodpecker.config import skip_torch_import

        skip_torch_import()
    main()


if __name__ == "__main__":
    entry()
