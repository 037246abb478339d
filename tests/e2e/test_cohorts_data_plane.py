"""Cohorts through Traefik: the operator's own route sends the requests a cohort step matches to
the canary, and nothing else; regexes are anchored although Traefik matches header regexes as
substrings; a cookie rule works though the Gateway API has no cookie match."""

from __future__ import annotations

import pytest

from modelrollout.testing.cluster import wait_for
from modelrollout.testing.prometheus import PrometheusServer
from modelrollout.testing.stories import Story, at_the_cohort_step
from modelrollout.testing.traefik import Traefik

pytestmark = pytest.mark.cluster

COHORT = {"match": [{"headers": [{"name": "x-model", "exact": "v2"}]},
                    {"cookies": [{"name": "beta", "exact": "1"}]},
                    {"headers": [{"name": "x-tenant", "regex": "team-(a|b)"}]}]}  # fmt: skip
STEPS = [{"setWeight": 0}, {"cohort": COHORT}, {"pause": {}}]


def test_a_cohort_step_sends_what_matches_to_the_canary_and_nothing_else(
    story: Story, gateway: Traefik, pods_metrics: PrometheusServer, host: str
) -> None:
    # Given v1 is stable behind Traefik, When v2 rolls out to the cohort (weight 0 for everybody
    # else)
    at_the_cohort_step(story, gateway, host, pods_metrics.url, STEPS)
    assert wait_for(lambda: gateway.send(host, 50, headers={"x-model": "v2"}) == {"v2": 50},
                    timeout=60), "Traefik never applied the cohort rule"  # fmt: skip
    # Then every matching request reaches the canary, and none of the others does
    assert gateway.send(host, 1000, headers={"x-model": "v2"}) == {"v2": 1000}
    assert gateway.send(host, 1000) == {"v1": 1000}
    assert gateway.send(host, 1000, headers={"x-model": "xv2"}) == {"v1": 1000}  # anchored
    assert gateway.send(host, 1000, headers={"x-model": "v2x"}) == {"v1": 1000}
    # A cookie in any place of the Cookie header, and only that cookie
    assert gateway.send(host, 500, headers={"Cookie": "session=abc; beta=1"}) == {"v2": 500}
    assert gateway.send(host, 500, headers={"Cookie": "beta=10"}) == {"v1": 500}
    assert gateway.send(host, 500, headers={"Cookie": "notbeta=1"}) == {"v1": 500}
    # A regex is anchored too: team-a and team-b, not team-ab
    assert gateway.send(host, 500, headers={"x-tenant": "team-b"}) == {"v2": 500}
    assert gateway.send(host, 500, headers={"x-tenant": "team-ab"}) == {"v1": 500}
    # When the canary is promoted, the cohort's rule is gone with it
    story.command("promote")
    story.until("v2 is promoted", lambda: story.phase() == "Promoted"
                and story.stable_version() == "v2", timeout=120)  # fmt: skip
    plan = story.plan()
    assert plan is not None
    assert all(not rule.matches for rule in plan.rules), plan
