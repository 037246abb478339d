"""Gateway API router: an owned HTTPRoute `NAME`, one rule per rule of the plan, each with its
weighted backendRefs (two arms, or an A/B/n phase's champion and candidates).

`spec.rules` is an atomic list, so a weight change is modify and put on the resourceVersion last
seen (the cluster's store, kept by a watch), retried on a fresh read after a conflict: a
concurrent writer is never overwritten blindly, and an unchanged weight costs no request.

A shadow step's mirror is written only as the data plane implements it (docs/arms.md): the
standard RequestMirror filter where every parent Gateway's GatewayClass lists
HTTPRouteRequestMirror (and HTTPRouteRequestPercentageMirror below 100%) in
status.supportedFeatures; on Traefik, which lists neither and answers 500 for a whole rule that
carries the filter while the route stays Accepted, a TraefikService of type mirroring
(NAME-mirror) in place of the stable's backendRef; anywhere else, nothing, and `refuses` says
which Gateway lacks which feature.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Literal

from modelrollout.api.v1alpha1 import GatewayAPITraffic, ModelRolloutSpec
from modelrollout.domain.cohorts import ARM_HEADER
from modelrollout.domain.machine import World
from modelrollout.domain.revision import stable_service
from modelrollout.domain.routes import (
    Backend,
    HeaderRegex,
    Mirror,
    Routes,
    Rule,
    canary_weight,
    mirror_of,
    two_arms,
)
from modelrollout.k8s.cluster import KubeCluster
from modelrollout.k8s.owner import ClusterError, Manifest, Owner
from modelrollout.routers.base import Acceptance, RouterError

GROUP, VERSION, PLURAL = "gateway.networking.k8s.io", "v1", "httproutes"
CONFLICT_RETRIES = 5
# A controller reports on a route it serves within seconds (Traefik: well under one, on a busy
# machine a few); a route none has reported on this long after its creation is not in effect.
ACCEPTANCE_SECONDS = 30
# Traefik's mirroring, as its kubernetesCRD provider serves it to the Gateway API provider.
TRAEFIK_GROUP, TRAEFIK_VERSION, TRAEFIK_PLURAL = "traefik.io", "v1alpha1", "traefikservices"
TRAEFIK_CONTROLLER = "traefik.io/gateway-controller"
# Traefik buffers a mirrored request's body whole, without limit unless told: a larger one is
# served but not mirrored (the mirror check sees the shortfall).
MIRROR_MAX_BODY = 1 << 20
MIRROR_FEATURE, PERCENT_FEATURE = "HTTPRouteRequestMirror", "HTTPRouteRequestPercentageMirror"
# Traefik's Gateway API and CRD providers watch apart: a route naming a TraefikService before the
# other provider loaded it is dropped (404 for the host, measured in the e2e story). It has no
# status to say it is loaded, so the route names it only this long after its creation (the
# providers' throttle is 2 s by default).
MIRROR_SETTLE_SECONDS = 5.0
MirrorMode = Literal["filter", "traefik"]


def mirror_service(rollout: str) -> str:
    return f"{rollout}-mirror"


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


def build_route(owner: Owner, traffic: GatewayAPITraffic, port: int, routes: Routes,
                mode: MirrorMode | None = None) -> Manifest:  # fmt: skip
    """The HTTPRoute; a rule's mirror as `mode` says (None: the plan carries no mirror)."""
    spec: Manifest = {
        "parentRefs": [r.model_dump(by_alias=True, exclude_none=True) for r in traffic.parent_refs],
        "rules": [_rule(rule, port, owner.name, mode) for rule in routes.rules],
    }
    if traffic.hostnames:
        spec["hostnames"] = list(traffic.hostnames)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "HTTPRoute",
        "metadata": owner.metadata(owner.name, {}),
        "spec": spec,
    }


def build_mirror(owner: Owner, port: int, mirror: Mirror) -> Manifest:
    """Traefik's mirroring: the stable Service answers, `percent`% is copied to the comparator."""
    return {
        "apiVersion": f"{TRAEFIK_GROUP}/{TRAEFIK_VERSION}",
        "kind": "TraefikService",
        "metadata": owner.metadata(mirror_service(owner.name), {}),
        "spec": {"mirroring": {
            "name": stable_service(owner.name), "port": port, "maxBodySize": MIRROR_MAX_BODY,
            "mirrors": [{"name": mirror.service, "port": port, "percent": mirror.percent}]}},
    }  # fmt: skip


def _backend(b: Backend, port: int, rollout: str, mirrored: str | None) -> Manifest:
    if mirrored is not None and b.service == stable_service(rollout):
        return {"group": TRAEFIK_GROUP, "kind": "TraefikService", "name": mirrored,
                "weight": b.weight}  # fmt: skip
    return {"name": b.service, "port": port, "weight": b.weight}


def _rule(rule: Rule, port: int, rollout: str, mode: MirrorMode | None) -> Manifest:
    """One rule; its mirror as the standard RequestMirror filter, or through the TraefikService
    NAME-mirror in place of the stable's backendRef, or (`mode` None) not at all."""
    traefik = mode == "traefik" and rule.mirror is not None
    mirrored = mirror_service(rollout) if traefik else None
    out: Manifest = {"backendRefs": [_backend(b, port, rollout, mirrored)
                                     for b in rule.backends]}  # fmt: skip
    if rule.matches:
        out["matches"] = [{"headers": [{"type": "RegularExpression", "name": h.name,
                                        "value": h.regex} for h in alternative]}
                          for alternative in rule.matches]  # fmt: skip
    if rule.stamp is not None:
        out["filters"] = [{"type": "RequestHeaderModifier", "requestHeaderModifier": {
            "set": [{"name": ARM_HEADER, "value": rule.stamp}]}}]  # fmt: skip
    if rule.mirror is not None and mode == "filter":
        out.setdefault("filters", []).append({"type": "RequestMirror", "requestMirror": {
            "backendRef": {"name": rule.mirror.service, "port": port},
            "percent": rule.mirror.percent}})  # fmt: skip
    return out


def _filter_mirror(rule: Manifest) -> Mirror | None:
    for f in rule.get("filters") or []:
        if f.get("type") == "RequestMirror":
            spec = f.get("requestMirror") or {}
            percent = spec.get("percent", 100 if "fraction" not in spec else None)
            fraction = spec.get("fraction") or {}
            if percent is None:
                percent = round(100 * fraction.get("numerator", 0) / fraction.get(
                    "denominator", 100))  # fmt: skip
            return Mirror(str((spec.get("backendRef") or {}).get("name", "")), int(percent))
    return None


def _stamp(rule: Manifest) -> str | None:
    """The arm a rule stamps on its requests (a RequestHeaderModifier setting ARM_HEADER)."""
    for f in rule.get("filters") or []:
        for header in (f.get("requestHeaderModifier") or {}).get("set") or []:
            if str(header.get("name", "")).lower() == ARM_HEADER:
                return str(header.get("value", ""))
    return None


def routes_of_route(route: Manifest, mirrors: dict[str, Manifest] | None = None) -> Routes:
    """The plan an HTTPRoute carries (a backendRef without a weight weighs 1, as the API says);
    a backendRef to a TraefikService of `mirrors` (by name) reads as its main Service, with
    the rule mirrored as it says."""
    rules = []
    for rule in (route.get("spec") or {}).get("rules") or []:
        backends, mirror = [], _filter_mirror(rule)
        for b in rule.get("backendRefs") or []:
            name, weight = str(b.get("name", "")), int(b.get("weight", 1))
            traefik = (mirrors or {}).get(name) if b.get("kind") == "TraefikService" else None
            if traefik is not None:
                spec = (traefik.get("spec") or {}).get("mirroring") or {}
                name = str(spec.get("name", ""))
                copies = spec.get("mirrors") or []
                if copies:
                    mirror = Mirror(
                        str(copies[0].get("name", "")), int(copies[0].get("percent", 0))
                    )
            backends.append(Backend(name, weight))
        matches = tuple(tuple(HeaderRegex(str(h.get("name", "")), str(h.get("value", "")))
                              for h in m.get("headers") or [])
                        for m in rule.get("matches") or [] if m.get("headers"))  # fmt: skip
        rules.append(Rule(tuple(backends), matches, _stamp(rule), mirror))
    return Routes(tuple(rules))


def _features(gateway_class: Manifest) -> set[str]:
    """A GatewayClass's status.supportedFeatures ({name} objects since v1.2; strings before)."""
    listed = (gateway_class.get("status") or {}).get("supportedFeatures") or []
    return {str(f.get("name") if isinstance(f, dict) else f) for f in listed}


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
        # a router lives one tick: the parents' classes read once for `refuses` and `apply`
        self._classes: dict[str, tuple[str, Manifest | None]] = {}

    def _fetch(self, group: str, version: str, plural: str, namespace: str | None,
               name: str) -> Manifest | None:  # fmt: skip
        """An object beside the route, as the API server has it; its refusal as a RouterError."""
        try:
            return self._cluster.fetch(group, version, plural, namespace, name)
        except ClusterError as error:
            raise RouterError(str(error), error.status, terminating=error.terminating) from error

    def _get(self, *, fresh: bool) -> Manifest | None:
        try:
            return self._cluster.custom(GROUP, VERSION, PLURAL, self._owner.namespace,
                                        self._owner.name, fresh=fresh)  # fmt: skip
        except ClusterError as error:
            raise RouterError(str(error), error.status, terminating=error.terminating) from error

    def _class_of(self, parent: Manifest) -> tuple[str, Manifest | None]:
        """A parent Gateway's name and its GatewayClass, as the API server has them."""
        namespace = str(parent.get("namespace") or self._owner.namespace)
        where = f"{namespace}/{parent.get('name')}"
        if where not in self._classes:
            gateway = self._fetch(GROUP, VERSION, "gateways", namespace, str(parent.get("name")))
            name = str(((gateway or {}).get("spec") or {}).get("gatewayClassName", ""))
            found = None if gateway is None else self._fetch(GROUP, VERSION, "gatewayclasses",
                                                             None, name)  # fmt: skip
            self._classes[where] = (where, found)
        return self._classes[where]

    def mirroring(self, percent: int) -> MirrorMode | str:
        """How a mirror of `percent`% is written on this route's data plane, or why it cannot
        be (naming the Gateway and the feature its GatewayClass does not list)."""
        needed = [MIRROR_FEATURE] + ([PERCENT_FEATURE] if percent < 100 else [])
        modes: set[MirrorMode] = set()
        for ref in self._traffic.parent_refs:
            where, gateway_class = self._class_of(ref.model_dump(by_alias=True))
            if gateway_class is None:
                return f"Gateway {where} or its GatewayClass does not exist"
            missing = [f for f in needed if f not in _features(gateway_class)]
            if not missing:
                modes.add("filter")
            elif (gateway_class.get("spec") or {}).get("controllerName") == TRAEFIK_CONTROLLER:
                modes.add("traefik")
            else:
                name = (gateway_class.get("metadata") or {}).get("name")
                return (f"the shadow step needs {' and '.join(missing)}, which GatewayClass "
                        f"{name} of Gateway {where} does not list in status.supportedFeatures; "
                        "the router traffic.gatewayAPI writes no mirror its data plane does not "
                        "implement")  # fmt: skip
        if len(modes) > 1:
            return "the parent Gateways implement mirroring in different ways; give one kind"
        return modes.pop()

    def refuses(self, routes: Routes) -> str | None:
        mirror = mirror_of(routes)
        if mirror is None:
            return None
        mode = self.mirroring(mirror.percent)
        return mode if mode not in ("filter", "traefik") else None

    def apply(self, routes: Routes) -> str | None:
        mirror = mirror_of(routes)
        mode: MirrorMode | None = None
        if mirror is not None:
            found = self.mirroring(mirror.percent)
            if found == "filter":
                mode = "filter"
            elif found == "traefik":
                mode = "traefik"
            else:  # never written blindly: the plan without its mirror (refuses says why)
                routes = Routes(tuple(replace(r, mirror=None) for r in routes.rules))
                mirror = None
        if mode == "traefik" and mirror is not None:
            created = self._put(build_mirror(self._owner, self._port, mirror))
            if (datetime.now(UTC) - created).total_seconds() < MIRROR_SETTLE_SECONDS:
                mode = None  # not yet: the route as it is, without the mirror
                routes = Routes(tuple(replace(r, mirror=None) for r in routes.rules))
        return self._apply_route(routes, mode)

    def _put(self, manifest: Manifest) -> datetime:
        """Create or replace an object this router owns beside the route (its TraefikService);
        when it was created."""
        name = manifest["metadata"]["name"]
        current = self._fetch(TRAEFIK_GROUP, TRAEFIK_VERSION, TRAEFIK_PLURAL,
                              self._owner.namespace, name)  # fmt: skip
        try:
            if current is None or not covers(current.get("spec"), manifest["spec"]):
                body = manifest if current is None else {**current, "spec": manifest["spec"]}
                current = self._cluster.write_custom(TRAEFIK_GROUP, TRAEFIK_VERSION,
                                                     TRAEFIK_PLURAL, body,
                                                     create=current is None)  # fmt: skip
        except ClusterError as error:
            raise RouterError(str(error), error.status, terminating=error.terminating) from error
        created = (current.get("metadata") or {}).get("creationTimestamp")
        return datetime.fromisoformat(created) if created else datetime.now(UTC)

    def _mirrors(self, route: Manifest) -> dict[str, Manifest]:
        """The TraefikServices the route's backendRefs name, as the API server has them."""
        found: dict[str, Manifest] = {}
        for rule in (route.get("spec") or {}).get("rules") or []:
            for b in rule.get("backendRefs") or []:
                name = str(b.get("name", ""))
                if b.get("kind") != "TraefikService" or name in found:
                    continue
                got = self._fetch(TRAEFIK_GROUP, TRAEFIK_VERSION, TRAEFIK_PLURAL,
                                  self._owner.namespace, name)  # fmt: skip
                if got is not None:
                    found[name] = got
        return found

    def _apply_route(self, routes: Routes, mode: MirrorMode | None) -> str | None:
        desired = build_route(self._owner, self._traffic, self._port, routes, mode)
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
            found = None if current is None else _said(
                routes_of_route(current, self._mirrors(current)), self._owner.name)  # fmt: skip
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
        return None if route is None else routes_of_route(route, self._mirrors(route))

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
    mirror = mirror_of(routes)
    copied = f", {mirror.percent}% mirrored to {mirror.service}" if mirror is not None else ""
    if len(split) == 2 and weight is not None:
        return f"canary weight {weight}{copied}"
    return ", ".join(f"{service} {w}" for service, w in split.items()) + copied


def build(cluster: KubeCluster, owner: Owner, spec: ModelRolloutSpec) -> GatewayAPIRouter | None:
    """The registry's entry: a router for a spec with `traffic.gatewayAPI`."""
    traffic = spec.traffic.gateway_api
    return None if traffic is None else GatewayAPIRouter(cluster, owner, traffic, spec.service.port)
