"""The signals a rollout is judged by, one model per kind."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator
from pydantic.alias_generators import to_snake

from modelrollout.api.v1alpha1.queries import (
    MAX_QUERY_LENGTH,
    SELECTOR_MESSAGE,
    SELECTOR_RULE,
    TEMPLATE_MESSAGE,
    TEMPLATE_RULE,
    check_selector,
    check_template,
    query_field,
    selector_field,
)
from modelrollout.api.v1alpha1.rules import (
    DNS_LABEL_PATTERN,
    DURATION_PATTERN,
    Model,
    Rule,
    Ruled,
    cel,
    exactly_one,
    only_with,
    ruled,
    together,
)


class ThresholdSignal(Ruled):
    RULES = (
        Rule("has(self.min) || has(self.max)", lambda m: m.min is not None or m.max is not None,
             "a threshold needs min, max or both"),
        Rule("!has(self.min) || !has(self.max) || self.min <= self.max",
             lambda m: m.min is None or m.max is None or m.min <= m.max,
             "threshold min must not exceed max"),
    )  # fmt: skip
    model_config = ConfigDict(json_schema_extra=ruled(*RULES))
    query: str = query_field()
    min: float | None = None
    max: float | None = None

    _template = field_validator("query")(check_template)


MARGIN_MESSAGE = (
    "margin is required: the loss you tolerate, in the KPI's units (0.01 for one point of "
    "accuracy; for a histogram, a share of requests, 0.02 for two points of probability); 0 "
    "promotes by itself only a canary shown better than stable"
)


def cel_requiring(field: str, message: str,
                   *rules: tuple[str, str] | tuple[str, str, str]) -> Any:  # fmt: skip
    """CEL rules, plus `field` required by a rule of its own (so the API server's message says
    what the field is) instead of by the schema's `required` (which only says "Required")."""
    extra = cel(*rules, (f"has(self.{field})", message, f".{field}"))

    def modify(schema: dict[str, Any]) -> None:
        required = [f for f in schema.get("required", []) if f != field]
        if required:
            schema["required"] = required
        else:
            schema.pop("required", None)
        schema.update(extra)

    return modify


class CompareSignal(Ruled):
    """Canary against stable since the canary took traffic, with an always-valid sequential test:
    a rate (`successes` of `total`) or a histogram (Mann-Whitney on its buckets)."""

    RULES = (
        together("successes", "total"),
        Rule("has(self.histogram) != has(self.total)",
             lambda m: (m.histogram is None) != (m.total is None),
             "a compare needs successes and total, or histogram, not both"),
    )  # fmt: skip
    model_config = ConfigDict(
        json_schema_extra=cel_requiring("margin", MARGIN_MESSAGE, *(r.entry() for r in RULES))
    )
    successes: str | None = selector_field(default=None)
    total: str | None = selector_field(default=None)
    histogram: str | None = selector_field(default=None)
    higher_is_better: bool = True
    # Required, with no default: how much worse the canary may be is the user's call, not ours
    # (docs/api.md). The CRD says so in a CEL rule rather than `required`, for the message.
    margin: float = Field(ge=0, le=1)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    min_samples: int = Field(default=200, ge=0, le=100_000_000)

    _selectors = field_validator("successes", "total", "histogram")(check_selector)


class ConfigMapKeyRef(Model):
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


class DriftSignal(Ruled):
    """Has the distribution of an input or output moved, against the stable arm over the same
    window, a frozen reference in a ConfigMap, or the same series `offset` in time."""

    RULES = (
        exactly_one("a drift", "histogram", "categories"),
        only_with("reference", "against", "reference"),
        only_with("offset", "against", "offset"),
    )
    model_config = ConfigDict(json_schema_extra=ruled(*RULES))
    histogram: str | None = selector_field(default=None)
    categories: str | None = selector_field(default=None)
    category_label: str = Field(
        default="category", pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$", max_length=128
    )
    # `baseline`: the same model's own first `monitor.baseline` after promotion (monitor only)
    against: Literal["stable", "reference", "offset", "baseline"] = "stable"
    reference: ConfigMapKeyRef | None = None
    offset: str | None = Field(default=None, pattern=DURATION_PATTERN, max_length=32)
    statistic: DriftStatistic = "jensenShannon"
    max: float | None = Field(default=None, ge=0)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    min_samples: int = Field(default=500, ge=0, le=100_000_000)

    _selectors = field_validator("histogram", "categories")(check_selector)

    @property
    def bound(self) -> float:
        return self.max if self.max is not None else DRIFT_DEFAULT_MAX[self.statistic]


class OutliersSignal(Model):
    """The share of observations in a frozen reference's tails (the buckets below which, or
    above which, at most `tail` of the reference lies): Fail when it is above `maxRatio` times
    the reference's own tail mass with confidence, Pass when below with confidence. A sudden rise
    points at a broken upstream feature or a new population."""

    histogram: str = selector_field()
    reference: ConfigMapKeyRef
    tail: float = Field(default=0.005, gt=0, lt=0.25)
    max_ratio: float = Field(default=3.0, ge=1, le=1000)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    min_samples: int = Field(default=500, ge=0, le=100_000_000)

    _selectors = field_validator("histogram")(check_selector)


FairnessMetric = Literal[
    "demographicParityDifference", "disparateImpactRatio", "equalOpportunityDifference"
]


class FairnessSignal(Model):
    """A gap between segments: judged against the stable arm's gap (the canary may not be worse
    by more than `margin`), and against an absolute `max` (differences) or `min` (ratio)."""

    selected: str = selector_field()
    total: str = selector_field()
    segment_label: str = Field(
        default="segment", pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$", max_length=128
    )
    metric: FairnessMetric = "demographicParityDifference"
    margin: float = Field(default=0.02, ge=0, le=1)
    max: float | None = Field(default=None, ge=0, le=1)
    min: float | None = Field(default=None, ge=0, le=1)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    min_samples: int = Field(default=100, ge=0, le=100_000_000)

    _selectors = field_validator("selected", "total")(check_selector)


PairedTest = Literal["disagreement", "correctness", "errors", "latency"]


class PairedSignal(Ruled):
    """The candidate's answers against the champion's on the same requests, in a shadow step
    (strategy.steps[].shadow: its comparator counts the pairs), with always-valid tests:

    - `disagreement`: the share of pairs whose answers differ, less the noise floor (the champion
      against a second answer of its own), must stay below `max`;
    - `correctness`: on the pairs whose label arrived, the candidate may be less accurate than the
      champion by at most `margin` (a test on the discordant pairs: one side right, one wrong);
    - `errors`: Fail when, on the pairs where only one side failed, the candidate is the one that
      failed more often (a sign test); Pass once its own failures are below `max` of the pairs;
    - `latency`: per pair, the candidate's latency over the champion's; Fail when the median
      ratio is above `maxRatio` with confidence, Pass when it is below."""

    RULES = (
        Rule("self.test != 'disagreement' || has(self.max)",
             lambda m: m.test != "disagreement" or m.max is not None,
             "a disagreement test needs max: the share of pairs above the noise floor that may "
             "differ", ".max"),
        Rule("self.test != 'correctness' || has(self.margin)",
             lambda m: m.test != "correctness" or m.margin is not None,
             "a correctness test needs margin: how much less accurate than the champion the "
             "candidate may be (0.01 for one point)", ".margin"),
        Rule("!has(self.margin) || self.test == 'correctness'",
             lambda m: m.margin is None or m.test == "correctness",
             "margin is for a correctness test only", ".margin"),
        Rule("!has(self.maxRatio) || self.test == 'latency'",
             lambda m: m.max_ratio is None or m.test == "latency",
             "maxRatio is for a latency test only", ".maxRatio"),
        Rule("!has(self.max) || self.test == 'disagreement' || self.test == 'errors'",
             lambda m: m.max is None or m.test in ("disagreement", "errors"),
             "max is for a disagreement or an errors test only", ".max"),
    )  # fmt: skip
    model_config = ConfigDict(json_schema_extra=ruled(*RULES))
    test: PairedTest
    max: float | None = Field(default=None, ge=0, le=1)
    margin: float | None = Field(default=None, ge=0, le=1)
    max_ratio: float | None = Field(default=None, ge=1, le=100)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    min_samples: int = Field(default=100, ge=0, le=100_000_000)

    @property
    def ratio(self) -> float:
        return self.max_ratio if self.max_ratio is not None else PAIRED_MAX_RATIO

    @property
    def error_max(self) -> float:
        return self.max if self.max is not None else PAIRED_ERRORS_MAX


# Defaults: the candidate's median latency at most 1.2 times the champion's on the same request;
# its own failures below half a percent of the pairs.
PAIRED_MAX_RATIO = 1.2
PAIRED_ERRORS_MAX = 0.005


# Each field of Signal after `name` is a kind, declared here once by its model; its measure
# (analysis/kinds/) and its judge (domain/kinds/) are registered under the same name, and the
# one-of rule (CEL and check) is made from these fields.
class Signal(Ruled):
    """A named signal of exactly one kind."""

    model_config = ConfigDict(json_schema_extra=lambda schema, cls: schema.update(
        ruled(*cls.rules())))  # fmt: skip
    name: str = Field(pattern=DNS_LABEL_PATTERN, max_length=63)
    threshold: ThresholdSignal | None = None
    compare: CompareSignal | None = None
    drift: DriftSignal | None = None
    fairness: FairnessSignal | None = None
    outliers: OutliersSignal | None = None
    paired: PairedSignal | None = None

    @classmethod
    def kinds(cls) -> tuple[str, ...]:
        return tuple(f.alias or n for n, f in cls.model_fields.items() if n != "name")

    @classmethod
    def rules(cls) -> tuple[Rule, ...]:
        return (exactly_one("a signal", *cls.kinds()),)

    @property
    def kind(self) -> str:
        return next(k for k in self.kinds() if self._of(k) is not None)

    @property
    def spec(self) -> Model:
        """The model of the signal's kind, as given."""
        spec = self._of(self.kind)
        assert spec is not None  # noqa: S101  (the one-of rule holds for every Signal)
        return spec

    def _of(self, kind: str) -> Model | None:
        value: Model | None = getattr(self, to_snake(kind))
        return value


SIGNAL_KINDS = Signal.kinds()


class SampleRatio(Model):
    """The sample ratio mismatch check: the canary's share of `requests` since the weight in
    effect was seen on the route must fit that weight (an always-valid beta-binomial mixture
    test: its p-value below `pValue` is an Error, at most `pValue` of correct splits per weight
    however often it looks). Skipped while the selector has no series. While it has, an analyze
    step, the evidence gate and a bake pass only once the canary served `minCanaryRequests` in
    that step (at a weight above 0): a canary that served nobody is not judged good."""

    enabled: bool = True
    requests: str = Field(
        default='model_requests_total{model="{{ model }}",version="{{ version }}"}',
        max_length=MAX_QUERY_LENGTH,
        min_length=1,
        json_schema_extra=cel((TEMPLATE_RULE, TEMPLATE_MESSAGE), (SELECTOR_RULE, SELECTOR_MESSAGE)),
    )
    p_value: float = Field(default=0.001, gt=0, lt=0.5)
    min_samples: int = Field(default=200, ge=0, le=100_000_000)
    min_canary_requests: int = Field(default=1, ge=0, le=100_000_000)

    _selectors = field_validator("requests")(check_selector)
