"""The paired judge (domain/kinds/paired.py) and the shadow step's comparator
(shadow/comparator.py), the comparator against real HTTP model servers on this machine."""

from __future__ import annotations

import http.server
import json
import math
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from modelrollout.api.v1alpha1 import ModelRolloutSpec, PairedSignal
from modelrollout.domain import stats
from modelrollout.domain.kinds.paired import Pairs, judge
from modelrollout.shadow import metrics
from modelrollout.shadow.comparator import Comparator, Request, Server, Settings
from modelrollout.testing.cluster import wait_for
from modelrollout.testing.podserver import predict, truth

AT = "2026-12-06T00:00:00Z"


def paired(**fields: Any) -> PairedSignal:
    return PairedSignal.model_validate(fields)


def test_disagreement_is_judged_above_the_noise_floor() -> None:
    signal = paired(test="disagreement", max=0.02)
    noisy_twins = Pairs(pairs={"candidate": 5000, "noise": 5000},
                        disagreements={"candidate": 260, "noise": 250})  # fmt: skip
    assert judge("d", signal, noisy_twins, AT, None).verdict == "Pass"
    apart = Pairs(pairs={"candidate": 5000, "noise": 5000},
                  disagreements={"candidate": 600, "noise": 250})  # fmt: skip
    failed = judge("d", signal, apart, AT, None)
    assert failed.verdict == "Fail"
    assert "noise floor" in (failed.message or "")
    few = Pairs(pairs={"candidate": 50, "noise": 50}, disagreements={"candidate": 5})
    assert judge("d", signal, few, AT, None).verdict == "Inconclusive"
    assert judge("d", signal, Pairs(), AT, None).verdict == "NoData"


def test_correctness_tests_the_discordant_pairs() -> None:
    signal = paired(test="correctness", margin=0.005)
    # 2 points worse, the mistakes nested: 2,000 labelled pairs, 40 discordant, all one way
    worse = Pairs(labelled={"both": 1760, "champion": 40, "candidate": 0, "neither": 200})
    result = judge("c", signal, worse, AT, None)
    assert result.verdict == "Fail", result.message
    assert result.canary == pytest.approx(0.88)
    assert result.stable == pytest.approx(0.90)
    equal = Pairs(labelled={"both": 3600, "champion": 0, "candidate": 0, "neither": 400})
    assert judge("c", signal, equal, AT, None).verdict == "Pass"
    even = Pairs(labelled={"both": 1700, "champion": 60, "candidate": 60, "neither": 180})
    assert judge("c", signal, even, AT, None).verdict in ("Pass", "Inconclusive")
    assert judge("c", signal, Pairs(labelled={"both": 20}), AT, None).verdict == "Inconclusive"


def test_paired_correctness_needs_fewer_labels_than_an_unpaired_comparison() -> None:
    """The reason for pairing: the same 2-point regression, judged on as few labels as the
    paired test needs, is still undecided by the unpaired comparison of two arms' rates."""
    signal = paired(test="correctness", margin=0.0)
    for n in range(100, 20001, 100):
        b = round(0.02 * n)
        if judge("c", signal, Pairs(labelled={"both": round(0.88 * n), "champion": b,
                                              "neither": n - round(0.88 * n) - b}),
                 AT, None).verdict == "Fail":  # fmt: skip
            break
    unpaired = stats.Estimate(-0.02, math.sqrt(0.88 * 0.12 / n + 0.9 * 0.1 / n), 2 * n)
    assert unpaired.interval(0.05).upper > 0, f"paired failed at {n}, unpaired too"


def test_errors_are_a_sign_test_on_the_one_sided_failures() -> None:
    signal = paired(test="errors")
    failing = Pairs(one_sided={"candidate": 25, "champion": 0}, mirrored=500)
    assert judge("e", signal, failing, AT, None).verdict == "Fail"
    flaky_both = Pairs(one_sided={"candidate": 3, "champion": 4}, mirrored=5000)
    assert judge("e", signal, flaky_both, AT, None).verdict == "Pass"
    assert judge("e", signal, Pairs(mirrored=50), AT, None).verdict == "Inconclusive"


def test_latency_ratio_is_a_median_test_on_the_pairs() -> None:
    signal = paired(test="latency", maxRatio=1.2)
    edges = metrics.RATIO_EDGES
    slow = {e: (0.0 if e < 1.5 else 900.0) for e in edges} | {math.inf: 1000.0}
    assert judge("l", signal, Pairs(ratios=slow), AT, None).verdict == "Fail"
    fast = {e: (100.0 if e < 1.0 else 950.0) for e in edges} | {math.inf: 1000.0}
    assert judge("l", signal, Pairs(ratios=fast), AT, None).verdict == "Pass"
    assert judge("l", signal, Pairs(), AT, None).verdict == "NoData"


def test_admission_rules_name_the_field() -> None:
    with pytest.raises(ValidationError, match="needs margin"):
        paired(test="correctness")
    with pytest.raises(ValidationError, match="needs max"):
        paired(test="disagreement")
    with pytest.raises(ValidationError, match="maxRatio is for a latency test only"):
        paired(test="errors", maxRatio=2)


def _spec(steps: list[dict[str, Any]], signals: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "model": {"name": "fraud", "version": "2"},
        "selector": {"matchLabels": {"app": "fraud"}},
        "template": {"metadata": {"labels": {"app": "fraud"}},
                     "spec": {"containers": [{"name": "model", "image": "example/model"}]}},
        "traffic": {"gatewayAPI": {"parentRefs": [{"name": "gw"}]}},
        "strategy": {"steps": steps},
        "analysis": {"prometheus": {"address": "http://prometheus:9090"}, "signals": signals},
    }  # fmt: skip


SHADOW = {"shadow": {"share": 50, "duration": "5m"}}
PAIRED = {"name": "accuracy", "paired": {"test": "correctness", "margin": 0.01}}


def test_a_shadow_step_comes_before_users_and_with_a_paired_signal() -> None:
    ModelRolloutSpec.model_validate(_spec([SHADOW, {"setWeight": 10}], [PAIRED]))
    with pytest.raises(ValidationError, match="shadow must come before"):
        ModelRolloutSpec.model_validate(_spec([{"setWeight": 10}, SHADOW], [PAIRED]))
    with pytest.raises(ValidationError, match="go together"):
        ModelRolloutSpec.model_validate(_spec([SHADOW], []))
    with pytest.raises(ValidationError, match="go together"):
        ModelRolloutSpec.model_validate(_spec([{"setWeight": 10}], [PAIRED]))


# --- the comparator, against model servers on this machine ----------------------------------


class _Model(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    accuracy = 0.9
    fail = False
    seen: list[str]

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("x-modelrollout-arm", ""))
        rid = self.headers.get("x-request-id", "")
        code, body = (
            (500, b"{}")
            if self.fail
            else (200, json.dumps({"prediction": predict(rid, self.accuracy, 0.0)}).encode())
        )
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


def _model(**attributes: Any) -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []
    kind = type("Model", (_Model,), {**attributes, "seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), kind)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


@pytest.fixture
def champion() -> Iterator[tuple[str, list[str]]]:
    yield from _model(accuracy=0.9)


def _comparator(champion: str, candidate: str, **settings: Any) -> Comparator:
    return Comparator(Settings(candidate=candidate, champion=champion, rollout="ns/fraud",
                               version="2", label_delay=60, **settings))  # fmt: skip


def _sample(comparator: Comparator, name: str, **labels: str) -> float:
    value = comparator.counts.registry.get_sample_value(
        name, {"rollout": "ns/fraud", "version": "2", **labels}
    )
    return value or 0.0


def test_the_comparator_pairs_answers_and_joins_labels(champion: tuple[str, list[str]]) -> None:
    for candidate, seen in _model(accuracy=0.88):
        comparator = _comparator(champion[0], candidate)
        for i in range(300):
            comparator.mirrored(Request("GET", "/predict", {"x-request-id": f"r{i}"}, b"", f"r{i}"))
        joined = sum(comparator.label(f"r{i}", truth(f"r{i}")) for i in range(300))
        assert joined == 300
        assert not comparator.label("r0", 1), "a label joins its pair once"
        assert _sample(comparator, metrics.PAIRS, pair="candidate") == 300
        assert _sample(comparator, metrics.PAIRS, pair="noise") == 300
        assert _sample(comparator, metrics.DISAGREEMENTS, pair="noise") == 0
        assert _sample(comparator, metrics.DISAGREEMENTS, pair="candidate") > 0
        assert _sample(comparator, metrics.LABELLED, right="candidate") == 0
        assert _sample(comparator, metrics.LABELLED, right="champion") > 0
        assert _sample(comparator, f"{metrics.LATENCY_RATIO}_count") == 300
        kept = comparator.disagreements()
        assert 0 < len(kept) <= 20
        assert {"champion", "candidate", "id"} <= set(kept[0])
        assert set(seen) == {"shadow"}, "its calls are stamped, so users' counts leave them out"
        assert set(champion[1]) == {"shadow"}
        assert len(champion[1]) == 600, "the champion is asked twice: the noise floor"
        comparator.close()


def test_one_sided_failures_and_bounded_memory(champion: tuple[str, list[str]]) -> None:
    for candidate, _ in _model(fail=True):
        comparator = _comparator(champion[0], candidate, max_pending=50)
        for i in range(80):
            comparator.mirrored(Request("GET", "/predict", {}, b"", f"r{i}"))
        assert _sample(comparator, metrics.ONE_SIDED, failed="candidate") == 80
        assert _sample(comparator, metrics.PAIRS, pair="candidate") == 0
        assert len(comparator.waiting) == 0, "a failed pair waits for no label"
        comparator.close()
    for candidate, _ in _model(accuracy=0.9):
        comparator = _comparator(champion[0], candidate, max_pending=50)
        for i in range(80):
            comparator.mirrored(Request("GET", "/predict", {}, b"", f"r{i}"))
        assert len(comparator.waiting) == 50
        assert _sample(comparator, metrics.UNLABELLED) == 30
        comparator.close()


def test_the_comparator_serves_the_mirror_labels_and_metrics(
    champion: tuple[str, list[str]],
) -> None:
    comparator = _comparator(champion[0], champion[0])
    server = Server(comparator)
    threading.Thread(target=server.serve, args=("127.0.0.1", 0), daemon=True).start()
    while not hasattr(server, "httpd"):
        threading.Event().wait(0.01)
    base = f"http://127.0.0.1:{server.httpd.server_address[1]}"

    def post_label(request_id: str) -> Any:
        label = urllib.request.Request(  # noqa: S310
            f"{base}/labels",
            method="POST",
            data=json.dumps([{"id": request_id, "label": truth(request_id)}]).encode(),
        )
        with urllib.request.urlopen(label, timeout=10) as answer:  # noqa: S310
            return json.load(answer)

    # a label that comes before its pair waits for it
    assert post_label("early") == {"joined": 0}
    for request_id in ("early", "late"):
        ask = urllib.request.Request(f"{base}/predict", headers={"x-request-id": request_id})  # noqa: S310
        with urllib.request.urlopen(ask, timeout=10) as answer:  # noqa: S310
            assert answer.status == 204, "acknowledged at once, compared by a worker"

    def scraped() -> str:
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as answer:  # noqa: S310
            return str(answer.read().decode())

    pairs = f'{metrics.PAIRS}{{pair="candidate",rollout="ns/fraud",version="2"}} 2.0'
    assert wait_for(lambda: pairs in scraped(), timeout=10), scraped()
    assert post_label("late") == {"joined": 1}
    text = scraped()
    labelled = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(f"{metrics.LABELLED}{{"))  # fmt: skip
    assert labelled == 2, "both joined: the early label on its pair's arrival, the late one"
    assert f'{metrics.MIRRORED}{{rollout="ns/fraud",version="2"}} 2.0' in text
    server.httpd.shutdown()
    server.httpd.server_close()
    comparator.close()
