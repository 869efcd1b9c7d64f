"""A real Redis Cluster on loopback ports, for tests and benches: 3 masters
and 3 replicas started with ``redis-server --cluster-enabled yes`` and joined
with ``redis-cli --cluster create``. Nodes can be killed (a master dies, its
replica is promoted) and started again (it rejoins as a replica).

A short ``cluster-node-timeout`` makes a failover take a few seconds, not the
default 15 s.

Every node has a directory of its own, as on separate hosts. (They once
shared one: the three replicas' first full syncs, which start together, each
renamed its received RDB to the same ``dump.rdb`` and loaded that file by
name — a replica could hold another shard's data while its replication offset
said it was up to date, and a failover then lost the victim's keys.)
"""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["RedisCluster", "cluster_tools_missing"]

# short enough for a failover in seconds, long enough that a loaded machine's
# stalls do not fail a master over by themselves (seen at 1000 ms)
NODE_TIMEOUT_MS = 2500


def cluster_tools_missing() -> str | None:
    """Why a cluster cannot be started here, or None."""
    for tool in ("redis-server", "redis-cli"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_ports(count: int) -> list[int]:
    """``count`` ports each free together with its cluster bus port (+10000)."""
    for _ in range(200):
        base = random.randrange(20000, 29000, 10)
        ports = list(range(base, base + count))
        if all(_free(p) and _free(p + 10000) for p in ports):
            return ports
    raise RuntimeError("no free ports for a Redis Cluster")


def _cli(port: int, *args: str, timeout: float = 5.0) -> str:
    done = subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done.stdout


@dataclass
class RedisCluster:
    """Six local nodes; :meth:`start` forms the cluster, :meth:`stop` ends it."""

    nodes: int = 6
    replicas: int = 1
    ports: list[int] = field(default_factory=list)
    _dir: Path | None = None
    _processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The ``redis+cluster://`` URL naming every node (a client needs one)."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def start(self) -> RedisCluster:
        self._dir = Path(tempfile.mkdtemp(prefix="op-redis-cluster-"))
        self.ports = _free_ports(self.nodes)
        for port in self.ports:
            self.start_node(port)
        for port in self.ports:
            self._wait_pong(port)
        created = subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in self.ports),
                "--cluster-replicas",
                str(self.replicas),
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if created.returncode != 0:
            self.stop()
            raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout[-2000:]}")
        self.wait_ok()
        return self

    def node_dir(self, port: int) -> Path:
        """The node's own directory: nodes.conf, the RDB a full sync writes, redis.log."""
        assert self._dir is not None
        return self._dir / str(port)

    def start_node(self, port: int) -> None:
        """Start (or restart) the node of ``port``; it keeps its identity
        (its nodes.conf) and rejoins the cluster."""
        directory = self.node_dir(port)
        directory.mkdir(exist_ok=True)
        self._processes[port] = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                str(NODE_TIMEOUT_MS),
                "--save",
                "",
                "--appendonly",
                "no",
                # a replica's full sync starts at once (default: after 5 s,
                # waiting for more replicas to share the transfer)
                "--repl-diskless-sync-delay",
                "0",
                "--dir",
                str(directory),
                "--logfile",
                "redis.log",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def kill(self, port: int) -> None:
        """SIGKILL the node of ``port`` (no shutdown, no goodbye to the cluster)."""
        process = self._processes.pop(port)
        process.kill()
        process.wait(10)

    def replication(self, port: int) -> dict[str, str]:
        """``INFO replication`` of the node of ``port``, as a dict."""
        text = _cli(port, "INFO", "replication")
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)

    def wait_replicated(self, port: int) -> int:
        """Until the replica of the master on ``port`` is online and has
        applied every write the master had made when this was called (its
        acknowledged offset reached the master's offset); its port.
        (``WAIT`` would not do: it waits for the writes of its own connection,
        and a new connection has none.)"""
        target = None
        replica: dict[str, str] = {}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            info = self.replication(port)
            if info.get("role") != "master":
                raise RuntimeError(f":{port} is no longer a master (failed over under load?)")
            if target is None:
                target = int(info["master_repl_offset"])
            if info.get("connected_slaves") != "1":
                raise RuntimeError(f":{port} has not one replica: {info}")
            replica = dict(part.split("=", 1) for part in info["slave0"].split(",") if "=" in part)
            if replica.get("state") == "online" and int(replica.get("offset", -1)) >= target:
                return int(replica["port"])
            time.sleep(0.05)
        raise RuntimeError(f"the replica of :{port} did not reach offset {target}: {replica}")

    def keys(self, port: int, pattern: str) -> list[str]:
        """The keys matching ``pattern`` that the node of ``port`` holds
        (a replica too: ``SCAN`` reads the node's own data)."""
        return _cli(port, "--scan", "--pattern", pattern, timeout=10).split()

    def masters(self) -> list[int]:
        """The ports of the masters that serve slots, as a live node sees them."""
        for port in self.ports:
            if port not in self._processes:
                continue
            text = _cli(port, "CLUSTER", "NODES")
            if not text:
                continue
            masters = []
            for line in text.splitlines():
                parts = line.split()
                if "master" in parts[2] and "fail" not in parts[2] and len(parts) > 8:
                    masters.append(int(parts[1].split("@")[0].rsplit(":", 1)[1]))
            return sorted(masters)
        return []

    def master_of(self, key: str) -> int:
        """The port of the master that holds ``key``'s slot now."""
        for port in self._processes:
            slot = _cli(port, "CLUSTER", "KEYSLOT", key).strip()
            if not slot:
                continue
            for line in _cli(port, "CLUSTER", "NODES").splitlines():
                parts = line.split()
                if "master" not in parts[2] or "fail" in parts[2]:
                    continue
                for span in parts[8:]:
                    low, _, high = span.partition("-")
                    if low.isdigit() and int(low) <= int(slot) <= int(high or low):
                        return int(parts[1].split("@")[0].rsplit(":", 1)[1])
        raise RuntimeError(f"no master holds the slot of {key!r}")

    def wait_ok(self, timeout_s: float = 30.0) -> None:
        """Until every running node says ``cluster_state:ok`` and sees every
        slot served, and every replica has finished its full sync (its link
        to its master is up): only then is a master's death survivable."""
        masters = self.nodes // (self.replicas + 1)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            states = [_cli(port, "CLUSTER", "INFO") for port in self._processes]
            synced = [
                port
                for port in self._processes
                if self.replication(port).get("master_link_status") == "up"
            ]
            if (
                all("cluster_state:ok" in s and "cluster_slots_ok:16384" in s for s in states)
                and len(self.masters()) == masters
                and len(synced) == len(self._processes) - masters
            ):
                return
            time.sleep(0.1)
        raise RuntimeError("the Redis Cluster did not become ready")

    def _wait_pong(self, port: int, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(subprocess.TimeoutExpired):
                if _cli(port, "PING", timeout=1).strip() == "PONG":
                    return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {port} did not start")

    def stop(self) -> None:
        for port in list(self._processes):
            self.kill(port)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
