"""Real servers for the index tests and benchmarks, started and stopped by PID.

- Milvus 2.3.5 standalone (pip ``milvus``) binds every interface, so it runs only inside a network
  namespace with just loopback up (``.ci/milvus-netns.sh``); clients reach it through a Unix socket
  that a relay in the namespace forwards to its loopback port.
- A two-node Ray cluster (head + one worker) in a loopback-only network namespace too, with its
  drivers: token auth on, no dashboard, no usage statistics; stopped by PID, never ``ray stop``
  (which kills by name).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NETNS_SCRIPT = REPO / ".ci" / "milvus-netns.sh"


def milvus_standalone_missing() -> str | None:
    """Why Milvus standalone cannot start here, or None."""
    if os.geteuid() != 0:
        return "Milvus 2.3.5 must run in its own network namespace, which needs root (unshare -n)"
    for tool in ("unshare", "ip", "milvus-server"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (pip install 'milvus==2.3.5'; apt-get install iproute2)"
    return None


def _kill_namespace_of(pid: int) -> None:
    """SIGKILL every process in ``pid``'s network namespace (only what milvus-netns.sh started
    lives there); Milvus ignores SIGTERM for up to 30 minutes."""
    try:
        namespace = os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return
    if namespace == os.readlink("/proc/self/ns/net"):
        os.kill(pid, signal.SIGKILL)
        return
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "ns" / "net") == namespace:
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            continue


class MilvusStandalone:
    """Milvus 2.3.5 in a loopback-only network namespace, reached at ``unix:<socket>``."""

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)
        self.socket = self.data_dir.parent / f"{self.data_dir.name}.sock"
        self.uri = f"unix:{self.socket}"
        self._process: subprocess.Popen | None = None

    def start(self, timeout: float = 120.0) -> "MilvusStandalone":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(
            ["bash", str(NETNS_SCRIPT), str(self.data_dir), str(self.socket)],
            stdout=subprocess.DEVNULL, stderr=open(self.data_dir / "netns.log", "ab"),
        )
        from pymilvus import MilvusClient

        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"milvus-netns.sh exited; see {self.data_dir}/netns.log")
            try:
                MilvusClient(self.uri, timeout=2).get_server_version()
                return self
            except Exception:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"Milvus did not answer within {timeout:.0f} s; see "
                                       f"{self.data_dir}/server.log") from None
                time.sleep(1)

    def stop(self) -> None:
        if self._process is not None:
            _kill_namespace_of(self._process.pid)
            self._process.wait(timeout=30)
            self._process = None


def ray_environment(token_path: Path) -> dict[str, str]:
    """What every process of the test cluster (and its driver) needs: no usage statistics, token
    auth, and rag importable from this checkout."""
    return {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(token_path), "RAY_DISABLE_DOCKER_CPUS_WARNING": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


class RayCluster:
    """A head and a worker node (or the head alone), each ``ray start --block``, in a network namespace of their own
    with only loopback up: ``ray start`` turns ``--node-ip-address=127.0.0.1`` into the machine's
    routable address, so outside such a namespace it would listen there. Drivers run inside the
    namespace too (:meth:`command` prefixes a command to do so)."""

    def __init__(self, base_dir: Path, cpus_per_node: int = 1, port: int | None = None, nodes: int = 2):
        # ``ray start --head`` refuses a port that a head in any namespace on the machine uses (it
        # finds them by process), so two test runs side by side each take their own
        port = port or 6380 + os.getpid() % 1000
        self.base_dir = Path(base_dir)
        self.cpus_per_node = cpus_per_node
        self.token_path = self.base_dir / "token"
        self.address = f"127.0.0.1:{port}"
        self._port = port
        self._node_count = nodes
        self._holder: subprocess.Popen | None = None
        self._nodes: list[subprocess.Popen] = []

    def environment(self) -> dict[str, str]:
        return dict(os.environ, **ray_environment(self.token_path))

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the cluster's network namespace."""
        return ["nsenter", f"--net=/proc/{self._holder.pid}/ns/net", "--", *argv]

    def start(self, timeout: float = 120.0) -> "RayCluster":
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.token_path.write_text(os.urandom(24).hex())
        self._holder = subprocess.Popen(
            ["unshare", "--net", "--", "bash", "-c", "ip link set lo up && exec sleep 86400"])
        own = os.readlink("/proc/self/ns/net")
        deadline = time.monotonic() + 10
        while os.readlink(f"/proc/{self._holder.pid}/ns/net") == own and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # lo up
        ray = [sys.executable, "-m", "ray.scripts.scripts", "start", "--block",
               "--node-ip-address=127.0.0.1", f"--num-cpus={self.cpus_per_node}", "--num-gpus=0"]
        head = ray + ["--head", f"--port={self._port}", "--include-dashboard=false",
                      "--min-worker-port=21000", "--max-worker-port=21499"]
        worker = ray + [f"--address={self.address}", "--min-worker-port=21500",
                        "--max-worker-port=21999"]
        for name, argv in (("head", head), ("worker", worker))[: self._node_count]:
            log = self.base_dir / f"{name}.log"
            self._nodes.append(subprocess.Popen(self.command(argv), env=self.environment(),
                                                stdout=open(log, "ab"), stderr=subprocess.STDOUT))
            self._wait_for(log, "Ray runtime started", timeout)
        return self

    def _wait_for(self, log: Path, line: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while line not in log.read_text(errors="replace"):
            if any(node.poll() is not None for node in self._nodes) or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"a Ray node did not start; see {log}")
            time.sleep(0.5)

    def stop(self) -> None:
        """SIGKILL every process of the namespace (the nodes, their workers, the holder)."""
        if self._holder is not None:
            _kill_namespace_of(self._holder.pid)
            for process in (*self._nodes, self._holder):
                process.wait(timeout=30)
        self._holder, self._nodes = None, []
