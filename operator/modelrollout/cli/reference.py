"""`modelrollout reference`: freeze a distribution into a ConfigMap for `against: reference`.

From a sample or a training dataset (a CSV column, binned at the model server's bucket edges, or
counted per category), or from what Prometheus counted over a past window (a known-good week of
the stable model). Prints the ConfigMap as YAML, to apply or to commit next to the ModelRollout.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import math
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from modelrollout.analysis.prometheus import Prometheus
from modelrollout.domain.durations import parse_duration
from modelrollout.domain.reference import (
    DEFAULT_KEY,
    category_counts,
    check_edges,
    config_map,
    encode,
    histogram_counts,
)

_METRIC_NAME = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser],
               common: argparse.ArgumentParser) -> None:  # fmt: skip
    r = sub.add_parser(
        "reference",
        parents=[common],
        help="freeze a distribution (CSV column or Prometheus window) into a ConfigMap",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    r.add_argument("name", help="the ConfigMap's name")
    r.add_argument("--key", default=DEFAULT_KEY, help=f"data key (default {DEFAULT_KEY})")
    source = r.add_mutually_exclusive_group(required=True)
    source.add_argument("--csv", type=Path, help="a CSV file with a header row ('-': stdin)")
    source.add_argument("--prometheus", metavar="URL", help="a Prometheus server's address")
    r.add_argument("--column", help="with --csv: the column to count")
    r.add_argument("--edges", help="bucket upper edges, comma-separated, as the model server's")
    r.add_argument("--categorical", action="store_true", help="count values per category")
    r.add_argument("--selector", help="with --prometheus: a _bucket or category counter selector")
    r.add_argument("--category-label", default="category", help="label holding the category")
    r.add_argument("--since", default="7d", help="with --prometheus: window length (default 7d)")
    r.add_argument("--until", help="with --prometheus: window end, RFC 3339 (default now)")
    r.add_argument("-o", "--output", type=Path, help="write here instead of stdout")


class BadInput(Exception):
    """Bad arguments or input; the message says which."""


def run(args: argparse.Namespace) -> int:
    try:
        if args.csv is not None:
            counts, source = _from_csv(args)
        else:
            counts, source = _from_prometheus(args)
        text = encode(counts, source)
    except (BadInput, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    body = config_map(args.name, getattr(args, "namespace", None), args.key, text)
    rendered = yaml.dump(body, Dumper=_BlockDumper, sort_keys=False, default_flow_style=False)
    if args.output is not None:
        args.output.write_text(rendered)
    else:
        sys.stdout.write(rendered)
    total = sum(counts.values()) if args.categorical else counts["+Inf"]
    print(f"{args.name}: {total:.0f} observations in {len(counts)} buckets ({source})",
          file=sys.stderr)  # fmt: skip
    return 0


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (the JSON) as literal blocks, readable in a diff."""


def _block(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    return dumper.represent_scalar(
        "tag:yaml.org,2002:str", text, style="|" if "\n" in text else None
    )


_BlockDumper.add_representer(str, _block)


def _edges(args: argparse.Namespace) -> tuple[float, ...] | None:
    if args.categorical == (args.edges is not None):
        raise BadInput("give exactly one of --edges (a histogram) or --categorical")
    if args.edges is None:
        return None
    try:
        return check_edges([float(e) for e in args.edges.split(",") if e.strip()])
    except ValueError as error:
        raise BadInput(f"--edges: {error}") from error


def _from_csv(args: argparse.Namespace) -> tuple[dict[str, float], str]:
    if not args.column:
        raise BadInput("--csv needs --column")
    edges = _edges(args)
    name = "stdin" if str(args.csv) == "-" else args.csv.name
    skipped = [0]
    with contextlib.ExitStack() as stack:
        rows = sys.stdin if name == "stdin" else stack.enter_context(args.csv.open(newline=""))
        cells = _column(csv.DictReader(rows), args.column, skipped)
        if edges is None:
            counts = category_counts(cell for _, cell in cells)
        else:
            counts = histogram_counts(_numbers(cells, args.column), edges)
    note = f", {skipped[0]} empty cells left out" if skipped[0] else ""
    return counts, f"csv {name} column {args.column}{note}"


def _column(reader: csv.DictReader[str], column: str,
            skipped: list[int]) -> Iterator[tuple[int, str]]:  # fmt: skip
    if reader.fieldnames is None or column not in reader.fieldnames:
        raise BadInput(f"no column {column!r}; the header has {reader.fieldnames}")
    for row in reader:
        cell = (row.get(column) or "").strip()
        if cell:
            yield reader.line_num, cell
        else:
            skipped[0] += 1


def _numbers(cells: Iterator[tuple[int, str]], column: str) -> Iterator[float]:
    for line, cell in cells:
        try:
            value = float(cell)
        except ValueError:
            raise BadInput(f"line {line}, column {column}: {cell!r} is not a number") from None
        if not math.isfinite(value):
            raise BadInput(f"line {line}, column {column}: {cell!r} is not a finite number")
        yield value


def _from_prometheus(args: argparse.Namespace) -> tuple[dict[str, float], str]:
    if not args.selector:
        raise BadInput("--prometheus needs --selector")
    if args.column or args.edges:
        raise BadInput("--column and --edges go with --csv; Prometheus has the edges")
    match = _METRIC_NAME.match(args.selector)
    histogram = bool(match and match.group(1).endswith("_bucket"))
    if histogram == args.categorical:
        raise BadInput("a _bucket selector is a histogram; a category counter needs --categorical")
    until = _moment(args.until) if args.until else datetime.now(UTC)
    since = until - timedelta(seconds=parse_duration(args.since))
    label = "le" if histogram else args.category_label
    measured = Prometheus(args.prometheus, timeout="60s").increases(
        args.selector, since, until, by=label
    )
    if measured.error is not None:
        raise BadInput(measured.error)
    counts = {k: v for k, v in measured.by.items() if k}
    if not counts:
        raise BadInput(f"no series with label {label!r} matched {args.selector}")
    if histogram and "+Inf" not in counts:
        raise BadInput("the histogram has no +Inf bucket; select the `_bucket` series")
    window = f"{since.isoformat(timespec='seconds')} to {until.isoformat(timespec='seconds')}"
    return counts, f"prometheus {args.selector} from {window}"


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise BadInput(f"--until: {error}") from error
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
