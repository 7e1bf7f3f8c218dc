"""What one graph pass or schedule rule buys, whole model: woodpecker's own build with it and without it, and
onnxruntime, timed in the same run.

    python benchmarks/pass_ablation.py [--models shufflenet_v2,squeezenet] [--pass inline_injective]
                                        [--rounds 8] [--per-round 6] [--json out.json]
    python benchmarks/pass_ablation.py --models shufflenet_v2,resnext50 --rule lanes
    python benchmarks/pass_ablation.py --models shufflenet_v2,squeezenet --rule channel-padding
    python benchmarks/pass_ablation.py --models shufflenet_v2,resnet18 --rule injective-nest
    python benchmarks/pass_ablation.py --models squeezenet,alexnet,resnet18 --rule remainder-peel
    python benchmarks/pass_ablation.py --models resnext50 --rule grouped-blocks
    python benchmarks/pass_ablation.py --models resnet18,vgg19,inception_v1,resnet50 --rule rows-first
    python benchmarks/pass_ablation.py --models resnet18,resnet50,inception_v1,mobilenet_v2 --rule parallel-remainder
    python benchmarks/pass_ablation.py --models shufflenet_v2,shufflenet_v1 --rule blocked-shuffle
    python benchmarks/pass_ablation.py --models shufflenet_v1,mobilenet_v3,densenet121 --rule serial-rows

Method: each model is compiled twice by woodpecker with its default schedules and without the planner (its own
kernels only): once as it ships, once with the named pass of woodpecker.passes.pipeline replaced by the identity
(--pass), or with a default-schedule rule put back as it was before (--rule; see RULES). Both artifacts and an onnxruntime session (all graph optimizations, MLAS) are timed in fresh
processes, one per round per contender, rotated (woodpecker.measure.isolated); a figure is the median of the
per-process medians with their quartiles as the spread, and the verdict says whether a difference is beyond the
spread (woodpecker.measure.decision). Outputs are checked against onnxruntime first. Kernel counts are the calls
per run of each build.
"""

from __future__ import annotations

import argparse
import sys
import unittest.mock

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import compare_line, machine, ort_session, threads, time_against_onnxruntime, write_results  # noqa: E402
from e2e import checked, inputs_for  # noqa: E402



def _old_lanes(extent: int, vector_lanes: int, padded: bool = False) -> int:
    """The lane rule before woodpecker.schedule.cpu_defaults._lanes: a whole row of up to 64 pixels, else the largest
    divisor up to 16 (1 for a prime: nothing padded)."""
    from woodpecker.schedule import cpu_defaults

    return extent if extent <= 64 else cpu_defaults.largest_divisor(extent, 16)


def _one_channel_block(default_knobs):
    """default_knobs before AVX-512 convolution tiles took a second output-channel block."""

    def before(family, *args, **kwargs):
        knobs = default_knobs(family, *args, **kwargs)
        if family == "conv2d_nchwc" and "tile_kb" in knobs:
            knobs["tile_kb"] = 1
        return knobs

    return before


def _guarded_remainders(partition_remainders):
    """Tiled kernels before the guarded last trip of a non-dividing tile was peeled off: the guard inside every
    full tile's reduction loop."""
    return lambda sch, loops: None


# --rule: name -> (module, attribute, the rule that stood before: made from the rule as shipped)
def _no_channel_padding(to_blocked_layout):
    """The blocked layout before padded blocks: odd channel counts in 4- or 8-lane blocks, or in NCHW."""
    return lambda graph, max_block=16, pad_to=0, use_winograd=False: to_blocked_layout(graph, max_block, 0,
                                                                                     use_winograd)


def _flat_injective(default_knobs):
    """default_knobs before data movement ran as a nest: every injective kernel one flat loop split into vectors."""

    def before(family, *args, **kwargs):
        knobs = default_knobs(family, *args, **kwargs)
        if family == "injective":
            knobs["nest"] = 0
        return knobs

    return before


def _channels_first(outer_order):
    """Blocked convolutions before rows-first outer loops: output channel blocks outermost, padding per block tile."""
    return lambda st, knobs: "channels"


def _fused_remainders(default_knobs):
    """default_knobs before short rows were parallelized around their remainder: a non-dividing split fused into
    the parallel loop (guarded there), and one output-channel block per tile below 13 pixels a row."""
    from woodpecker.schedule import cpu_defaults

    def before(family, st, *args, **kwargs):
        knobs = default_knobs(family, st, *args, **kwargs)
        if family != "conv2d_nchwc":
            return knobs
        if len(st.spatial) >= 4 and st.spatial[-2].extent < 13:
            knobs["tile_kb"] = 1
        if knobs.get("outer_order") != "rows":
            # without serial_remainders: fuse until 64 chunks, a non-dividing split included
            knobs["parallel"] = cpu_defaults._default_parallel(st, knobs)
        return knobs

    return before


def _plain_shuffles(layout_class):
    """The blocked layout before channel gathers: channel shuffles, channel slices, a value wanted in other blocks
    and a concatenation of padded values all ran in NCHW, between conversions out of and back into the blocked
    layout."""

    class Before(layout_class):
        def channel_shuffle(self, node):
            return False

        def slice(self, node):
            return False

        def _reblocked(self, value, block):
            return None

        def _gathered_concat(self, node):
            return False

    return Before


RULES = {"lanes": ("woodpecker.schedule.cpu_defaults", "_lanes", lambda shipped: _old_lanes),
         "channel-blocks": ("woodpecker.schedule.cpu_defaults", "default_knobs", _one_channel_block),
         "channel-padding": ("woodpecker.passes.pipeline", "to_blocked_layout", _no_channel_padding),
         "injective-nest": ("woodpecker.schedule.cpu_defaults", "default_knobs", _flat_injective),
         "remainder-peel": ("woodpecker.schedule.cpu", "_partition_remainders", _guarded_remainders),
         # grouped convolutions (other than depthwise) in NCHW, with a layout conversion on each side
         "grouped-blocks": ("woodpecker.passes.layout", "GROUPED_WASTE_MAX", lambda shipped: 0),
         "rows-first": ("woodpecker.schedule.cpu_defaults", "_outer_order", _channels_first),
         "parallel-remainder": ("woodpecker.schedule.cpu_defaults", "default_knobs", _fused_remainders),
         "blocked-shuffle": ("woodpecker.passes.layout", "_Layout", _plain_shuffles),
         # injective nests with every loop but the vector loop fused into the parallel loop
         "serial-rows": ("woodpecker.schedule.cpu_defaults", "_row_loop_serial", lambda shipped: lambda st: False),
         # two output-channel blocks per register tile on the first layer too (3 input channels)
         "stem-blocks": ("woodpecker.schedule.cpu_defaults", "WIDE_TILE_MIN_INPUT_CHANNELS", lambda shipped: 0),
         # every softmax on the [O, D, I] template (rows of no whole number of vectors reduced as scalar chains)
         "softmax-rows": ("woodpecker.lowering.program", "ROW_VECTOR", lambda shipped: 1 << 62),
         # dense layers with many rows stream the whole weight again for every row tile (rows outermost, 8 x 1 tile)
         "dense-panels": ("woodpecker.schedule.cpu_defaults", "PANEL_ORDER_MIN_ROWS", lambda shipped: 1 << 62),
         # rows first only for convolutions with a padded window (1x1 convolutions, depthwise and pooling split
         # their channel blocks between the cores)
         "rows-everywhere": ("woodpecker.schedule.cpu_defaults", "ROWS_FIRST",
                             lambda shipped: {"conv2d_nchwc": "padded"}),
         # data movement and element-wise kernels on blocked images split their channel blocks between the cores
         "rows-injective": ("woodpecker.schedule.cpu_defaults", "INJECTIVE_ROWS_FIRST", lambda shipped: False),
         # every 3x3 stride-1 convolution direct (conv2d_nchwc), none by Winograd F(4x4, 3x3)
         "winograd": ("woodpecker.passes.layout", "winograd_fits", lambda shipped: lambda *args: False),
         # 7x7 outputs by Winograd too (2 x 2 tiles covering 8 x 8), as before they were kept direct
         "winograd-7x7": ("woodpecker.passes.layout", "WINOGRAD_MIN_OUTPUT", lambda shipped: 7),
         # every Winograd convolution in three whole-layer nests (its transformed input and products through
         # memory), none fused per row of tiles
         "winograd-fused": ("woodpecker.schedule.cpu_winograd", "FUSE_MAX_U_READS", lambda shipped: -1.0)}


def rule_patch(rule: str):
    """(module object, attribute, replacement) that puts a --rule back as it stood before."""
    import importlib

    module, attribute, before = RULES[rule]
    target = importlib.import_module(module)
    return target, attribute, before(getattr(target, attribute))


def compile_both(proto, target, attribute, replacement):
    """The model compiled as shipped and with `attribute` of `target` replaced: woodpecker's own kernels only."""
    import woodpecker

    shipped = woodpecker.compile(proto, vendor=False)
    with unittest.mock.patch.object(target, attribute, replacement):
        return shipped, woodpecker.compile(proto, vendor=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="shufflenet_v2")
    ap.add_argument("--pass", dest="pass_name", default="inline_injective",
                    help="the pass of woodpecker.passes.pipeline to switch off in the baseline build")
    ap.add_argument("--rule", choices=sorted(RULES), default=None,
                    help="instead of a pass: the default-schedule rule to put back as it was in the baseline build")
    ap.add_argument("--rounds", type=int, default=8, help="fresh processes per contender")
    ap.add_argument("--per-round", type=int, default=6, help="timed runs per process")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    from woodpecker import models
    from woodpecker.passes import pipeline

    if args.rule:
        target, attribute, replacement = rule_patch(args.rule)
        ablated = args.rule
    elif not callable(getattr(pipeline, args.pass_name, None)):
        raise SystemExit(f"woodpecker.passes.pipeline has no pass {args.pass_name!r}")
    else:
        ablated, target, attribute, replacement = args.pass_name, pipeline, args.pass_name, lambda graph: graph
    n_threads = threads()
    print(f"machine: {machine()}; threads per contender: {n_threads}; {args.rounds} processes per contender")
    rows = []
    for name in args.models.split(","):
        proto = models.build(name)
        with_pass, without = compile_both(proto, target, attribute, replacement)
        feed = inputs_for(name, with_pass)
        ref = ort_session(proto.SerializeToString(), n_threads).run(None, feed)[0]
        labels = {"with": f"with {ablated}", "without": f"without {ablated}"}
        timings = time_against_onnxruntime(proto, {labels["with"]: with_pass, labels["without"]: without}, feed,
                                           n_threads, args.rounds, args.per_round)
        samples = {t.name: t.samples for t in checked(name, timings, ref)}
        calls = {key: len(cm.program.calls) for key, cm in (("with", with_pass), ("without", without))}
        on, off, ort = samples[labels["with"]], samples[labels["without"]], samples["onnxruntime"]
        row = {"model": name, "pass" if not args.rule else "rule": ablated, "calls": calls,
               **{k: v.to_json() for k, v in samples.items()},
               "speedup": off.median_ms / on.median_ms, "vs_onnxruntime": ort.median_ms / on.median_ms}
        rows.append(row)
        print(f"{name}: {calls['without']} -> {calls['with']} kernel calls per run", flush=True)
        print(f"  {compare_line(on, off)}\n  {compare_line(on, ort)}", flush=True)
    write_results(args.json, rows, n_threads, rounds=args.rounds)


if __name__ == "__main__":
    main()
