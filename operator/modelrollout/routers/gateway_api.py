"""Gateway API router: an owned HTTPRoute `NAME`, one rule per rule of the plan, each with its
weighted backendRefs (two arms, or an A/B/n phase's champion and candidates).

`spec.rules` is an atomic list, so a weight change is modify and put on the resourceVersion last
seen (the cluster's store, kept by a watch), retried on a fresh read after a conflict: a
concurrent writer is never overwritten blindly, and an unchanged weight costs no request.
"""

from __future__ import annotations

from datetime import datetime

from modelrollout.api.v1alpha1 import GatewayAPITraffic, ModelRolloutSpec
from modelrollout.domain.cohorts import ARM_HEADER
from modelrollout.domain.machine import World
from modelrollout.domain.routes import Backend, HeaderRegex, Routes, Rule, canary_weight, two_arms
from modelrollout.k8s.cluster import KubeCluster
from modelrollout.k8s.owner import ClusterError, Manifest, Owner
from modelrollout.routers.base import Acceptance, RouterError

GROUP, VERSION, PLURAL = "gateway.networking.k8s.io", "v1", "httproutes"
CONFLICT_RETRIES = 5
# A controller reports on a route it serves within seconds (Traefik: well under one, on a busy
# machine a few); a route none has reported on this long after its creation is not in effect.
ACCEPTANCE_SECONDS = 30


def _parent_key(ref: Manifest, namespace: str) -> tuple[str, str, str]:
    return (str(ref.get("namespace") or namespace), str(ref.get("name")),
            str(ref.get("sectionName") or ""))  # fmt: skip


def accepted_parents(route: Manifest, *, current: bool) -> set[tuple[str, str, str]]:
    """The parents (namespace, name, section) whose controller set Accepted=True on `route`,
    at its current generation when `current`."""
    metadata = route.get("metadata") or {}
    generation, namespace = metadata.get("generation"), str(metadata.get("namespace"))
    return {
        _parent_key(parent.get("parentRef") or {}, namespace)
        for parent in (route.get("status") or {}).get("parents") or []
        if any(c.get("type") == "Accepted" and c.get("status") == "True"
               and (not current or c.get("observedGeneration") in (None, generation))
               for c in parent.get("conditions") or [])
    }  # fmt: skip


def unaccepted_parent(route: Manifest, *, current: bool) -> Manifest | None:
    """The first of the route's own parentRefs no controller accepted it for, if any."""
    namespace = str((route.get("metadata") or {}).get("namespace"))
    accepted = accepted_parents(route, current=current)
    return next((ref for ref in (route.get("spec") or {}).get("parentRefs") or []
                 if _parent_key(ref, namespace) not in accepted), None)  # fmt: skip


def route_news(before: Manifest | None, after: Manifest) -> bool:
    """Whether a change of a route may ask its rollout for a decision: its spec changed (another
    writer), or which parents accepted it at its generation did (a step waits for that). Without
    the second, a step learnt of its acceptance only at the next timer tick: a wave of 250
    rollouts took 124 s instead of about 30 (bench/peer.py)."""
    if before is None or before.get("spec") != after.get("spec"):
        return True
    return accepted_parents(before, current=True) != accepted_parents(after, current=True)


def build_route(owner: Owner, traffic: GatewayAPITraffic, port: int, routes: Routes) -> Manifest:
    spec: Manifest = {
        "parentRefs": [r.model_dump(by_alias=True, exclude_none=True) for r in traffic.parent_refs],
        "rules": [_rule(rule, port) for rule in routes.rules],
    }
    if traffic.hostnames:
        spec["hostnames"] = list(traffic.hostnames)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "HTTPRoute",
        "metadata": owner.metadata(owner.name, {}),
        "spec": spec,
    }


def _rule(rule: Rule, port: int) -> Manifest:
    out: Manifest = {"backendRefs": [{"name": b.service, "port": port, "weight": b.weight}
                                     for b in rule.backends]}  # fmt: skip
    if rule.matches:
        out["matches"] = [{"headers": [{"type": "RegularExpression", "name": h.name,
                                        "value": h.regex} for h in alternative]}
                          for alternative in rule.matches]  # fmt: skip
    if rule.stamp is not None:
        out["filters"] = [{"type": "RequestHeaderModifier", "requestHeaderModifier": {
            "set": [{"name": ARM_HEADER, "value": rule.stamp}]}}]  # fmt: skip
    return out


def _stamp(rule: Manifest) -> str | None:
    """The arm a rule stamps on its requests (a RequestHeaderModifier setting ARM_HEADER)."""
    for f in rule.get("filters") or []:
        for header in (f.get("requestHeaderModifier") or {}).get("set") or []:
            if str(header.get("name", "")).lower() == ARM_HEADER:
                return str(header.get("value", ""))
    return None


def routes_of_route(route: Manifest) -> Routes:
    """The plan an HTTPRoute carries (a backendRef without a weight weighs 1, as the API says)."""
    return Routes(tuple(
        Rule(tuple(Backend(str(b.get("name", "")), int(b.get("weight", 1)))
                   for b in rule.get("backendRefs") or []),
             tuple(tuple(HeaderRegex(str(h.get("name", "")), str(h.get("value", "")))
                         for h in m.get("headers") or [])
                   for m in rule.get("matches") or [] if m.get("headers")),
             _stamp(rule))
        for rule in (route.get("spec") or {}).get("rules") or []))  # fmt: skip


def canary_weight_of(route: Manifest, name: str) -> int | None:
    return canary_weight(routes_of_route(route), name)


def covers(current: object, desired: object) -> bool:
    """Whether `current` says all that `desired` says: the API server adds defaults (a parentRef's
    group and kind, a backendRef's), which must not read as a difference worth a write."""
    if isinstance(desired, dict):
        return isinstance(current, dict) and all(
            key in current and covers(current[key], value) for key, value in desired.items()
        )
    if isinstance(desired, list):
        return (isinstance(current, list) and len(current) == len(desired)
                and all(covers(c, d) for c, d in zip(current, desired, strict=True)))  # fmt: skip
    return current == desired


class GatewayAPIRouter:
    capabilities = GatewayAPITraffic.CAPABILITIES

    def __init__(
        self, cluster: KubeCluster, owner: Owner, traffic: GatewayAPITraffic, port: int
    ) -> None:
        self._cluster = cluster
        self._owner = owner
        self._traffic = traffic
        self._port = port

    def _get(self, *, fresh: bool) -> Manifest | None:
        try:
            return self._cluster.custom(GROUP, VERSION, PLURAL, self._owner.namespace,
                                        self._owner.name, fresh=fresh)  # fmt: skip
        except ClusterError as error:
            raise RouterError(str(error), error.status, terminating=error.terminating) from error

    def apply(self, routes: Routes) -> str | None:
        desired = build_route(self._owner, self._traffic, self._port, routes)
        for attempt in range(CONFLICT_RETRIES):
            # the route as last seen first; after a conflict, as the API server has it now
            current = self._get(fresh=attempt > 0)
            if current is not None:
                self._owned_or_fail(current)
                if covers(current["spec"], desired["spec"]):
                    return None  # already so (the server's defaults aside): no write
            try:
                if current is None:
                    self._cluster.write_custom(GROUP, VERSION, PLURAL, desired, create=True)
                else:
                    updated = {**current, "spec": {**current["spec"], **desired["spec"]}}
                    self._cluster.write_custom(GROUP, VERSION, PLURAL, updated, create=False)
            except ClusterError as error:
                if error.status == 409:  # changed since we read it, or created meanwhile
                    continue
                raise RouterError(
                    str(error), error.status, terminating=error.terminating
                ) from error
            wanted = _said(routes, self._owner.name)
            before = self._cluster.wrote(self._owner, "HTTPRoute", self._owner.name, wanted)
            found = None if current is None else _said(routes_of_route(current), self._owner.name)
            if before == wanted and found != wanted:
                weight = canary_weight(routes, self._owner.name)
                again = str(weight) if len(routes.split()) == 2 and weight is not None else wanted
                return (
                    f"HTTPRoute {self._owner.name} "
                    + ("was deleted" if current is None else f"carried {found}")
                    + f" by another writer; the operator set {again} again"
                )
            return None
        raise RouterError(
            f"HTTPRoute {self._where()} kept changing; gave up after {CONFLICT_RETRIES} tries"
        )

    def read(self) -> Routes | None:
        route = self._get(fresh=False)
        return None if route is None else routes_of_route(route)

    def set_weight(self, canary_weight: int) -> str | None:
        """Two arms: `canary_weight`% to the canary, the rest to stable."""
        return self.apply(two_arms(self._owner.name, canary_weight))

    def read_weight(self) -> int | None:
        return canary_weight(self.read(), self._owner.name)

    def acceptance(self, now: datetime) -> Acceptance:
        """Accepted when every parent's controller accepted the route at its current generation
        (Traefik reports within a second of a change). Refused when a parent's controller set
        Accepted=False at the current generation, in its words; or when a parent has no
        acceptance at all ACCEPTANCE_SECONDS after the route was created (no status is not
        acceptance: its Gateway does not exist, or no running controller serves it)."""
        route = self._get(fresh=False)
        if route is None:
            return Acceptance(accepted=False)
        return Acceptance(accepted=unaccepted_parent(route, current=True) is None,
                          refused=self._refused(route, now))  # fmt: skip

    def _refused(self, route: Manifest, now: datetime) -> str | None:
        metadata = route.get("metadata") or {}
        generation = metadata.get("generation")
        for parent in (route.get("status") or {}).get("parents") or []:
            for condition in parent.get("conditions") or []:
                if (condition.get("type") == "Accepted" and condition.get("status") == "False"
                        and condition.get("observedGeneration") in (None, generation)):  # fmt: skip
                    name = (parent.get("parentRef") or {}).get("name", "?")
                    why = f"{condition.get('reason', '')}: {condition.get('message', '')}"
                    return f"Gateway {name} does not accept HTTPRoute {self._owner.name}: {why}"
        created = metadata.get("creationTimestamp")
        if created is None or (now - datetime.fromisoformat(created)).total_seconds() < (
                ACCEPTANCE_SECONDS):  # fmt: skip
            return None
        missing = unaccepted_parent(route, current=False)
        if missing is None:
            return None
        where = missing.get("namespace", self._owner.namespace)
        return (f"no controller accepted HTTPRoute {self._owner.name} for Gateway "
                f"{where}/{missing.get('name')} within {ACCEPTANCE_SECONDS} s of its creation: "
                "that Gateway does not exist, or no running controller serves it")  # fmt: skip

    def shape(self, world: World) -> World:
        return world

    def _owned_or_fail(self, route: Manifest) -> None:
        owners = route.get("metadata", {}).get("ownerReferences", [])
        if not any(o.get("uid") == self._owner.uid for o in owners):
            raise RouterError(
                f"HTTPRoute {self._where()} exists and is not owned by this ModelRollout; "
                "it is left untouched (rename one of them)"
            )

    def _where(self) -> str:
        return f"{self._owner.namespace}/{self._owner.name}"


def _said(routes: Routes, name: str) -> str:
    """A plan in a few words, for what the operator last wrote and for a correction's message:
    the canary's weight for two arms ("canary weight 50"), every Service's weight otherwise."""
    split = routes.split()
    weight = canary_weight(routes, name)
    if len(split) == 2 and weight is not None:
        return f"canary weight {weight}"
    return ", ".join(f"{service} {w}" for service, w in split.items())


def build(cluster: KubeCluster, owner: Owner, spec: ModelRolloutSpec) -> GatewayAPIRouter | None:
    """The registry's entry: a router for a spec with `traffic.gatewayAPI`."""
    traffic = spec.traffic.gateway_api
    return None if traffic is None else GatewayAPIRouter(cluster, owner, traffic, spec.service.port)
