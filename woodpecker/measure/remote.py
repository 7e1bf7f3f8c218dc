"""Measurement beyond this machine: a tuning session's options (cluster, rpc_tracker, rpc_key) -> a measurer.

    cluster="local-ray" | "ray://HOST:PORT" | "HOST:PORT" | "auto"  -> RayMeasurer (builds and timings on Ray nodes)
    rpc_tracker="HOST:PORT", rpc_key="KEY"                           -> RpcMeasurer (builds here, timings on a device)

The options are checked before the model is lowered (check_remote), so a typo costs no time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from woodpecker.errors import ClusterError
from woodpecker.measure.measurer import MeasureOptions


def parse_hostport(text: str, what: str) -> tuple[str, int]:
    host, _, port = text.strip().rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ClusterError(f"{what} {text!r} is not HOST:PORT")
    return host, int(port)


def check_remote(cluster: str | None, rpc_tracker: str | None, rpc_key: str | None) -> None:
    """One-line errors for options that cannot work together, before any work is done."""
    if cluster and rpc_tracker:
        raise ClusterError("give a Ray cluster (--cluster) or an RPC tracker (--rpc-tracker), not both")
    if rpc_tracker:
        parse_hostport(rpc_tracker, "RPC tracker")
        if not rpc_key:
            raise ClusterError(f"RPC tracker {rpc_tracker}: give the device key its servers registered with "
                               f"(--rpc-key KEY)")
    elif rpc_key:
        raise ClusterError(f"RPC key {rpc_key!r} given without an RPC tracker (--rpc-tracker HOST:PORT)")
    if cluster and cluster not in ("local-ray", "auto"):
        parse_hostport(cluster.removeprefix("ray://"), "Ray cluster address")


def remote_measurer(cluster: str | None, rpc_tracker: str | None, rpc_key: str | None, target: Mapping[str, Any],
                    target_class: str, threads: int, build_workers: int | None, options: MeasureOptions | None,
                    toolchain: Mapping[str, str]) -> Any:
    """A RayMeasurer or an RpcMeasurer for these options (connected, its nodes or device checked)."""
    check_remote(cluster, rpc_tracker, rpc_key)
    if target_class != "cpu":
        raise ClusterError(f"a {target_class} target is measured on this machine; a Ray cluster or an RPC device "
                           f"times CPU targets only")
    options = options or MeasureOptions()
    if cluster:
        from woodpecker.measure.ray_measurer import RayMeasurer

        return RayMeasurer(cluster, target, target_class, options, toolchain, threads=threads)
    if rpc_tracker:
        from woodpecker.measure.rpc_measurer import RpcMeasurer

        host, port = parse_hostport(rpc_tracker, "RPC tracker")
        return RpcMeasurer(host, port, str(rpc_key), target, target_class, build_workers, options, toolchain,
                           threads=threads)
    raise ClusterError("no Ray cluster or RPC tracker given")
