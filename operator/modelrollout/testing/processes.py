"""Start, probe and stop the local control plane's processes.

Every process is started in its own session (so a Ctrl-C in the terminal reaches pytest, which then
stops them in order) and, when tied to its parent, with PR_SET_PDEATHSIG so that it dies with the
test run even if that run is killed with SIGKILL and no finaliser gets to run.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

_PR_SET_PDEATHSIG = 1


class ControlPlaneError(RuntimeError):
    """A component of the local control plane could not be built, started or reached."""


def free_ports(count: int) -> list[int]:
    """Return `count` distinct ports that are free on 127.0.0.1 right now.

    All sockets are held open until every port is chosen, so the ports are distinct; another
    process may still take one before we bind it, which the callers' start-up checks surface.
    """
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


HACK = Path(__file__).resolve().parents[3] / "hack"


def built(name: str, variable: str, script: str) -> Path:
    """The executable `name`: the one the environment `variable` names, else the cached build of
    hack/`script` (built if cold; the script prints its path on its last line)."""
    named = os.environ.get(variable)
    if named:
        path = Path(named)
    else:
        result = subprocess.run(["bash", str(HACK / script)], capture_output=True, text=True,
                                check=False)  # fmt: skip
        if result.returncode != 0:
            raise ControlPlaneError(f"building {name} failed:\n{result.stderr[-3000:]}")
        path = Path(result.stdout.strip().splitlines()[-1])
    if not path.is_file() or not os.access(path, os.X_OK):
        raise ControlPlaneError(f"{name}: no executable at {path}")
    return path


def http_ok(
    url: str, *, context: ssl.SSLContext | None = None, expect: bytes | None = None
) -> bool:
    """True when `url` answers 200 (and its body contains `expect`); False on any failure."""
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:  # noqa: S310
            body: bytes = response.read()
            return response.status == 200 and (expect is None or expect in body)
    except (urllib.error.URLError, OSError, ssl.SSLError):
        return False


def die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log file, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def pid_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state field follows the parenthesised command name, which may contain spaces.
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def processes_mentioning(marker: str) -> list[int]:
    """Pids of live processes whose command line contains `marker` (a unique work-dir path)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            pid = int(entry.name)
            if any(marker in arg for arg in cmdline(pid)) and pid_alive(pid):
                found.append(pid)
    return found


def terminate(pid: int, marker: str, timeout: float = 10.0) -> None:
    """Stop `pid`, recorded by another process, with SIGTERM then SIGKILL, if it is still ours.

    `marker` must appear in its command line: a recorded pid may have been reused by an unrelated
    process, which must not be killed.
    """
    if not any(marker in arg for arg in cmdline(pid)):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@dataclass
class ManagedProcess:
    """One started component: its name, argv, log file and Popen handle."""

    name: str
    argv: Sequence[str]
    log_path: Path
    tie_to_parent: bool = True
    env: dict[str, str] | None = None
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        binary = Path(self.argv[0])
        if not binary.is_file() or not os.access(binary, os.X_OK):
            raise ControlPlaneError(f"{self.name}: no executable at {binary}")
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                list(self.argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent if self.tie_to_parent else None,  # noqa: PLW1509
                env=self.env,
            )

    @property
    def pid(self) -> int:
        if self.popen is None:
            raise ControlPlaneError(f"{self.name} was never started")
        return self.popen.pid

    def exit_code(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def wait_until(self, probe: Callable[[], bool], what: str, timeout: float) -> None:
        """Poll `probe` until it holds; fail fast, with the log's tail, if the process exits."""
        deadline = time.monotonic() + timeout
        while True:
            code = self.exit_code()
            if code is not None:
                raise ControlPlaneError(
                    f"{self.name} exited with code {code} before it was {what}; "
                    f"last lines of {self.log_path}:\n{tail(self.log_path)}"
                )
            if probe():
                return
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"{self.name} was not {what} within {timeout:.0f} s; "
                    f"last lines of {self.log_path}:\n{tail(self.log_path)}"
                )
            time.sleep(0.2)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL. Our un-reaped child's pid cannot have been reused, so no
        marker check is needed (and its /proc cmdline is empty for a moment after spawning)."""
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.terminate()
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=timeout)


def exit_cleanly_on_sigterm() -> None:
    """Make SIGTERM a normal exit, so atexit hooks stop what we started and remove its files.

    Python's default for SIGTERM ends the process without running atexit; the children would
    die (PR_SET_PDEATHSIG) but their work directories would stay. Only the main thread may set
    handlers, and a handler someone else installed is left alone.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))


class StartStop:
    """`with` support for anything with start() and stop()."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@contextlib.contextmanager
def cleanup_on_error(stop: Callable[[], None]) -> Iterator[None]:
    """Run `stop` if the body raises (including KeyboardInterrupt), then re-raise."""
    try:
        yield
    except BaseException:
        stop()
        raise
