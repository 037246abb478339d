"""A private network namespace for the local cluster's data plane: where pods get their IPs.

Why not loopback pod IPs: the API server refuses an EndpointSlice (and an Endpoints) address in
127.0.0.0/8 ("may not be in the loopback range"), so a Service whose pods have loopback IPs has no
endpoints and no gateway can route to it. A real node gives pods addresses from a pod CIDR; here,
one namespace created with `unshare --net` holds the pod CIDR and the Service CIDR as local
routes on its own `lo`, so every pod process binds its own address, while the machine's network
is left exactly as it was (nothing is added to it, no /etc file is touched).

What crosses the boundary, both ways, goes through relays in this process: the API server is
reached from inside at the same 127.0.0.1 address and port as outside (its certificate names
127.0.0.1), and a port inside (the gateway's entry point, Prometheus) is exposed on 127.0.0.1
outside under the same number.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import selectors
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from modelrollout.testing.processes import ControlPlaneError, ManagedProcess, StartStop, tail

POD_CIDR = "10.88.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"  # the API server's --service-cluster-ip-range
_CLONE_NEWNET = 0x40000000
_LIBC = ctypes.CDLL("libc.so.6", use_errno=True)


def _setns(fd: int) -> None:
    if _LIBC.setns(fd, _CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")


class Relay:
    """Accepts on `listener`; each connection is joined to a socket from `connect()`."""

    def __init__(self, listener: socket.socket, connect: Callable[[], socket.socket],
                 name: str) -> None:  # fmt: skip
        self.listener, self.connect, self.name = listener, connect, name
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, name=f"relay {name}", daemon=True)
        self.listener.settimeout(0.2)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._join, args=(client,), daemon=True).start()

    def _join(self, client: socket.socket) -> None:
        try:
            upstream = self.connect()
        except OSError:
            client.close()
            return
        with client, upstream, selectors.DefaultSelector() as selector:
            selector.register(client, selectors.EVENT_READ, upstream)
            selector.register(upstream, selectors.EVENT_READ, client)
            while selector.get_map() and not self._stopped.is_set():
                for key, _ in selector.select(0.5):
                    source: socket.socket = key.fileobj  # type: ignore[assignment]
                    target: socket.socket = key.data
                    try:
                        data = source.recv(65536)
                        if data:
                            target.sendall(data)
                            continue
                        target.shutdown(socket.SHUT_WR)  # half-close, as TCP would pass it on
                    except OSError:
                        return
                    selector.unregister(source)

    def close(self) -> None:
        self._stopped.set()
        self.listener.close()
        self._thread.join(timeout=2)


class Network(StartStop):
    """The data plane's namespace, held by one sleeping process; `start()` returns when it is up."""

    def __init__(self, *, tie_to_parent: bool = True) -> None:
        self.tie_to_parent = tie_to_parent
        self.workdir: Path | None = None  # kept after stop, for leftovers
        self.holder: ManagedProcess | None = None
        self.relays: list[Relay] = []

    def start(self) -> None:
        unshare = shutil.which("unshare")
        if unshare is None:
            raise ControlPlaneError("unshare (util-linux) is not installed")
        self.workdir = Path(tempfile.mkdtemp(prefix="modelrollout-netns-"))
        ready = self.workdir / "ready"
        script = (
            f"ip link set lo up && ip route add local {POD_CIDR} dev lo"
            f" && ip route add local {SERVICE_CIDR} dev lo && touch {ready}"
            " && exec sleep 2147483647"
        )
        self.holder = ManagedProcess("netns", [unshare, "--net", "--", "sh", "-c", script],
                                     self.workdir / "netns.log",
                                     tie_to_parent=self.tie_to_parent)  # fmt: skip
        self.holder.start()
        self.holder.wait_until(ready.exists, "holding a network namespace", 10)

    @property
    def pid(self) -> int:
        if self.holder is None:
            raise ControlPlaneError("the data plane's network namespace is not started")
        return self.holder.pid

    @property
    def path(self) -> str:
        return f"/proc/{self.pid}/ns/net"

    def argv(self, argv: list[str]) -> list[str]:
        """`argv`, run inside the namespace."""
        nsenter = shutil.which("nsenter")
        if nsenter is None:
            raise ControlPlaneError("nsenter (util-linux) is not installed")
        return [nsenter, f"--net={self.path}", "--", *argv]

    @contextlib.contextmanager
    def inside(self) -> Iterator[None]:
        """This thread is in the namespace for the block: sockets made here belong to it."""
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(self.path, os.O_RDONLY)
        try:
            _setns(target)
            try:
                yield
            finally:
                _setns(own)
        finally:
            os.close(target)
            os.close(own)

    def connect(self, host: str, port: int, timeout: float = 2.0) -> socket.socket:
        """A TCP connection to `host:port` as seen from inside."""
        with self.inside():
            return socket.create_connection((host, port), timeout=timeout)

    def expose(self, port: int) -> None:
        """127.0.0.1:`port` outside leads to 127.0.0.1:`port` inside."""
        listener = socket.create_server(("127.0.0.1", port))
        self.relays.append(Relay(listener, lambda: self.connect("127.0.0.1", port), f"{port}>"))

    def reach(self, port: int) -> None:
        """127.0.0.1:`port` inside leads to 127.0.0.1:`port` outside."""
        with self.inside():
            listener = socket.create_server(("127.0.0.1", port))
        self.relays.append(Relay(listener,
                                 lambda: socket.create_connection(("127.0.0.1", port), timeout=2),
                                 f">{port}"))  # fmt: skip

    def listen(self, host: str, port: int) -> socket.socket:
        """A listening socket at `host:port` inside (e.g. a Service's cluster IP)."""
        with self.inside():
            return socket.create_server((host, port))

    def stop(self) -> None:
        for relay in self.relays:
            relay.close()
        self.relays = []
        if self.holder is not None:
            self.holder.stop()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def leftovers(self) -> list[str]:
        found = []
        if self.holder is not None and self.holder.exit_code() is None:
            found.append(f"netns holder ({self.holder.pid}) still running")
        if self.workdir is not None and self.workdir.exists():
            found.append(f"directory {self.workdir} still exists")
        found += [f"relay {r.name} still listening" for r in self.relays]
        return found

    def log(self) -> str:
        return tail(self.workdir / "netns.log") if self.workdir else ""


__all__ = ["POD_CIDR", "SERVICE_CIDR", "Network", "Relay"]
