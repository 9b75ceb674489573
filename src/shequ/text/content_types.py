"""Content type of a community post: knowledge, scenario, review or story (docs/content-types.md).

``classify`` and ``classify_proba`` take ``(title, body)`` pairs and use the model shipped in
``shequ/text/models/content_types.{npz,json}``: a linear (multinomial logistic) model over
TF-IDF features of the normalised text plus a few cue features. The model is loaded once,
lazily, and holds no pickle: the ``.npz`` file has only numeric and string arrays (vocabulary,
IDF weights, coefficients), the ``.json`` file the labels, the feature settings and the
evaluation figures the training script measured (scripts/train_content_types.py).

Features of one post (all on ``normalise`` output):

* character 1-3-grams and jieba words of the title repeated ``title_weight`` times plus the
  body (so the title counts more), sublinear TF x IDF, L2-normalised;
* title-only character 2-grams and words in their own namespace, TF x IDF, L2-normalised;
* cue counts (question marks, numbered or bulleted lines, first-person pronouns, scores such
  as ``8/10`` or ``4星``, time expressions such as ``三个月`` or ``那年``, second person,
  hashtags, comparison words, length), squashed to ``[0, 1)`` by ``x / (1 + x)``.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import sparse

from shequ.core.errors import ValidationFailed
from shequ.text.normalise import normalise
from shequ.text.tokenise import Tokeniser

__all__ = [
    "CUE_NAMES",
    "LABELS",
    "MODEL_DIR",
    "ContentTypeModel",
    "FeatureConfig",
    "Vectoriser",
    "check_posts",
    "classify",
    "classify_proba",
    "cue_values",
    "default_model",
    "prepare",
]

LABELS: tuple[str, ...] = ("knowledge", "scenario", "review", "story")
MODEL_DIR = Path(__file__).resolve().parent / "models"
MODEL_NAME = "content_types"
FORMAT_VERSION = 1

Post = tuple[str, str]
FloatArray = npt.NDArray[np.float64]

_CHINESE_NUMBER = "一二两三四五六七八九十百半几"
_CUES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("question", re.compile(r"[?？]|吗[。!！,，\s]|^问[:：]|^q[:：]", re.MULTILINE)),
    ("numbered_line", re.compile(r"^\s*(?:\d{1,2}|[一二三四五六七八九十])[.、)）]", re.MULTILINE)),
    ("bullet_line", re.compile(r"^\s*[-·•*]|^\s*[^\w\s]{1,2}\s*\S", re.MULTILINE)),
    ("first_person", re.compile(r"我")),
    ("first_person_plural", re.compile(r"我们|咱")),
    ("second_person", re.compile(r"你|姐妹|大家|宝子")),
    ("score", re.compile(r"\d+(?:\.\d+)?\s*/\s*(?:10|5|100)\b|\d(?:\.\d)?\s*(?:分|星)|评分|打分"
                         r"|[一二三四五]星")),
    ("time_span", re.compile(rf"[\d{_CHINESE_NUMBER}]+\s*(?:个)?(?:年|个月|月|周|天|星期)"
                             rf"(?:前|后|里|来)?")),
    ("past_marker", re.compile(r"那年|那天|那时|那段|当年|后来|以前|小时候|直到|从那|第一次"
                               r"|现在回头|如今|那一刻|那晚|那个(?:冬天|夏天|晚上)")),
    ("hashtag", re.compile(r"#\S")),
    ("comparison", re.compile(r"\bvs\b|对比|横评|比较|[a-e]款|[a-e][:：]|第[一二三四五]款|红黑榜"
                              r"|优点|缺点|推荐指数")),
    ("how_why", re.compile(r"怎么|如何|为什么|原理|区别|误区|科普|注意|是什么|建议")),
    ("scene", re.compile(r"必备|清单|通勤|出差|露营|旅行|周末|办公室|宿舍|出门|带娃|场景"
                         r"|的一天|日常|搭配|穿搭")),
)
CUE_NAMES: tuple[str, ...] = (*(name for name, _ in _CUES), "length")


@dataclass(frozen=True)
class FeatureConfig:
    """How posts become features (stored with the model so inference matches training)."""

    title_weight: int = 2
    char_min: int = 1
    char_max: int = 3
    words: bool = True
    title_block: bool = True
    cues: bool = True
    min_df: int = 2
    cue_weight: float = 0.5

    def to_json(self) -> dict[str, Any]:
        """The settings as a JSON object."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FeatureConfig:
        """Settings from :meth:`to_json` output."""
        return cls(**data)


def check_posts(posts: object) -> list[Post]:
    """``posts`` as a list of ``(title, body)`` string pairs, or :class:`ValidationFailed`."""
    if isinstance(posts, (str, bytes)) or not isinstance(posts, Iterable):
        raise ValidationFailed("invalid_posts", "must be a sequence of (title, body) pairs",
                               "posts")
    checked: list[Post] = []
    for index, post in enumerate(posts):
        if not isinstance(post, (tuple, list)) or len(post) != 2:
            raise ValidationFailed("invalid_post", "must be a (title, body) pair",
                                   f"posts[{index}]")
        title, body = post
        for part, value in (("title", title), ("body", body)):
            if not isinstance(value, str):
                raise ValidationFailed(
                    "invalid_post", f"{part} must be a string, not {type(value).__name__}",
                    f"posts[{index}].{part}")
        checked.append((title, body))
    return checked


_TOKENISER_LOCK = threading.Lock()
_TOKENISERS: list[Tokeniser] = []


def _tokeniser() -> Tokeniser:
    """A private jieba tokeniser with only jieba's default dictionary (stable features)."""
    with _TOKENISER_LOCK:
        if not _TOKENISERS:
            _TOKENISERS.append(Tokeniser(stop_words=(), include_default_ingredients=False))
        return _TOKENISERS[0]


def _char_grams(text: str, low: int, high: int, prefix: str) -> list[str]:
    compact = "".join(text.split())
    return [prefix + compact[i:i + n] for n in range(low, high + 1)
            for i in range(len(compact) - n + 1)]


def cue_values(title: str, body: str) -> FloatArray:
    """The cue counts of one normalised post, squashed to ``[0, 1)`` (order: ``CUE_NAMES``)."""
    text = title + "\n" + body
    counts = [float(len(pattern.findall(text))) for _, pattern in _CUES]
    counts.append(len(body) / 100.0)
    values = np.array(counts, dtype=np.float64)
    return values / (1.0 + values)


def _terms(title: str, body: str, config: FeatureConfig) -> tuple[list[str], list[str]]:
    """(main terms, title-only terms) of one normalised post."""
    tokeniser = _tokeniser()
    main = _char_grams(body, config.char_min, config.char_max, "c:")
    title_grams = _char_grams(title, config.char_min, config.char_max, "c:")
    title_words = tokeniser.tokens(title, keep_stop_words=True) if config.words else []
    main += title_grams * config.title_weight
    if config.words:
        main += ["w:" + w for w in tokeniser.tokens(body, keep_stop_words=True)]
        main += ["w:" + w for w in title_words] * config.title_weight
    own: list[str] = []
    if config.title_block:
        own = _char_grams(title, 2, 2, "t:") + ["tw:" + w for w in title_words]
    return main, own


Prepared = tuple[tuple[str, ...], tuple[str, ...], FloatArray]


def prepare(title: str, body: str, config: FeatureConfig) -> Prepared:
    """(main terms, title-only terms, cues) of one raw post, the input of :class:`Vectoriser`.

    Training code that fits many models on the same posts can compute this once per post.
    """
    t, b = normalise(title), normalise(body)
    main, own = _terms(t, b, config)
    cues = cue_values(t, b)
    cues.setflags(write=False)
    return tuple(main), tuple(own), cues


@dataclass
class Vectoriser:
    """Vocabulary and IDF weights of the two text blocks, plus the cue block."""

    config: FeatureConfig
    vocabulary: dict[str, int] = field(default_factory=dict)
    idf: FloatArray = field(default_factory=lambda: np.zeros(0))
    main_size: int = 0

    @property
    def size(self) -> int:
        """Number of features (text terms, then cues when enabled)."""
        return len(self.vocabulary) + (len(CUE_NAMES) if self.config.cues else 0)

    def fit(self, posts: Sequence[Post]) -> Vectoriser:
        """Learn the vocabulary (terms in at least ``min_df`` posts) and IDF from ``posts``."""
        return self.fit_prepared([prepare(t, b, self.config) for t, b in posts])

    def transform(self, posts: Sequence[Post]) -> sparse.csr_matrix:
        """The feature matrix of ``posts`` (one row per post)."""
        return self.transform_prepared([prepare(t, b, self.config) for t, b in posts])

    def fit_prepared(self, prepared: Sequence[Prepared]) -> Vectoriser:
        """:meth:`fit` over :func:`prepare` output (made with this vectoriser's config)."""
        n = len(prepared)
        main_df: Counter[str] = Counter()
        own_df: Counter[str] = Counter()
        for main, own, _ in prepared:
            main_df.update(set(main))
            own_df.update(set(own))
        main_terms = sorted(t for t, c in main_df.items() if c >= self.config.min_df)
        own_terms = sorted(t for t, c in own_df.items() if c >= self.config.min_df)
        self.vocabulary = {t: i for i, t in enumerate(main_terms + own_terms)}
        self.main_size = len(main_terms)
        counts = [main_df[t] for t in main_terms] + [own_df[t] for t in own_terms]
        self.idf = np.log((1.0 + n) / (1.0 + np.array(counts, dtype=np.float64))) + 1.0
        return self

    def transform_prepared(self, prepared: Sequence[Prepared]) -> sparse.csr_matrix:
        """:meth:`transform` over :func:`prepare` output (made with this vectoriser's config)."""
        rows: list[int] = []
        cols: list[int] = []
        vals: list[float] = []
        n_text = len(self.vocabulary)
        for r, (main, own, cues) in enumerate(prepared):
            for terms, sublinear in ((main, True), (own, False)):
                found = Counter(self.vocabulary[t] for t in terms if t in self.vocabulary)
                if not found:
                    continue
                idx = np.fromiter(found.keys(), dtype=np.int64, count=len(found))
                tf = np.fromiter(found.values(), dtype=np.float64, count=len(found))
                w = (1.0 + np.log(tf) if sublinear else tf) * self.idf[idx]
                w /= float(np.linalg.norm(w))
                rows.extend([r] * len(found))
                cols.extend(idx.tolist())
                vals.extend(w.tolist())
            if self.config.cues:
                rows.extend([r] * len(CUE_NAMES))
                cols.extend(range(n_text, n_text + len(CUE_NAMES)))
                vals.extend((cues * self.config.cue_weight).tolist())
        return sparse.csr_matrix((vals, (rows, cols)), shape=(len(prepared), self.size),
                                 dtype=np.float64)


@dataclass
class ContentTypeModel:
    """A fitted linear model: ``softmax(X @ coef.T + intercept)`` over :data:`LABELS`."""

    vectoriser: Vectoriser
    coef: FloatArray
    intercept: FloatArray
    labels: tuple[str, ...] = LABELS
    metadata: dict[str, Any] = field(default_factory=dict)

    def scores(self, posts: Sequence[tuple[str, str]]) -> FloatArray:
        """Class probabilities, one row per post, columns in ``labels`` order."""
        checked = check_posts(posts)
        if not checked:
            return np.zeros((0, len(self.labels)))
        return self.probabilities(self.vectoriser.transform(checked))

    def probabilities(self, features: sparse.csr_matrix) -> FloatArray:
        """Class probabilities of a feature matrix made by this model's vectoriser."""
        logits = np.asarray(features @ self.coef.T) + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        result: FloatArray = exp / exp.sum(axis=1, keepdims=True)
        return result

    def classify(self, posts: Sequence[tuple[str, str]]) -> list[str]:
        """The most probable label of every post, in input order."""
        return [self.labels[i] for i in self.scores(posts).argmax(axis=1).tolist()]

    def classify_proba(self, posts: Sequence[tuple[str, str]]) -> list[dict[str, float]]:
        """``{label: probability}`` of every post, in input order."""
        return [dict(zip(self.labels, (float(p) for p in row), strict=True))
                for row in self.scores(posts)]

    def save(self, directory: Path, name: str = MODEL_NAME) -> tuple[Path, Path]:
        """Write ``<name>.npz`` (arrays) and ``<name>.json`` (labels, settings, metadata)."""
        directory.mkdir(parents=True, exist_ok=True)
        terms = sorted(self.vectoriser.vocabulary, key=self.vectoriser.vocabulary.__getitem__)
        npz = directory / f"{name}.npz"
        with npz.open("wb") as handle:
            np.savez_compressed(handle, vocabulary=np.array(terms, dtype=np.str_),
                                idf=self.vectoriser.idf, coef=self.coef,
                                intercept=self.intercept)
        meta = directory / f"{name}.json"
        meta.write_text(json.dumps({
            "format_version": FORMAT_VERSION, "labels": list(self.labels),
            "features": self.vectoriser.config.to_json(),
            "main_size": self.vectoriser.main_size, "cue_names": list(CUE_NAMES),
            **self.metadata}, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        return npz, meta

    @classmethod
    def load(cls, directory: Path = MODEL_DIR, name: str = MODEL_NAME) -> ContentTypeModel:
        """Read a model written by :meth:`save` (no pickle: ``allow_pickle=False``)."""
        meta = json.loads((directory / f"{name}.json").read_text(encoding="utf-8"))
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"unsupported content type model format {meta.get('format_version')}")
        if tuple(meta.get("cue_names", ())) != CUE_NAMES:
            raise ValueError("the content type model was trained with other cue features")
        with np.load(directory / f"{name}.npz", allow_pickle=False) as arrays:
            terms = [str(t) for t in arrays["vocabulary"].tolist()]
            idf = np.asarray(arrays["idf"], dtype=np.float64)
            coef = np.asarray(arrays["coef"], dtype=np.float64)
            intercept = np.asarray(arrays["intercept"], dtype=np.float64)
        vectoriser = Vectoriser(FeatureConfig.from_json(meta["features"]),
                                {t: i for i, t in enumerate(terms)}, idf, int(meta["main_size"]))
        known = {"format_version", "labels", "features", "main_size", "cue_names"}
        return cls(vectoriser, coef, intercept, tuple(meta["labels"]),
                   {k: v for k, v in meta.items() if k not in known})


_MODEL_LOCK = threading.Lock()
_MODEL: list[ContentTypeModel] = []


def default_model() -> ContentTypeModel:
    """The shipped model, loaded on first use."""
    with _MODEL_LOCK:
        if not _MODEL:
            _MODEL.append(ContentTypeModel.load())
        return _MODEL[0]


def classify(posts: Sequence[tuple[str, str]]) -> list[str]:
    """The content type (one of :data:`LABELS`) of every ``(title, body)`` post, in order."""
    return default_model().classify(posts)


def classify_proba(posts: Sequence[tuple[str, str]]) -> list[dict[str, float]]:
    """``{label: probability}`` of every ``(title, body)`` post, in order."""
    return default_model().classify_proba(posts)

