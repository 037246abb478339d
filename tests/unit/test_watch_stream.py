"""The raw watch that feeds the pod store: it lists, follows from the listed version, goes on
from the last version it saw when a stream ends, lists again when that version is gone, and
reports as deleted what vanished while it was not looking."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from modelrollout.k8s.rest import ApiError, Manifest, _lines, path
from modelrollout.k8s.watch import Watch


def pod(uid: str, version: str) -> Manifest:
    return {"metadata": {"uid": uid, "name": f"pod-{uid}", "resourceVersion": version}}


class FakeServer:
    """Answers lists and watches from scripts; the last watch blocks until the test ends."""

    def __init__(self, lists: list[Manifest], streams: list[list[Manifest] | ApiError]) -> None:
        self.lists, self.streams = lists, streams
        self.asked: list[tuple[str, dict[str, str]]] = []
        self.done = threading.Event()

    def request(self, method: str, path: str, body: object = None, *, content_type: str = "",
                query: dict[str, str] | None = None) -> Manifest:  # fmt: skip
        self.asked.append(("list", dict(query or {})))
        return self.lists.pop(0)

    def stream(self, path: str, query: dict[str, str], *,
               read_timeout: float) -> Iterator[Manifest]:  # fmt: skip
        self.asked.append(("watch", dict(query)))
        if not self.streams:
            self.done.set()
            threading.Event().wait(5)
            return
        script = self.streams.pop(0)
        if isinstance(script, ApiError):
            raise script
        yield from script


def run(server: FakeServer) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    watch = Watch(
        server,
        "/api/v1/pods",
        selector="modelrollout.io/revision",
        on_event=lambda kind, body: seen.append((kind, body["metadata"]["uid"])),
    )
    watch.start()
    assert server.done.wait(10), "the watch never reached its last stream"
    watch.stop()
    return seen


def test_it_lists_then_follows_from_the_listed_version_and_then_from_the_last_seen() -> None:
    server = FakeServer(
        [{"metadata": {"resourceVersion": "10"}, "items": [pod("a", "9")]}],
        [[{"type": "MODIFIED", "object": pod("a", "11")},
          {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "12"}}}],
         [{"type": "ADDED", "object": pod("b", "13")}]])  # fmt: skip
    assert run(server) == [("ADDED", "a"), ("MODIFIED", "a"), ("ADDED", "b")]
    versions = [query.get("resourceVersion") for kind, query in server.asked if kind == "watch"]
    assert versions == ["10", "12", "13"]
    assert all(query["labelSelector"] == "modelrollout.io/revision" for _, query in server.asked)


def test_a_gone_version_lists_again_and_a_pod_deleted_meanwhile_is_reported_deleted() -> None:
    server = FakeServer(
        [
            {"metadata": {"resourceVersion": "10"}, "items": [pod("a", "9"), pod("b", "9")]},
            {"metadata": {"resourceVersion": "40"}, "items": [pod("b", "30")]},
        ],
        [[{"type": "ERROR", "object": {"code": 410, "message": "too old resource version"}}]],
    )
    assert run(server) == [("ADDED", "a"), ("ADDED", "b"), ("DELETED", "a"), ("MODIFIED", "b")]


def test_a_broken_stream_is_followed_again_after_a_pause_without_losing_its_place() -> None:
    server = FakeServer(
        [{"metadata": {"resourceVersion": "10"}, "items": []}],
        [ApiError(None, "watch broken"), [{"type": "ADDED", "object": pod("c", "11")}]],
    )
    assert run(server) == [("ADDED", "c")]
    assert [kind for kind, _ in server.asked] == ["list", "watch", "watch", "watch"]


def test_a_handler_that_raises_does_not_end_the_watch() -> None:
    server = FakeServer([{"metadata": {"resourceVersion": "1"}, "items": []}],
                        [[{"type": "ADDED", "object": pod("x", "2")},
                          {"type": "ADDED", "object": pod("y", "3")}]])  # fmt: skip
    handled: list[str] = []

    def handler(kind: str, body: Manifest) -> None:
        handled.append(body["metadata"]["uid"])
        raise RuntimeError("boom")

    watch = Watch(server, "/api/v1/pods", selector="s", on_event=handler)
    watch.start()
    assert server.done.wait(10)
    watch.stop()
    assert handled == ["x", "y"]


def test_a_newline_delimited_stream_is_split_whatever_its_chunking() -> None:
    chunks: list[bytes] = [b'{"a": 1}\n{"b"', b": 2}\n", b'\n{"c": 3}']
    parsed: list[Any] = list(_lines(iter(chunks)))
    assert parsed == [{"a": 1}, {"b": 2}, {"c": 3}]


def test_collections_in_one_namespace_or_all() -> None:
    assert path("", "v1", "pods", None) == "/api/v1/pods"
    assert path("", "v1", "pods", "ml") == "/api/v1/namespaces/ml/pods"
    assert path("apps", "v1", "deployments", "ml") == ("/apis/apps/v1/namespaces/ml/deployments")
