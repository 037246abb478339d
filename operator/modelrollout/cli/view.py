"""The text a person reads: one rollout's live state, or a table of rollouts."""

from __future__ import annotations

from typing import Any

from modelrollout.api.v1alpha1 import INITIAL_PHASE, VERDICTS


def _ref(ref: dict[str, Any] | None) -> str:
    return f"{ref['version']} ({ref['revision']})" if ref else "-"


def _bound(signal: dict[str, Any]) -> str:
    low, high = signal.get("min"), signal.get("max")
    if low is not None and high is not None:
        return f"in [{low:g}, {high:g}]"
    if high is not None:
        return f"<= {high:g}"
    return f">= {low:g}" if low is not None else ""


def _num(value: Any, fmt: str = ".4g") -> str:
    return format(value, fmt) if isinstance(value, int | float) else "-"


def _evidence(signal: dict[str, Any]) -> str:
    """The numbers behind a statistical verdict: per arm, bounds, samples, p-value."""
    kind, parts = signal.get("kind", "threshold"), []
    if kind in ("compare", "fairness") and "canary" in signal:
        parts.append(f"canary {_num(signal.get('canary'))} stable {_num(signal.get('stable'))}")
    if signal.get("lower") is not None:
        limit, against = {"compare": ("vs", "bound"), "drift": ("vs max", "max")}.get(
            kind, ("margin", "bound")
        )
        parts.append(
            f"[{_num(signal['lower'], '+.4g')}, {_num(signal.get('upper'), '+.4g')}] "
            f"{limit} {_num(signal.get(against), '+.4g')}"
        )
    if kind == "sampleRatio":
        parts.append(f"weight {_num(signal.get('bound'), '.0%')}")
    samples = signal.get("samples")
    if samples:
        parts.append(f"n {samples.get('canary', 0)}/{samples.get('stable', 0)}")
    if signal.get("pValue") is not None:
        parts.append(f"p {_num(signal['pValue'], '.2g')}")
    if signal.get("excluded"):
        parts.append("left out: " + ", ".join(signal["excluded"]))
    if signal.get("needed") is not None:
        when = signal.get("expectedAt") or "not within a year at the rate so far"
        parts.append(f"needs ~{signal['needed']:,} more labelled requests, expected {when}")
    return "  ".join(parts)


# Why a canary in flight holds where it is, from its Progressing condition.
_HOLDING = ("WaitingForEvidence", "WaitingForTraffic", "RouteNotAccepted", "WaitingForCanary")


def arm_rows(status: dict[str, Any]) -> list[tuple[str, ...]]:
    """The A/B/n table: every arm with its role, share and state, and each candidate's advantage
    over the champion with bounds that hold for all candidates at once; the best first."""
    rows = []
    for a in status.get("arms") or []:
        bounds = (f"[{_num(a.get('lower'), '+.4g')}, {_num(a.get('upper'), '+.4g')}]"
                  if a.get("lower") is not None else "-")  # fmt: skip
        rows.append((a["version"], a["role"], f"{a.get('share', 0)}%", a.get("state", "Running"),
                     _num(a.get("estimate"), "+.4g"), bounds,
                     _num(a.get("pValue", 1.0), ".2g"), a.get("reason", "")))  # fmt: skip
    order = {"champion": 0, "Won": 1, "Running": 2, "Lost": 3, "Eliminated": 4}
    return sorted(rows, key=lambda r: (order.get(r[1], order.get(r[3], 5)), r[0]))


def render_status(body: dict[str, Any]) -> str:
    meta, spec = body.get("metadata", {}), body.get("spec", {})
    status: dict[str, Any] = body.get("status") or {}
    steps = spec.get("strategy", {}).get("steps", [])
    analysis = spec.get("analysis") or {}
    step = status.get("currentStep")
    step_text = f"{step}/{len(steps)}" if step is not None else "-"
    lines = [
        f"{meta.get('namespace')}/{meta.get('name')}  phase {status.get('phase', INITIAL_PHASE)}"
        f"  step {step_text}  canary weight {status.get('canaryWeight', 0)}%",
        f"  stable  {_ref(status.get('stable'))}",
        f"  canary  {_ref(status.get('canary'))}",
    ]
    pause = status.get("pause")
    if pause:
        lines.append(
            f"  paused  {pause.get('reason')}: {pause.get('message', '')}"
            f" (since {pause.get('since')})"
        )
    if status.get("message"):
        lines.append(f"  reason  {status['message']}")
    holding = next((c for c in status.get("conditions") or [] if c.get("type") == "Progressing"
                    and c.get("reason") in _HOLDING), None)  # fmt: skip
    if holding is not None and status.get("phase") == "Progressing":
        lines.append(f"  holding  {holding['reason']}: {holding.get('message', '')}".rstrip())
    result = status.get("analysis") or {}
    counters = result.get("counters") or {}
    if analysis:
        lines.append(
            "  counters  failed {}/{}  inconclusive {}/{}  errors in a row {}/{}".format(
                counters.get("failed", 0), analysis.get("failureLimit", 0),
                counters.get("inconclusive", 0), analysis.get("inconclusiveLimit", 3),
                counters.get("consecutiveErrors", 0), analysis.get("consecutiveErrorLimit", 4),
            )
        )  # fmt: skip
    signals = result.get("signals") or []
    if signals:
        lines.append(f"  signals (at {result.get('lastEvaluatedAt', '-')}):")
        for s in signals:
            value = s.get("value")
            shown = f"{value:.4g}" if isinstance(value, int | float) else "-"
            note = s["message"] if s.get("message") and s.get("verdict") != VERDICTS[0] else ""
            detail = "  ".join(part for part in (_bound(s), _evidence(s), note) if part)
            lines.append(f"    {s['name']:<20} {s['verdict']:<12} {shown:>10}  {detail}".rstrip())
    abn = status.get("abn")
    if abn:
        lines.append(f"  A/B/n  {abn.get('outcome')}: {abn.get('message', '')}".rstrip())
        for row in arm_rows(status):
            version, role, share, state, estimate, bounds, p, reason = row
            lines.append(f"    {version:<12} {role:<10} {share:>4} {state:<10} {estimate:>8} "
                         f"{bounds:<22} p={p:<7} {reason}".rstrip())  # fmt: skip
    history = status.get("history") or []
    if history:
        lines.append("  history:")
        for h in history[-5:]:
            lines.append(
                f"    {h['finishedAt']}  {h['version']:<12} {h['outcome']:<11}"
                f" {h.get('reason', '')}"
            )
    return "\n".join(lines)


def render_table(items: list[dict[str, Any]]) -> str:
    rows = [("NAMESPACE", "NAME", "PHASE", "STABLE", "CANARY", "WEIGHT", "STEP")]
    for body in items:
        status = body.get("status") or {}
        rows.append(
            (
                body["metadata"]["namespace"],
                body["metadata"]["name"],
                status.get("phase", INITIAL_PHASE),
                (status.get("stable") or {}).get("version", "-"),
                (status.get("canary") or {}).get("version", "-"),
                f"{status.get('canaryWeight', 0)}%",
                str(status.get("currentStep", "-")),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )
