"""kopf wiring only: settings, and one daemon per ModelRollout that ticks it.

kopf has priority peering, not leader election: run one replica (the chart uses `Recreate`).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import kopf
from kubernetes import client, config

from modelrollout.api.v1alpha1 import GROUP, PLURAL, VERSION
from modelrollout.controller import metrics
from modelrollout.controller.tick import Ticker
from modelrollout.domain.machine import Event

TICK_SECONDS = float(os.environ.get("MODELROLLOUT_TICK_SECONDS", "5"))
_api: dict[str, client.ApiClient] = {}


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.finalizer = "modelrollout.io/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix="modelrollout.io"
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="modelrollout.io", key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING  # Events are posted by the ticker itself
    # One thread per rollout's ticker: allow many rollouts to tick at once.
    settings.execution.max_workers = int(os.environ.get("MODELROLLOUT_MAX_WORKERS", "256"))
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    _api["client"] = client.ApiClient()
    metrics.serve(int(os.environ.get("MODELROLLOUT_METRICS_PORT", "8080")))


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=10)
def tick_rollout(
    stopped: kopf.DaemonStopped, body: kopf.Body, logger: kopf.Logger, **_: Any
) -> None:
    """Tick one rollout every TICK_SECONDS until it is deleted or the operator stops."""

    def post(event: Event) -> None:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)
        logger.info("%s: %s", event.reason, event.message)

    ticker = Ticker(_api["client"], post)
    namespace, name = body.metadata.namespace, body.metadata.name
    while not stopped and namespace and name:
        try:
            # Read the object afresh: kopf's live body follows the watch stream and can still
            # show the status before our last write, and a tick on a stale status would repeat
            # transitions (Events, history) that were already made. A fault at any stage is
            # handled by the ticker itself (said in status, Event, metric; fail-safe past a limit).
            with metrics.TICK_SECONDS.time():
                if not ticker.run(namespace, name):
                    break  # deleted
        except Exception:  # never expected; one failed tick must not end the daemon
            logger.exception("tick failed")
        stopped.wait(TICK_SECONDS)
    # kopf stops the daemon when deletion starts (the live body has a deletionTimestamp), or the
    # read found it gone: either way its series go with it. An operator shutting down keeps them.
    if namespace and name and (body.metadata.get("deletionTimestamp") or not stopped):
        metrics.forget(namespace, name)
