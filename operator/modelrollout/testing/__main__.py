"""`python -m modelrollout.testing up|down|status`: a local control plane for humans.

`up` starts a cluster that outlives this command (its processes are not tied to it), saves its
state and prints the `export KUBECONFIG=...` line; `down` stops it from that state.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from modelrollout.testing.cluster import Binaries, LocalCluster, stop_from_state
from modelrollout.testing.processes import ControlPlaneError, pid_alive


def _state_file() -> Path:
    cache = os.environ.get("MODELROLLOUT_CACHE") or str(Path.home() / ".cache" / "modelrollout")
    return Path(cache) / "run" / "cluster.json"


def _load_state(path: Path) -> dict[str, object] | None:
    try:
        loaded: dict[str, object] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return loaded


def _running(state: dict[str, object]) -> bool:
    pids = state.get("pids")
    return isinstance(pids, dict) and any(pid_alive(int(p)) for p in pids.values())


def up(state_path: Path, nodes: int) -> int:
    state = _load_state(state_path)
    if state is not None and _running(state):
        print(f"# a local cluster is already running ({state_path})", file=sys.stderr)
        print(f"export KUBECONFIG={state['kubeconfig']}")
        return 0
    cluster = LocalCluster(Binaries.locate(), nodes=nodes, tie_to_parent=False)
    cluster.start()
    state_path.parent.mkdir(parents=True, exist_ok=True)
    state_path.write_text(json.dumps(cluster.state(), indent=2))
    kubeconfig = cluster.kubeconfig
    cluster.detach()  # the processes must outlive this command
    print(
        f"# local cluster up: {cluster.server}; stop it with `make cluster-down`", file=sys.stderr
    )
    print(f"export KUBECONFIG={kubeconfig}")
    return 0


def down(state_path: Path) -> int:
    state = _load_state(state_path)
    if state is None:
        print("no local cluster recorded; nothing to stop", file=sys.stderr)
        return 0
    stop_from_state(state)
    state_path.unlink(missing_ok=True)
    print(f"stopped the local cluster in {state['workdir']}", file=sys.stderr)
    return 0


def status(state_path: Path) -> int:
    state = _load_state(state_path)
    if state is None or not _running(state):
        print("no local cluster running")
        return 1
    print(f"running: {state['server']}\nexport KUBECONFIG={state['kubeconfig']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modelrollout.testing")
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--nodes", type=int, default=2, help="kwok nodes to create (default 2)")
    parser.add_argument("--state", type=Path, default=_state_file(), help="state file")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            return up(args.state, args.nodes)
        if args.command == "down":
            return down(args.state)
        return status(args.state)
    except ControlPlaneError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
