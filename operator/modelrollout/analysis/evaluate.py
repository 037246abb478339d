"""One evaluation: every signal of a rollout measured in Prometheus and judged, plus the sample
ratio check. Each signal goes to its kind's measure (analysis/kinds/) and then to its kind's
judge (domain/kinds/), both found by the kind's name; the verdict is the judge's.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from modelrollout.analysis.counting import (
    Context,
    Counting,
    LoadReference,
    MeasurementError,
    MetricsSource,
)
from modelrollout.analysis.kinds import MEASURES
from modelrollout.api.v1alpha1 import Analysis, SampleRatio, Signal, SignalResult
from modelrollout.domain import signals, stats
from modelrollout.domain.experiment import ArmSeen
from modelrollout.domain.kinds import JUDGES, compare
from modelrollout.domain.machine import MIRROR_RATIO, USER_ERRORS
from modelrollout.domain.templating import TemplateError
from modelrollout.shadow import metrics
from modelrollout.shadow.metrics import SHADOW_ARM

# Routers take a moment to apply a new weight everywhere; requests in flight meanwhile went by
# the old one. The sample ratio window starts this long after the weight was seen on the route.
SETTLE = timedelta(seconds=10)
# The label of the request counter that carries the arm a bucket rule stamped on the request
# (cohorts.ARM_HEADER's value, copied by the model server; "" or absent: not stamped).
ARM = "arm"


class Evaluation:
    def __init__(self, source: MetricsSource, context: Context,
                 load_reference: LoadReference) -> None:  # fmt: skip
        self.source = source
        self.c = context
        self.load_reference = load_reference

    def run(self, analysis: Analysis) -> list[SignalResult]:
        """Every signal and the split checks; in a shadow step, the paired signals and the
        mirror's checks instead (the others have no users' requests of the candidate to judge,
        and the paired ones have pairs only then)."""
        shadow = self.c.shadow is not None
        if shadow and self._mirror_window() is None:
            return []  # the mirror is not on, or only just: nothing is paired yet
        results = [self._one(s)[0] for s in analysis.signals if (s.paired is not None) == shadow]
        if shadow:
            checks = [self._guarded(MIRROR_RATIO, lambda: self._mirror_ratio(analysis)),
                      self._guarded(USER_ERRORS, lambda: self._user_errors(analysis))]  # fmt: skip
            return [*results, *(r for r in checks if r is not None)]
        return [*results, *self._sample_ratio(analysis)]

    def _mirror_window(self) -> datetime | None:
        since = self.c.mirror_since + SETTLE if self.c.mirror_since is not None else None
        return since if since is not None and since < self.c.now else None

    def _mirror_ratio(self, analysis: Analysis) -> SignalResult | None:
        """The comparator's mirrored requests against the share of the users' requests the
        stable served meanwhile (its own calls to the champion are stamped and left out)."""
        since, share = self._mirror_window(), self.c.shadow
        if since is None or share is None or not self.c.shadow_all:
            return None
        check = analysis.sample_ratio
        counting = Counting(self.source, self.c, self.load_reference)
        # per second: the largest increase one scrape showed, how far a window's edge can be off
        users = counting.counted(unstamped(check.requests), self.c.stable_version, since=since,
                                 every=1.0)  # fmt: skip
        mirrored = counting.counted(metrics.selector(metrics.MIRRORED), self.c.canary_version,
                                    since=since, every=1.0)  # fmt: skip
        if "" not in users.by:
            return None
        slack = 2 * sum(max(p.get("", [0.0]) or [0.0]) for p in (users.periods, mirrored.periods))
        return signals.judge_mirror_ratio(check, mirrored.by.get("", 0.0), users.by[""],
                                          slack=slack, share=share, at=self.c.at)  # fmt: skip

    def _user_errors(self, analysis: Analysis) -> SignalResult | None:
        """The users' error rate since the mirror went on, against as long a time before it."""
        since = self._mirror_window()
        if since is None:
            return None
        counting = Counting(self.source, self.c, self.load_reference)
        selector, version = unstamped(analysis.sample_ratio.requests), self.c.stable_version
        span = (self.c.now - since).total_seconds()
        after = counting.increases(selector, version, "code", since=since)
        before = counting.increases(selector, version, "code", since=since, offset=span)
        return signals.judge_user_errors(_errors(before), _errors(after), self.c.at)

    def arm(self, analysis: Analysis) -> ArmSeen:
        """An A/B/n candidate (the context's canary) against the champion (its stable): every
        signal's result, and the objective's advantage (the first compare signal), from one
        measurement of each signal."""
        results: list[SignalResult] = []
        objective: stats.Estimate | None = None
        first = next((s.name for s in analysis.signals if s.compare is not None), None)
        for signal in analysis.signals:
            judged, measured = self._one(signal)
            results.append(judged)
            if signal.name == first and signal.compare is not None and measured is not None:
                objective = compare.advantage(signal.compare, measured)
        return ArmSeen(True, [*results, *self._sample_ratio(analysis)], objective)

    def _one(self, signal: Signal) -> tuple[SignalResult, Any]:
        try:
            return self._judge(signal)
        except (MeasurementError, TemplateError, ValueError) as error:
            return signals.error(signal.name, signal.kind, str(error), self.c.at), None
        except Exception as error:  # a fault in one signal is that signal's Error verdict
            return signals.error(signal.name, signal.kind, unexpected(error), self.c.at), None

    def _judge(self, signal: Signal) -> tuple[SignalResult, Any]:
        """Measure the signal by its kind's measure, judge it by its kind's judge, and say
        Inconclusive rather than NoData while series exist but nothing was counted yet; with
        what was measured."""
        kind = signal.kind
        measure, judge = MEASURES.get(kind), JUDGES.get(kind)
        if measure is None or judge is None:
            return signals.error(signal.name, kind, f"no measure or judge for kind {kind}",
                                 self.c.at), None  # fmt: skip
        counting = Counting(self.source, self.c, self.load_reference)
        spec = signal.spec
        measured = measure(counting, spec)
        judged = judge(signal.name, spec, measured, self.c.at, self.c.plans.get(signal.name))
        return signals.gathering(judged, counting.matched), measured

    def _sample_ratio(self, analysis: Analysis) -> list[SignalResult]:
        """The split checks: the weight's, on the requests no bucket rule stamped, and the sticky
        buckets' own (treatment against control, on stamped requests), when buckets are in
        effect. A check that cannot be counted is its own Error."""
        check = analysis.sample_ratio
        if not check.enabled or self.c.canary_version == self.c.stable_version:
            return []
        judged = [self._guarded(signals.SAMPLE_RATIO, lambda: self._weighted(check)),
                  self._guarded(signals.BUCKET_RATIO, lambda: self._bucketed(check))]  # fmt: skip
        return [r for r in judged if r is not None]

    def _guarded(self, name: str, check: Callable[[], SignalResult | None]) -> SignalResult | None:
        """A split check's result, or its Error with the reason when it could not be counted."""
        try:
            return check()
        except (MeasurementError, TemplateError, ValueError) as error:
            return signals.error(name, "sampleRatio", str(error), self.c.at)
        except Exception as error:
            return signals.error(name, "sampleRatio", unexpected(error), self.c.at)

    def _weighted(self, check: SampleRatio) -> SignalResult | None:
        if self.c.weight_since is None or not 0 < self.c.weight < 100:
            return None
        since = self.c.weight_since + SETTLE
        if since >= self.c.now:
            return None
        counting = Counting(self.source, self.c, self.load_reference)
        by = ARM if self.c.buckets is not None else None  # bucket requests are not split
        canary = counting.increases(check.requests, self.c.canary_version, by, since=since)
        stable = counting.increases(check.requests, self.c.stable_version, by, since=since)
        return signals.judge_sample_ratio(check, canary.get(""), stable.get(""), self.c.weight,
                                          self.c.at)  # fmt: skip

    def _bucketed(self, check: SampleRatio) -> SignalResult | None:
        if self.c.buckets is None:
            return None
        counting = Counting(self.source, self.c, self.load_reference)
        canary, stable = self.c.canary_version, self.c.stable_version
        treatment = counting.increases(check.requests, canary, ARM).get(canary)
        control = counting.increases(check.requests, stable, ARM).get(stable)
        return signals.judge_bucket_ratio(check, treatment, control, self.c.buckets, self.c.at)

    def served(self, analysis: Analysis) -> float | None:
        """Requests the canary served since the step began, by the sample ratio's selector;
        None when not counted: the check disabled, no step start, no series for either arm, or
        a measurement that failed (the signals say that failure themselves)."""
        check = analysis.sample_ratio
        since = self.c.step_since
        if not check.enabled or since is None or self.c.canary_version == self.c.stable_version:
            return None
        counting = Counting(self.source, self.c, self.load_reference)
        try:
            canary = counting.increases(check.requests, self.c.canary_version, since=since)
            if "" in canary:
                return canary[""]
            stable = counting.increases(check.requests, self.c.stable_version, since=since)
        except (MeasurementError, TemplateError, ValueError):
            return None
        return 0.0 if "" in stable else None


def _errors(by_code: dict[str, float]) -> tuple[float, float]:
    """(5xx answers, all answers) of requests counted by their `code` label."""
    return sum(v for k, v in by_code.items() if k.startswith("5")), sum(by_code.values())


def unstamped(selector: str) -> str:
    """The selector without the shadow's comparator calls (stamped `arm="shadow"`)."""
    text = selector.strip()
    matcher = f'{ARM}!="{SHADOW_ARM}"'
    if text.endswith("{}"):
        return f"{text[:-1]}{matcher}}}"
    if text.endswith("}"):
        return f"{text[:-1]},{matcher}}}"
    return f"{text}{{{matcher}}}"


def unexpected(error: BaseException) -> str:
    """A short, readable line for an error nobody planned for: what failed, not a traceback."""
    lines = str(error).strip().splitlines()
    detail = lines[0][:200] if lines else ""
    kind = type(error).__name__
    said = f": {detail}" if detail else ""
    return f"could not measure or judge{said} ({kind})"


def failed_everywhere(analysis: Analysis, message: str, at: str) -> list[SignalResult]:
    """Every signal an Error with one reason: nothing could be measured (no credentials)."""
    return [signals.error(s.name, s.kind, message, at) for s in analysis.signals]
