"""Choose a model configuration by cross-validation on the training data only (shared by
scripts/train_sentiment.py and scripts/train_offensive.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any, TypeVar

Config = TypeVar("Config")


def search(grid: Sequence[Config], evaluate: Callable[[Config], dict[str, float]],
           criterion: str) -> tuple[Config, dict[str, float], list[dict[str, Any]]]:
    """Every candidate's cross-validated figures (printed as they come), the candidate with
    the highest ``criterion`` and its figures."""
    tried: list[dict[str, Any]] = []
    best: tuple[Config, dict[str, float]] | None = None
    for candidate in grid:
        started = time.perf_counter()
        figures = evaluate(candidate)
        tried.append({"config": asdict(candidate), **figures})
        print(json.dumps(tried[-1]), f"{time.perf_counter() - started:.0f}s", flush=True)
        if best is None or figures[criterion] > best[1][criterion]:
            best = (candidate, figures)
    if best is None:
        raise ValueError("the grid is empty")
    return best[0], best[1], tried
