"""A shop's own review-sentiment model, trained from its rated reviews.

Ratings 1-2 are negative, 4-5 positive, 3 is left out. The new model and the default
model are measured on the same held-out part; the new one is saved to
``<home>/models/sentiment.npz`` only when it is at least as accurate there (or when
forced). :func:`active_model` returns the shop model when there is one, else the default.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from shequ.core.errors import ValidationFailed
from shequ.domains.content.models import Review
from shequ.text.sentiment import (
    SentimentModel,
    accuracy_and_macro_f1,
    default_model,
    held_out_split,
    labels_of,
    train,
    unique_labelled,
)

__all__ = ["ShopTrainingReport", "active_model", "shop_model_path", "train_shop_model"]

Status = Callable[[str], None]


class ModelFigures(BaseModel):
    """Accuracy and macro-F1 of one model on the held-out reviews."""

    accuracy: float
    macro_f1: float


class ShopTrainingReport(BaseModel):
    """What training a shop model found and did."""

    reviews: int
    positives: int
    negatives: int
    neutral_skipped: int
    train_rows: int
    held_out_rows: int
    shop_model: ModelFigures
    default_model: ModelFigures
    saved: bool
    forced: bool
    path: str | None
    reason: str


def shop_model_path(home: Path) -> Path:
    """Where a home keeps its own sentiment model."""
    return Path(home) / "models" / "sentiment.npz"


def active_model(home: Path | None) -> SentimentModel:
    """The shop's model when ``home`` has one, else the shipped default."""
    if home is not None:
        path = shop_model_path(home)
        if path.is_file() and path.with_suffix(".json").is_file():
            return SentimentModel.load(path)
    return default_model()


def _quiet(_message: str) -> None:
    return None


def rated_reviews(session: Session) -> tuple[list[str], list[int], int]:
    """Texts and labels (1 pos for 4-5 stars, 0 neg for 1-2) and how many 3-star were left."""
    texts: list[str] = []
    labels: list[int] = []
    neutral = 0
    for rating, text in session.execute(select(Review.rating, Review.text).order_by(Review.id)):
        if rating == 3:
            neutral += 1
        elif text and text.strip():
            texts.append(text)
            labels.append(1 if rating >= 4 else 0)
    return texts, labels, neutral


def train_shop_model(session: Session, home: Path, *, held_out: float = 0.2, seed: int = 0,
                     force: bool = False, min_per_class: int = 200,
                     status: Status = _quiet) -> ShopTrainingReport:
    """Train on the shop's rated reviews; save only when at least as accurate as the default
    on the same held-out reviews (or ``force``)."""
    if not 0.0 < held_out < 1.0:
        raise ValidationFailed("invalid_held_out", "must be above 0 and below 1", "held_out")
    if min_per_class < 2:
        raise ValidationFailed("invalid_min_per_class", "must be at least 2", "min_per_class")
    status("reading reviews")
    texts, labels, neutral = rated_reviews(session)
    positives = sum(labels)
    negatives = len(labels) - positives
    if positives < min_per_class or negatives < min_per_class:
        raise ValidationFailed(
            "too_few_reviews",
            f"needs at least {min_per_class} reviews rated 4-5 and {min_per_class} rated 1-2; "
            f"found {positives} and {negatives}", "reviews")
    status(f"training on {len(labels)} reviews")
    model, report = train(texts, labels, held_out=held_out, seed=seed)
    # the same held-out part train() measured on: its de-duplicated, normalised rows
    held_texts, held_labels = _held_out_rows(texts, labels, held_out, seed)
    status("measuring both models on the held-out reviews")
    shop = _figures(model, held_texts, held_labels)
    default = _figures(default_model(), held_texts, held_labels)
    better = shop.accuracy >= default.accuracy
    path: Path | None = None
    if better or force:
        path = model.save(shop_model_path(home))
        reason = ("at least as accurate as the default on the held-out reviews" if better
                  else "saved because forced, though less accurate than the default")
    else:
        reason = "not saved: less accurate than the default on the held-out reviews"
    return ShopTrainingReport(
        reviews=len(labels) + neutral, positives=report.positives, negatives=report.negatives,
        neutral_skipped=neutral, train_rows=report.train_rows,
        held_out_rows=report.held_out_rows, shop_model=shop, default_model=default,
        saved=path is not None, forced=force and not better,
        path=str(path) if path is not None else None, reason=reason)


def _held_out_rows(texts: list[str], labels: list[int], held_out: float, seed: int
                   ) -> tuple[list[str], np.ndarray]:
    """The held-out texts and labels exactly as :func:`train` chose them."""
    unique, targets = unique_labelled(texts, labels_of(labels))
    _, test_index = held_out_split(targets, held_out, seed)
    return [unique[i] for i in test_index], targets[test_index]


def _figures(model: SentimentModel, texts: list[str], labels: np.ndarray) -> ModelFigures:
    predicted = (model.predict_proba(texts) > 0.5).astype(np.int64)
    accuracy, macro_f1 = accuracy_and_macro_f1(labels, predicted)
    return ModelFigures(accuracy=round(accuracy, 4), macro_f1=round(macro_f1, 4))
