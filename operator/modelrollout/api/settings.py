"""The operator's settings: environment variables, each with its one default and what it does.
The chart's values.yaml sets them; `modelrollout-operator --help` lists them from here."""

from __future__ import annotations

import os
from dataclasses import dataclass

from modelrollout import __version__


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    what: str

    def __str__(self) -> str:
        return os.environ.get(self.name, self.default)

    def number(self) -> float:
        return float(str(self))


NAMESPACES = Setting("MODELROLLOUT_NAMESPACES", "",
                     "comma-separated namespaces to serve; empty: all of them")  # fmt: skip
TICK_SECONDS = Setting("MODELROLLOUT_TICK_SECONDS", "30",
                       "the longest a rollout in flight waits between two looks (a safety net: "
                       "watch events and its own timers make it look sooner)")  # fmt: skip
RESYNC_SECONDS = Setting("MODELROLLOUT_RESYNC_SECONDS", "300",
                         "the longest a rollout at rest waits between two looks")  # fmt: skip
MAX_WORKERS = Setting("MODELROLLOUT_MAX_WORKERS", "16",
                      "threads that tick rollouts, shared by all of them")  # fmt: skip
PERIOD_SECONDS = Setting("MODELROLLOUT_PERIOD_SECONDS", "60",
                         "canary and stable are compared within periods this long")  # fmt: skip
FAULT_LIMIT = Setting("MODELROLLOUT_FAULT_LIMIT", "3",
                      "faulty ticks in a row before the canary loses its traffic")  # fmt: skip
METRICS_PORT = Setting("MODELROLLOUT_METRICS_PORT", "8080",
                       "port of the operator's /metrics (0: off)")  # fmt: skip
LIVENESS = Setting("MODELROLLOUT_LIVENESS", "",
                   "kopf's liveness endpoint, e.g. http://0.0.0.0:8081/healthz")  # fmt: skip
COMPARATOR_IMAGE = Setting("MODELROLLOUT_COMPARATOR_IMAGE",
                           f"ghcr.io/modelrollout/modelrollout:{__version__}",
                           "the image of a shadow step's comparator: the operator's own, whose "
                           "modelrollout-comparator command it runs")  # fmt: skip
SETTINGS = (NAMESPACES, TICK_SECONDS, RESYNC_SECONDS, MAX_WORKERS, PERIOD_SECONDS, FAULT_LIMIT,
            METRICS_PORT, LIVENESS, COMPARATOR_IMAGE)  # fmt: skip
