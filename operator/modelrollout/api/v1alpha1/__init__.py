"""The ModelRollout API, version modelrollout.io/v1alpha1: the single source of truth.

The CRD in crds/ is generated from these models (`make crds`); constraints that span fields are
declared once as rules (rules.py) that give both the CEL the API server checks at admission and
the check the models make in the operator, with one message.

One module per concern: rules.py (patterns, base model, rules), workload.py (model, pod template,
Services), traffic.py (routers), strategy.py (steps), queries.py (PromQL templates and
selectors), signals.py (one model per signal kind), analysis.py, lifecycle.py (the bake),
notifications.py, spec.py (the whole spec) and status.py (status and the phase and verdict
vocabularies). Import from here.
"""

from __future__ import annotations

from modelrollout.api.v1alpha1.analysis import (
    MIN_INTERVAL_SECONDS as MIN_INTERVAL_SECONDS,
)
from modelrollout.api.v1alpha1.analysis import (
    Analysis as Analysis,
)
from modelrollout.api.v1alpha1.analysis import (
    PrometheusSource as PrometheusSource,
)
from modelrollout.api.v1alpha1.analysis import (
    SecretRef as SecretRef,
)
from modelrollout.api.v1alpha1.lifecycle import (
    MAX_HOLDBACK_PERCENT as MAX_HOLDBACK_PERCENT,
)
from modelrollout.api.v1alpha1.lifecycle import (
    AlarmAction as AlarmAction,
)
from modelrollout.api.v1alpha1.lifecycle import (
    Bake as Bake,
)
from modelrollout.api.v1alpha1.lifecycle import (
    Fallback as Fallback,
)
from modelrollout.api.v1alpha1.lifecycle import (
    FalseAlarms as FalseAlarms,
)
from modelrollout.api.v1alpha1.lifecycle import (
    Holdback as Holdback,
)
from modelrollout.api.v1alpha1.lifecycle import (
    JobSpec as JobSpec,
)
from modelrollout.api.v1alpha1.lifecycle import (
    JobTemplate as JobTemplate,
)
from modelrollout.api.v1alpha1.lifecycle import (
    KpiSignal as KpiSignal,
)
from modelrollout.api.v1alpha1.lifecycle import (
    Monitor as Monitor,
)
from modelrollout.api.v1alpha1.lifecycle import (
    MonitorSignal as MonitorSignal,
)
from modelrollout.api.v1alpha1.lifecycle import (
    Retrain as Retrain,
)
from modelrollout.api.v1alpha1.lifecycle import (
    RetrainJob as RetrainJob,
)
from modelrollout.api.v1alpha1.notifications import (
    WEBHOOK_EVENT_OF_REASON as WEBHOOK_EVENT_OF_REASON,
)
from modelrollout.api.v1alpha1.notifications import (
    WEBHOOK_EVENTS as WEBHOOK_EVENTS,
)
from modelrollout.api.v1alpha1.notifications import (
    Notifications as Notifications,
)
from modelrollout.api.v1alpha1.notifications import (
    SecretKeyRef as SecretKeyRef,
)
from modelrollout.api.v1alpha1.notifications import (
    Webhook as Webhook,
)
from modelrollout.api.v1alpha1.notifications import (
    WebhookEvent as WebhookEvent,
)
from modelrollout.api.v1alpha1.notifications import (
    WebhookFormat as WebhookFormat,
)
from modelrollout.api.v1alpha1.queries import (
    MAX_QUERY_LENGTH as MAX_QUERY_LENGTH,
)
from modelrollout.api.v1alpha1.queries import (
    SELECTOR_MESSAGE as SELECTOR_MESSAGE,
)
from modelrollout.api.v1alpha1.queries import (
    SELECTOR_PATTERN as SELECTOR_PATTERN,
)
from modelrollout.api.v1alpha1.queries import (
    SELECTOR_RULE as SELECTOR_RULE,
)
from modelrollout.api.v1alpha1.queries import (
    TEMPLATE_MESSAGE as TEMPLATE_MESSAGE,
)
from modelrollout.api.v1alpha1.queries import (
    TEMPLATE_PATTERN as TEMPLATE_PATTERN,
)
from modelrollout.api.v1alpha1.queries import (
    TEMPLATE_RULE as TEMPLATE_RULE,
)
from modelrollout.api.v1alpha1.queries import (
    TEMPLATE_VARIABLES as TEMPLATE_VARIABLES,
)
from modelrollout.api.v1alpha1.rules import (
    DNS_LABEL_PATTERN as DNS_LABEL_PATTERN,
)
from modelrollout.api.v1alpha1.rules import (
    DURATION_PATTERN as DURATION_PATTERN,
)
from modelrollout.api.v1alpha1.rules import (
    LABEL_VALUE_PATTERN as LABEL_VALUE_PATTERN,
)
from modelrollout.api.v1alpha1.rules import (
    Model as Model,
)
from modelrollout.api.v1alpha1.rules import (
    Rule as Rule,
)
from modelrollout.api.v1alpha1.rules import (
    Ruled as Ruled,
)
from modelrollout.api.v1alpha1.rules import (
    exactly_one as exactly_one,
)
from modelrollout.api.v1alpha1.rules import (
    only_with as only_with,
)
from modelrollout.api.v1alpha1.rules import (
    together as together,
)
from modelrollout.api.v1alpha1.signals import (
    DRIFT_DEFAULT_MAX as DRIFT_DEFAULT_MAX,
)
from modelrollout.api.v1alpha1.signals import (
    MARGIN_MESSAGE as MARGIN_MESSAGE,
)
from modelrollout.api.v1alpha1.signals import (
    SIGNAL_KINDS as SIGNAL_KINDS,
)
from modelrollout.api.v1alpha1.signals import (
    CompareSignal as CompareSignal,
)
from modelrollout.api.v1alpha1.signals import (
    ConfigMapKeyRef as ConfigMapKeyRef,
)
from modelrollout.api.v1alpha1.signals import (
    DriftSignal as DriftSignal,
)
from modelrollout.api.v1alpha1.signals import (
    DriftStatistic as DriftStatistic,
)
from modelrollout.api.v1alpha1.signals import (
    FairnessMetric as FairnessMetric,
)
from modelrollout.api.v1alpha1.signals import (
    FairnessSignal as FairnessSignal,
)
from modelrollout.api.v1alpha1.signals import (
    OutliersSignal as OutliersSignal,
)
from modelrollout.api.v1alpha1.signals import (
    PairedSignal as PairedSignal,
)
from modelrollout.api.v1alpha1.signals import (
    SampleRatio as SampleRatio,
)
from modelrollout.api.v1alpha1.signals import (
    Signal as Signal,
)
from modelrollout.api.v1alpha1.signals import (
    ThresholdSignal as ThresholdSignal,
)
from modelrollout.api.v1alpha1.spec import MAX_CHALLENGERS as MAX_CHALLENGERS
from modelrollout.api.v1alpha1.spec import (
    ModelRolloutSpec as ModelRolloutSpec,
)
from modelrollout.api.v1alpha1.status import (
    AT_REST as AT_REST,
)
from modelrollout.api.v1alpha1.status import (
    IN_FLIGHT as IN_FLIGHT,
)
from modelrollout.api.v1alpha1.status import (
    INITIAL_PHASE as INITIAL_PHASE,
)
from modelrollout.api.v1alpha1.status import (
    PHASES as PHASES,
)
from modelrollout.api.v1alpha1.status import (
    RETRAINING_OPEN as RETRAINING_OPEN,
)
from modelrollout.api.v1alpha1.status import (
    RETRAINING_STATES as RETRAINING_STATES,
)
from modelrollout.api.v1alpha1.status import (
    UNHEALTHY_PHASES as UNHEALTHY_PHASES,
)
from modelrollout.api.v1alpha1.status import (
    VERDICTS as VERDICTS,
)
from modelrollout.api.v1alpha1.status import AbnStatus as AbnStatus
from modelrollout.api.v1alpha1.status import (
    Alarm as Alarm,
)
from modelrollout.api.v1alpha1.status import (
    AnalysisStatus as AnalysisStatus,
)
from modelrollout.api.v1alpha1.status import ArmStatus as ArmStatus
from modelrollout.api.v1alpha1.status import (
    Condition as Condition,
)
from modelrollout.api.v1alpha1.status import (
    Counters as Counters,
)
from modelrollout.api.v1alpha1.status import (
    Detector as Detector,
)
from modelrollout.api.v1alpha1.status import (
    FallbackState as FallbackState,
)
from modelrollout.api.v1alpha1.status import (
    HistoryEntry as HistoryEntry,
)
from modelrollout.api.v1alpha1.status import (
    Look as Look,
)
from modelrollout.api.v1alpha1.status import (
    ModelRolloutStatus as ModelRolloutStatus,
)
from modelrollout.api.v1alpha1.status import (
    MonitorStatus as MonitorStatus,
)
from modelrollout.api.v1alpha1.status import (
    Notice as Notice,
)
from modelrollout.api.v1alpha1.status import (
    NotificationsStatus as NotificationsStatus,
)
from modelrollout.api.v1alpha1.status import (
    PauseState as PauseState,
)
from modelrollout.api.v1alpha1.status import (
    Phase as Phase,
)
from modelrollout.api.v1alpha1.status import (
    PlannedLooks as PlannedLooks,
)
from modelrollout.api.v1alpha1.status import (
    Reported as Reported,
)
from modelrollout.api.v1alpha1.status import (
    Retraining as Retraining,
)
from modelrollout.api.v1alpha1.status import (
    RetrainingState as RetrainingState,
)
from modelrollout.api.v1alpha1.status import (
    RetrainingStatus as RetrainingStatus,
)
from modelrollout.api.v1alpha1.status import (
    RevisionRef as RevisionRef,
)
from modelrollout.api.v1alpha1.status import (
    Samples as Samples,
)
from modelrollout.api.v1alpha1.status import (
    ScaleDown as ScaleDown,
)
from modelrollout.api.v1alpha1.status import (
    SignalResult as SignalResult,
)
from modelrollout.api.v1alpha1.status import (
    Sink as Sink,
)
from modelrollout.api.v1alpha1.status import (
    StatusEdit as StatusEdit,
)
from modelrollout.api.v1alpha1.status import (
    Trigger as Trigger,
)
from modelrollout.api.v1alpha1.status import (
    Verdict as Verdict,
)
from modelrollout.api.v1alpha1.strategy import (
    BUCKETS as BUCKETS,
)
from modelrollout.api.v1alpha1.strategy import Abn as Abn
from modelrollout.api.v1alpha1.strategy import (
    Buckets as Buckets,
)
from modelrollout.api.v1alpha1.strategy import Cohort as Cohort
from modelrollout.api.v1alpha1.strategy import (
    Duration as Duration,
)
from modelrollout.api.v1alpha1.strategy import (
    Pause as Pause,
)
from modelrollout.api.v1alpha1.strategy import Shadow as Shadow
from modelrollout.api.v1alpha1.strategy import (
    Step as Step,
)
from modelrollout.api.v1alpha1.strategy import (
    Strategy as Strategy,
)
from modelrollout.api.v1alpha1.traffic import (
    Capability as Capability,
)
from modelrollout.api.v1alpha1.traffic import (
    GatewayAPITraffic as GatewayAPITraffic,
)
from modelrollout.api.v1alpha1.traffic import (
    ParentRef as ParentRef,
)
from modelrollout.api.v1alpha1.traffic import (
    RouterSpec as RouterSpec,
)
from modelrollout.api.v1alpha1.traffic import (
    Traffic as Traffic,
)
from modelrollout.api.v1alpha1.traffic import (
    capability_rules as capability_rules,
)
from modelrollout.api.v1alpha1.traffic import (
    routers as routers,
)
from modelrollout.api.v1alpha1.workload import (
    MAX_NAME_LENGTH as MAX_NAME_LENGTH,
)
from modelrollout.api.v1alpha1.workload import (
    NAME_MESSAGE as NAME_MESSAGE,
)
from modelrollout.api.v1alpha1.workload import Challenger as Challenger
from modelrollout.api.v1alpha1.workload import (
    LabelSelector as LabelSelector,
)
from modelrollout.api.v1alpha1.workload import (
    LabelSelectorRequirement as LabelSelectorRequirement,
)
from modelrollout.api.v1alpha1.workload import (
    LabelValue as LabelValue,
)
from modelrollout.api.v1alpha1.workload import (
    ModelRef as ModelRef,
)
from modelrollout.api.v1alpha1.workload import (
    PodTemplate as PodTemplate,
)
from modelrollout.api.v1alpha1.workload import (
    PodTemplateMetadata as PodTemplateMetadata,
)
from modelrollout.api.v1alpha1.workload import (
    ServicePorts as ServicePorts,
)

GROUP = "modelrollout.io"
VERSION = "v1alpha1"
KIND = "ModelRollout"
PLURAL = "modelrollouts"
