"""A model's life after its steps: the bake, in which the previous revision stays warm (and may
keep a small holdback share of traffic as a concurrent control) while the new one is watched;
then the monitor, which watches the stable revision for as long as it serves, and what its
alarms do (docs/lifecycle.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from modelrollout.api.v1alpha1.notifications import SecretKeyRef
from modelrollout.api.v1alpha1.queries import check_selector, selector_field
from modelrollout.api.v1alpha1.rules import (
    DNS_LABEL_PATTERN,
    DURATION_PATTERN,
    LABEL_VALUE_PATTERN,
    Model,
    Rule,
    Ruled,
    exactly_one,
    ruled,
)
from modelrollout.api.v1alpha1.signals import (
    DriftSignal,
    FairnessSignal,
    OutliersSignal,
    ThresholdSignal,
)
from modelrollout.api.v1alpha1.workload import PodTemplate, PodTemplateMetadata

MAX_HOLDBACK_PERCENT = 50


class Holdback(Model):
    """The share of traffic the previous revision keeps during the bake: with it, the compare
    signals go on judging new against previous on the same minutes; without it a check after
    promotion can only compare before with after, confounded by the time of day."""

    percent: int = Field(ge=0, le=MAX_HOLDBACK_PERCENT)


class Bake(Model):
    """After the last step the new revision takes the traffic (all of it, or all but the
    holdback) while the previous revision stays at full size: a failing signal in `duration`
    sends every request back to it at once, with nothing to scale up. After a clean bake the
    previous revision is scaled down as after any promotion."""

    duration: str = Field(pattern=DURATION_PATTERN, max_length=32)
    holdback: Holdback | None = None


# --- the watch after promotion -----------------------------------------------------------------


class KpiSignal(Model):
    """Concept drift: the labelled KPI (`successes` of `total`, counted from series selectors) of
    the stable revision against its own baseline after promotion, by a CUSUM calibrated to the
    monitor's false-alarm budget (docs/lifecycle.md). `drop` is the smallest fall worth an alarm,
    in the KPI's units; labels that arrive late are judged once in (`labelDelay`)."""

    successes: str = selector_field()
    total: str = selector_field()
    drop: float = Field(gt=0, le=0.5)
    higher_is_better: bool = True
    label_delay: str = Field(default="0s", pattern=DURATION_PATTERN, max_length=32)

    _selectors = field_validator("successes", "total")(check_selector)


_DRIFT_NOT_STABLE = Rule(
    "!has(self.drift) || self.drift.against != 'stable'",
    lambda m: m.drift is None or m.drift.against != "stable",
    "a monitor's drift is judged against a reference or an offset: a promoted model has no "
    "other arm to compare with",
    ".drift.against",
)


class MonitorSignal(Ruled):
    """A signal of the watch: a threshold, a drift (against a frozen reference, or the same
    series an `offset` ago), or a KPI against its baseline (concept drift)."""

    RULES = (exactly_one("a monitor signal", "threshold", "drift", "kpi", "outliers", "fairness"),
             _DRIFT_NOT_STABLE)  # fmt: skip
    model_config = ConfigDict(json_schema_extra=ruled(*RULES))
    name: str = Field(pattern=DNS_LABEL_PATTERN, max_length=63)
    threshold: ThresholdSignal | None = None
    drift: DriftSignal | None = None
    kpi: KpiSignal | None = None
    outliers: OutliersSignal | None = None
    # the gap between segments now against the gap in the baseline (the first window)
    fairness: FairnessSignal | None = None

    @property
    def kind(self) -> str:
        kinds = ("threshold", "drift", "kpi", "outliers", "fairness")
        return next(k for k in kinds if getattr(self, k) is not None)


class FalseAlarms(Model):
    """The false-alarm budget: the mean time between false alarms on a healthy model, for the
    whole monitor (split evenly over its signals)."""

    mean_time_between: str = Field(default="720h", pattern=DURATION_PATTERN, max_length=32)


class _Open(BaseModel):
    """An object of Kubernetes' own types: the fields named here are checked at admission, the
    rest are kept as given for the API server to validate when the object is created."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="allow", frozen=True,
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )  # fmt: skip


class JobContainer(_Open):
    name: str = Field(pattern=DNS_LABEL_PATTERN, max_length=63)
    image: str = Field(min_length=1, max_length=1024)


class JobPodSpec(_Open):
    containers: list[JobContainer] = Field(min_length=1, max_length=16)
    restart_policy: Literal["Never", "OnFailure"] = "Never"


class JobPodTemplate(Model):
    metadata: PodTemplateMetadata | None = None
    spec: JobPodSpec


class JobSpec(Model):
    """The part of a Job's spec the operator lets a user set; the rest is the operator's."""

    template: JobPodTemplate
    backoff_limit: int = Field(default=0, ge=0, le=20)
    active_deadline_seconds: int | None = Field(default=None, ge=1, le=7 * 86400)
    ttl_seconds_after_finished: int | None = Field(default=None, ge=0, le=30 * 86400)


class JobTemplate(Model):
    metadata: PodTemplateMetadata | None = None
    spec: JobSpec


class RetrainJob(Model):
    template: JobTemplate


class RetrainWebhook(Model):
    """A workflow engine's endpoint (Argo Events, Kubeflow Pipelines, Tekton Triggers): the
    retraining is sent there as a CloudEvent `io.modelrollout.rollout.retrainingrequested.v1`
    whose data carries the trigger, signed with HMAC-SHA256 when `secretRef` is given."""

    url: str = Field(pattern=r"^https?://[^\s]+$", max_length=2048)
    secret_ref: SecretKeyRef | None = None


class Retrain(Ruled):
    """Retraining on an alarm: a Job from `job.template`, named `NAME-retrain-N`, or a
    CloudEvent to `webhook`; at most one at a time and one per `cooldown`; `approval: required`
    waits for `modelrollout approve`."""

    RULES = (exactly_one("a retrain", "job", "webhook"),)
    model_config = ConfigDict(json_schema_extra=ruled(*RULES))
    job: RetrainJob | None = None
    webhook: RetrainWebhook | None = None
    cooldown: str = Field(default="24h", pattern=DURATION_PATTERN, max_length=32)
    approval: Literal["none", "required"] = "none"


class AlarmAction(Model):
    """What an alarm of `signals` (every monitor signal when empty) does: an Event and the
    notifications (`notify`), a retraining, and a fallback: to the `previous` revision while it
    is still warm (within scaleDownDelay of its replacement; else the heuristic, if there is
    one), or to the `heuristic` revision of `spec.fallback`."""

    signals: list[Annotated[str, Field(max_length=63)]] = Field(default_factory=list, max_length=16)
    notify: bool = True
    retrain: Retrain | None = None
    fallback: Literal["previous", "heuristic"] | None = None


class Fallback(Model):
    """A simpler model (a heuristic, rules, yesterday's scores) kept at `replicas` and ready
    beside every revision, as Deployment NAME-fallback, to take the traffic when an alarm says
    so; its pods carry model version `version`."""

    version: str = Field(pattern=LABEL_VALUE_PATTERN, max_length=63)
    replicas: int = Field(default=1, ge=1, le=100)
    template: PodTemplate


_NAMED = Rule(
    "self.onAlarm.all(a, !has(a.signals) || a.signals.all(n, self.signals.exists(s, s.name == n)))",
    lambda m: all(n in {s.name for s in m.signals} for a in m.on_alarm for n in a.signals),
    "onAlarm[].signals must name the monitor's signals",
    ".onAlarm",
)


class Monitor(Ruled):
    """The watch over the stable revision once no canary is in flight: every `interval`, each
    signal over the last `window`; `confirm` alarming looks in a row make an alarm, after which
    the signal is quiet for `cooldown`."""

    RULES = (_NAMED,)
    model_config = ConfigDict(json_schema_extra=ruled(*RULES))
    interval: str = Field(default="5m", pattern=DURATION_PATTERN, max_length=32)
    window: str = Field(default="1h", pattern=DURATION_PATTERN, max_length=32)
    baseline: str = Field(default="1h", pattern=DURATION_PATTERN, max_length=32)
    false_alarms: FalseAlarms = Field(default_factory=FalseAlarms)
    confirm: int = Field(default=2, ge=1, le=10)
    cooldown: str = Field(default="1h", pattern=DURATION_PATTERN, max_length=32)
    signals: list[MonitorSignal] = Field(
        min_length=1, max_length=16,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )  # fmt: skip
    on_alarm: list[AlarmAction] = Field(default_factory=list, max_length=8)

    def actions(self, signal: str) -> list[AlarmAction]:
        return [a for a in self.on_alarm if not a.signals or signal in a.signals]
