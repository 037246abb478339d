"""The outliers kind: the share of observations in the reference's tail buckets, against the
reference's own tail mass, with an always-valid bound."""

from __future__ import annotations

from modelrollout.api.v1alpha1 import OutliersSignal
from modelrollout.domain.kinds.drift import Distributions
from modelrollout.domain.kinds.outliers import judge, tail_buckets
from modelrollout.domain.signals import Histogram

EDGES = (10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0)
# 9 buckets, the last +Inf: 0.3% below 10 and 0.2% above 2500 (tails of 0.5% each side)
REFERENCE = Histogram(EDGES, (30.0, 970.0, 2000.0, 3000.0, 2500.0, 1000.0, 400.0, 80.0, 20.0))
SIGNAL = OutliersSignal(histogram="amount_bucket", reference={"name": "r", "key": "k"})


def judged(counts: tuple[float, ...]) -> tuple[str, float | None]:
    out = judge(
        "amounts", SIGNAL, Distributions([REFERENCE], [Histogram(EDGES, counts)]), "t", None
    )
    return out.verdict, out.value


def test_the_tails_are_whole_buckets_within_tail_of_the_reference() -> None:
    assert tail_buckets(REFERENCE, 0.005) == [0, 8]
    assert tail_buckets(REFERENCE, 0.02) == [0, 7, 8]


def test_inputs_like_the_reference_pass_and_a_new_population_in_the_tails_fails() -> None:
    like = (30.0, 970.0, 2000.0, 3000.0, 2500.0, 1000.0, 400.0, 80.0, 20.0)
    assert judged(like)[0] == "Pass"
    # a broken upstream feature: 5% of amounts now above the reference's top edge
    broken = (30.0, 970.0, 2000.0, 3000.0, 2500.0, 1000.0, 400.0, 80.0, 500.0)
    verdict, share = judged(broken)
    assert verdict == "Fail"
    assert share is not None
    assert share > 0.04


def test_few_observations_are_not_judged_and_none_is_no_data() -> None:
    assert judged((1.0, 0, 0, 0, 10.0, 0, 0, 0, 1.0))[0] == "Inconclusive"
    assert judged((0.0,) * 9)[0] == "NoData"
