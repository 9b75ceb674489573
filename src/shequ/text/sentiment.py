"""Review sentiment: P(positive) of Chinese short texts from a hashed character n-gram model.

Text is normalised (:func:`shequ.text.normalise.normalise`), wrapped in start/end marks and
cut into character n-grams (1 to ``max_n``). Each n-gram is hashed (64-bit, vectorised in
numpy over a whole batch) into ``2**bucket_bits`` buckets; n-grams that start within
``negation_window`` characters after a negation word (不 没 别 无 未 非 …) also count
once more under a separate hash, so ``不好`` and ``好`` get different weights. Training may add
every clause of a longer text as an example of its own (``clause_augment``). Counts become
``1 + log(count)`` (or 1), are scaled per bucket (inverse document frequency), L2
normalised per text and fed to a logistic regression.

Model files hold no pickle: the per-bucket scale and weight of the active buckets in an
``.npz`` file and a JSON sidecar (``<name>.json``) with the feature configuration, the
training data, its licence and the figures measured when training.

``score(texts)`` uses the model shipped in ``shequ/text/models/`` (loaded once, lazily).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import sparse

from shequ.core.errors import ValidationFailed
from shequ.text.normalise import normalise

__all__ = [
    "DEFAULT_MODEL_PATH",
    "FeatureConfig",
    "LazyModel",
    "SentimentModel",
    "TrainingReport",
    "default_model",
    "held_out_split",
    "labels_of",
    "score",
    "train",
    "unique_labelled",
]

DEFAULT_MODEL_PATH = Path(__file__).resolve().parent / "models" / "sentiment.npz"
FORMAT_VERSION = 1
NEGATION_CHARACTERS = "不没别无未非莫勿"
_BATCH = 4096
_BEGIN = 0x02  # start-of-text mark
_END = 0x03  # end-of-text mark
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)
_NEGATED_SALT = np.uint64(0x5BD1E9955BD1E995)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class FeatureConfig:
    """How texts become features, and the regularisation of the logistic regression."""

    max_n: int = 3
    bucket_bits: int = 22
    negation_window: int = 3
    sublinear_tf: bool = True
    min_df: int = 1
    c: float = 4.0
    clause_augment: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.max_n <= 6:
            raise ValidationFailed("invalid_config", "must be between 1 and 6", "max_n")
        if not 10 <= self.bucket_bits <= 26:
            raise ValidationFailed("invalid_config", "must be between 10 and 26", "bucket_bits")
        if not 0 <= self.negation_window <= 10:
            raise ValidationFailed("invalid_config", "must be between 0 and 10",
                                   "negation_window")
        if self.min_df < 1:
            raise ValidationFailed("invalid_config", "must be at least 1", "min_df")
        if not self.c > 0:
            raise ValidationFailed("invalid_config", "must be positive", "c")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> FeatureConfig:
        """The configuration stored in a model's metadata."""
        known = {name: values[name] for name in cls.__dataclass_fields__ if name in values}
        return cls(**known)


@dataclass
class TrainingReport:
    """What training measured: class counts and held-out accuracy and macro-F1."""

    positives: int
    negatives: int
    train_rows: int
    held_out_rows: int
    held_out_accuracy: float | None
    held_out_macro_f1: float | None
    config: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        return asdict(self)


def _mix(values: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """The splitmix64 finaliser: spreads the bits of every value."""
    values = values ^ (values >> np.uint64(30))
    values = values * _MIX_1
    values = values ^ (values >> np.uint64(27))
    values = values * _MIX_2
    return values ^ (values >> np.uint64(31))


_CLAUSE_BREAKS = re.compile(r"[，。！？!?,;；~…\s]+")


def clauses_of(text: str) -> list[str]:
    """The clauses (split at punctuation and spaces) of at least two characters."""
    return [clause for clause in _CLAUSE_BREAKS.split(text) if len(clause) >= 2]


_NEGATION_CODES = np.array(sorted(ord(c) for c in NEGATION_CHARACTERS), dtype=np.uint64)


def _check_texts(texts: object) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise ValidationFailed("invalid_texts", "must be a list of strings", "texts")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValidationFailed("invalid_text",
                                   f"must be a string, not {type(text).__name__}",
                                   f"texts[{index}]")
    return list(texts)


def hashed_counts(texts: Sequence[str], config: FeatureConfig
                  ) -> tuple[IntArray, IntArray, FloatArray]:
    """Rows, buckets and counts of the n-grams of already normalised ``texts`` (sorted by
    row, then bucket; each (row, bucket) once)."""
    wrapped = "".join(f"\x02{text}\x03" for text in texts)
    codes = np.frombuffer(wrapped.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    lengths = np.fromiter((len(text) + 2 for text in texts), dtype=np.int64, count=len(texts))
    row_of = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)
    total = codes.size
    scope: npt.NDArray[np.bool_] | None = None
    if config.negation_window > 0 and total:
        negation = np.isin(codes, _NEGATION_CODES)
        # a position is in scope when a negation character of the same text sits
        # 1..window places before it
        marks = np.concatenate([np.zeros(1, dtype=np.int64), np.cumsum(negation)])
        positions = np.arange(total)
        starts = np.cumsum(lengths) - lengths
        lower = np.maximum(positions - config.negation_window, starts[row_of])
        scope = (marks[positions] - marks[lower]) > 0
    row_parts: list[IntArray] = []
    bucket_parts: list[npt.NDArray[np.uint64]] = []
    mask = np.uint64((1 << config.bucket_bits) - 1)
    rolling = np.zeros(total, dtype=np.uint64)
    for n in range(1, config.max_n + 1):
        count = total - n + 1
        if count <= 0:
            break
        rolling = rolling[:count] * _MULTIPLIER + codes[n - 1:n - 1 + count] + np.uint64(n)
        same_text = row_of[:count] == row_of[n - 1:n - 1 + count]
        hashed = _mix(rolling[same_text] ^ np.uint64(n << 56))
        rows = row_of[:count][same_text]
        row_parts.append(rows)
        bucket_parts.append(hashed & mask)
        if scope is not None:
            negated = scope[:count][same_text]
            row_parts.append(rows[negated])
            bucket_parts.append(_mix(hashed[negated] ^ _NEGATED_SALT) & mask)
    if not row_parts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.float64)
    all_rows = np.concatenate(row_parts)
    buckets = np.concatenate(bucket_parts).astype(np.int64)
    keys = (all_rows << np.int64(config.bucket_bits)) | buckets
    unique, counts = np.unique(keys, return_counts=True)
    return (unique >> np.int64(config.bucket_bits), unique & np.int64(int(mask)),
            counts.astype(np.float64))


def _term_weights(counts: FloatArray, config: FeatureConfig) -> FloatArray:
    return 1.0 + np.log(counts) if config.sublinear_tf else np.ones_like(counts)


def feature_matrix(texts: Sequence[str], config: FeatureConfig,
                   scale: FloatArray | None = None) -> sparse.csr_matrix:
    """The (texts × buckets) matrix of normalised ``texts``; scaled and L2-normalised rows
    when ``scale`` (one value per bucket) is given, else raw term weights."""
    rows, buckets, counts = hashed_counts(texts, config)
    values = _term_weights(counts, config)
    if scale is not None:
        values = values * scale[buckets]
        norms = np.sqrt(np.bincount(rows, weights=values * values, minlength=len(texts)))
        values = values / np.where(norms > 0, norms, 1.0)[rows]
    return sparse.csr_matrix((values, (rows, buckets)),
                             shape=(len(texts), 1 << config.bucket_bits))


class SentimentModel:
    """A trained model: per-bucket scale and weight, a bias, the configuration, metadata."""

    def __init__(self, config: FeatureConfig, buckets: IntArray, scale: FloatArray,
                 weight: FloatArray, bias: float, metadata: dict[str, Any] | None = None
                 ) -> None:
        self.config = config
        self.bias = float(bias)
        self.metadata: dict[str, Any] = dict(metadata or {})
        size = 1 << config.bucket_bits
        self._buckets = np.asarray(buckets, dtype=np.int64)
        self._scale = np.zeros(size, dtype=np.float64)
        self._weight = np.zeros(size, dtype=np.float64)
        # values are kept at float32 precision, as stored, so a saved model scores the same
        self._scale[self._buckets] = np.asarray(scale, dtype=np.float32)
        self._weight[self._buckets] = np.asarray(weight, dtype=np.float32)

    @property
    def active_buckets(self) -> int:
        """How many buckets carry a weight."""
        return int(self._buckets.size)

    def decision(self, texts: Sequence[str]) -> FloatArray:
        """The logit of P(positive) for each text (texts are normalised here)."""
        checked = _check_texts(texts)
        result = np.empty(len(checked), dtype=np.float64)
        for start in range(0, len(checked), _BATCH):
            chunk = [normalise(text) for text in checked[start:start + _BATCH]]
            result[start:start + len(chunk)] = self._decision_normalised(chunk)
        return result

    def _decision_normalised(self, texts: Sequence[str]) -> FloatArray:
        rows, buckets, counts = hashed_counts(texts, self.config)
        values = _term_weights(counts, self.config) * self._scale[buckets]
        squares = np.bincount(rows, weights=values * values, minlength=len(texts))
        dots = np.bincount(rows, weights=values * self._weight[buckets], minlength=len(texts))
        norms = np.sqrt(squares)
        return np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), 0.0) + self.bias

    def predict_proba(self, texts: Sequence[str]) -> FloatArray:
        """P(positive) for each text, in order."""
        decision = self.decision(texts)
        return 1.0 / (1.0 + np.exp(-decision))

    def save(self, path: Path) -> Path:
        """Write ``path`` (``.npz``: buckets, scale, weight, bias) and ``path`` with a
        ``.json`` suffix (configuration and metadata); returns the ``.npz`` path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, buckets=self._buckets.astype(np.int32),
                            scale=self._scale[self._buckets].astype(np.float32),
                            weight=self._weight[self._buckets].astype(np.float32),
                            bias=np.array([self.bias], dtype=np.float64))
        sidecar = {"format_version": FORMAT_VERSION, "config": asdict(self.config),
                   **self.metadata}
        path.with_suffix(".json").write_text(
            json.dumps(sidecar, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: Path) -> SentimentModel:
        """Read a model written by :meth:`save` (no pickle is ever loaded)."""
        path = Path(path)
        sidecar_path = path.with_suffix(".json")
        if not path.is_file() or not sidecar_path.is_file():
            raise ValidationFailed("model_missing",
                                   f"needs {path.name} and {sidecar_path.name}", str(path))
        sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
        if sidecar.get("format_version") != FORMAT_VERSION:
            raise ValidationFailed("model_format",
                                   f"format {sidecar.get('format_version')!r} is not "
                                   f"{FORMAT_VERSION}", str(path))
        config = FeatureConfig.from_dict(sidecar["config"])
        with np.load(path, allow_pickle=False) as arrays:
            buckets = arrays["buckets"].astype(np.int64)
            scale = arrays["scale"].astype(np.float64)
            weight = arrays["weight"].astype(np.float64)
            bias = float(arrays["bias"][0])
        metadata = {k: v for k, v in sidecar.items() if k not in ("format_version", "config")}
        return cls(config, buckets, scale, weight, bias, metadata)


def labels_of(labels: Sequence[object]) -> npt.NDArray[np.int64]:
    """1 (positive) / 0 (negative) from 1/0, True/False or "pos"/"neg"."""
    result = np.empty(len(labels), dtype=np.int64)
    for index, label in enumerate(labels):
        if label in (1, True, "pos"):
            result[index] = 1
        elif label in (0, False, "neg"):
            result[index] = 0
        else:
            raise ValidationFailed("invalid_label", f"must be 1/0 or 'pos'/'neg', not {label!r}",
                                   f"labels[{index}]")
    return result


def held_out_split(labels: npt.NDArray[np.int64], held_out: float, seed: int
                   ) -> tuple[IntArray, IntArray]:
    """Indices of the training part and of the held-out part (stratified by label,
    ``held_out`` of each class, reproducible with ``seed``)."""
    if not 0.0 <= held_out < 1.0:
        raise ValidationFailed("invalid_held_out", "must be at least 0 and below 1",
                               "held_out")
    generator = np.random.default_rng(seed)
    train_parts: list[IntArray] = []
    test_parts: list[IntArray] = []
    for value in (0, 1):
        members = np.flatnonzero(labels == value)
        generator.shuffle(members)
        cut = round(len(members) * held_out)
        test_parts.append(members[:cut])
        train_parts.append(members[cut:])
    return np.sort(np.concatenate(train_parts)), np.sort(np.concatenate(test_parts))


def accuracy_and_macro_f1(truth: npt.NDArray[np.int64], predicted: npt.NDArray[np.int64]
                          ) -> tuple[float, float]:
    """Accuracy and the mean of the F1 of both classes."""
    if truth.size == 0:
        raise ValidationFailed("no_rows", "nothing to evaluate", "texts")
    accuracy = float(np.mean(truth == predicted))
    scores = []
    for value in (0, 1):
        true_positive = float(np.sum((predicted == value) & (truth == value)))
        predicted_count = float(np.sum(predicted == value))
        actual_count = float(np.sum(truth == value))
        denominator = predicted_count + actual_count
        scores.append(2 * true_positive / denominator if denominator else 0.0)
    return accuracy, float(np.mean(scores))


def unique_labelled(texts: Sequence[str], labels: npt.NDArray[np.int64]
                    ) -> tuple[list[str], npt.NDArray[np.int64]]:
    """Normalised texts, each once (its first label), empty ones left out."""
    seen: dict[str, int] = {}
    for text, value in zip(texts, labels.tolist(), strict=True):
        key = normalise(text)
        if key and key not in seen:
            seen[key] = value
    return list(seen), np.fromiter(seen.values(), dtype=np.int64, count=len(seen))


def fit(normalised: Sequence[str], labels: npt.NDArray[np.int64], config: FeatureConfig
        ) -> SentimentModel:
    """A model fitted on already normalised texts (no held-out part).

    With ``config.clause_augment`` every clause of a text with several clauses is added as
    one more example with the text's label, so short texts are seen in training too.
    """
    from sklearn.linear_model import LogisticRegression

    if config.clause_augment:
        extra_texts: list[str] = []
        extra_labels: list[int] = []
        for text, label in zip(normalised, labels.tolist(), strict=True):
            pieces = clauses_of(text)
            if len(pieces) > 1:
                extra_texts.extend(pieces)
                extra_labels.extend([label] * len(pieces))
        normalised = [*normalised, *extra_texts]
        labels = np.concatenate([labels, np.array(extra_labels, dtype=np.int64)])

    counts = feature_matrix(normalised, config)
    document_frequency = np.bincount(counts.indices, minlength=counts.shape[1])
    active = np.flatnonzero(document_frequency >= config.min_df)
    rows = len(normalised)
    idf = np.log((1.0 + rows) / (1.0 + document_frequency[active])) + 1.0
    compact = counts[:, active].tocsr()
    compact = sparse.csr_matrix(compact.multiply(idf[np.newaxis, :]))
    norms = np.sqrt(np.asarray(compact.multiply(compact).sum(axis=1)).ravel())
    compact = sparse.csr_matrix(sparse.diags(1.0 / np.where(norms > 0, norms, 1.0)) @ compact)
    classifier = LogisticRegression(C=config.c, solver="liblinear", max_iter=2000,
                                    random_state=0)
    classifier.fit(compact, labels)
    weight = classifier.coef_.ravel()
    keep = weight != 0
    return SentimentModel(config, active[keep].astype(np.int64), idf[keep], weight[keep],
                          float(classifier.intercept_[0]))


def train(texts: Sequence[str], labels: Sequence[object], *, held_out: float = 0.2,
          seed: int = 0, config: FeatureConfig | None = None, refit: bool = False
          ) -> tuple[SentimentModel, TrainingReport]:
    """Fit a model on ``1 - held_out`` of the rows (stratified), measure it on the rest.

    With ``refit`` the returned model is fitted again on every row after measuring.
    Duplicate texts (after normalisation) keep their first label (:func:`unique_labelled`),
    and the held-out part is :func:`held_out_split` of those, so callers can rebuild it.
    """
    checked = _check_texts(texts)
    values = labels_of(labels)
    if len(values) != len(checked):
        raise ValidationFailed("length_mismatch",
                               f"{len(values)} labels for {len(checked)} texts", "labels")
    config = config or FeatureConfig()
    normalised, targets = unique_labelled(checked, values)
    for value, name in ((1, "pos"), (0, "neg")):
        if int(np.sum(targets == value)) < 2:
            raise ValidationFailed("too_few_rows",
                                   f"needs at least 2 distinct non-empty '{name}' texts",
                                   "labels")
    train_index, test_index = held_out_split(targets, held_out, seed)
    model = fit([normalised[i] for i in train_index], targets[train_index], config)
    accuracy: float | None = None
    macro_f1: float | None = None
    if test_index.size:
        predicted = (model._decision_normalised([normalised[i] for i in test_index]) > 0)
        accuracy, macro_f1 = accuracy_and_macro_f1(targets[test_index],
                                                   predicted.astype(np.int64))
    if refit and test_index.size:
        model = fit(normalised, targets, config)
    report = TrainingReport(positives=int(np.sum(targets == 1)),
                            negatives=int(np.sum(targets == 0)),
                            train_rows=int(train_index.size), held_out_rows=int(test_index.size),
                            held_out_accuracy=accuracy, held_out_macro_f1=macro_f1,
                            config=asdict(config))
    model.metadata.update({"trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
                           "training_report": report.as_dict()})
    return model, report


class LazyModel:
    """A shipped model file, loaded once on first use (thread-safe); scoring only reads it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._model: SentimentModel | None = None

    def get(self) -> SentimentModel:
        model = self._model
        if model is None:
            with self._lock:
                if self._model is None:
                    self._model = SentimentModel.load(self.path)
                model = self._model
        return model


_DEFAULT = LazyModel(DEFAULT_MODEL_PATH)


def default_model() -> SentimentModel:
    """The model shipped with the package (trained by ``scripts/train_sentiment.py``)."""
    return _DEFAULT.get()


def score(texts: Sequence[str]) -> list[float]:
    """P(positive) of each text, in order, from the shipped model."""
    return [float(value) for value in default_model().predict_proba(texts)]
