"""The ModelRollout API, version modelrollout.io/v1alpha1: the single source of truth.

The CRD in crds/ is generated from these models (`python -m modelrollout.api.crd`); constraints
that span fields are CEL rules attached with `_cel`, so the API server enforces at admission the
same rules the models enforce in the operator.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

GROUP = "modelrollout.io"
VERSION = "v1alpha1"
KIND = "ModelRollout"
PLURAL = "modelrollouts"

# Go-style durations as Kubernetes users write them: 30s, 5m, 1h30m, 1.5h, 500ms.
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
# A label value, since model name and version are injected as pod labels.
LABEL_VALUE_PATTERN = r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
TEMPLATE_VARIABLES = (
    "model",
    "namespace",
    "name",
    "version",
    "canary.version",
    "stable.version",
    "canary.revision",
    "stable.revision",
    "interval",
)
# A query is a run of: any character but `{`; a `{` not followed by `{`; or `{{ known-variable }}`.
# One linear regex, so the API server's CEL cost estimate stays within budget; the models use the
# very same pattern.
TEMPLATE_PATTERN = (
    r"^([^{]|\{[^{]|\{\{\s*("
    + "|".join(v.replace(".", r"\.") for v in TEMPLATE_VARIABLES)
    + r")\s*\}\})*\{?$"
)
_TEMPLATE_RULE = "self.matches('" + TEMPLATE_PATTERN.replace("\\", "\\\\") + "')"
_TEMPLATE_MESSAGE = "template variables must be one of: " + ", ".join(TEMPLATE_VARIABLES)
MAX_QUERY_LENGTH = 2048


def _cel(*rules: tuple[str, str] | tuple[str, str, str]) -> dict[str, Any]:
    """CEL validation rules for the CRD: (rule, message) or (rule, message, fieldPath)."""
    validations = []
    for rule in rules:
        entry = {"rule": rule[0], "message": rule[1]}
        if len(rule) == 3:
            entry["fieldPath"] = rule[2]
        validations.append(entry)
    return {"x-kubernetes-validations": validations}


def _exactly_one(*fields: str) -> str:
    return "[" + ", ".join(f"has(self.{f})" for f in fields) + "].exists_one(x, x)"


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


def _only_one(model: BaseModel, fields: tuple[str, ...], what: str) -> None:
    chosen = [f for f in fields if getattr(model, f) is not None]
    if len(chosen) != 1:
        names = ", ".join(to_camel(f) for f in fields)
        raise ValueError(f"{what} must have exactly one of {names}; got {len(chosen)}")


# --- spec -------------------------------------------------------------------------------------


class ModelRef(_Model):
    name: str = Field(pattern=LABEL_VALUE_PATTERN, max_length=63)
    version: str = Field(pattern=LABEL_VALUE_PATTERN, max_length=63)
    uri: str | None = Field(default=None, max_length=2048)


# Label values are at most 63 characters in Kubernetes; bounding them (and the maps) keeps the
# selector-matches-template CEL rule within the API server's cost budget.
LabelValue = Annotated[str, Field(max_length=63)]


class LabelSelectorRequirement(_Model):
    key: str = Field(max_length=317)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] | None = Field(default=None, max_length=64)


class LabelSelector(_Model):
    match_labels: dict[str, LabelValue] | None = Field(
        default=None, json_schema_extra={"maxProperties": 16}
    )
    match_expressions: list[LabelSelectorRequirement] | None = Field(default=None, max_length=16)


class PodTemplateMetadata(_Model):
    labels: dict[str, LabelValue] | None = Field(
        default=None, json_schema_extra={"maxProperties": 64}
    )
    annotations: dict[str, str] | None = Field(
        default=None, json_schema_extra={"maxProperties": 128}
    )


class PodTemplate(_Model):
    """A pod template exactly as in a Deployment; its spec is validated by the Deployment."""

    metadata: PodTemplateMetadata | None = None
    spec: dict[str, Any] = Field(json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})


class ServicePorts(_Model):
    port: int = Field(default=80, ge=1, le=65535)
    target_port: int | str = Field(
        default="http",
        json_schema_extra={"x-kubernetes-int-or-string": True},
    )


class ParentRef(_Model):
    name: str = Field(max_length=253, min_length=1)
    namespace: str | None = Field(default=None, max_length=63)
    group: str | None = Field(default=None, max_length=253)
    kind: str | None = Field(default=None, max_length=63)
    section_name: str | None = Field(default=None, max_length=253)
    port: int | None = Field(default=None, ge=1, le=65535)


class GatewayAPITraffic(_Model):
    parent_refs: list[ParentRef] = Field(min_length=1, max_length=32)
    hostnames: list[str] | None = Field(default=None, max_length=16)


class IstioTraffic(_Model):
    hosts: list[str] = Field(min_length=1, max_length=16)
    gateways: list[str] | None = Field(default=None, max_length=16)


class ReplicaTraffic(_Model):
    """No mesh: the weight is approximated by the ratio of canary to stable replicas."""


class Traffic(_Model):
    model_config = ConfigDict(
        json_schema_extra=_cel(
            (
                _exactly_one("gatewayAPI", "istio", "replicas"),
                "exactly one traffic router: gatewayAPI, istio or replicas",
            )
        )
    )
    gateway_api: GatewayAPITraffic | None = Field(default=None, alias="gatewayAPI")
    istio: IstioTraffic | None = None
    replicas: ReplicaTraffic | None = None

    @model_validator(mode="after")
    def _one_router(self) -> Traffic:
        _only_one(self, ("gateway_api", "istio", "replicas"), "traffic")
        return self


class Duration(_Model):
    duration: str = Field(pattern=DURATION_PATTERN, max_length=32)


class Pause(_Model):
    duration: str | None = Field(default=None, pattern=DURATION_PATTERN, max_length=32)


class Step(_Model):
    model_config = ConfigDict(
        json_schema_extra=_cel(
            (
                _exactly_one("setWeight", "analyze", "pause"),
                "a step must have exactly one of setWeight, analyze, pause",
            )
        )
    )
    set_weight: int | None = Field(default=None, ge=0, le=100)
    analyze: Duration | None = None
    pause: Pause | None = None

    @model_validator(mode="after")
    def _one_action(self) -> Step:
        _only_one(self, ("set_weight", "analyze", "pause"), "a step")
        return self


class Strategy(_Model):
    steps: list[Step] = Field(min_length=1, max_length=64)


class SecretRef(_Model):
    name: str = Field(pattern=DNS_LABEL_PATTERN.replace("{0,61}", "{0,251}"), max_length=253)


class PrometheusSource(_Model):
    address: str = Field(pattern=r"^https?://[^\s]+$", max_length=2048)
    auth_secret_ref: SecretRef | None = None
    timeout: str = Field(default="10s", pattern=DURATION_PATTERN, max_length=32)


def _query() -> Any:
    """A PromQL template: bounded, and using only the known template variables."""
    return Field(
        max_length=MAX_QUERY_LENGTH,
        min_length=1,
        json_schema_extra=_cel((_TEMPLATE_RULE, _TEMPLATE_MESSAGE)),
    )


def _check_template(query: str) -> str:
    if not re.match(TEMPLATE_PATTERN, query):
        raise ValueError(_TEMPLATE_MESSAGE)
    return query


class ThresholdSignal(_Model):
    model_config = ConfigDict(
        json_schema_extra=_cel(
            ("has(self.min) || has(self.max)", "a threshold needs min, max or both"),
            (
                "!has(self.min) || !has(self.max) || self.min <= self.max",
                "threshold min must not exceed max",
            ),
        )
    )
    query: str = _query()
    min: float | None = None
    max: float | None = None

    _template = field_validator("query")(_check_template)

    @model_validator(mode="after")
    def _bounds(self) -> ThresholdSignal:
        if self.min is None and self.max is None:
            raise ValueError("a threshold needs min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("threshold min must not exceed max")
        return self


class Signal(_Model):
    model_config = ConfigDict(
        json_schema_extra=_cel(("has(self.threshold)", "a signal needs a kind: threshold"))
    )
    name: str = Field(pattern=DNS_LABEL_PATTERN, max_length=63)
    threshold: ThresholdSignal | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Signal:
        _only_one(self, ("threshold",), "a signal")
        return self


class Analysis(_Model):
    interval: str = Field(default="1m", pattern=DURATION_PATTERN, max_length=32)
    prometheus: PrometheusSource
    failure_limit: int = Field(default=0, ge=0, le=100)
    inconclusive_limit: int = Field(default=3, ge=0, le=100)
    consecutive_error_limit: int = Field(default=4, ge=0, le=100)
    no_data: Literal["inconclusive", "fail"] = "inconclusive"
    signals: list[Signal] = Field(
        default_factory=list,
        max_length=32,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
        },
    )

    @model_validator(mode="after")
    def _unique_names(self) -> Analysis:
        names = [s.name for s in self.signals]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"signal names must be unique: {', '.join(duplicates)}")
        return self


class Webhook(_Model):
    url: str = Field(pattern=r"^https?://[^\s]+$", max_length=2048)
    events: list[Literal["Promoted", "RolledBack", "Paused", "Progressing"]] | None = Field(
        default=None, max_length=4
    )


class Notifications(_Model):
    webhooks: list[Webhook] = Field(default_factory=list, max_length=8)


_SELECTOR_MATCHES_TEMPLATE = (
    "!has(self.selector.matchLabels) || (has(self.template.metadata) && "
    "has(self.template.metadata.labels) && self.selector.matchLabels.all(k, "
    "k in self.template.metadata.labels && "
    "self.template.metadata.labels[k] == self.selector.matchLabels[k]))"
)


class ModelRolloutSpec(_Model):
    model_config = ConfigDict(
        json_schema_extra=_cel(
            (
                _SELECTOR_MATCHES_TEMPLATE,
                "selector.matchLabels must match template.metadata.labels",
                ".selector",
            )
        )
    )
    replicas: int = Field(default=1, ge=1, le=1000)
    model: ModelRef
    selector: LabelSelector
    template: PodTemplate
    service: ServicePorts = Field(default_factory=ServicePorts)
    traffic: Traffic
    progress_deadline: str = Field(default="10m", pattern=DURATION_PATTERN, max_length=32)
    scale_down_delay: str = Field(default="30s", pattern=DURATION_PATTERN, max_length=32)
    strategy: Strategy
    analysis: Analysis | None = None
    notifications: Notifications | None = None

    @model_validator(mode="after")
    def _selector_matches(self) -> ModelRolloutSpec:
        wanted = self.selector.match_labels or {}
        have = (self.template.metadata.labels if self.template.metadata else None) or {}
        if any(have.get(k) != v for k, v in wanted.items()):
            raise ValueError("selector.matchLabels must match template.metadata.labels")
        return self


# --- status -----------------------------------------------------------------------------------

Phase = Literal["Pending", "Progressing", "Paused", "Promoted", "RolledBack", "Failed"]
Verdict = Literal["Pass", "Fail", "Inconclusive", "NoData", "Error"]


class _Status(BaseModel):
    """Status is written by the operator only; unknown fields are ignored, not refused."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class RevisionRef(_Status):
    revision: str
    version: str


class PauseState(_Status):
    reason: str
    since: str
    message: str | None = None


class Counters(_Status):
    failed: int = 0
    inconclusive: int = 0
    consecutive_errors: int = 0


class SignalResult(_Status):
    name: str
    verdict: Verdict
    value: float | None = None
    min: float | None = None
    max: float | None = None
    message: str | None = None
    at: str


class AnalysisStatus(_Status):
    counters: Counters = Field(default_factory=Counters)
    signals: list[SignalResult] = Field(default_factory=list)
    last_evaluated_at: str | None = None


class Condition(_Status):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    last_transition_time: str


class ScaleDown(_Status):
    """A replaced revision kept serving until `after` (scaleDownDelay), then removed."""

    revision: str
    after: str


class HistoryEntry(_Status):
    version: str
    revision: str
    outcome: str
    started_at: str
    finished_at: str
    reason: str = ""


class ModelRolloutStatus(_Status):
    observed_generation: int | None = None
    phase: Phase = "Pending"
    stable: RevisionRef | None = None
    canary: RevisionRef | None = None
    canary_since: str | None = None
    current_step: int | None = None
    step_started_at: str | None = None
    canary_weight: int = 0
    pause: PauseState | None = None
    analysis: AnalysisStatus | None = None
    conditions: list[Condition] = Field(default_factory=list)
    history: list[HistoryEntry] = Field(default_factory=list, max_length=10)
    scale_down: list[ScaleDown] = Field(default_factory=list)
    last_command: str | None = None
    message: str | None = None
