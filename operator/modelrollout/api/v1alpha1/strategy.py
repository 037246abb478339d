"""The steps of a rollout."""

from __future__ import annotations

import re

from pydantic import ConfigDict, Field, field_validator

from modelrollout.api.v1alpha1.rules import (
    DURATION_PATTERN,
    Model,
    Rule,
    Ruled,
    exactly_one,
    ruled,
)

# An HTTP header or cookie name: an RFC 9110 token.
HTTP_NAME_PATTERN = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"


class ValueMatch(Ruled):
    """A header's or cookie's value: `exact`, or `regex` (RE2, as Go and Envoy read it), always
    anchored at both ends whatever the router (Traefik matches header regexes as substrings)."""

    RULES = (exactly_one("a value match", "exact", "regex"),)
    model_config = ConfigDict(json_schema_extra=ruled(*RULES))
    exact: str | None = Field(default=None, max_length=1024)
    regex: str | None = Field(default=None, max_length=1024)

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"not a regular expression: {error}") from error
        return value


class HeaderMatch(ValueMatch):
    name: str = Field(pattern=HTTP_NAME_PATTERN, max_length=256)


class CookieMatch(ValueMatch):
    name: str = Field(pattern=HTTP_NAME_PATTERN, max_length=256)


class CohortMatch(Ruled):
    """One way a request belongs to the cohort: every header given and the cookie match (AND).
    At most one cookie: the router compiles it to a match on the Cookie header, and a route
    matches a header name once."""

    RULES = (
        Rule("(has(self.headers) && size(self.headers) > 0) || "
             "(has(self.cookies) && size(self.cookies) > 0)",
             lambda m: bool(m.headers or m.cookies),
             "a cohort match needs a header or a cookie", None),
        # unique names: the list is a map keyed by name at admission (below); the model also
        # refuses names that differ only in case, which a quadratic CEL rule would cost too much
        Rule("!has(self.headers) || self.headers.all(h, h.name.lowerAscii() != 'cookie')",
             lambda m: len({h.name.lower() for h in m.headers}) == len(m.headers)
             and all(h.name.lower() != "cookie" for h in m.headers),
             "headers[].name must be unique, and not Cookie (use cookies)", ".headers"),
    )  # fmt: skip
    model_config = ConfigDict(json_schema_extra=ruled(*RULES))
    headers: list[HeaderMatch] = Field(default_factory=list, max_length=8, json_schema_extra={
        "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]})  # fmt: skip
    cookies: list[CookieMatch] = Field(default_factory=list, max_length=1)


# Sticky buckets: a key's bucket is the value of its last two hex digits (0-255).
BUCKETS = 256


class Buckets(Model):
    """Sticky randomised buckets: the value of the `key` header (a user id) falls in one of
    256 buckets by its last two hex digits; the first `treatment` percent of the buckets go to
    the canary, the next `control` percent to the stable, and both are stamped with their arm
    (x-modelrollout-arm) so telemetry and labels follow it; the rest is split by the weight.
    The gateway cannot hash, so the key must be uniform in its last two hex digits (a UUID, a
    hash of the user id); a key of another form lands in no bucket."""

    key: str = Field(pattern=HTTP_NAME_PATTERN, max_length=256)
    treatment: int = Field(ge=1, le=50)
    control: int = Field(ge=1, le=50)


class Cohort(Ruled):
    """From this step until the rollout ends, requests that match (any item of `match`: OR) go
    to the canary, whatever its weight, the others are split by the weight; or, with `buckets`,
    a key's treatment and control buckets go to the canary and the stable, stamped."""

    RULES = (exactly_one("a cohort", "match", "buckets"),)
    model_config = ConfigDict(json_schema_extra=ruled(*RULES))
    match: list[CohortMatch] | None = Field(default=None, min_length=1, max_length=8)
    buckets: Buckets | None = None


class Duration(Model):
    duration: str = Field(pattern=DURATION_PATTERN, max_length=32)


class Pause(Model):
    duration: str | None = Field(default=None, pattern=DURATION_PATTERN, max_length=32)


# The shadow's answers are compared on this member of the JSON answer (a top-level key).
JSON_KEY_PATTERN = r"^[A-Za-z0-9_.-]+$"


class Shadow(Model):
    """The candidate gets a copy of `share` percent of the eligible requests (every request of
    the route's rule, or those that match `match`) and answers no user: a comparator is the
    mirror's target, asks the candidate and the champion twice (the second answer is the noise
    floor: champion against champion), compares the answers' `field`, joins labels by the
    `requestId` header within `labelDelay`, and exports paired counts for the `paired` signals
    (docs/arms.md, "Shadow"). The step passes once every paired signal passed; a Fail rolls the
    candidate back before any user reached it; past `duration` without every Pass, it pauses for
    a human (`promote` goes on to the next step)."""

    share: int = Field(ge=1, le=100)
    duration: str = Field(pattern=DURATION_PATTERN, max_length=32)
    match: list[CohortMatch] | None = Field(default=None, min_length=1, max_length=8)
    field: str = Field(default="prediction", pattern=JSON_KEY_PATTERN, max_length=128)
    request_id: str = Field(default="x-request-id", pattern=HTTP_NAME_PATTERN, max_length=256)
    label_delay: str = Field(default="10m", pattern=DURATION_PATTERN, max_length=32)


class Step(Ruled):
    RULES = (exactly_one("a step", "setWeight", "analyze", "pause", "cohort", "shadow"),)
    model_config = ConfigDict(json_schema_extra=ruled(*RULES))
    set_weight: int | None = Field(default=None, ge=0, le=100)
    analyze: Duration | None = None
    pause: Pause | None = None
    cohort: Cohort | None = None
    shadow: Shadow | None = None


class Abn(Model):
    """The A/B/n phase, before the steps (docs/arms.md): the champion (the stable revision),
    spec.model and every spec.challengers entry take equal shares of the traffic, each candidate
    is judged against the champion on the objective (analysis's first compare signal), and the
    winner, named only with confidence (better by `margin`, error at most `alpha` across all
    candidates and looks: docs/analysis.md, "A/B/n"), goes on through the steps. Past `duration`
    without a winner the rollout pauses for a human with the ranked table.

    `startShare`: each candidate's share of the requests in the phase's first period; it doubles
    at every period boundary until the candidates and the champion share equally (50 or more:
    equal from the start), except that a candidate whose estimate is behind the champion's goes
    back to it until it is level again. A candidate much worse than the champion is eliminated
    while it serves few (bench/abn.py)."""

    duration: str = Field(pattern=DURATION_PATTERN, max_length=32)
    start_share: int = Field(default=5, ge=1, le=50)
    margin: float = Field(default=0.0, ge=0, le=1)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)


def _user_facing(step: Step) -> bool:
    return step.cohort is not None or bool(step.set_weight)


def _shadows_first(strategy: Strategy) -> bool:
    seen_users = False
    for step in strategy.steps:
        if step.shadow is not None and seen_users:
            return False
        seen_users = seen_users or _user_facing(step)
    return True


# Each step that shadows (0) or reaches users (1), in order: sorted, so no 0 after a 1 (a
# quadratic rule, or a string joined of them, costs the API server too much to admit).
_KINDS = ("self.steps.filter(s, has(s.shadow) || has(s.cohort) || (has(s.setWeight) && "
          "s.setWeight > 0)).map(s, has(s.shadow) ? 0 : 1)")  # fmt: skip
_SHADOWS_FIRST = f"{_KINDS} == {_KINDS}.sort()"


class Strategy(Ruled):
    RULES = (
        Rule(_SHADOWS_FIRST, _shadows_first,
             "steps[].shadow must come before every step that sends users to the candidate "
             "(setWeight above 0, cohort): a shadow answers no user", ".steps"),
        Rule("!has(self.abn) || !self.steps.exists(s, has(s.shadow))",
             lambda m: m.abn is None or all(s.shadow is None for s in m.steps),
             "steps[].shadow cannot follow an A/B/n phase (strategy.abn): its candidates "
             "already served users", ".steps"),
    )  # fmt: skip
    model_config = ConfigDict(json_schema_extra=ruled(*RULES))
    steps: list[Step] = Field(min_length=1, max_length=64)
    abn: Abn | None = None
