"""The ModelRollout's spec: the parts put together, and the rules that span them."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from modelrollout.api.v1alpha1.analysis import Analysis
from modelrollout.api.v1alpha1.lifecycle import Bake, Fallback, Monitor
from modelrollout.api.v1alpha1.notifications import Notifications
from modelrollout.api.v1alpha1.rules import DURATION_PATTERN, Rule, Ruled, ruled
from modelrollout.api.v1alpha1.strategy import Strategy
from modelrollout.api.v1alpha1.traffic import Traffic, capability_rules, routers
from modelrollout.api.v1alpha1.workload import (
    Challenger,
    LabelSelector,
    ModelRef,
    PodTemplate,
    ServicePorts,
)

_SELECTOR_MATCHES_TEMPLATE = (
    "!has(self.selector.matchLabels) || (has(self.template.metadata) && "
    "has(self.template.metadata.labels) && self.selector.matchLabels.all(k, "
    "k in self.template.metadata.labels && "
    "self.template.metadata.labels[k] == self.selector.matchLabels[k]))"
)


# A signal judged against the stable arm over the same window (compare, fairness's margin, drift
# against the stable) has nothing to judge while the canary takes 100%: the stable serves nothing.
_AGAINST_STABLE = (
    "has(s.compare) || has(s.fairness) || "
    "(has(s.drift) && (!has(s.drift.against) || s.drift.against == 'stable'))"
)
_NO_FULL_WEIGHT_AGAINST_STABLE = (
    "!has(self.analysis) || !has(self.analysis.signals) || "
    f"!self.analysis.signals.exists(s, {_AGAINST_STABLE}) || "
    "self.strategy.steps.all(step, !has(step.setWeight) || step.setWeight < 100)"
)


def _no_full_weight_against_stable(spec: Any) -> bool:
    signals = spec.analysis.signals if spec.analysis is not None else []
    against_stable = any(s.compare is not None or s.fairness is not None
                         or (s.drift is not None and s.drift.against == "stable")
                         for s in signals)  # fmt: skip
    return not against_stable or all(step.set_weight != 100 for step in spec.strategy.steps)


def _selector_matches(spec: Any) -> bool:
    wanted = spec.selector.match_labels or {}
    have = (spec.template.metadata.labels if spec.template.metadata else None) or {}
    return all(have.get(k) == v for k, v in wanted.items())


# The pod watch keeps the last 32 interruptions of each Deployment (k8s/pods.py).
RESTART_LIMIT_MAX = 30
# spec.model and up to this many challengers: five candidates against the champion at most.
MAX_CHALLENGERS = 4


def _challenger_versions_unique(spec: Any) -> bool:
    versions = [spec.model.version, *(c.version for c in spec.challengers)]
    return len(set(versions)) == len(versions)


def _objective(spec: Any) -> bool:
    signals = spec.analysis.signals if spec.analysis is not None else []
    return not spec.challengers or any(s.compare is not None for s in signals)


def _shadow_and_paired(spec: Any) -> bool:
    signals = spec.analysis.signals if spec.analysis is not None else []
    paired = any(s.paired is not None for s in signals)
    return paired == any(step.shadow is not None for step in spec.strategy.steps)


_SHADOW_AND_PAIRED = (
    "self.strategy.steps.exists(s, has(s.shadow)) == (has(self.analysis) && "
    "has(self.analysis.signals) && self.analysis.signals.exists(s, has(s.paired)))"
)


class ModelRolloutSpec(Ruled):
    RULES = (
        Rule(_SELECTOR_MATCHES_TEMPLATE, _selector_matches,
             "selector.matchLabels must match template.metadata.labels", ".selector"),
        Rule("!has(self.monitor) || has(self.analysis)",
             lambda m: m.monitor is None or m.analysis is not None,
             "monitor needs analysis.prometheus: where its signals are measured", ".monitor"),
        Rule("!has(self.monitor) || !has(self.monitor.onAlarm) || self.monitor.onAlarm.all(a, "
             "!has(a.fallback) || a.fallback != 'heuristic' || has(self.fallback))",
             lambda m: m.monitor is None or m.fallback is not None
             or all(a.fallback != "heuristic" for a in m.monitor.on_alarm),
             "monitor.onAlarm[].fallback: heuristic needs spec.fallback, the revision it falls "
             "back to", ".monitor.onAlarm"),
        Rule(_NO_FULL_WEIGHT_AGAINST_STABLE, _no_full_weight_against_stable,
             "strategy.steps[].setWeight: 100 leaves the stable no traffic, so a signal judged "
             "against it (compare, fairness, drift against: stable) could not be judged at a "
             "later analyze step nor at the evidence gate; promotion takes the canary to 100% "
             "once the evidence decides", ".strategy.steps"),
        Rule("(has(self.challengers) && size(self.challengers) > 0) == has(self.strategy.abn)",
             lambda m: bool(m.challengers) == (m.strategy.abn is not None),
             "spec.challengers and strategy.abn go together: the challengers are judged in the "
             "A/B/n phase, which needs at least one challenger", ".challengers"),
        Rule("!has(self.challengers) || self.challengers.all(c, c.version != "
             "self.model.version && self.challengers.filter(d, d.version == c.version)"
             ".size() == 1)",
             _challenger_versions_unique,
             "challengers[].version must differ from model.version and from each other: the "
             "version names the arm", ".challengers"),
        Rule("!has(self.challengers) || (has(self.analysis) && has(self.analysis.signals) && "
             "self.analysis.signals.exists(s, has(s.compare)))",
             _objective,
             "spec.challengers needs a compare signal in analysis.signals: the first one is "
             "the objective the winner must be better on", ".challengers"),
        Rule(_SHADOW_AND_PAIRED, _shadow_and_paired,
             "strategy.steps[].shadow and analysis.signals[].paired go together: a shadow step "
             "is judged by its paired signals, which only a shadow step measures",
             ".strategy.steps"),
        # a step the spec's router cannot express (api/v1alpha1/traffic.py): none today
        *capability_rules(routers()),
    )  # fmt: skip
    model_config = ConfigDict(json_schema_extra=ruled(*RULES))
    replicas: int = Field(default=1, ge=1, le=1000)
    model: ModelRef
    # A/B/n: more candidates judged beside spec.model at once (docs/arms.md)
    challengers: list[Challenger] = Field(default_factory=list, max_length=MAX_CHALLENGERS)
    selector: LabelSelector
    template: PodTemplate
    service: ServicePorts = Field(default_factory=ServicePorts)
    traffic: Traffic
    progress_deadline: str = Field(default="10m", pattern=DURATION_PATTERN, max_length=32)
    scale_down_delay: str = Field(default="30s", pattern=DURATION_PATTERN, max_length=32)
    # How many times the canary's pods may restart or stop being ready (once Ready) during a
    # rollout before it is rolled back; 0: the first crash of a canary that served fails it.
    restart_limit: int = Field(default=0, ge=0, le=RESTART_LIMIT_MAX)
    strategy: Strategy
    analysis: Analysis | None = None
    bake: Bake | None = None
    monitor: Monitor | None = None
    fallback: Fallback | None = None
    notifications: Notifications | None = None
