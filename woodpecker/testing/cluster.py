"""Clusters on loopback for tests and measurements: a Ray cluster of N nodes, a TVM RPC tracker with servers.

    LocalRayCluster(nodes, cpus_per_node)  -> `ray start --head --block` + `ray start --address --block`, each in its
                                              own process session; .address is ray://127.0.0.1:PORT
    LocalRpcTracker()                      -> `python -m tvm.exec.rpc_tracker`; .start_server(key) adds a
                                              `python -m tvm.exec.rpc_server`, .kill_server(proc) SIGKILLs it

Every process is started here, in a session of its own, and stopped by the ids of that session's members: nothing
else on the machine is touched (`ray stop` would stop every Ray instance of the user).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def session_members(sid: int) -> list[int]:
    """Pids of the processes in session `sid` (daemons Ray started for a node stay in its session)."""
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.getsid(int(name)) == sid:
                    pids.append(int(name))
            except OSError:
                pass
    return pids


def _stop_session(proc: subprocess.Popen, grace_s: float = 15.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # `ray start --block` stops its node's processes on SIGTERM
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            pass
    for pid in session_members(proc.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    if proc.poll() is None:
        proc.wait(5)


def _reload_ray_auth() -> None:
    """Ray reads its authentication settings once per process: a driver here that imported Ray before this cluster
    existed must read them again to present this cluster's token."""
    if "ray" not in sys.modules:
        return
    try:
        from ray._private.authentication_test_utils import reset_auth_token_state
    except ImportError:  # a Ray without token authentication: nothing to reload
        return
    reset_auth_token_state()


class LocalRayCluster:
    """A Ray cluster on loopback: a head node and `nodes - 1` worker nodes, `cpus_per_node` CPUs each.

    Token authentication with a fresh token (the default of recent Ray): the token is put in this process's
    environment while the cluster runs, so that a driver here can connect.
    """

    def __init__(self, nodes: int = 2, cpus_per_node: int = 1, start_timeout_s: float = 120.0) -> None:
        self.ray = os.path.join(os.path.dirname(sys.executable), "ray")
        # Short: Ray's unix sockets live under it (108-byte path limit).
        self.temp_dir = tempfile.mkdtemp(prefix="wp-ray-", dir="/tmp")
        self.gcs_port, self.client_port = free_port(), free_port()
        self.address = f"ray://127.0.0.1:{self.client_port}"
        self.gcs_address = f"127.0.0.1:{self.gcs_port}"
        self.env = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
        self._saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        _reload_ray_auth()
        self.nodes: list[subprocess.Popen] = []
        try:
            self._start("--head", "--port", str(self.gcs_port), "--ray-client-server-port", str(self.client_port),
                        "--include-dashboard", "false", "--temp-dir", self.temp_dir, cpus=cpus_per_node)
            deadline = time.monotonic() + start_timeout_s
            while not _listening(self.client_port):
                if time.monotonic() > deadline or self.nodes[0].poll() is not None:
                    raise RuntimeError(f"the Ray head node did not start within {start_timeout_s:.0f} s")
                time.sleep(0.3)
            for _ in range(nodes - 1):
                self.add_node(cpus_per_node)
            self.wait_for_nodes(nodes, start_timeout_s)
        except BaseException:
            self.stop()
            raise

    def _start(self, *args: str, cpus: int) -> subprocess.Popen:
        cmd = [self.ray, "start", "--block", "--node-ip-address", "127.0.0.1", "--num-cpus", str(cpus),
               "--disable-usage-stats", *args]
        proc = subprocess.Popen(cmd, env=dict(os.environ, **self.env), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        self.nodes.append(proc)
        return proc

    def add_node(self, cpus: int = 1) -> subprocess.Popen:
        return self._start("--address", self.gcs_address, cpus=cpus)

    def wait_for_nodes(self, n: int, timeout_s: float = 120.0) -> None:
        """Until `n` nodes are alive, asked of the GCS in a subprocess (this process stays unconnected)."""
        code = ("import logging, sys, time, ray\n"
                f"ray.init(address={self.gcs_address!r}, logging_level=logging.ERROR, log_to_driver=False)\n"
                f"deadline = time.monotonic() + {timeout_s}\n"
                f"while sum(1 for x in ray.nodes() if x['Alive']) < {n}:\n"
                "    if time.monotonic() > deadline: sys.exit(1)\n"
                "    time.sleep(0.3)\n")
        out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, **self.env), capture_output=True,
                             text=True, timeout=timeout_s + 60)
        if out.returncode != 0:
            raise RuntimeError(f"the Ray cluster did not reach {n} live nodes within {timeout_s:.0f} s")

    def task_workers(self, *names: str) -> list[int]:
        """Pids of this cluster's worker processes executing one of the remote functions `names` right now."""
        out = []
        for proc in self.nodes:
            for pid in session_members(proc.pid):
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        title = f.read().split(b"\0")[0].decode(errors="replace")
                except OSError:
                    continue
                if any(title == f"ray::{n}" or title.startswith(f"ray::{n} ") for n in names):
                    out.append(pid)
        return out

    def stop(self) -> None:
        for proc in reversed(self.nodes):
            _stop_session(proc)
        self.nodes = []
        for k, v in self._saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        _reload_ray_auth()
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> LocalRayCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class LocalRpcTracker:
    """A TVM RPC tracker on loopback, and servers that register with it."""

    def __init__(self, start_timeout_s: float = 60.0) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.servers: list[subprocess.Popen] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tvm.exec.rpc_tracker", "--host", "127.0.0.1", "--port", str(self.port),
             "--port-end", str(self.port + 1), "--silent"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + start_timeout_s
        while not _listening(self.port):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"the RPC tracker did not start within {start_timeout_s:.0f} s")
            time.sleep(0.3)

    def registered(self, key: str) -> int:
        from woodpecker.measure.rpc_measurer import servers_for, tracker_summary

        return servers_for(tracker_summary("127.0.0.1", self.port), key)

    def start_server(self, key: str, wait: bool = True, timeout_s: float = 60.0) -> subprocess.Popen:
        before = self.registered(key)
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "tvm.exec.rpc_server", "--host", "127.0.0.1", "--port", str(port),
             "--port-end", str(port + 1), "--tracker", self.address, "--key", key, "--silent"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.servers.append(proc)
        deadline = time.monotonic() + timeout_s
        while wait and self.registered(key) <= before:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"the RPC server {key!r} did not register within {timeout_s:.0f} s")
            time.sleep(0.3)
        return proc

    def kill_server(self, proc: subprocess.Popen) -> None:
        """SIGKILL the server and the session processes it forked: the device is gone."""
        for pid in session_members(proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        proc.wait(10)

    def stop(self) -> None:
        for proc in self.servers:
            self.kill_server(proc)
        self.servers = []
        _stop_session(self.proc, grace_s=5.0)

    def __enter__(self) -> LocalRpcTracker:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
