"""Needs insight (SPEC M1.2): what customers talk about in reviews and posts, how they feel
about it, what is rising, and the share of ingredient-minded authors (成分党).

One use case, :func:`needs_report`, reads the quarter's reviews and published posts (and the
previous quarter's, for comparison), finds aspect mentions (:mod:`shequ.text.aspects`),
scores every clause holding a mention in one sentiment call, and aggregates. A partner sees
only texts about its brands' products. The white paper (``shequ report needs``) and
``GET /api/v1/content/needs`` both render this report.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shequ.core.errors import NotFound, ValidationFailed
from shequ.core.permissions import Principal
from shequ.domains.catalog import service as catalog
from shequ.domains.content import references as refs
from shequ.domains.content.models import NeedsReportRow, Post, Review
from shequ.domains.content.needs_schemas import (
    AspectNeed,
    CategorySentiment,
    IngredientMinded,
    NeedsCounts,
    NeedsReport,
    Quote,
    RisingTopicOut,
    RisingWindow,
    SentimentCell,
    TopicSeries,
    WeeklyShares,
)
from shequ.text import sentiment
from shequ.text.aspects import (
    ASPECTS,
    AspectMention,
    ScoredMention,
    aspect_mentions,
    score_mentions,
)
from shequ.text.keywords import KeywordExtractor
from shequ.text.topics import (
    Period,
    count_topics,
    period_start,
    rising_topics,
    topic_shares,
    two_proportion_z,
)

__all__ = ["Quarter", "default_quarter", "needs_report", "parse_quarter"]

SHANGHAI = ZoneInfo("Asia/Shanghai")
INGREDIENTS = "ingredients"
RECENT_WEEKS = 4
MIN_COUNT = 5
MIN_SHARE = 0.005
MAX_Q = 0.05
QUOTE_ASPECTS = 6
KEYWORDS_PER_TEXT = 3
QUOTE_MIN, QUOTE_MAX = 4, 48
UNCATEGORISED = "未分类"
_QUARTER = re.compile(r"^\s*(\d{4})\s*-?\s*[Qq]([1-4])\s*$")

METHOD = [
    "文本：本季度创建的商品评价与已发布帖子（标题 + 正文）；品牌合作方只看到自己品牌的内容。",
    "方面：按词表匹配（shequ.text.aspects），先归一化（繁转简、全角转半角），每处取最长词。",
    "情感：把文本按标点和转折词（但是、不过、可是…）切成分句，方面情感 = 所在分句的"
    "情感分 P(正面)，一条文本对同一方面取均值；分数 < 0.5 记为负面。",
    "份额：提及某方面的文本数 ÷ 文本总数；与上季度的变化以百分点计，z 为双比例检验。",
    f"关键词：每条文本 TF-IDF 最高的 {KEYWORDS_PER_TEXT} 个词（shequ.text.keywords，"
    "idf 取自本季度与上季度的全部文本），"
    "与方面一起作为话题。",
    f"上升话题：最近 {RECENT_WEEKS} 周的份额对比此前（本季度更早的周与上季度）的份额，"
    f"单侧双比例 z 检验，按 Benjamini–Hochberg 对所有被检验话题校正后 q ≤ {MAX_Q}，"
    f"且最近至少 {MIN_COUNT} 条、占近期文本至少 {MIN_SHARE:.1%}，按提升倍数排序。",
    "成分党：本季度至少一条文本提到成分的作者 ÷ 本季度写过文本的作者。",
    f"用户原声：每个主要方面取情感最高与最低的 {QUOTE_MIN}–{QUOTE_MAX} 字分句，要求整条文本的"
    "情感与星级（好评 ≥ 4 星、差评 ≤ 2 星）方向一致；分数相近时取重复最多的分句。",
]


@dataclass(frozen=True)
class Quarter:
    """A calendar quarter such as 2026Q3."""

    year: int
    number: int

    @property
    def label(self) -> str:
        return f"{self.year}Q{self.number}"

    @property
    def first_day(self) -> date:
        return date(self.year, 3 * self.number - 2, 1)

    @property
    def last_day(self) -> date:
        return self.next().first_day - timedelta(days=1)

    def next(self) -> Quarter:
        """The quarter after this one."""
        return Quarter(self.year + 1, 1) if self.number == 4 else Quarter(self.year,
                                                                          self.number + 1)

    def previous(self) -> Quarter:
        """The quarter before this one."""
        return Quarter(self.year - 1, 4) if self.number == 1 else Quarter(self.year,
                                                                          self.number - 1)

    def bounds(self, zone: ZoneInfo) -> tuple[datetime, datetime]:
        """``[start, end)`` in UTC of the quarter's local days in ``zone``."""
        start = datetime.combine(self.first_day, datetime.min.time(), zone)
        end = datetime.combine(self.next().first_day, datetime.min.time(), zone)
        return start.astimezone(UTC), end.astimezone(UTC)

    @classmethod
    def of(cls, day: date) -> Quarter:
        """The quarter holding ``day``."""
        return cls(day.year, (day.month - 1) // 3 + 1)


def parse_quarter(value: str) -> Quarter:
    """``2026Q3`` (also ``2026q3``, ``2026-Q3``) → :class:`Quarter`; anything else is a
    ``ValidationFailed`` naming ``quarter``."""
    found = _QUARTER.match(value or "")
    if found is None:
        raise ValidationFailed("bad_quarter", f"quarter {value!r} is not like 2026Q3 "
                               "(a year, Q and 1-4)", "quarter")
    year = int(found.group(1))
    if not 2000 <= year <= 2999:
        raise ValidationFailed("bad_quarter", f"quarter year {year} is outside 2000-2999",
                               "quarter")
    return Quarter(year, int(found.group(2)))


@dataclass(frozen=True)
class _Doc:
    source: Literal["review", "post"]
    customer_id: int
    text: str
    day: date
    sku: str | None
    brand_id: int | None
    rating: int | None
    current: bool


def _scoped(query: Any, column: Any, principal: Principal) -> Any:
    return query if principal.brand_ids is None else query.where(
        column.in_(principal.brand_ids))


def _local_day(at: datetime, zone: ZoneInfo) -> date:
    return at.astimezone(zone).date()


def _read_docs(session: Session, principal: Principal, quarter: Quarter,
               zone: ZoneInfo) -> list[_Doc]:
    """Reviews and published posts of ``quarter`` and the quarter before, oldest first."""
    since, _ = quarter.previous().bounds(zone)
    current_from, until = quarter.bounds(zone)
    product = refs.PRODUCTS.c
    reviews = _scoped(
        select(Review.customer_id, Review.text, Review.created_at, product.sku,
               Review.brand_id, Review.rating)
        .join(refs.PRODUCTS, product.id == Review.product_id)
        .where(Review.created_at >= since, Review.created_at < until)
        .order_by(Review.created_at, Review.id), Review.brand_id, principal)
    posts = _scoped(
        select(Post.customer_id, Post.title, Post.body, Post.created_at, product.sku,
               Post.brand_id)
        .outerjoin(refs.PRODUCTS, product.id == Post.product_id)
        .where(Post.status == "published", Post.created_at >= since, Post.created_at < until)
        .order_by(Post.created_at, Post.id), Post.brand_id, principal)
    docs = [_Doc("review", customer, text, _local_day(at, zone), sku, brand, rating,
                 at >= current_from)
            for customer, text, at, sku, brand, rating in session.execute(reviews)]
    docs += [_Doc("post", customer, f"{title}。{body}", _local_day(at, zone), sku, brand, None,
                  at >= current_from)
             for customer, title, body, at, sku, brand in session.execute(posts)]
    return docs


def default_quarter(session: Session, principal: Principal | None = None, *,
                    zone: ZoneInfo = SHANGHAI) -> str:
    """The last quarter holding a review or a published post (the caller's, for a
    partner); ``NotFound`` when there is none."""
    latest: list[datetime] = []
    for model in (Review, Post):
        query = select(func.max(model.created_at))
        if model is Post:
            query = query.where(Post.status == "published")
        if principal is not None:
            query = _scoped(query, model.brand_id, principal)
        found = session.scalar(query)
        if found is not None:
            latest.append(found if found.tzinfo else found.replace(tzinfo=UTC))
    if not latest:
        raise NotFound("no_content", "no reviews or posts yet, so no quarter to report",
                       "quarter")
    return Quarter.of(_local_day(max(latest), zone)).label


# --- per-text aspect sentiment ----------------------------------------------------------


def _scored(texts: Sequence[str]) -> tuple[list[list[ScoredMention]], list[float]]:
    """Aspect mentions with their clause sentiment, and each whole text's sentiment, from
    one call of the sentiment model over every distinct clause and text."""
    mentions = aspect_mentions(texts)
    wanted = list(dict.fromkeys([*(m.clause for per in mentions for m in per), *texts]))
    found = dict(zip(wanted, sentiment.score(wanted), strict=True)) if wanted else {}
    scored = score_mentions(mentions, lambda clauses: [found[c] for c in clauses])
    return scored, [float(found[t]) for t in texts]


def _per_text(scored: Sequence[ScoredMention]) -> dict[str, float]:
    """Aspect → mean clause score within one text."""
    sums: dict[str, list[float]] = defaultdict(list)
    for item in scored:
        sums[item.mention.aspect].append(item.score)
    return {key: sum(v) / len(v) for key, v in sums.items()}


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _top_needs(docs: Sequence[_Doc], feelings: Sequence[dict[str, float]]) -> list[AspectNeed]:
    now = [f for d, f in zip(docs, feelings, strict=True) if d.current]
    before = [f for d, f in zip(docs, feelings, strict=True) if not d.current]
    needs: list[AspectNeed] = []
    for key, aspect in ASPECTS.items():
        scores = [f[key] for f in now if key in f]
        old = [f[key] for f in before if key in f]
        share = len(scores) / len(now) if now else 0.0
        old_share = len(old) / len(before) if before else None
        changed = old_share is not None and bool(now)
        needs.append(AspectNeed(
            aspect=key, name=aspect.name, texts=len(scores), share=share,
            sentiment=_mean(scores),
            negative_share=(sum(s < 0.5 for s in scores) / len(scores)) if scores else None,
            previous_texts=len(old), previous_share=old_share,
            change_pp=100.0 * (share - old_share) if changed and old_share is not None else None,
            change_z=two_proportion_z(len(scores), len(now), len(old), len(before))
            if changed else None,
            previous_sentiment=_mean(old)))
    needs.sort(key=lambda n: (-n.texts, n.aspect))
    return needs


def _ingredient_minded(docs: Sequence[_Doc],
                       feelings: Sequence[dict[str, float]]) -> IngredientMinded:
    def count(current: bool) -> tuple[int, int]:
        authors = {d.customer_id for d in docs if d.current is current}
        minded = {d.customer_id for d, f in zip(docs, feelings, strict=True)
                  if d.current is current and INGREDIENTS in f}
        return len(authors), len(minded)

    authors, minded = count(True)
    old_authors, old_minded = count(False)
    return IngredientMinded(
        authors=authors, ingredient_authors=minded,
        share=minded / authors if authors else None, previous_authors=old_authors,
        previous_ingredient_authors=old_minded,
        previous_share=old_minded / old_authors if old_authors else None)


# --- topics over time -------------------------------------------------------------------


def _topic_name(topic: str) -> tuple[str, Literal["aspect", "keyword"]]:
    if topic in ASPECTS:
        return ASPECTS[topic].name, "aspect"
    return topic.removeprefix("kw:"), "keyword"


def _keyword_topics(texts: Sequence[str]) -> list[set[str]]:
    """The ``KEYWORDS_PER_TEXT`` top TF-IDF words of each text as ``kw:<word>`` topics, the
    idf fitted on all the texts; each distinct text is tokenised once."""
    if not texts:
        return []
    extractor = KeywordExtractor()
    words = {text: extractor.candidates(text) for text in dict.fromkeys(texts)}
    extractor.fit_candidates(words[text] for text in texts)
    found = {text: {f"kw:{word}" for word, _ in extractor.extract_from(split, KEYWORDS_PER_TEXT)}
             for text, split in words.items()}
    return [found[text] for text in texts]


def _weekly(docs: Sequence[_Doc], topics: Sequence[set[str]], quarter: Quarter) -> WeeklyShares:
    now = [(d.day, t) for d, t in zip(docs, topics, strict=True) if d.current]
    shares = topic_shares([d for d, _ in now], [t for _, t in now], Period.WEEK,
                          first=quarter.first_day, last=quarter.last_day, only=ASPECTS)
    series = []
    for key in ASPECTS:
        name, kind = _topic_name(key)
        series.append(TopicSeries(topic=key, name=name, kind=kind, counts=shares.counts[key],
                                  shares=shares.shares[key]))
    return WeeklyShares(weeks=shares.periods, totals=shares.totals, series=series)


def _rising(docs: Sequence[_Doc], topics: Sequence[set[str]], quarter: Quarter
            ) -> tuple[list[RisingTopicOut], RisingWindow | None]:
    """The last ``RECENT_WEEKS`` weeks with data in the quarter against all earlier texts."""
    days = [d.day for d in docs if d.current]
    if not days:
        return [], None
    last = max(days)
    recent_from = max(period_start(last, Period.WEEK) - timedelta(weeks=RECENT_WEEKS - 1),
                      quarter.first_day)
    recent_count, recent_total = count_topics(
        t for d, t in zip(docs, topics, strict=True) if d.day >= recent_from)
    base_count, base_total = count_topics(
        t for d, t in zip(docs, topics, strict=True) if d.day < recent_from)
    window = RisingWindow(recent_from=recent_from, recent_to=last, recent_texts=recent_total,
                          baseline_from=quarter.previous().first_day, baseline_texts=base_total,
                          min_count=MIN_COUNT, min_share=MIN_SHARE, max_q=MAX_Q)
    found = rising_topics(recent_count, recent_total, base_count, base_total,
                          min_count=MIN_COUNT, min_share=MIN_SHARE, max_q=MAX_Q,
                          limit=15)
    out = []
    for r in found:
        name, kind = _topic_name(r.topic)
        out.append(RisingTopicOut(topic=r.topic, name=name, kind=kind, count=r.count,
                                  share=r.share, baseline_count=r.baseline_count,
                                  baseline_share=r.baseline_share, lift=r.lift, z=r.z,
                                  p_value=r.p_value, q_value=r.q_value))
    return out, window


# --- categories, brands, products -------------------------------------------------------


def _top_categories(session: Session) -> dict[str, str]:
    """``sku -> top-level category name``."""
    categories = catalog.list_categories(session)
    by_key = {c.external_id: c for c in categories}

    def top(key: str) -> str:
        seen: set[str] = set()
        while (parent := by_key[key].parent_external_id) and parent in by_key \
                and key not in seen:
            seen.add(key)
            key = parent
        return by_key[key].name

    return {sku: top(cat) if cat in by_key else UNCATEGORISED
            for sku, _brand, cat in catalog.product_dimension(session) if cat is not None}


def _category_sentiment(docs: Sequence[_Doc], feelings: Sequence[dict[str, float]],
                        categories: dict[str, str]) -> CategorySentiment:
    cells: dict[tuple[str, str], list[float]] = defaultdict(list)
    texts: Counter[str] = Counter()
    for doc, felt in zip(docs, feelings, strict=True):
        if not doc.current:
            continue
        category = categories.get(doc.sku or "", UNCATEGORISED)
        texts[category] += 1
        for key, score in felt.items():
            cells[(category, key)].append(score)
    order = sorted(texts, key=lambda c: (-texts[c], c))
    aspects = [key for key in ASPECTS if any(k == key for _, k in cells)]
    out = [SentimentCell(category=c, aspect=a, texts=len(cells[(c, a)]),
                         sentiment=sum(cells[(c, a)]) / len(cells[(c, a)]),
                         negative_share=sum(s < 0.5 for s in cells[(c, a)]) / len(cells[(c, a)]))
           for c in order for a in aspects if cells.get((c, a))]
    return CategorySentiment(categories=order, aspects=aspects, cells=out)


Polarity = Literal["positive", "negative"]


def _agrees(polarity: Polarity, clause: float, text: float, rating: int | None) -> bool:
    """A quote's clause, its whole text and its star rating (if any) point the same way."""
    if polarity == "positive":
        return clause >= 0.5 and text >= 0.5 and (rating is None or rating >= 4)
    return clause < 0.5 and text < 0.5 and (rating is None or rating <= 2)


def _quotes(session: Session, principal: Principal, docs: Sequence[_Doc],
            scored: Sequence[Sequence[ScoredMention]], text_scores: Sequence[float],
            aspects: Sequence[str]) -> list[Quote]:
    """Per aspect the most positive and the most negative short clause of the quarter
    whose text and rating agree with it (near ties: the most repeated clause)."""
    brands = {b.id: b.name for b in catalog.list_brands(session, principal)}
    names: dict[str, str | None] = {}

    def product_name(sku: str | None) -> str | None:
        if sku is None:
            return None
        if sku not in names:
            try:
                names[sku] = catalog.get_product(session, principal, sku).name
            except NotFound:
                names[sku] = None
        return names[sku]

    quotes: list[Quote] = []
    for key in aspects:
        polarities: tuple[Polarity, ...] = ("positive", "negative")
        for polarity in polarities:
            pool: list[tuple[float, int, AspectMention]] = []
            for i, (doc, items) in enumerate(zip(docs, scored, strict=True)):
                if not doc.current:
                    continue
                for item in items:
                    clause = item.mention.clause
                    if (item.mention.aspect == key and QUOTE_MIN <= len(clause) <= QUOTE_MAX
                            and _agrees(polarity, item.score, text_scores[i], doc.rating)):
                        pool.append((item.score, i, item.mention))
            if not pool:
                continue
            repeats = Counter(m.clause for _, _, m in pool)
            sign = 1.0 if polarity == "positive" else -1.0
            score, i, mention = max(pool, key=lambda p: (round(sign * p[0], 2),
                                                         repeats[p[2].clause], -p[1]))
            doc = docs[i]
            quotes.append(Quote(aspect=key, polarity=polarity, text=mention.clause,
                                score=score, source=doc.source, rating=doc.rating,
                                sku=doc.sku, product=product_name(doc.sku),
                                brand=brands.get(doc.brand_id) if doc.brand_id else None,
                                day=doc.day))
    return quotes


# --- the report -------------------------------------------------------------------------


def _counts(docs: Sequence[_Doc], feelings: Sequence[dict[str, float]],
            scored: Sequence[Sequence[ScoredMention]]) -> NeedsCounts:
    now = [i for i, d in enumerate(docs) if d.current]
    ratings = [docs[i].rating for i in now if docs[i].rating is not None]
    return NeedsCounts(
        reviews=sum(docs[i].source == "review" for i in now),
        posts=sum(docs[i].source == "post" for i in now), texts=len(now),
        authors=len({docs[i].customer_id for i in now}),
        texts_with_aspect=sum(bool(feelings[i]) for i in now),
        mentions=sum(len(scored[i]) for i in now),
        mean_rating=sum(r for r in ratings if r is not None) / len(ratings) if ratings else None,
        previous_reviews=sum(d.source == "review" and not d.current for d in docs),
        previous_posts=sum(d.source == "post" and not d.current for d in docs))


METHOD_VERSION = "1"  # bump when the computation changes: stored reports are recomputed


def _fingerprint(docs: Sequence[_Doc], zone: ZoneInfo) -> str:
    """A digest of everything the report is computed from: the texts with their dates,
    products, brands and ratings, the time zone, the method and the sentiment model."""
    digest = hashlib.sha256()
    model = sentiment.default_model().metadata.get("trained_at", "")
    digest.update(f"{METHOD_VERSION}|{zone.key}|{model}".encode())
    for d in docs:
        digest.update(f"\x1e{d.source}|{d.customer_id}|{d.day}|{d.sku}|{d.brand_id}|"
                      f"{d.rating}|{d.current}|{d.text}".encode())
    return digest.hexdigest()


def _scope(principal: Principal) -> str:
    if principal.brand_ids is None:
        return "all"
    return "brands:" + ",".join(str(b) for b in sorted(principal.brand_ids))


def needs_report(session: Session, principal: Principal, quarter: str, *,
                 zone: ZoneInfo = SHANGHAI, now: datetime | None = None) -> NeedsReport:
    """The needs insight of ``quarter`` (e.g. ``2026Q3``, local days in ``zone``).

    A computed report is stored per quarter and scope and reused while the quarter's texts
    (and the method) are unchanged, so the console and the API answer at once after the
    first request; any new, edited or removed text recomputes it."""
    which = parse_quarter(quarter)
    docs = _read_docs(session, principal, which, zone)
    fingerprint = _fingerprint(docs, zone)
    scope = _scope(principal)[:200]
    stored = session.execute(select(NeedsReportRow.fingerprint, NeedsReportRow.report)
                             .where(NeedsReportRow.quarter == which.label,
                                    NeedsReportRow.scope == scope)).first()
    if stored is not None and stored.fingerprint == fingerprint:
        return NeedsReport.model_validate(stored.report)
    report = _compute(session, principal, which, docs, zone)
    values = {"fingerprint": fingerprint, "report": report.model_dump(mode="json"),
              "computed_at": now or datetime.now(UTC)}
    # Core statements, not the ORM: a stored report is a cache, not an audited change.
    key = (NeedsReportRow.quarter == which.label) & (NeedsReportRow.scope == scope)
    # A concurrent request that stored the same quarter first wins; this one still answers.
    with suppress(IntegrityError), session.begin_nested():
        session.execute(delete(NeedsReportRow).where(key))
        session.execute(insert(NeedsReportRow).values(quarter=which.label, scope=scope,
                                                      **values))
    return report


def _compute(session: Session, principal: Principal, which: Quarter, docs: list[_Doc],
             zone: ZoneInfo) -> NeedsReport:
    scored, text_scores = _scored([d.text for d in docs])
    feelings = [_per_text(items) for items in scored]
    topics = [set(f) for f in feelings]
    keywords = _keyword_topics([d.text for d in docs])
    top = _top_needs(docs, feelings)
    rising, window = _rising(docs, [a | k for a, k in zip(topics, keywords, strict=True)],
                             which)
    quoted = [n.aspect for n in top if n.texts > 0][:QUOTE_ASPECTS]
    brands = None
    if principal.brand_ids is not None:
        brands = sorted(b.name for b in catalog.list_brands(session, principal))
    return NeedsReport(
        quarter=which.label, previous_quarter=which.previous().label, start=which.first_day,
        end=which.last_day, timezone=zone.key, brands=brands,
        counts=_counts(docs, feelings, scored), top_needs=top,
        ingredient_minded=_ingredient_minded(docs, feelings),
        weekly=_weekly(docs, topics, which), rising=rising, rising_window=window,
        category_sentiment=_category_sentiment(docs, feelings, _top_categories(session)),
        quotes=_quotes(session, principal, docs, scored, text_scores, quoted), method=list(METHOD))
