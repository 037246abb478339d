"""A list-then-watch of one kind on its own thread, with the operator's JSON client.

kopf dispatches every event through its per-object workers, queues and handler registry; for a
kind the operator only counts (the revisions' pods: several status changes per pod, and a wave
moves thousands) that machinery cost about 3 s of CPU per 250 rollouts (docs/operator.md). Here
an event costs one JSON decode and a call.

The stream ends when the server's timeout does (or the connection breaks); the watch then goes on
from the last resourceVersion it saw, and lists again when the server says that version is gone
(410). A relist reports, as DELETED, what was known before and is absent now, so a deletion
missed while disconnected is not lost.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Protocol

from modelrollout.k8s.rest import ApiError, Manifest

log = logging.getLogger(__name__)

# The API server ends a watch after this long; a quiet stream is read this much longer before it
# is judged broken.
WATCH_SECONDS = 300
READ_GRACE_SECONDS = 30.0
BACKOFF_SECONDS = (0.5, 1.0, 2.0, 5.0, 10.0)

OnEvent = Callable[[str, Manifest], None]
_IDENTITY = ("uid", "name", "namespace")


class Source(Protocol):
    """What a watch needs of a client (k8s/rest.Rest)."""

    def request(self, method: str, path: str, body: object = None, *, content_type: str = ...,
                query: dict[str, str] | None = None) -> Manifest: ...  # fmt: skip

    def stream(self, path: str, query: dict[str, str], *,
               read_timeout: float) -> Iterator[Manifest]: ...  # fmt: skip


class Watch:
    """Every ADDED, MODIFIED and DELETED of `path`'s objects matching `selector`, to `on_event`
    (on this watch's thread; `on_event` must be thread-safe). Errors in `on_event` are logged
    and do not stop the watch."""

    def __init__(self, rest: Source, path: str, *, selector: str, on_event: OnEvent) -> None:
        self._rest = rest
        self._path = path
        self._selector = selector
        self._on_event = on_event
        self._known: dict[str, Manifest] = {}  # uid → the identity of what was last seen
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"watch {path}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stops at the next event or when the server ends the stream; the thread is a daemon,
        so a process that exits does not wait for it."""
        self._stopped.set()

    def _run(self) -> None:
        failures = 0
        version: str | None = None
        while not self._stopped.is_set():
            try:
                if version is None:
                    version = self._relist()
                version = self._follow(version)
                failures = 0
            except Exception as error:  # the watch must outlive any fault: it is the only one
                if isinstance(error, ApiError) and error.status == 410:  # that version is gone
                    version = None
                    continue
                pause = BACKOFF_SECONDS[min(failures, len(BACKOFF_SECONDS) - 1)]
                failures += 1
                log.warning("watch %s: %s; again in %.1f s", self._path, error, pause)
                self._stopped.wait(pause)

    def _give(self, kind: str, body: Manifest) -> None:
        meta = body.get("metadata") or {}
        uid = self._uid(body)
        if kind == "DELETED":
            self._known.pop(uid, None)
        else:  # what a relist needs to report its deletion: not the body (a pod is kilobytes)
            self._known[uid] = {"metadata": {k: meta[k] for k in _IDENTITY if k in meta}}
        try:
            self._on_event(kind, body)
        except Exception:  # one bad body must not end the watch
            log.exception("watch %s: handling %s", self._path, kind)

    def _relist(self) -> str:
        listed = self._rest.request("GET", self._path, query={"labelSelector": self._selector})
        items = listed.get("items") or []
        now = {self._uid(item): item for item in items}
        for uid, body in list(self._known.items()):
            if uid not in now:
                self._give("DELETED", body)
        for body in items:
            self._give("MODIFIED" if self._uid(body) in self._known else "ADDED", body)
        return str((listed.get("metadata") or {}).get("resourceVersion", ""))

    @staticmethod
    def _uid(body: Manifest) -> str:
        return str((body.get("metadata") or {}).get("uid", ""))

    def _follow(self, version: str) -> str:
        """Events from `version` on until the stream ends; the last version seen."""
        query = {"watch": "1", "labelSelector": self._selector, "resourceVersion": version,
                 "allowWatchBookmarks": "true", "timeoutSeconds": str(WATCH_SECONDS)}  # fmt: skip
        for event in self._rest.stream(self._path, query, read_timeout=WATCH_SECONDS
                                       + READ_GRACE_SECONDS):  # fmt: skip
            if self._stopped.is_set():
                break
            kind, body = str(event.get("type", "")), event.get("object") or {}
            if kind == "ERROR":  # 410: the version asked for is gone, and _run lists again
                raise ApiError(body.get("code"), str(body.get("message", "watch error")))
            version = str((body.get("metadata") or {}).get("resourceVersion", version))
            if kind in ("ADDED", "MODIFIED", "DELETED"):
                self._give(kind, body)
        return version


__all__ = ["Watch"]
