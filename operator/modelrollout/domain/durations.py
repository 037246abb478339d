"""Go-style durations; the parser lives in the API layer, which validates them at admission."""

from __future__ import annotations

from modelrollout.api.durations import parse_duration

__all__ = ["parse_duration"]
