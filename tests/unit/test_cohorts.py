"""Cohorts: one declared semantics (a list is OR, an item is AND, regexes anchored at both ends),
compiled to header regexes the router writes, a cookie to the Cookie header; a cohort step counts
once the route carries its rule, and the rule is gone when the rollout ends. Sticky buckets: a
key's last two hex digits choose its bucket, treatment to the canary and control to the stable,
both stamped with their arm."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError
from test_domain_machine import V1, V2, Rollout, make_spec, passing

from modelrollout.api.v1alpha1 import Buckets, Cohort, GatewayAPITraffic
from modelrollout.domain.cohorts import (
    ARM_HEADER,
    HeaderRegex,
    bucket_counts,
    bucket_matches,
    bucket_of,
    compile_cohort,
)
from modelrollout.domain.machine import desired_world
from modelrollout.domain.routes import routes_of
from modelrollout.k8s.owner import Owner
from modelrollout.routers.gateway_api import build_route, routes_of_route

INTERNAL = {"match": [{"headers": [{"name": "x-user-group", "exact": "internal.v2"}]},
                      {"cookies": [{"name": "beta", "exact": "1"}]}]}  # fmt: skip


def matches(regex: HeaderRegex, value: str) -> bool:
    return re.search(regex.regex, value) is not None  # as Traefik does: a search, not a match


def test_an_exact_value_matches_itself_only_and_a_regex_is_anchored() -> None:
    ((exact,), _) = compile_cohort(Cohort.model_validate(INTERNAL))
    assert exact.name == "x-user-group"
    assert matches(exact, "internal.v2")
    assert not matches(exact, "internalxv2")  # the dot is literal
    assert not matches(exact, "xinternal.v2")
    ((regex,),) = compile_cohort(Cohort.model_validate(
        {"match": [{"headers": [{"name": "x-v", "regex": "v2.*"}]}]}))  # fmt: skip
    assert matches(regex, "v2-beta")
    assert not matches(regex, "xv2")  # Traefik alone would match it: the regex is anchored


def test_a_cookie_becomes_an_anchored_match_on_the_cookie_header() -> None:
    ((_,), (cookie,)) = compile_cohort(Cohort.model_validate(INTERNAL))
    assert cookie.name == "Cookie"
    assert matches(cookie, "beta=1")
    assert matches(cookie, "session=abc; beta=1; theme=dark")
    assert not matches(cookie, "beta=10")
    assert not matches(cookie, "notbeta=1")
    assert not matches(cookie, "session=beta=1")


def test_an_item_is_and_and_the_list_is_or() -> None:
    both = compile_cohort(Cohort.model_validate({"match": [
        {"headers": [{"name": "a", "exact": "1"}, {"name": "b", "exact": "2"}]},
        {"headers": [{"name": "c", "exact": "3"}]}]}))  # fmt: skip
    assert [len(alternative) for alternative in both] == [2, 1]


@pytest.mark.parametrize("bad", [
    {"match": []},
    {"match": [{}]},
    {"match": [{"headers": [{"name": "Cookie", "exact": "x"}]}]},
    {"match": [{"headers": [{"name": "a", "exact": "1"}, {"name": "A", "exact": "2"}]}]},
    {"match": [{"headers": [{"name": "a", "exact": "1", "regex": "1"}]}]},
    {"match": [{"headers": [{"name": "a b", "exact": "1"}]}]},
    {"match": [{"headers": [{"name": "a", "regex": "(unclosed"}]}]},
    {"match": [{"cookies": [{"name": "a", "exact": "1"}, {"name": "b", "exact": "2"}]}]},
])  # fmt: skip
def test_a_cohort_that_cannot_be_routed_is_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Cohort.model_validate(bad)


def test_the_gateway_route_carries_the_cohort_rule_first_and_reads_it_back() -> None:
    spec = make_spec([{"setWeight": 10}, {"cohort": INTERNAL}, {"pause": {}}])
    r = Rollout(spec)
    r.tick(V1)
    r.tick(V2)
    r.tick(V2, weight=10)  # the weight step done: at the cohort step
    world = desired_world(spec, r.status)
    assert world is not None
    assert world.cohort is not None
    plan = routes_of("fraud-detector", world)
    assert [b.service for b in plan.rules[0].backends] == ["fraud-detector-canary"]
    assert plan.rules[0].backends[0].weight == 100
    assert plan.split() == {"fraud-detector-stable": 90, "fraud-detector-canary": 10}
    traffic = GatewayAPITraffic.model_validate({"parentRefs": [{"name": "public"}]})
    route = build_route(Owner("fraud-detector", "ml", "uid"), traffic, 80, plan)
    first = route["spec"]["rules"][0]
    assert first["matches"][0]["headers"][0] == {
        "type": "RegularExpression",
        "name": "x-user-group",
        "value": r"^internal\.v2$",
    }
    assert routes_of_route(route) == plan


def test_a_cohort_step_counts_once_the_route_carries_it_and_the_rule_goes_at_the_end() -> None:
    spec = make_spec([{"cohort": INTERNAL}, {"setWeight": 20}])
    r = Rollout(spec)
    r.tick(V1)
    r.tick(V2)
    status = r.tick(V2, after=1, cohorts=frozenset())
    assert status.current_step == 0  # the route does not carry the rule yet
    status = r.tick(
        V2, after=1, cohorts=frozenset({compile_cohort(Cohort.model_validate(INTERNAL))})
    )
    assert status.current_step == 1
    status = r.tick(V2, after=1, weight=20, results=passing())
    for _ in range(5):
        status = r.tick(V2, after=1, weight=status.canary_weight, results=passing())
    world = desired_world(spec, status)
    assert status.phase == "Promoted"
    assert world is not None
    assert world.cohort is None


BUCKETS = {"buckets": {"key": "x-user-id", "treatment": 25, "control": 25}}


@pytest.mark.parametrize(("treatment", "control"), [(25, 25), (1, 1), (50, 50), (10, 30), (7, 1)])
def test_a_key_falls_in_the_treatment_or_control_buckets_by_its_last_two_hex_digits(
    treatment: int, control: int
) -> None:
    buckets = Buckets(key="x-user-id", treatment=treatment, control=control)
    ((on_treatment,),), ((on_control,),) = bucket_matches(buckets)
    t, c = bucket_counts(buckets)
    assert (t, c) == (max(1, round(2.56 * treatment)), max(1, round(2.56 * control)))
    for value in range(256):
        for key in (f"5f0e{value:02x}", f"5F0E{value:02X}"):
            assert bucket_of(key) == value
            # the whole value, anchored, as the gateway reads it (a search, like Traefik)
            assert matches(on_treatment, key) == (value < t), key
            assert matches(on_control, key) == (t <= value < t + c), key
    assert not matches(on_treatment, "user-zz")  # no hex digits last: no bucket
    assert bucket_of("user-zz") is None


def test_a_cohort_has_either_a_match_or_buckets() -> None:
    with pytest.raises(ValidationError, match="exactly one of match or buckets"):
        Cohort.model_validate({**INTERNAL, **BUCKETS})
    with pytest.raises(ValidationError, match="exactly one of match or buckets"):
        Cohort.model_validate({})
    with pytest.raises(ValidationError):
        Cohort.model_validate({"buckets": {"key": "x-user-id", "treatment": 60, "control": 5}})


def test_buckets_route_treatment_to_the_canary_and_control_to_the_stable_stamped() -> None:
    spec = make_spec([{"setWeight": 0}, {"cohort": BUCKETS}, {"pause": {}}])
    r = Rollout(spec)
    r.tick(V1)
    r.tick(V2)
    r.tick(V2, weight=0)  # at the cohort step
    world = desired_world(spec, r.status)
    assert world is not None
    assert world.versions == ("v1", "v2")
    plan = routes_of("fraud-detector", world)
    treatment, control, rest = plan.rules
    assert [(b.service, b.weight) for b in treatment.backends] == [("fraud-detector-canary", 100)]
    assert treatment.stamp == "v2"
    assert treatment.matches == compile_cohort(Cohort.model_validate(BUCKETS))
    assert [(b.service, b.weight) for b in control.backends] == [("fraud-detector-stable", 100)]
    assert control.stamp == "v1"
    assert rest.stamp is None
    assert rest.matches == ()
    # The route carries the stamps as a RequestHeaderModifier, and reads them back
    traffic = GatewayAPITraffic.model_validate({"parentRefs": [{"name": "public"}]})
    route = build_route(Owner("fraud-detector", "ml", "uid"), traffic, 80, plan)
    assert route["spec"]["rules"][0]["filters"] == [{
        "type": "RequestHeaderModifier",
        "requestHeaderModifier": {"set": [{"name": ARM_HEADER, "value": "v2"}]}}]  # fmt: skip
    assert "filters" not in route["spec"]["rules"][2]
    assert routes_of_route(route) == plan
