"""Offensive language: P(offensive) of Chinese texts (docs/offensive.md).

The model is the hashed character n-gram logistic regression of
:mod:`shequ.text.sentiment` (same features, same ``.npz`` + JSON format, no pickle), trained
by ``scripts/train_offensive.py`` on the train split of COLD (Deng et al., EMNLP 2022,
Apache-2.0), where label 1 is offensive: insults and hostility towards race, region or
gender groups. It is loaded once, lazily, from ``shequ/text/models/offensive.npz`` on the
first call, and is safe to share between threads (scoring only reads it).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from shequ.text.sentiment import LazyModel, SentimentModel

__all__ = ["DEFAULT_MODEL_PATH", "default_model", "offensive_probability"]

DEFAULT_MODEL_PATH = Path(__file__).resolve().parent / "models" / "offensive.npz"

_DEFAULT = LazyModel(DEFAULT_MODEL_PATH)


def default_model() -> SentimentModel:
    """The model shipped with the package, loaded on first use (once, under a lock)."""
    return _DEFAULT.get()


def offensive_probability(texts: Sequence[str]) -> list[float]:
    """P(offensive) of each text, in order, from the shipped model.

    ``texts`` must be a list (or other sequence, not a single ``str``) of strings, else
    :class:`shequ.core.errors.ValidationFailed`; an empty or blank text scores near 0.
    """
    return [float(value) for value in default_model().predict_proba(texts)]
