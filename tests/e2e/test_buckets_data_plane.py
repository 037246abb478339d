"""Sticky buckets through Traefik: a user key's last two hex digits choose its bucket, and the
operator's route sends treatment buckets to the canary and control buckets to the stable, each
stamped with its arm (x-modelrollout-arm), so every key keeps its arm on every request, across an
operator restart and a change of the weight the other keys are split by; a bucket pair whose
split disagrees with the route fails its own sample-ratio check and the canary is rolled back."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from typing import Any

import pytest

from modelrollout.testing.cluster import wait_for
from modelrollout.testing.prometheus import PrometheusServer
from modelrollout.testing.stories import Story, at_the_cohort_step, within
from modelrollout.testing.traefik import Traefik

pytestmark = pytest.mark.cluster

KEY = "x-user-id"
BUCKETS = {"buckets": {"key": KEY, "treatment": 25, "control": 25}}  # 64 and 64 of 256
STEPS = [{"setWeight": 0}, {"cohort": BUCKETS}, {"pause": {}}, {"setWeight": 40},
         {"analyze": {"duration": "10m"}}]  # fmt: skip
# 1,024 user keys, four in each of the 256 buckets: random ids whose last two hex digits are
# spread evenly, so the treatment and control buckets hold the same number of users
USERS = [uuid.uuid4().hex[:-2] + f"{i % 256:02x}" for i in range(1024)]
TREATMENT = [u for u in USERS if int(u[-2:], 16) < 64]
CONTROL = [u for u in USERS if 64 <= int(u[-2:], 16) < 128]
OTHERS = [u for u in USERS if int(u[-2:], 16) >= 128]


def arms(gateway: Traefik, host: str, keys: list[str], times: int = 3) -> dict[str, set[Any]]:
    """What answered each key, over `times` requests per key: (version, stamped arm) pairs."""
    asks = [("/", {KEY: key}) for key in keys for _ in range(times)]
    answers = gateway.exchange(host, asks)
    seen: dict[str, set[Any]] = {key: set() for key in keys}
    for (_, headers), answer in zip(asks, answers, strict=True):
        seen[headers[KEY]].add(answer)
    return seen


def treated(gateway: Traefik, host: str) -> set[Any]:
    """What answered 20 treatment keys, once each."""
    return set().union(*arms(gateway, host, TREATMENT[:20], 1).values())


def sticky(gateway: Traefik, host: str) -> None:
    """Every treatment key always reaches v2 stamped v2, every control key v1 stamped v1."""
    for keys, arm in ((TREATMENT, ("v2", "v2")), (CONTROL, ("v1", "v1"))):
        seen = arms(gateway, host, keys)
        wrong = {key: got for key, got in seen.items() if got != {arm}}
        assert not wrong, f"{len(wrong)} keys left their arm {arm}: {list(wrong.items())[:5]}"


def bucket_check(story: Story) -> dict[str, Any] | None:
    signals = (story.status().get("analysis") or {}).get("signals") or []
    return next((s for s in signals if s["name"] == "sample-ratio-buckets"), None)


def test_sticky_buckets_keep_each_key_on_its_arm_and_their_split_is_checked(
    story: Story, gateway: Traefik, pods_metrics: PrometheusServer, host: str
) -> None:
    # Given v1 is stable behind Traefik, When v2 rolls out to the treatment buckets (weight 0
    # for every other key)
    at_the_cohort_step(story, gateway, host, pods_metrics.url, STEPS)
    assert wait_for(lambda: treated(gateway, host) == {("v2", "v2")}, timeout=60), (
        f"Traefik never applied the bucket rules: {treated(gateway, host)}, {story.plan()}"
    )
    # Then each of 1,024 keys gets the same arm on every request: treatment v2, control v1,
    # both stamped; the others reach v1, unstamped
    sticky(gateway, host)
    assert set().union(*arms(gateway, host, OTHERS).values()) == {("v1", "")}
    # When the weight for the other keys changes to 40%
    story.command("promote")
    story.until("the canary takes 40% of the rest", lambda: story.canary_weight() == 40
                and story.status().get("currentStep") == 4)  # fmt: skip
    assert wait_for(
        lambda: (
            Counter(
                v for v, _ in gateway.exchange(host, [("/", {KEY: k}) for k in OTHERS[:200]])
            ).get("v2", 0)
            > 0
        ),
        timeout=60,
    )
    # Then the bucket keys keep their arms, and the others are split by the weight, unstamped
    sticky(gateway, host)
    answered = Counter(gateway.exchange(host, [("/", {KEY: k}) for k in OTHERS for _ in range(4)]))
    assert set(answered) == {("v2", ""), ("v1", "")}, answered
    assert within(answered[("v2", "")], sum(answered.values()), 40), answered
    # And the buckets' own sample-ratio check passes, as does the weighted one on the rest
    story.until("the bucket check is judged", lambda: (bucket_check(story) or {}).get(
        "verdict") == "Pass", timeout=60)  # fmt: skip
    # When the operator is killed and a new one starts, every key keeps its arm
    assert story.operator.process is not None
    assert story.operator.process.popen is not None
    story.operator.process.popen.kill()
    story.operator.process.popen.wait()
    story.operator.start()
    sticky(gateway, host)
    assert story.status().get("currentStep") == 4
    # When the treatment buckets alone get traffic, their split no longer fits their size
    deadline = time.monotonic() + 120
    while story.phase() != "RolledBack" and time.monotonic() < deadline:
        gateway.exchange(host, [("/", {KEY: k}) for k in TREATMENT])
    # Then their check fails, and after consecutiveErrorLimit the canary is rolled back
    assert story.phase() == "RolledBack", story.status()
    message = str(story.status().get("message", ""))
    assert "sample-ratio-buckets: sample ratio mismatch: treatment buckets got" in message, message
    assert story.route_weights() == [("fraud-detector-stable", 100), ("fraud-detector-canary", 0)]
