"""Modules imported when first used: numpy and scipy are a third of the operator's memory and
most of its start-up time, and a rollout with no statistical signal never needs them
(tests/unit/test_lazy_imports.py fails when starting the operator imports them)."""

from __future__ import annotations

import importlib
from typing import Any


class Lazy:
    """A module imported when one of its attributes is first used."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        return getattr(importlib.import_module(self._name), attribute)
