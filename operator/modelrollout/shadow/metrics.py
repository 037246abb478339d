"""The series the comparator exports, read by the paired signals' measure
(analysis/kinds/paired.py).

Every series carries `rollout` ("namespace/name") and `version` (the candidate's), set by the
comparator itself, so that no scrape relabelling can rename them.
"""

from __future__ import annotations

# The comparator stamps its own calls to the models with x-modelrollout-arm: shadow.
SHADOW_ARM = "shadow"
PREFIX = "modelrollout_shadow"
MIRRORED = f"{PREFIX}_mirrored_total"  # eligible requests the comparator received
PAIRS = f"{PREFIX}_pairs_total"  # pair: candidate | noise; both sides answered
DISAGREEMENTS = f"{PREFIX}_disagreements_total"  # pair: candidate | noise
ONE_SIDED = f"{PREFIX}_one_sided_errors_total"  # failed: candidate | champion
LABELLED = f"{PREFIX}_labelled_total"  # right: both | champion | candidate | neither
UNLABELLED = f"{PREFIX}_unlabelled_total"  # pairs whose label did not come within the delay
SHED = f"{PREFIX}_shed_total"  # mirrored requests not compared: the comparator's queue was full
LATENCY_RATIO = f"{PREFIX}_latency_ratio"  # histogram: candidate's latency over the champion's
PENDING = f"{PREFIX}_pending_labels"  # gauge: pairs waiting for their label

# Latency ratio buckets (the candidate's latency over the champion's on the same request).
RATIO_EDGES = (0.5, 0.67, 0.8, 0.9, 1.0, 1.1, 1.2, 1.25, 1.5, 2.0, 3.0, 5.0)


def selector(metric: str) -> str:
    """The metric's selector for one rollout's candidate, as a template (domain/templating.py)."""
    return f'{metric}{{rollout="{{{{ namespace }}}}/{{{{ name }}}}",version="{{{{ version }}}}"}}'
