"""Argo CD's health check and actions, run by a Lua 5.1 interpreter (Debian's lua5.1; Argo CD
runs gopher-lua, a Lua 5.1) against status fixtures for every phase."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelrollout.domain.commands import decode

ROOT = Path(__file__).resolve().parents[2]
ARGOCD = ROOT / "argocd"
LUA = shutil.which("lua5.1") or "lua5.1"  # `make test` installs it (hack/system-deps.sh)


def lua_value(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid Lua string literal here
    if isinstance(value, list):
        return "{" + ", ".join(lua_value(v) for v in value) + "}"
    return "{" + ", ".join(f"[{json.dumps(k)}] = {lua_value(v)}" for k, v in value.items()) + "}"


def run(script: Path, obj: dict[str, Any], show: str) -> str:
    """Run an Argo CD Lua script with `obj` set, then print what `show` (Lua) says of its result."""
    load = f"local result = assert(loadfile({json.dumps(str(script))}))()"
    program = f"obj = {lua_value(obj)}\n{load}\n{show}\n"
    done = subprocess.run([LUA, "-"], input=program, capture_output=True, text=True, check=False,
                          timeout=10)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def rollout(status: dict[str, Any] | None, generation: int = 2) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "modelrollout.io/v1alpha1",
        "kind": "ModelRollout",
        "metadata": {"name": "fraud", "namespace": "ml", "generation": generation,
                     "resourceVersion": "4711"},
        "spec": {"strategy": {"steps": [{"setWeight": 20}, {"analyze": {"duration": "5m"}},
                                        {"setWeight": 50}]}},
    }  # fmt: skip
    if status is not None:
        body["status"] = {"observedGeneration": 2, **status}
    return body


V1, V2 = {"version": "v1", "revision": "aaaaaaaaaa"}, {"version": "v2", "revision": "bbbbbbbbbb"}
HEALTH = [
    ("no status yet", None, "Progressing", "Waiting for the modelrollout operator"),
    ("Pending", {"phase": "Pending"}, "Progressing", "Starting"),
    ("Progressing", {"phase": "Progressing", "stable": V1, "canary": V2, "canaryWeight": 20,
                     "currentStep": 1}, "Progressing",
     "Canary v2 at 20% (step 1 of 3), stable v1"),
    ("Progressing, first revision", {"phase": "Progressing", "stable": V1}, "Progressing",
     "v1 is being made stable"),
    ("Paused for evidence", {"phase": "Paused", "stable": V1, "canary": V2, "canaryWeight": 50,
                             "pause": {"reason": "Inconclusive", "message": "accuracy unproven"}},
     "Suspended", "Inconclusive: canary v2 at 50% (accuracy unproven)"),
    ("Baking", {"phase": "Baking", "stable": V1, "canary": V2, "canaryWeight": 90},
     "Progressing", "Baking v2 at 90%, v1 kept warm"),
    ("Promoted", {"phase": "Promoted", "stable": V2}, "Healthy", "Model version v2 is stable"),
    ("RolledBack", {"phase": "RolledBack", "stable": V1, "canary": V2,
                    "message": "signal amount-drift: jensenShannon 0.27 above max 0.1"},
     "Degraded", "Rolled back v2: signal amount-drift"),
    ("A/B/n phase", {"phase": "Progressing", "stable": V1, "arms": [
        {**V1, "role": "champion", "share": 34, "state": "Running"},
        {"version": "v3", "revision": "c", "role": "challenger", "share": 33, "state": "Running"},
        {"version": "v4", "revision": "d", "role": "challenger", "share": 0,
         "state": "Eliminated"}]}, "Progressing",
     "A/B/n: v3 33% against champion v1 (v4 eliminated)"),
    ("A/B/n, no winner", {"phase": "Paused", "stable": V1, "pause": {"reason": "NoWinner"},
                          "arms": [{**V1, "role": "champion", "share": 50},
                                   {"version": "v3", "revision": "c", "role": "challenger",
                                    "share": 50, "state": "Running"}]},
     "Suspended", "NoWinner: A/B/n: v3 50% against champion v1"),
    ("Refused", {"phase": "Pending", "message": "invalid spec: ...", "conditions": [
        {"type": "Refused", "status": "True", "reason": "InvalidSpec",
         "message": "invalid spec: spec.replicas"}]}, "Degraded",
     "Refused by the operator: invalid spec: spec.replicas"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "status", "health", "message"), HEALTH,
                         ids=[h[0] for h in HEALTH])  # fmt: skip
def test_health_for_every_phase(case: str, status: dict[str, Any] | None, health: str,
                                message: str) -> None:  # fmt: skip
    out = run(ARGOCD / "health.lua", rollout(status), "print(result.status)\nprint(result.message)")
    got_health, got_message = out.split("\n", 1)
    assert got_health == health, case
    assert message in got_message, got_message


def test_a_spec_the_operator_has_not_seen_is_progressing_whatever_the_phase() -> None:
    stale = rollout({"phase": "Promoted", "stable": V1}, generation=3)
    out = run(ARGOCD / "health.lua", stale, "print(result.status)\nprint(result.message)")
    assert out == "Progressing\nWaiting for the operator to act on generation 3"


def _generator() -> Any:
    """hack/argocd_cm.py, which renders each action from argocd/actions/action.lua.tmpl."""
    spec = importlib.util.spec_from_file_location(
        "argocd_cm", ARGOCD.parent / "hack" / "argocd_cm.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GENERATOR = _generator()
ACTIONS: tuple[str, ...] = GENERATOR.ACTIONS
action = GENERATOR.action
OFFERED = {
    "Progressing": {"promote", "promote-full", "abort", "pause"},
    "Paused": {"promote", "promote-full", "abort", "resume"},
    "Baking": {"promote", "promote-full", "abort"},
    "RolledBack": {"retry"},
    "Promoted": set(),
}


@pytest.mark.parametrize("phase", sorted(OFFERED))
def test_actions_are_offered_only_where_they_mean_something(phase: str) -> None:
    show = "for name, a in pairs(result) do if not a.disabled then print(name) end end"
    out = run(ARGOCD / "actions" / "discovery.lua", rollout({"phase": phase}), show)
    assert set(out.split()) == OFFERED[phase]


@pytest.mark.parametrize("kind", ACTIONS)
def test_each_action_writes_the_command_the_operator_reads(kind: str, tmp_path: Path) -> None:
    show = (
        'print(result.metadata.annotations["modelrollout.io/command"])\nprint(result.spec ~= nil)'
    )
    body = rollout({"phase": "Paused"})
    body["metadata"]["annotations"] = {"team": "fraud"}
    annotation, spec_kept = run(rendered(kind, tmp_path), body, show).split("\n")
    command = decode(annotation)  # the operator's own decoder
    assert command is not None, annotation
    assert (command.kind, command.user, command.id) == (kind, "argocd", f"argocd-{kind}-4711")
    assert spec_kept == "true"


def test_an_action_on_an_object_without_annotations_adds_them(tmp_path: Path) -> None:
    show = 'print(result.metadata.annotations["modelrollout.io/command"])'
    out = run(rendered("abort", tmp_path), rollout({"phase": "Progressing"}), show)
    assert decode(out) is not None


def test_the_argocd_cm_snippet_embeds_these_very_scripts() -> None:
    committed = (ARGOCD / "argocd-cm.yaml").read_text()
    snippet = yaml.safe_load(committed)["data"]
    key = "modelrollout.io_ModelRollout"
    assert snippet[f"resource.customizations.health.{key}"] == (ARGOCD / "health.lua").read_text()
    actions = yaml.safe_load(snippet[f"resource.customizations.actions.{key}"])
    assert actions["discovery.lua"] == (ARGOCD / "actions" / "discovery.lua").read_text()
    assert {d["name"]: d["action.lua"] for d in actions["definitions"]} == {
        k: action(k) for k in ACTIONS
    }, "argocd/argocd-cm.yaml is stale: python hack/argocd_cm.py > argocd/argocd-cm.yaml"


def rendered(kind: str, where: Path) -> Path:
    """One action's Lua, rendered from the template into a file Lua can load."""
    path = where / f"{kind}.lua"
    path.write_text(action(kind))
    return path
