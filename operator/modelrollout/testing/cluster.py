"""A real, local Kubernetes control plane: etcd, kube-apiserver (RBAC on), kube-controller-manager,
kube-scheduler and kwok-managed nodes, all on 127.0.0.1 with free ports and fresh certificates.

The binaries are built from the Go module proxy by ``hack/build-control-plane.sh`` into a cache
directory outside the repository. Use it as a context manager, from pytest fixtures, or from the
shell (``python -m modelrollout.testing.cluster up|down``).
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelrollout.k8s.rest import Connection, Rest
from modelrollout.testing.kubelet import Image, ProcessNode
from modelrollout.testing.netns import Network
from modelrollout.testing.pki import Pki, make_pki, render_kubeconfig
from modelrollout.testing.processes import (
    ControlPlaneError,
    ManagedProcess,
    StartStop,
    cleanup_on_error,
    exit_cleanly_on_sigterm,
    free_ports,
    http_ok,
    pid_alive,
    processes_mentioning,
    terminate,
)
from modelrollout.testing.prometheus import PodsJob

WORKDIR_PREFIX = "modelrollout-cluster-"
REPO_ROOT = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = REPO_ROOT / "hack" / "build-control-plane.sh"
_KWOK_STAGES = (
    "node/fast/node-initialize.yaml",
    "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/fast/pod-complete.yaml",
    "pod/fast/pod-delete.yaml",
)


@dataclass(frozen=True)
class Binaries:
    """The output directory of one control-plane build."""

    root: Path

    def bin(self, name: str) -> Path:
        return self.root / "bin" / name

    @property
    def kubectl(self) -> Path:
        return self.bin("kubectl")

    @property
    def kwok_stages(self) -> Path:
        return self.root / "kwok-stages"

    @property
    def crd_dirs(self) -> list[Path]:
        return [self.root / "crds" / "gateway-api", self.root / "crds" / "istio"]

    @classmethod
    def locate(cls) -> Binaries:
        """The build named by MODELROLLOUT_CONTROLPLANE, else the cached build (built if cold)."""
        named = os.environ.get("MODELROLLOUT_CONTROLPLANE")
        if named:
            return cls(Path(named))
        if not BUILD_SCRIPT.is_file():
            raise ControlPlaneError(
                f"no control-plane build: set MODELROLLOUT_CONTROLPLANE or run {BUILD_SCRIPT}"
            )
        result = subprocess.run(
            ["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise ControlPlaneError(f"building the control plane failed:\n{result.stderr[-3000:]}")
        return cls(Path(result.stdout.strip().splitlines()[-1]))


def _admin_context(pki: Pki) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    ctx.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
    return ctx


# The controller manager and scheduler serve /healthz with their own self-signed certificates;
# the probe sends no credentials, so not verifying them is harmless.
_SELF_SIGNED = ssl._create_unverified_context()  # noqa: S323


def _node_manifest(name: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
            "annotations": {"kwok.x-k8s.io/node": "fake"},
        },
    }


class LocalCluster(StartStop):
    """One control plane; `start()` returns once nodes are Ready and CRDs are established."""

    def __init__(
        self,
        binaries: Binaries,
        *,
        nodes: int = 2,
        install_crds: bool = True,
        tie_to_parent: bool = True,
        start_timeout: float = 120.0,
        workdir_parent: Path | None = None,
        images: Mapping[str, Image] | None = None,
    ) -> None:
        """`images`: also run a process node (kubelet.py) whose pods run these images as local
        processes in the data plane's network namespace (netns.py)."""
        self.binaries = binaries
        self.node_count = nodes
        self.install_crds = install_crds
        self.tie_to_parent = tie_to_parent
        self.start_timeout = start_timeout
        # etcd's data in memory is faster; mkdtemp makes a private directory wherever it is.
        shm = Path("/dev/shm")  # noqa: S108
        self._workdir_parent = workdir_parent or (shm if shm.is_dir() else None)
        self.workdir: Path | None = None
        self.processes: list[ManagedProcess] = []
        self.server = ""
        self._pki: Pki | None = None
        self.images = images
        self.network: Network | None = None
        self.node: ProcessNode | None = None

    # -- public surface ------------------------------------------------------------------------

    @property
    def kubeconfig(self) -> Path:
        return self._dir / "kubeconfig"

    def start(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX, dir=self._workdir_parent))
        atexit.register(self.stop)
        exit_cleanly_on_sigterm()
        with cleanup_on_error(self.stop):
            self._pki = make_pki(self._dir / "pki")
            etcd_port, etcd_peer, api, kcm, sched, kwok = free_ports(6)
            self._start_etcd(etcd_port, etcd_peer)
            self._start_apiserver(api, etcd_port)
            self.kubeconfig.write_text(render_kubeconfig(self.server, self._pki))
            if self.images is not None:
                self.network = Network(tie_to_parent=self.tie_to_parent)
                self.network.start()
                self.network.reach(api)  # the API server, at the same address inside
            self._start_controller_manager(kcm)
            self._start_scheduler(sched)
            self._start_kwok(kwok)
            self._create_nodes()
            self._wait_for_default_service_account()
            if self.images is not None and self.network is not None:
                self.node = ProcessNode(self.kubeconfig, self.network, self.images)
                self.node.start()
            if self.install_crds:
                self._install_crds()

    def stop(self) -> None:
        """Stop every process (newest first) and remove the work directory. Idempotent."""
        if self.workdir is None:
            return
        if self.node is not None:
            self.node.stop()
        if self.network is not None:
            self.network.stop()
        for process in reversed(self.processes):
            process.stop()
        keep = os.environ.get("MODELROLLOUT_KEEP_LOGS")
        if keep:
            target = Path(keep) / self.workdir.name
            target.mkdir(parents=True, exist_ok=True)
            for log in self.workdir.glob("*.log"):
                shutil.copy(log, target / log.name)
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir = None
        atexit.unregister(self.stop)

    def stop_apiserver(self) -> None:
        """The first half of an API server restart: until `start_apiserver`, nobody gets an
        answer (etcd, the controllers, the nodes and Traefik stay up)."""
        self._process("kube-apiserver").stop()

    def start_apiserver(self) -> None:
        """Start the stopped API server again with the same flags and port; returns once it is
        ready (/readyz)."""
        apiserver = self._process("kube-apiserver")
        apiserver.start()
        admin = _admin_context(self._pki) if self._pki is not None else None
        apiserver.wait_until(
            lambda: http_ok(f"{self.server}/readyz", context=admin, expect=b"ok"),
            "ready again (/readyz)",
            self.start_timeout,
        )

    def _process(self, name: str) -> ManagedProcess:
        found = next((p for p in self.processes if p.name == name), None)
        if found is None:
            raise ControlPlaneError(f"{name} is not running in this cluster")
        return found

    def detach(self) -> None:
        """Forget the running processes so that they outlive this Python process."""
        self.workdir = None
        self.processes = []
        atexit.unregister(self.stop)

    def leftovers(self, marker: str) -> list[str]:
        """What a stopped cluster left behind: live processes and files under `marker`."""
        found = [f"process {pid} still running" for pid in processes_mentioning(marker)]
        found += [f"process {p.name} ({p.pid}) still running" for p in self.processes
                  if p.popen is not None and pid_alive(p.pid)]  # fmt: skip
        if Path(marker).exists():
            found.append(f"directory {marker} still exists")
        if self.node is not None:
            found += self.node.leftovers()
        if self.network is not None:
            found += self.network.leftovers()
        return found

    def pods_job(self, name: str = "pods") -> PodsJob:
        """A Prometheus job that finds the annotated pods through this API server (for a
        Prometheus in the data plane's namespace, where the API server has the same address)."""
        if self._pki is None:
            raise ControlPlaneError("the cluster is not started")
        return PodsJob(name, self.server, self._pki.ca_cert, self._pki.admin_cert,
                       self._pki.admin_key)  # fmt: skip

    def admin_context(self) -> ssl.SSLContext:
        """TLS for the API server as the admin user, e.g. to read its /metrics."""
        if self._pki is None:
            raise ControlPlaneError("the cluster is not started")
        return _admin_context(self._pki)

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.binaries.kubectl), f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise ControlPlaneError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def service_account_kubeconfig(self, namespace: str, name: str, path: Path) -> Path:
        """A kubeconfig that acts as ServiceAccount `namespace/name`, with a token from the
        TokenRequest API: what an operator in a pod gets, for running it out of the cluster."""
        token = self.kubectl("create", "token", name, "-n", namespace, "--duration=2h").stdout
        assert self._pki is not None
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "local", "cluster": {
                "server": self.server, "certificate-authority": str(self._pki.ca_cert)}}],
            "users": [{"name": name, "user": {"token": token.strip()}}],
            "contexts": [{"name": name, "context": {"cluster": "local", "user": name,
                                                    "namespace": namespace}}],
            "current-context": name,
        }  # fmt: skip
        path.write_text(json.dumps(config, indent=2))
        return path

    def state(self) -> dict[str, object]:
        """Enough to stop this cluster from another process (`make cluster-down`)."""
        return {
            "workdir": str(self._dir),
            "kubeconfig": str(self.kubeconfig),
            "server": self.server,
            "pids": {p.name: p.pid for p in self.processes},
        }

    # -- start-up ------------------------------------------------------------------------------

    @property
    def _dir(self) -> Path:
        if self.workdir is None:
            raise ControlPlaneError("the cluster is not started")
        return self.workdir

    def _launch(self, name: str, *args: str) -> ManagedProcess:
        process = ManagedProcess(
            name=name,
            argv=[str(self.binaries.bin(name)), *args],
            log_path=self._dir / f"{name}.log",
            tie_to_parent=self.tie_to_parent,
        )
        process.start()
        self.processes.append(process)
        return process

    def _start_etcd(self, port: int, peer: int) -> None:
        client, peer_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{peer}"
        etcd = self._launch(
            "etcd",
            "--name=node0",
            f"--data-dir={self._dir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=node0={peer_url}",
            "--listen-metrics-urls=",
            "--auto-compaction-retention=1",
            "--unsafe-no-fsync=true",
        )
        etcd.wait_until(
            lambda: http_ok(f"{client}/health", expect=b'"health":"true"'),
            "healthy",
            self.start_timeout,
        )

    def _start_apiserver(self, port: int, etcd_port: int) -> None:
        pki = self._pki
        assert pki is not None
        self.server = f"https://127.0.0.1:{port}"
        apiserver = self._launch(
            "kube-apiserver",
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            # the `kubernetes` Endpoints may not point at loopback, so no endpoint reconciler
            "--endpoint-reconciler-type=none",
            f"--secure-port={port}",
            f"--cert-dir={self._dir / 'apiserver'}",
            f"--tls-cert-file={pki.admin_cert}",
            f"--tls-private-key-file={pki.admin_key}",
            f"--client-ca-file={pki.ca_cert}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.sa_key}",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--authorization-mode=Node,RBAC",
            "--allow-privileged=true",
        )
        admin = _admin_context(pki)
        apiserver.wait_until(
            lambda: http_ok(f"{self.server}/readyz", context=admin, expect=b"ok"),
            "ready (/readyz)",
            self.start_timeout,
        )

    def _component_kubeconfig_args(self) -> list[str]:
        k = self.kubeconfig
        return [f"--kubeconfig={k}", f"--authentication-kubeconfig={k}",
                f"--authorization-kubeconfig={k}"]  # fmt: skip

    def _start_controller_manager(self, port: int) -> None:
        pki = self._pki
        assert pki is not None
        kcm = self._launch(
            "kube-controller-manager",
            *self._component_kubeconfig_args(),
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            "--leader-elect=false",
            f"--root-ca-file={pki.ca_cert}",
            f"--service-account-private-key-file={pki.sa_key}",
            "--use-service-account-credentials=true",
            "--kube-api-qps=500",
            "--kube-api-burst=1000",
            "--node-monitor-period=5s",
            "--node-monitor-grace-period=40s",
        )
        kcm.wait_until(
            lambda: http_ok(f"https://127.0.0.1:{port}/healthz", context=_SELF_SIGNED),
            "healthy",
            self.start_timeout,
        )

    def _start_scheduler(self, port: int) -> None:
        scheduler = self._launch(
            "kube-scheduler",
            *self._component_kubeconfig_args(),
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            "--leader-elect=false",
        )
        scheduler.wait_until(
            lambda: http_ok(f"https://127.0.0.1:{port}/healthz", context=_SELF_SIGNED),
            "healthy",
            self.start_timeout,
        )

    def _start_kwok(self, port: int) -> None:
        stages = ",".join(str(self.binaries.kwok_stages / s) for s in _KWOK_STAGES)
        kwok = self._launch(
            "kwok",
            f"--kubeconfig={self.kubeconfig}",
            # the kwok nodes only: the process node, if any, has its own kubelet
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--node-lease-duration-seconds=40",
            "--cidr=10.244.0.0/16",
            "--node-ip=10.240.0.1",
            f"--server-address=127.0.0.1:{port}",
            f"--config={stages}",
        )
        kwok.wait_until(
            lambda: http_ok(f"http://127.0.0.1:{port}/healthz"), "healthy", self.start_timeout
        )

    def _create_nodes(self) -> None:
        names = [f"kwok-node-{i}" for i in range(self.node_count)]
        manifests = {"apiVersion": "v1", "kind": "List",
                     "items": [_node_manifest(n) for n in names]}  # fmt: skip
        self.kubectl("apply", "-f", "-", stdin=json.dumps(manifests))
        kwok = next(p for p in self.processes if p.name == "kwok")
        kwok.wait_until(lambda: self._ready_nodes() >= len(names), "making nodes Ready", 60)

    def _ready_nodes(self) -> int:
        result = self.kubectl("get", "nodes", "-o", "json", check=False)
        if result.returncode != 0:
            return 0
        ready = 0
        for node in json.loads(result.stdout)["items"]:
            conditions = node.get("status", {}).get("conditions", [])
            if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                ready += 1
        return ready

    def _wait_for_default_service_account(self) -> None:
        # Pods are refused in a namespace until the controller manager has created its
        # `default` ServiceAccount.
        kcm = next(p for p in self.processes if p.name == "kube-controller-manager")
        kcm.wait_until(
            lambda: self.kubectl("get", "sa", "default", check=False).returncode == 0,
            "creating the default ServiceAccount",
            60,
        )

    def _install_crds(self) -> None:
        for directory in self.binaries.crd_dirs:
            # server-side apply: the Istio CRDs exceed the client-side last-applied annotation
            self.kubectl("apply", "--server-side", "-f", str(directory), timeout=120)
        self.established()

    def established(self, *names: str, timeout: float = 60) -> None:
        """Wait until the CRDs `names` (every CRD when none) are Established. `kubectl wait`
        fails at once, rather than waits, on a CRD whose status has no conditions yet (just
        created on a busy API server: "accessor error: <nil>"), so the condition is read."""

        def condition_true() -> bool:
            got = self.kubectl("get", "crd", *names, "-o", "json", check=False)
            if got.returncode != 0:
                return False
            body = json.loads(got.stdout)
            items = body.get("items", [body])
            return bool(items) and all(
                any(c.get("type") == "Established" and c.get("status") == "True"
                    for c in (i.get("status") or {}).get("conditions") or [])
                for i in items)  # fmt: skip

        if not wait_for(condition_true, timeout):
            raise ControlPlaneError(
                f"CRDs {' '.join(names) or 'all'} not Established in {timeout} s"
            )


def wait_for(predicate: Callable[[], object], timeout: float, interval: float = 0.5) -> bool:
    """Poll `predicate` until it returns truthy or `timeout` passes; return its last truth."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def stop_from_state(state: dict[str, object]) -> None:
    """Stop a cluster started by another process, from its saved `state()`."""
    workdir = str(state["workdir"])
    pids = state.get("pids", {})
    assert isinstance(pids, dict)
    for pid in reversed(list(pids.values())):
        terminate(int(pid), workdir)
    for pid in processes_mentioning(workdir):
        terminate(pid, workdir)
    shutil.rmtree(workdir, ignore_errors=True)


_RESTS: dict[int, tuple[object, Rest]] = {}


def rest_of(api: Any) -> Rest:
    """The operator's own client (k8s/rest.py) for the server and credentials of an official
    client's ApiClient, one per ApiClient: what tests give the product's adapters."""
    known = _RESTS.get(id(api))
    if known is not None and known[0] is api:
        return known[1]
    c = api.configuration
    rest = Rest(Connection(str(c.host), ca_file=c.ssl_ca_cert, cert_file=c.cert_file,
                           key_file=c.key_file, insecure=not c.verify_ssl))  # fmt: skip
    _RESTS[id(api)] = (api, rest)
    return rest
