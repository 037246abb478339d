"""kopf wiring: settings, the watches that feed the store and the scheduler, and the scheduler's
workers that tick rollouts. The revisions' pods are watched by the operator's own list-and-watch
(k8s/watch.py), not kopf: they are many, and only counted.

No thread belongs to a rollout: watch events (a spec change, a command, an owned object that
changed) make a rollout due at once, its own timers otherwise (controller/scheduler.py). The API
client, the store and the scheduler live in kopf's memo.

kopf has priority peering, not leader election: run one replica (the chart uses `Recreate`).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from functools import partial
from typing import Any, cast

import kopf

from modelrollout.analysis.counting import MetricsSource
from modelrollout.analysis.series import Credentials
from modelrollout.api.settings import MAX_WORKERS, METRICS_PORT, NAMESPACES
from modelrollout.api.v1alpha1 import GROUP, PLURAL, VERSION, PrometheusSource
from modelrollout.controller import metrics
from modelrollout.controller.delivery import Sender
from modelrollout.controller.notify import Outbox
from modelrollout.controller.scheduler import Scheduler
from modelrollout.controller.tick import Ticker
from modelrollout.domain.machine import Event
from modelrollout.domain.revision import REVISION_LABEL
from modelrollout.k8s.cluster import KubeCluster
from modelrollout.k8s.owner import ROLLOUT_LABEL, Owner
from modelrollout.k8s.rest import Connection, Rest, path
from modelrollout.k8s.store import Key, Kind, Store, Workload, key_of
from modelrollout.k8s.watch import Watch
from modelrollout.routers.gateway_api import GROUP as ROUTE_GROUP
from modelrollout.routers.gateway_api import PLURAL as ROUTE_PLURAL
from modelrollout.routers.gateway_api import VERSION as ROUTE_VERSION
from modelrollout.routers.gateway_api import route_news
from modelrollout.routers.registry import router_for

# Threads that tick rollouts; any number of rollouts share them.
WORKERS = int(MAX_WORKERS.number())
IDLE_OBJECT_SECONDS = 0.5
log = logging.getLogger(__name__)


def _post(owner: Owner, event: Event) -> None:
    kopf.event(cast(Any, owner.body()), type=event.type, reason=event.reason, message=event.message)
    log.info("%s/%s %s: %s", owner.namespace, owner.name, event.reason, event.message)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix="modelrollout.io"
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="modelrollout.io", key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING  # Events are posted by the ticker itself
    # kopf keeps a task and a queue per object while events keep coming, until it has been idle
    # this long (default 5 s); a wave over thousands of objects held thousands of them at once.
    settings.batching.idle_timeout = IDLE_OBJECT_SECONDS
    memo.api = Rest(Connection.load())
    memo.store = Store()
    cluster = KubeCluster(memo.api, memo.store)
    memo.outbox = Outbox(_post)
    memo.sender = Sender(cluster.secret_data)
    memo.sender.start()
    memo.ticker = Ticker(cluster, partial(router_for, cluster), _prometheus, memo.outbox,
                         deliveries=memo.sender)  # fmt: skip
    memo.scheduler = Scheduler(partial(_work, memo.ticker), workers=WORKERS)
    memo.scheduler.lateness = metrics.LATENESS.observe
    memo.scheduler.start()
    memo.pod_watches = _watch_pods(memo)
    metrics.serve(int(METRICS_PORT.number()))


def _prometheus(source: PrometheusSource, credentials: Credentials | None) -> MetricsSource:
    # imported with the first rollout that has signals: its HTTP client is 8 MiB
    from modelrollout.analysis.prometheus import Prometheus  # noqa: PLC0415

    return Prometheus.of(source, credentials)


def _work(ticker: Ticker, key: Key) -> float | None:
    namespace, name = key
    with metrics.TICK_SECONDS.time():
        delay = ticker.run(namespace, name, datetime.now(UTC))
    if delay is None:
        metrics.forget(namespace, name)
    return delay


@kopf.on.cleanup()
def stop(memo: kopf.Memo, **_: Any) -> None:
    for watch in memo.pod_watches:
        watch.stop()
    memo.scheduler.stop()
    memo.outbox.stop()
    memo.sender.stop()
    memo.api.close()


@kopf.on.event(GROUP, VERSION, PLURAL)
async def rollout_changed(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    """A new rollout, a spec change, a command or a deletion is acted on at once; a status
    change (our own writes) only refreshes the store."""
    memo.outbox.start()  # here, where kopf's Event poster is in the context it copies
    body = cast(dict[str, Any], event["object"])
    key = key_of(body)
    if event["type"] == "DELETED":
        memo.store.rollouts.remove(body)
        memo.scheduler.forget(key)
        memo.ticker.forget(*key)
        metrics.forget(*key)
        return
    changed = memo.store.rollouts.put(body)
    if changed is not None and _asks(changed[0], changed[1]):
        memo.scheduler.poke(key)
    metrics.QUEUED.set(len(memo.scheduler))


def _asks(before: dict[str, Any] | None, after: dict[str, Any]) -> bool:
    if before is None:
        return True
    old, new = before.get("metadata") or {}, after.get("metadata") or {}
    return any(old.get(k) != new.get(k) for k in ("generation", "annotations",
                                                   "deletionTimestamp"))  # fmt: skip


def _owned(kind: Kind, event: kopf.RawEvent, memo: kopf.Memo) -> None:
    """An owned object changed: the rollout that owns it is due when a fact it decides on
    (availability, replicas, what we applied, a route's spec) changed."""
    body = cast(dict[str, Any], event["object"])
    rollout = ((body.get("metadata") or {}).get("labels") or {}).get(ROLLOUT_LABEL)
    if not rollout:
        return
    namespace = key_of(body)[0]
    if event["type"] == "DELETED":
        news = kind.remove(body) is not None
        if kind is memo.store.deployments:
            memo.store.pods.forget(namespace, key_of(body)[1])
    else:
        changed = kind.put(body)
        news = changed is not None and _news(*changed)
    if news:
        memo.scheduler.poke((namespace, rollout))


def _news(before: Any, after: Any) -> bool:
    if isinstance(after, Workload):
        return after.news(before)
    return route_news(before, after)


_OWNED = {ROLLOUT_LABEL: kopf.PRESENT}


@kopf.on.event("apps", "v1", "deployments", labels=_OWNED)
async def deployment_changed(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    _owned(memo.store.deployments, event, memo)


@kopf.on.event("", "v1", "services", labels=_OWNED)
async def service_changed(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    _owned(memo.store.services, event, memo)


def _pod_changed(memo: kopf.Memo, kind: str, body: dict[str, Any]) -> None:
    """A pod of one of our revisions (they carry its label, not the rollout's): a crash, a
    restart or readiness lost since the last tick makes its rollout due at once (k8s/pods.py).
    Fed by a raw watch (k8s/watch.py), not kopf: pods are many and only counted."""
    if kind == "DELETED":
        memo.store.pods.remove(body)
        return
    interrupted = memo.store.pods.put(body)
    if interrupted is None:
        return
    seen = memo.store.deployments.get(interrupted)
    if isinstance(seen, Workload) and seen.rollout is not None:
        memo.scheduler.poke((interrupted[0], seen.rollout))


def _watch_pods(memo: kopf.Memo) -> list[Watch]:
    namespaces: list[str | None] = [n.strip() for n in str(NAMESPACES).split(",") if n.strip()]
    watches = [Watch(memo.api, path("", "v1", "pods", namespace), selector=REVISION_LABEL,
                     on_event=partial(_pod_changed, memo))
               for namespace in namespaces or [None]]  # fmt: skip
    for watch in watches:
        watch.start()
    return watches


@kopf.on.event(ROUTE_GROUP, ROUTE_VERSION, ROUTE_PLURAL, labels=_OWNED)
async def route_changed(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    _owned(memo.store.routes, event, memo)
