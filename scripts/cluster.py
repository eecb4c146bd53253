"""Start and stop a local multi-node Ray cluster on loopback, to try ``ray.address=...`` and
``ray job submit`` on one machine.

    python scripts/cluster.py start [--port 6379] [--head-cpus 1] [--worker-cpus 1 ...] [--dashboard]
    python scripts/cluster.py address          # the GCS address (HOST:PORT), for ray.address=
    python scripts/cluster.py status           # `ray status` of the cluster
    python scripts/cluster.py stop

Each node is a ``ray start --block`` process in a session of its own; ``stop`` ends exactly
those process groups (first SIGTERM, then SIGKILL), never other Ray processes of the machine
(unlike ``ray stop``, which ends every Ray process of the user).

Loopback: Ray replaces 127.0.0.1 and ``localhost`` by the machine's primary address when
it starts a node of a multi-node cluster (``--node-ip-address=127.0.0.1`` is rewritten, see
ray-project/ray#26293 and #59110), so the nodes use other loopback addresses: the head
127.0.0.2, workers 127.0.0.3, 127.0.0.4, ... All traffic between nodes and drivers stays on
the loopback interface; note that Ray's servers of a multi-node cluster *bind* all interfaces
(token authentication below is what protects them).

Token authentication (Ray 2.5x+): every node, driver and ``ray job`` client must run with
``RAY_AUTH_MODE=token`` and the cluster's token (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or
``~/.ray/auth_token``). This script starts every node with ``RAY_AUTH_MODE=token``, creates
``~/.ray/auth_token`` with ``ray get-auth-token --generate`` if no token exists, and prints the
``export`` line for your shell.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HEAD_IP = "127.0.0.2"
DEFAULT_STATE = Path(os.environ.get("HARNESS_CLUSTER_DIR", f"/tmp/harness-cluster-{os.getuid()}"))
STARTED = "Ray runtime started"
RAY = [sys.executable, "-m", "ray.scripts.scripts"]  # the `ray` CLI of this interpreter


def node_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(RAY_AUTH_MODE="token", RAY_USAGE_STATS_ENABLED="0",
               RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0")  # stop at once on SIGTERM
    env.pop("RAY_ADDRESS", None)
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)  # "0" would forbid worker nodes
    return env


def ensure_token() -> str:
    """Where the token comes from; generate ~/.ray/auth_token when there is none."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "RAY_AUTH_TOKEN"
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    if not path.is_file() or not path.read_text().strip():
        if os.environ.get("RAY_AUTH_TOKEN_PATH"):
            raise SystemExit(f"error: RAY_AUTH_TOKEN_PATH={path} holds no token")
        subprocess.run([*RAY, "get-auth-token", "--generate"], check=True, stdout=subprocess.DEVNULL,
                       env=node_env())
    return str(path)


def free_port() -> int:
    """A port free on every address: another Ray on this machine may hold 127.0.0.1:PORT."""
    with socket.socket() as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


def _alive(pgid: int) -> bool:
    try:
        os.waitpid(pgid, os.WNOHANG)  # reap it if it is our child (else it stays a zombie)
    except ChildProcessError:
        pass
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _wait_started(proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if STARTED in text:
            return
        if proc.poll() is not None:
            raise RuntimeError(f"ray start exited with {proc.returncode}:\n{_tail(log)}")
        time.sleep(0.5)
    raise RuntimeError(f"ray start not ready after {timeout:g}s:\n{_tail(log)}")


def _tail(log: Path, n: int = 15) -> str:
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    return "\n".join(re.sub(r"\x1b\[[0-9;]*m", "", ln) for ln in lines[-n:])


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as fh:
        return subprocess.Popen([*RAY, "start", *args, "--block"], stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=node_env(), start_new_session=True, cwd=log.parent)


def active_nodes(address: str) -> int:
    r = subprocess.run([*RAY, "status", f"--address={address}"], capture_output=True, text=True, env=node_env(),
                       timeout=60)
    m = re.search(r"Active:\n(.*?)\n\S", r.stdout, re.S)
    return len(re.findall(r"node_[0-9a-f]+", m.group(1))) if m else 0


def start(state_dir: Path, *, port: int = 6379, head_cpus: int = 1, worker_cpus: tuple[int, ...] = (1,),
          dashboard: bool = False, dashboard_port: int = 8265, object_store_mb: int = 256,
          timeout: float = 120) -> dict[str, Any]:
    if (state_dir / "cluster.json").exists():
        state = json.loads((state_dir / "cluster.json").read_text())
        if any(_alive(n["pid"]) for n in state["nodes"]):
            raise SystemExit(f"error: a cluster from {state_dir} is running at {state['address']}; stop it first")
    state_dir.mkdir(parents=True, exist_ok=True)
    token = ensure_token()
    address = f"{HEAD_IP}:{port}"
    state: dict[str, Any] = {"address": address, "token": token, "nodes": [],
                             "dashboard": f"http://127.0.0.1:{dashboard_port}" if dashboard else None}
    store = str(object_store_mb * 1024 * 1024)
    head = ["--head", f"--node-ip-address={HEAD_IP}", f"--port={port}", f"--num-cpus={head_cpus}",
            f"--object-store-memory={store}", f"--ray-client-server-port={free_port()}",
            f"--include-dashboard={str(dashboard).lower()}", "--disable-usage-stats"]
    if dashboard:  # the job API lives in the dashboard; keep it on loopback
        head += ["--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}"]
    plan = [("head", HEAD_IP, head_cpus, head)]
    for i, cpus in enumerate(worker_cpus):
        ip = f"127.0.0.{3 + i}"
        plan.append((f"worker{i + 1}", ip, cpus, [f"--address={address}", f"--node-ip-address={ip}",
                                                   f"--num-cpus={cpus}", f"--object-store-memory={store}",
                                                   "--disable-usage-stats"]))
    for *_, args in plan:  # the agent (job API) binds 127.0.0.1 too: its default 52365 clashes with other Rays
        args.append(f"--dashboard-agent-listen-port={free_port()}")
    try:
        for name, ip, cpus, args in plan:
            log = state_dir / f"{name}.log"
            proc = _spawn(args, log)
            state["nodes"].append({"name": name, "ip": ip, "cpus": cpus, "pid": proc.pid, "log": str(log)})
            (state_dir / "cluster.json").write_text(json.dumps(state, indent=1))
            _wait_started(proc, log, timeout)
        deadline = time.monotonic() + timeout
        while active_nodes(address) < len(plan):
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {active_nodes(address)} of {len(plan)} nodes joined")
            time.sleep(1)
    except BaseException:
        stop(state_dir)
        raise
    return state


def stop(state_dir: Path, grace: float = 20) -> list[int]:
    """End the process group of every node started from ``state_dir``, workers first."""
    path = state_dir / "cluster.json"
    if not path.exists():
        return []
    state = json.loads(path.read_text())
    stopped = []
    for node in reversed(state["nodes"]):
        pgid = node["pid"]
        if not _alive(pgid):
            continue
        os.kill(pgid, signal.SIGTERM)  # ray start --block ends its node's processes on SIGTERM
        deadline = time.monotonic() + grace
        while _alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pgid):
            os.killpg(pgid, signal.SIGKILL)
            while _alive(pgid) and time.monotonic() < deadline + 10:
                time.sleep(0.2)
        stopped.append(pgid)
    path.unlink()
    return stopped


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=["start", "stop", "status", "address"])
    p.add_argument("--state-dir", type=Path, default=DEFAULT_STATE, help=f"pids and logs (default {DEFAULT_STATE})")
    p.add_argument("--port", type=int, default=6379, help="GCS port of the head (default 6379)")
    p.add_argument("--head-cpus", type=int, default=1)
    p.add_argument("--worker-cpus", type=int, nargs="*", default=[1], help="one value per worker node")
    p.add_argument("--dashboard", action="store_true", help="start the dashboard (needed by ray job submit)")
    p.add_argument("--dashboard-port", type=int, default=8265)
    p.add_argument("--object-store-mb", type=int, default=256)
    a = p.parse_args(argv)
    if a.command == "start":
        try:
            s = start(a.state_dir, port=a.port, head_cpus=a.head_cpus, worker_cpus=tuple(a.worker_cpus),
                      dashboard=a.dashboard, dashboard_port=a.dashboard_port, object_store_mb=a.object_store_mb)
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        nodes = ", ".join(f"{n['name']} {n['ip']} ({n['cpus']} CPU)" for n in s["nodes"])
        print(f"Ray cluster at {s['address']}: {nodes}; token from {s['token']}")
        print("  export RAY_AUTH_MODE=token")
        print(f"  python -m harness sweep=smoke ray.address={s['address']}")
        if s["dashboard"]:
            print(f"  python scripts/submit.py --address {s['dashboard']} sweep=smoke")
        print(f"  python {sys.argv[0]} stop")
        return 0
    if a.command == "stop":
        stopped = stop(a.state_dir)
        print(f"stopped {len(stopped)} node(s)" if stopped else "no cluster running")
        return 0
    path = a.state_dir / "cluster.json"
    if not path.exists():
        print(f"error: no cluster started from {a.state_dir}", file=sys.stderr)
        return 1
    state = json.loads(path.read_text())
    if a.command == "address":
        print(state["address"])
        return 0
    return subprocess.run([*RAY, "status", f"--address={state['address']}"], env=node_env()).returncode


if __name__ == "__main__":
    sys.exit(main())
