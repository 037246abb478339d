"""`modelrollout report NAME`: a rollout's life as a picture (PNG) and a summary (Markdown).

The numbers over time come from Prometheus range queries of the operator's own metrics (the
canary's weight, each signal's value and bound, each verdict), which a Prometheus that scrapes the
operator holds; the decisions and who made them come from status (history, the monitor's alarms,
the retrainings and their approvals, the fallback). `gather` collects the data behind the picture
(tested on its own); `draw` and `markdown` render it.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from modelrollout.api.v1alpha1 import IN_FLIGHT
from modelrollout.cli.view import arm_rows
from modelrollout.domain.durations import parse_duration

Series = list[tuple[float, float]]  # (unix seconds, value)
STEP_SECONDS_MIN = 1.0
POINTS = 600  # about this many points per series


@dataclass(frozen=True)
class Decision:
    at: datetime
    what: str  # e.g. "v2 Promoted", "retraining 1 approved"
    by: str  # who: "operator", or the user a command named
    why: str = ""


@dataclass
class ReportData:
    name: str
    namespace: str
    start: datetime
    end: datetime
    weight: Series = field(default_factory=list)
    signals: dict[str, Series] = field(default_factory=dict)
    bounds: dict[str, Series] = field(default_factory=dict)
    fails: dict[str, Series] = field(default_factory=dict)
    decisions: list[Decision] = field(default_factory=list)
    phase: str = ""
    stable: str = ""
    # undecided compare signals: (name, labelled requests still needed, expected at or "")
    needed: list[tuple[str, int, str]] = field(default_factory=list)
    arms: list[tuple[str, ...]] = field(default_factory=list)  # the A/B/n table (view.arm_rows)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _range(prometheus: str, query: str, start: datetime, end: datetime) -> dict[str, Series]:
    """query_range: one series per distinct `signal` label ("" when it has none)."""
    step = max(STEP_SECONDS_MIN, (end - start).total_seconds() / POINTS)
    answer = requests.get(
        f"{prometheus.rstrip('/')}/api/v1/query_range",
        params={"query": query, "start": f"{start.timestamp():.3f}",
                "end": f"{end.timestamp():.3f}", "step": f"{step:g}"},
        timeout=30,
    )  # fmt: skip
    answer.raise_for_status()
    out: dict[str, Series] = {}
    for item in answer.json()["data"]["result"]:
        key = item["metric"].get("signal", "")
        points = [(float(t), float(v)) for t, v in item["values"] if math.isfinite(float(v))]
        out.setdefault(key, []).extend(points)
    return {k: sorted(v) for k, v in out.items()}


def decisions(status: dict[str, Any]) -> list[Decision]:
    """Every decision status remembers, with who made it."""
    out = []
    for h in status.get("history") or []:
        reason = h.get("reason", "")
        by = reason.rsplit(" by ", 1)[1] if " by " in reason else "operator"
        out.append(Decision(_time(h["finishedAt"]), f"{h['version']} {h['outcome']}", by, reason))
    for alarm in (status.get("monitor") or {}).get("alarms") or []:
        out.append(Decision(_time(alarm["at"]), f"alarm of {alarm['signal']}", "operator",
                            alarm["message"]))  # fmt: skip
    retraining = status.get("retraining") or {}
    current = [retraining["current"]] if retraining.get("current") else []
    for r in [*(retraining.get("history") or []), *current]:
        out.append(Decision(_time(r["requestedAt"]), f"retraining {r['id']} requested",
                            "operator", r["trigger"]["message"]))  # fmt: skip
        if r.get("decidedBy"):
            out.append(Decision(_time(r.get("finishedAt") or r["requestedAt"]),
                                f"retraining {r['id']} {r['state'].lower()}", r["decidedBy"],
                                r.get("message", "")))  # fmt: skip
        elif r.get("finishedAt"):
            out.append(Decision(_time(r["finishedAt"]), f"retraining {r['id']} {r['state']}",
                                "operator", r.get("message", "")))  # fmt: skip
    fallback = status.get("fallback")
    if fallback:
        out.append(Decision(_time(fallback["since"]), "fell back", "operator", fallback["reason"]))
    return sorted(out, key=lambda d: d.at)


def gather(body: dict[str, Any], prometheus: str, since: float,
           end: datetime | None = None) -> ReportData:  # fmt: skip
    """The data behind the report: `since` seconds up to `end` (now)."""
    meta, status = body["metadata"], body.get("status") or {}
    name, namespace = meta["name"], meta["namespace"]
    end = end or datetime.now(UTC)
    start = end - timedelta(seconds=since)
    ours = f'namespace="{namespace}",rollout="{name}"'
    data = ReportData(name, namespace, start, end, phase=status.get("phase", ""),
                      stable=(status.get("stable") or {}).get("version", ""))  # fmt: skip
    data.weight = _range(prometheus, f"max(modelrollout_canary_weight{{{ours}}})", start,
                         end).get("", [])  # fmt: skip
    data.signals = _range(prometheus, f"max by (signal) (modelrollout_signal_value{{{ours}}})",
                          start, end)  # fmt: skip
    data.bounds = _range(prometheus, f"max by (signal) (modelrollout_signal_bound{{{ours}}})",
                         start, end)  # fmt: skip
    data.fails = _range(
        prometheus, f'max by (signal) (modelrollout_signal_verdict{{{ours},verdict="Fail"}}) == 1',
        start, end)  # fmt: skip
    data.decisions = [d for d in decisions(status) if start <= d.at <= end]
    data.arms = arm_rows(status)
    data.needed = [(s["name"], int(s["needed"]), s.get("expectedAt") or "")
                   for s in (status.get("analysis") or {}).get("signals") or []
                   if s.get("needed") is not None and status.get("phase") in IN_FLIGHT]  # fmt: skip
    return data


def draw(data: ReportData, path: Path) -> None:
    """The picture: the canary's weight, then each signal against its bound, decisions marked."""
    import matplotlib  # noqa: PLC0415 (only this command needs it)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    names = sorted(data.signals)
    fig, axes = plt.subplots(len(names) + 1, 1, figsize=(11, 2.2 * (len(names) + 1)),
                             sharex=True, squeeze=False)  # fmt: skip
    seen = [s[0][0] for s in (data.weight, *data.signals.values()) if s]
    t0 = min([*seen, *(d.at.timestamp() for d in data.decisions)], default=data.start.timestamp())
    weight = axes[0][0]
    if data.weight:
        weight.step([t - t0 for t, _ in data.weight], [v for _, v in data.weight], where="post",
                    color="tab:blue")  # fmt: skip
    weight.set_ylabel("canary weight %")
    weight.set_ylim(-5, 105)
    heights = iter([95, 80, 65, 50] * 50)
    for d in data.decisions:
        x = d.at.timestamp() - t0
        for row in axes:
            row[0].axvline(x, color="grey", linewidth=0.6, linestyle=":")
        by = "" if d.by == "operator" else f" ({d.by})"
        weight.annotate(d.what + by, (x, next(heights)), fontsize=7, ha="left", va="top")
    for row, name in zip(axes[1:], names, strict=True):
        ax = row[0]
        series = data.signals[name]
        ax.plot([t - t0 for t, _ in series], [v for _, v in series], ".-", markersize=2,
                color="tab:green")  # fmt: skip
        bound = data.bounds.get(name, [])
        if bound:
            ax.step([t - t0 for t, _ in bound], [v for _, v in bound], where="post",
                    color="tab:red", linestyle="--", linewidth=1)  # fmt: skip
        failed = {round(t) for t, _ in data.fails.get(name, [])}
        marks = [(t - t0, v) for t, v in series if round(t) in failed]
        if marks:
            ax.plot(*zip(*marks, strict=True), "x", color="tab:red", markersize=7)
        ax.set_ylabel(name, fontsize=8)
    first = datetime.fromtimestamp(t0, UTC)
    axes[-1][0].set_xlabel(f"seconds since {first:%Y-%m-%d %H:%M:%S} UTC")
    fig.suptitle(f"{data.namespace}/{data.name}: {data.phase}, stable {data.stable}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def markdown(data: ReportData, picture: str) -> str:
    lines = [
        f"# {data.namespace}/{data.name}",
        "",
        f"From {data.start:%Y-%m-%d %H:%M:%S} to {data.end:%Y-%m-%d %H:%M:%S} UTC. "
        f"Phase {data.phase}, stable {data.stable or '-'}.",
        "",
        f"![the rollout]({picture})",
        "",
        "| when (UTC) | decision | by | why |",
        "|---|---|---|---|",
    ]
    for d in data.decisions:
        why = d.why.replace("|", "\\|")
        lines.append(f"| {d.at:%H:%M:%S} | {d.what} | {d.by} | {why} |")
    if data.signals:
        lines += ["", "| signal | last value | last bound | samples at Fail |", "|---|---|---|---|"]
        for name in sorted(data.signals):
            last = data.signals[name][-1][1] if data.signals[name] else float("nan")
            bound = data.bounds.get(name) or [(0.0, float("nan"))]
            lines.append(f"| {name} | {last:.4g} | {bound[-1][1]:.4g} | "
                         f"{len(data.fails.get(name, []))} |")  # fmt: skip
    if data.arms:
        lines += ["", "| arm | role | share | state | advantage | bounds (all arms at once) | "
                  "p | why |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for row in data.arms:
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    if data.needed:
        lines += ["", "| still undecided | labelled requests still needed | expected at (UTC) |",
                  "|---|---|---|"]  # fmt: skip
        for name, more, when in data.needed:
            lines.append(f"| {name} | {more:,} | {when or 'not within a year at this rate'} |")
    return "\n".join(lines) + "\n"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser],
               common: argparse.ArgumentParser) -> None:  # fmt: skip
    r = sub.add_parser("report", parents=[common],
                       help="write a PNG and a Markdown summary of a rollout's life")  # fmt: skip
    r.add_argument("name")
    r.add_argument("--since", default="6h", help="how far back (a duration; default 6h)")
    r.add_argument("--prometheus", help="a Prometheus that scrapes the operator's metrics "
                   "(default: the rollout's analysis.prometheus.address)")  # fmt: skip
    r.add_argument("--out", default=".", help="the directory to write NAME.png and NAME.md to")


def run(body: dict[str, Any], args: argparse.Namespace) -> int:
    spec = body.get("spec") or {}
    prometheus = args.prometheus or ((spec.get("analysis") or {}).get("prometheus") or {}).get(
        "address")  # fmt: skip
    if not prometheus:
        raise ValueError("no Prometheus: give --prometheus (the rollout has no analysis)")
    data = gather(body, prometheus, parse_duration(args.since))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = body["metadata"]["name"]
    draw(data, out / f"{name}.png")
    (out / f"{name}.md").write_text(markdown(data, f"{name}.png"))
    print(f"wrote {out / f'{name}.png'} and {out / f'{name}.md'}")
    return 0
