"""python -m woodpecker.devicekit build|run|refit ... (see woodpecker.devicekit)."""

from __future__ import annotations

import argparse
import pathlib
import sys

from woodpecker.errors import WoodpeckerError


def _csv(text: str | None) -> list[str] | None:
    return None if text is None else [t for t in text.split(",") if t]


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["run"]:  # the device runner has its own arguments (run.sh passes them through)
        from woodpecker.devicekit.run import main as run_main

        return run_main(argv[1:])
    ap = argparse.ArgumentParser(prog="python -m woodpecker.devicekit", description="the GPU device kit")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build a kit here (no GPU needed)")
    b.add_argument("out", type=pathlib.Path)
    b.add_argument("--profile", default="h100", help="GPU profile the artifacts and the suite are built for")
    b.add_argument("--python-version", default="3.12", help="the device's CPython (tvm-ffi is built per version)")
    b.add_argument("--models", help="comma-separated zoo models to prebuild (default: mobilenet_v2,squeezenet)")
    b.add_argument("--points", type=int, default=3, help="random schedules per calibration kernel")
    b.add_argument("--calibration-tasks", help="comma-separated subset of gpu_calibrate.SUITE (default: all)")
    sub.add_parser("run", help="run a kit (on the GPU machine, through run.sh)")
    r = sub.add_parser("refit", help="fit the GPU model to a kit run's results")
    r.add_argument("results", type=pathlib.Path, help="the folder run.sh wrote")
    r.add_argument("--kit", type=pathlib.Path, required=True, help="the kit that produced it")
    r.add_argument("--out", type=pathlib.Path, default=None,
                   help="folder for <device>.json (default: benchmarks/results/gpu_calibration)")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "build":
            from woodpecker.devicekit.build import build_kit

            if args.points < 0:
                ap.error("--points must be >= 0")
            build_kit(args.out, args.profile, args.python_version, _csv(args.models), args.points,
                      _csv(args.calibration_tasks))
        else:
            from woodpecker.devicekit.build import ROOT
            from woodpecker.devicekit.refit import refit

            refit(args.results, args.kit, args.out or ROOT / "benchmarks" / "results" / "gpu_calibration", ROOT)
    except WoodpeckerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
