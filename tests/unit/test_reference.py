"""Frozen drift references: counting, the ConfigMap format, and `modelrollout reference`."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from modelrollout.api.v1alpha1 import DriftSignal
from modelrollout.cli.main import main
from modelrollout.domain import signals
from modelrollout.domain.kinds.drift import judge_drift
from modelrollout.domain.reference import (
    category_counts,
    check_edges,
    decode,
    encode,
    histogram_counts,
)

EDGES = (10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0)
DRIFT = DriftSignal.model_validate(
    {"histogram": 'h_bucket{version="{{ version }}"}', "against": "reference",
     "reference": {"name": "amounts", "key": "reference.json"}, "minSamples": 500}
)  # fmt: skip


@given(st.lists(st.floats(-1e6, 1e6), max_size=200))
def test_histogram_counts_are_cumulative_and_right_closed_like_prometheus(
    values: list[float],
) -> None:
    counts = histogram_counts(values, EDGES)
    assert list(counts) == ["10.0", "25.0", "50.0", "100.0", "250.0", "500.0", "1000.0",
                            "2500.0", "+Inf"]  # fmt: skip
    # Prometheus counts an observation in every bucket whose le is >= it
    expected = [sum(1 for v in values if v <= e) for e in EDGES] + [len(values)]
    assert list(counts.values()) == expected


def test_a_value_on_an_edge_falls_in_that_bucket() -> None:
    assert histogram_counts([10.0, 10.000001], (10.0, 20.0)) == {"10.0": 1, "20.0": 2, "+Inf": 2}


@pytest.mark.parametrize(
    ("edges", "message"),
    [((), "at least one"), ((5.0, 5.0), "increase strictly"), ((1.0, math.nan), "numbers")],
)
def test_bad_edges_are_refused(edges: tuple[float, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_edges(edges)


def test_non_finite_values_are_refused_not_hidden() -> None:
    with pytest.raises(ValueError, match="not a finite number"):
        histogram_counts([1.0, math.inf], EDGES)


def test_encode_then_decode_gives_the_counts_back() -> None:
    counts = {**category_counts(["DE", "FR", "DE"]), "x y": 0.5}
    assert decode(encode(counts, "test")) == {"DE": 2.0, "FR": 1.0, "x y": 0.5}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not JSON"),
        ('{"bins": {}}', "expected"),
        ('{"counts": {}}', "expected"),
        ('{"counts": {"a": -1}}', ">= 0"),
        ('{"counts": {"a": true}}', "not a number"),
        ('{"counts": {"a": "3"}}', "not a number"),
    ],
)
def test_a_broken_reference_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode(text)


def test_empty_references_are_not_written() -> None:
    with pytest.raises(ValueError, match="empty"):
        encode({"+Inf": 0.0}, "nothing")


def test_a_reference_judges_drift_like_a_live_arm() -> None:
    rng = np.random.default_rng(1)
    frozen = signals.histogram(decode(encode(histogram_counts(rng.lognormal(4, 1, 20_000),
                                                              EDGES), "training")))  # fmt: skip
    same = signals.histogram(histogram_counts(rng.lognormal(4, 1, 2_000), EDGES))
    moved = signals.histogram(histogram_counts(rng.lognormal(4.7, 1, 2_000), EDGES))
    assert judge_drift("d", DRIFT, [frozen], [same], "t").verdict == "Pass"
    assert judge_drift("d", DRIFT, [frozen], [moved], "t").verdict == "Fail"
    other_edges = signals.histogram(histogram_counts(rng.lognormal(4, 1, 2_000), EDGES[1:]))
    mismatch = judge_drift("d", DRIFT, [frozen], [other_edges], "t")
    assert mismatch.verdict == "Error"
    assert "edges" in (mismatch.message or "")


def _csv(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "train.csv"
    path.write_text("\n".join(["amount,country", *rows]) + "\n")
    return path


def test_the_command_writes_a_config_map_from_a_csv_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _csv(tmp_path, ["12,DE", "30,FR", "5000,DE", ",FR", "10,"])
    code = main(["-n", "fraud", "reference", "amounts", "--csv", str(path), "--column", "amount",
                 "--edges", "10,25,50"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    body = yaml.safe_load(out)
    assert body["kind"] == "ConfigMap"
    assert body["metadata"]["name"] == "amounts"
    assert body["metadata"]["namespace"] == "fraud"
    assert decode(body["data"]["reference.json"]) == {"10.0": 1, "25.0": 2, "50.0": 3, "+Inf": 4}
    assert "1 empty cells left out" in body["data"]["reference.json"]
    assert "4 observations in 4 buckets" in err

    output = tmp_path / "countries.yaml"
    code = main(["reference", "countries", "--key", "countries.json", "--csv", str(path),
                 "--column", "country", "--categorical", "-o", str(output)])  # fmt: skip
    assert code == 0
    written = yaml.safe_load(output.read_text())
    assert decode(written["data"]["countries.json"]) == {"DE": 2, "FR": 2}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--column", "amount"], "exactly one of --edges"),
        (["--column", "amount", "--edges", "1", "--categorical"], "exactly one of --edges"),
        (["--column", "price", "--edges", "1"], "no column 'price'"),
        (["--column", "country", "--edges", "1,2"], "line 2, column country: 'DE' is not a number"),
        (["--column", "amount", "--edges", "5,1"], "--edges: bucket edges must increase"),
        (["--edges", "1"], "--csv needs --column"),
    ],
)
def test_the_command_names_what_is_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    path = _csv(tmp_path, ["12,DE"])
    assert main(["reference", "r", "--csv", str(path), *args]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert message in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "--prometheus needs --selector"),
        (["--selector", "m_bucket", "--categorical"], "a _bucket selector is a histogram"),
        (["--selector", "m_total"], "needs --categorical"),
        (["--selector", "m_bucket", "--edges", "1"], "Prometheus has the edges"),
    ],
)
def test_the_prometheus_source_checks_its_arguments_before_asking(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["reference", "r", "--prometheus", "http://127.0.0.1:1", *args]) == 1
    assert message in capsys.readouterr().err


def test_an_unreachable_prometheus_is_an_error_not_an_empty_reference(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["reference", "r", "--prometheus", "http://127.0.0.1:1", "--selector", "m_bucket",
                 "--since", "1h"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""
    assert "Prometheus at http://127.0.0.1:1" in err
