"""The ModelRollout API, version modelrollout.io/v1alpha1: the single source of truth.

The CRD in crds/ is generated from these models (`python -m modelrollout.api.crd`); constraints
that span fields are CEL rules attached with `_cel`, so the API server enforces at admission the
same rules the models enforce in the operator.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, TypedDict, Unpack, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel, to_snake

from modelrollout.api.durations import parse_duration

GROUP = "modelrollout.io"
VERSION = "v1alpha1"
KIND = "ModelRollout"
PLURAL = "modelrollouts"

# Go-style durations as Kubernetes users write them: 30s, 5m, 1h30m, 1.5h, 500ms.
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
# A label value, since model name and version are injected as pod labels.
LABEL_VALUE_PATTERN = r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
# The operator names Services NAME-stable and NAME-canary, which must be DNS labels (63).
MAX_NAME_LENGTH = 63 - len("-canary")
NAME_MESSAGE = (
    f"metadata.name must be at most {MAX_NAME_LENGTH} characters: the operator names the "
    "Services NAME-stable and NAME-canary, and a Service name is at most 63"
)
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


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


@dataclass(frozen=True)
class Rule:
    """A cross-field rule, declared once: the CEL the API server checks at admission, the same
    rule over the model (`holds`), and the one message both give."""

    cel: str
    holds: Callable[[Any], bool]
    message: str
    field_path: str | None = None

    def entry(self) -> tuple[str, str] | tuple[str, str, str]:
        if self.field_path is None:
            return (self.cel, self.message)
        return (self.cel, self.message, self.field_path)


def _given(model: Any, field: str) -> bool:
    return getattr(model, to_snake(field)) is not None


def exactly_one(what: str, *fields: str) -> Rule:
    """Exactly one of `fields` (as the API names them) is given."""
    names = ", ".join(fields[:-1]) + f" or {fields[-1]}" if len(fields) > 1 else fields[0]
    return Rule(
        "[" + ", ".join(f"has(self.{f})" for f in fields) + "].exists_one(x, x)",
        lambda m: sum(_given(m, f) for f in fields) == 1,
        f"{what} needs exactly one of {names}",
    )


def together(first: str, second: str) -> Rule:
    """`first` and `second` are given together or not at all."""
    return Rule(f"has(self.{first}) == has(self.{second})",
                lambda m: _given(m, first) == _given(m, second),
                f"{first} and {second} go together")  # fmt: skip


def only_with(field: str, key: str, value: str) -> Rule:
    """`field` is given exactly when `key` is `value`."""
    return Rule(f"(self.{key} == '{value}') == has(self.{field})",
                lambda m: (getattr(m, key) == value) == _given(m, field),
                f"{field} is required with {key}: {value}, and only then", f".{field}")  # fmt: skip


def _rules(*rules: Rule) -> dict[str, Any]:
    return _cel(*(r.entry() for r in rules))


class _Ruled(_Model):
    """A model with cross-field rules (RULES): the CRD gets them as CEL (declare
    `model_config = ConfigDict(json_schema_extra=_rules(*RULES))`), the model checks them."""

    RULES: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="after")
    def _check_rules(self) -> Any:
        for rule in type(self).RULES:
            if not rule.holds(self):
                raise ValueError(rule.message)
        return self


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


class Traffic(_Ruled):
    """Which router carries the canary's share: one field per router the operator implements
    (routers/registry.py), and only those; the schema refuses any other."""

    RULES = (exactly_one("traffic", "gatewayAPI"),)
    model_config = ConfigDict(json_schema_extra=_rules(*RULES))
    gateway_api: GatewayAPITraffic | None = Field(default=None, alias="gatewayAPI")


class Duration(_Model):
    duration: str = Field(pattern=DURATION_PATTERN, max_length=32)


class Pause(_Model):
    duration: str | None = Field(default=None, pattern=DURATION_PATTERN, max_length=32)


class Step(_Ruled):
    RULES = (exactly_one("a step", "setWeight", "analyze", "pause"),)
    model_config = ConfigDict(json_schema_extra=_rules(*RULES))
    set_weight: int | None = Field(default=None, ge=0, le=100)
    analyze: Duration | None = None
    pause: Pause | None = None


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


class ThresholdSignal(_Ruled):
    RULES = (
        Rule("has(self.min) || has(self.max)", lambda m: m.min is not None or m.max is not None,
             "a threshold needs min, max or both"),
        Rule("!has(self.min) || !has(self.max) || self.min <= self.max",
             lambda m: m.min is None or m.max is None or m.min <= m.max,
             "threshold min must not exceed max"),
    )  # fmt: skip
    model_config = ConfigDict(json_schema_extra=_rules(*RULES))
    query: str = _query()
    min: float | None = None
    max: float | None = None

    _template = field_validator("query")(_check_template)


# A series selector: a metric name and optional label matchers, no function or aggregation.
# compare, drift and fairness read the raw counter samples of each series since the canary
# took traffic and add up their increases themselves (resets handled, no extrapolation), so
# they need the series, not a rate or a sum.
SELECTOR_PATTERN = r"^\s*[a-zA-Z_:][a-zA-Z0-9_:]*\s*(\{.*\})?\s*$"
_SELECTOR_RULE = "self.matches('" + SELECTOR_PATTERN.replace("\\", "\\\\") + "')"
_SELECTOR_MESSAGE = (
    'must be a series selector such as model_feedback_total{version="{{ version }}"}, '
    "without sum(), rate() or a range"
)


def _selector(**default: Any) -> Any:
    return Field(
        **default,
        max_length=MAX_QUERY_LENGTH,
        min_length=1,
        json_schema_extra=_cel(
            (_TEMPLATE_RULE, _TEMPLATE_MESSAGE), (_SELECTOR_RULE, _SELECTOR_MESSAGE)
        ),
    )


def _check_selector(query: str | None) -> str | None:
    if query is None:
        return None
    _check_template(query)
    if not re.match(SELECTOR_PATTERN, query):
        raise ValueError(_SELECTOR_MESSAGE)
    return query


MARGIN_MESSAGE = (
    "margin is required: the loss you tolerate, in the KPI's units (0.01 for one point of "
    "accuracy; for a histogram, a share of requests, 0.02 for two points of probability); 0 "
    "promotes by itself only a canary shown better than stable"
)


def _cel_requiring(field: str, message: str,
                   *rules: tuple[str, str] | tuple[str, str, str]) -> Any:  # fmt: skip
    """CEL rules, plus `field` required by a rule of its own (so the API server's message says
    what the field is) instead of by the schema's `required` (which only says "Required")."""
    extra = _cel(*rules, (f"has(self.{field})", message, f".{field}"))

    def modify(schema: dict[str, Any]) -> None:
        required = [f for f in schema.get("required", []) if f != field]
        if required:
            schema["required"] = required
        else:
            schema.pop("required", None)
        schema.update(extra)

    return modify


class CompareSignal(_Ruled):
    """Canary against stable since the canary took traffic, with an always-valid sequential test:
    a rate (`successes` of `total`) or a histogram (Mann-Whitney on its buckets)."""

    RULES = (
        together("successes", "total"),
        Rule("has(self.histogram) != has(self.total)",
             lambda m: (m.histogram is None) != (m.total is None),
             "a compare needs successes and total, or histogram, not both"),
    )  # fmt: skip
    model_config = ConfigDict(
        json_schema_extra=_cel_requiring("margin", MARGIN_MESSAGE, *(r.entry() for r in RULES))
    )
    successes: str | None = _selector(default=None)
    total: str | None = _selector(default=None)
    histogram: str | None = _selector(default=None)
    higher_is_better: bool = True
    # Required, with no default: how much worse the canary may be is the user's call, not ours
    # (docs/api.md). The CRD says so in a CEL rule rather than `required`, for the message.
    margin: float = Field(ge=0, le=1)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    min_samples: int = Field(default=200, ge=0, le=100_000_000)

    _selectors = field_validator("successes", "total", "histogram")(_check_selector)


class ConfigMapKeyRef(_Model):
    name: str = Field(pattern=DNS_LABEL_PATTERN.replace("{0,61}", "{0,251}"), max_length=253)
    key: str = Field(pattern=r"^[-._a-zA-Z0-9]+$", max_length=253)


DriftStatistic = Literal["jensenShannon", "psi", "hellinger", "ks", "chiSquare", "wasserstein"]
# Default bounds: JS and Hellinger distances of 0.1; PSI 0.25 ("major shift"); KS D 0.1; Cramér's
# V 0.1 ("small effect"); Wasserstein-1 of a tenth of the reference's standard deviation.
DRIFT_DEFAULT_MAX: dict[str, float] = {
    "jensenShannon": 0.1,
    "psi": 0.25,
    "hellinger": 0.1,
    "ks": 0.1,
    "chiSquare": 0.1,
    "wasserstein": 0.1,
}


class DriftSignal(_Ruled):
    """Has the distribution of an input or output moved, against the stable arm over the same
    window, a frozen reference in a ConfigMap, or the same series `offset` in time."""

    RULES = (
        exactly_one("a drift", "histogram", "categories"),
        only_with("reference", "against", "reference"),
        only_with("offset", "against", "offset"),
    )
    model_config = ConfigDict(json_schema_extra=_rules(*RULES))
    histogram: str | None = _selector(default=None)
    categories: str | None = _selector(default=None)
    category_label: str = Field(
        default="category", pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$", max_length=128
    )
    against: Literal["stable", "reference", "offset"] = "stable"
    reference: ConfigMapKeyRef | None = None
    offset: str | None = Field(default=None, pattern=DURATION_PATTERN, max_length=32)
    statistic: DriftStatistic = "jensenShannon"
    max: float | None = Field(default=None, ge=0)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    min_samples: int = Field(default=500, ge=0, le=100_000_000)

    _selectors = field_validator("histogram", "categories")(_check_selector)

    @property
    def bound(self) -> float:
        return self.max if self.max is not None else DRIFT_DEFAULT_MAX[self.statistic]


FairnessMetric = Literal[
    "demographicParityDifference", "disparateImpactRatio", "equalOpportunityDifference"
]


class FairnessSignal(_Model):
    """A gap between segments: judged against the stable arm's gap (the canary may not be worse
    by more than `margin`), and against an absolute `max` (differences) or `min` (ratio)."""

    selected: str = _selector()
    total: str = _selector()
    segment_label: str = Field(
        default="segment", pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$", max_length=128
    )
    metric: FairnessMetric = "demographicParityDifference"
    margin: float = Field(default=0.02, ge=0, le=1)
    max: float | None = Field(default=None, ge=0, le=1)
    min: float | None = Field(default=None, ge=0, le=1)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    min_samples: int = Field(default=100, ge=0, le=100_000_000)

    _selectors = field_validator("selected", "total")(_check_selector)


SIGNAL_KINDS = ("threshold", "compare", "drift", "fairness")


class Signal(_Ruled):
    RULES = (exactly_one("a signal", *SIGNAL_KINDS),)
    model_config = ConfigDict(json_schema_extra=_rules(*RULES))
    name: str = Field(pattern=DNS_LABEL_PATTERN, max_length=63)
    threshold: ThresholdSignal | None = None
    compare: CompareSignal | None = None
    drift: DriftSignal | None = None
    fairness: FairnessSignal | None = None

    @property
    def kind(self) -> str:
        return next(k for k in SIGNAL_KINDS if getattr(self, k) is not None)


class SampleRatio(_Model):
    """The sample ratio mismatch check: the canary's share of `requests` since the weight last
    changed must fit the weight (chi-square, p below `pValue` is an Error). Skipped while the
    selector has no series."""

    enabled: bool = True
    requests: str = Field(
        default='model_requests_total{model="{{ model }}",version="{{ version }}"}',
        max_length=MAX_QUERY_LENGTH,
        min_length=1,
        json_schema_extra=_cel(
            (_TEMPLATE_RULE, _TEMPLATE_MESSAGE), (_SELECTOR_RULE, _SELECTOR_MESSAGE)
        ),
    )
    p_value: float = Field(default=0.001, gt=0, lt=0.5)
    min_samples: int = Field(default=200, ge=0, le=100_000_000)

    _selectors = field_validator("requests")(_check_selector)


# `0s` would evaluate at every tick, so the operator's tick, not the user, would set how long an
# outage may last before consecutiveErrorLimit rolls back. Sub-second looks read the same scrape
# again. docs/api.md says why the floor is not higher.
MIN_INTERVAL_SECONDS = 1
_INTERVAL_MESSAGE = (
    f"interval must be at least {MIN_INTERVAL_SECONDS}s (0s would evaluate at every tick)"
)


class Analysis(_Model):
    model_config = ConfigDict(
        json_schema_extra=_cel(
            (
                f"duration(self.interval) >= duration('{MIN_INTERVAL_SECONDS}s')",
                _INTERVAL_MESSAGE,
                ".interval",
            )
        )
    )
    interval: str = Field(default="1m", pattern=DURATION_PATTERN, max_length=32)
    prometheus: PrometheusSource
    failure_limit: int = Field(default=0, ge=0, le=100)
    inconclusive_limit: int = Field(default=3, ge=0, le=100)
    consecutive_error_limit: int = Field(default=4, ge=0, le=100)
    no_data: Literal["inconclusive", "fail"] = "inconclusive"
    sample_ratio: SampleRatio = Field(default_factory=SampleRatio)
    signals: list[Signal] = Field(
        default_factory=list,
        max_length=32,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
        },
    )

    @field_validator("interval")
    @classmethod
    def _long_enough(cls, interval: str) -> str:
        if parse_duration(interval) < MIN_INTERVAL_SECONDS:
            raise ValueError(_INTERVAL_MESSAGE)
        return interval

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


def _selector_matches(spec: Any) -> bool:
    wanted = spec.selector.match_labels or {}
    have = (spec.template.metadata.labels if spec.template.metadata else None) or {}
    return all(have.get(k) == v for k, v in wanted.items())


class ModelRolloutSpec(_Ruled):
    RULES = (
        Rule(_SELECTOR_MATCHES_TEMPLATE, _selector_matches,
             "selector.matchLabels must match template.metadata.labels", ".selector"),
    )  # fmt: skip
    model_config = ConfigDict(json_schema_extra=_rules(*RULES))
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


# --- status -----------------------------------------------------------------------------------

Phase = Literal["Pending", "Progressing", "Paused", "Promoted", "RolledBack"]
Verdict = Literal["Pass", "Fail", "Inconclusive", "NoData", "Error"]
# Each vocabulary once; the metrics, the CLI and the docs use these.
PHASES: tuple[Phase, ...] = get_args(Phase)
VERDICTS: tuple[Verdict, ...] = get_args(Verdict)
INITIAL_PHASE: Phase = PHASES[0]
IN_FLIGHT: tuple[Phase, ...] = ("Progressing", "Paused")  # a canary takes traffic, or may
AT_REST: tuple[Phase, ...] = ("Promoted", "RolledBack")  # no canary moving: a pipeline may go on
UNHEALTHY_PHASES: tuple[Phase, ...] = ("RolledBack",)


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


class Samples(_Status):
    canary: int = 0
    stable: int = 0


class Look(_Status):
    """One look of a compare signal's planned schedule: how far into the plan (0 to 1), the
    information (1/SE^2) seen, and the z boundary it was judged with (absent: none spent)."""

    fraction: float
    information: float
    boundary: float | None = None


class PlannedLooks(_Status):
    name: str
    looks: list[Look] = Field(default_factory=list)


class SignalResult(_Status):
    """The latest verdict of one signal and the numbers behind it. `value` is what was judged:
    the query's number (threshold), the canary's advantage (compare: positive is better), the
    distance (drift), the canary's gap (fairness), the canary's share of requests (sample ratio).
    `lower`/`upper` are its always-valid confidence bounds; `bound` is the limit it was judged
    against; `canary`/`stable` the per-arm values."""

    name: str
    kind: str = "threshold"
    verdict: Verdict
    value: float | None = None
    min: float | None = None
    max: float | None = None
    canary: float | None = None
    stable: float | None = None
    lower: float | None = None
    upper: float | None = None
    bound: float | None = None
    p_value: float | None = None
    samples: Samples | None = None
    excluded: list[str] | None = None
    message: str | None = None
    at: str
    look: Look | None = None

    @field_validator("value", "min", "max", "canary", "stable", "lower", "upper", "bound",
                     "p_value")  # fmt: skip
    @classmethod
    def _finite(cls, number: float | None) -> float | None:
        """JSON has no Infinity or NaN, and the API server refuses a status that holds one: a
        number that is not finite is absent, and the message says what it was."""
        return number if number is None or math.isfinite(number) else None


class AnalysisStatus(_Status):
    counters: Counters = Field(default_factory=Counters)
    signals: list[SignalResult] = Field(default_factory=list)
    last_evaluated_at: str | None = None
    # Each compare signal's looks so far within the plan (alpha spending, docs/analysis.md).
    looks: list[PlannedLooks] = Field(default_factory=list)


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


class StatusEdit(TypedDict, total=False):
    """The fields of ModelRolloutStatus as keyword arguments, so that every edit of a status is
    type-checked (a test keeps the two in step)."""

    observed_generation: int | None
    phase: Phase
    stable: RevisionRef | None
    canary: RevisionRef | None
    canary_since: str | None
    current_step: int | None
    step_started_at: str | None
    canary_weight: int
    weight_since: str | None
    pause: PauseState | None
    analysis: AnalysisStatus | None
    conditions: list[Condition]
    history: list[HistoryEntry]
    scale_down: list[ScaleDown]
    last_command: str | None
    message: str | None


class ModelRolloutStatus(_Status):
    observed_generation: int | None = None
    phase: Phase = "Pending"
    stable: RevisionRef | None = None
    canary: RevisionRef | None = None
    canary_since: str | None = None
    current_step: int | None = None
    step_started_at: str | None = None
    canary_weight: int = 0
    weight_since: str | None = None
    pause: PauseState | None = None
    analysis: AnalysisStatus | None = None
    conditions: list[Condition] = Field(default_factory=list)
    history: list[HistoryEntry] = Field(default_factory=list, max_length=10)
    scale_down: list[ScaleDown] = Field(default_factory=list)
    last_command: str | None = None
    message: str | None = None

    def edit(self, **changes: Unpack[StatusEdit]) -> ModelRolloutStatus:
        """A copy with `changes`, each checked against the field's type."""
        return self.model_copy(update=changes)
