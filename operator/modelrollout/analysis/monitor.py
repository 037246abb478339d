"""One look of the monitor, measured: the stable revision's threshold and drift signals through
the same measures and judges as a canary's (analysis/kinds/, domain/kinds/), the watched revision
playing the canary's arm over the last `window`; a drift judged at the per-look alpha the
false-alarm budget allows (domain/detectors.py); a kpi's labelled counts since it last counted.
The verdicts and the alarms are domain/monitor.py's."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from modelrollout.analysis.counting import (
    Context,
    Counting,
    LoadReference,
    MeasurementError,
    MetricsSource,
)
from modelrollout.analysis.evaluate import Evaluation, unexpected
from modelrollout.api.v1alpha1 import (
    Analysis,
    Monitor,
    MonitorSignal,
    MonitorStatus,
    PrometheusSource,
    SampleRatio,
    Signal,
)
from modelrollout.domain import detectors, signals
from modelrollout.domain.durations import parse_duration
from modelrollout.domain.machine import timestamp
from modelrollout.domain.monitor import Counted, Look, baseline_window, judged_from
from modelrollout.domain.templating import TemplateError


def _as_signal(signal: MonitorSignal, alpha: float) -> Signal:
    if signal.drift is not None:
        drift = signal.drift.model_copy(update={"alpha": min(signal.drift.alpha, alpha)})
        return Signal(name=signal.name, drift=drift)
    if signal.outliers is not None:
        found = signal.outliers.model_copy(update={"alpha": min(signal.outliers.alpha, alpha)})
        return Signal(name=signal.name, outliers=found)
    if signal.fairness is not None:
        fair = signal.fairness.model_copy(update={"alpha": min(signal.fairness.alpha, alpha)})
        return Signal(name=signal.name, fairness=fair)
    return Signal(name=signal.name, threshold=signal.threshold)


def look(source: MetricsSource, context: Context, *, prometheus: PrometheusSource,
         monitor: Monitor, m: MonitorStatus, load: LoadReference) -> Look:  # fmt: skip
    """Measure every signal of one look; a signal that cannot be measured is an Error result."""
    now = context.now
    window = timedelta(seconds=parse_duration(monitor.window))
    context = replace(context, canary_since=now - window, weight=100, weight_since=None,
                      period=None, plans={}, baseline=baseline_window(monitor, m))  # fmt: skip
    results = {}
    judged = [s for s in monitor.signals if s.kpi is None and now >= judged_from(monitor, m, s)]
    if judged:
        budget = parse_duration(monitor.false_alarms.mean_time_between)
        alpha = detectors.look_alpha(budget, parse_duration(monitor.interval),
                                     len(monitor.signals))  # fmt: skip
        # validated as the monitor's signals already (a canary's Analysis refuses `baseline`)
        chosen = [_as_signal(s, alpha) for s in judged]
        analysis = Analysis.model_construct(prometheus=prometheus, signals=chosen,
                                            sample_ratio=SampleRatio(enabled=False))  # fmt: skip
        results = {r.name: r for r in Evaluation(source, context, load).run(analysis)}
    counts = {}
    for signal in monitor.signals:
        kpi = signal.kpi
        if kpi is None:
            continue
        detector = next((d for d in m.detectors if d.name == signal.name), None)
        since = datetime.fromisoformat(
            detector.counted_to if detector is not None and detector.counted_to else m.since
        )
        until = now - timedelta(seconds=parse_duration(kpi.label_delay))
        if until <= since:
            counts[signal.name] = Counted(0.0, 0.0, timestamp(since))
            continue
        counting = Counting(source, replace(context, now=until), load)
        try:
            version = context.canary_version
            successes = counting.increases(kpi.successes, version, since=since).get("", 0.0)
            total = counting.increases(kpi.total, version, since=since).get("", 0.0)
            counts[signal.name] = Counted(successes, total, timestamp(until))
        except (MeasurementError, TemplateError, ValueError) as error:
            results[signal.name] = signals.error(signal.name, "kpi", str(error), context.at)
        except Exception as error:  # a fault in one signal is that signal's Error verdict
            results[signal.name] = signals.error(signal.name, "kpi", unexpected(error), context.at)
    return Look(now=now, results=results, counts=counts)
