"""Content use cases: (session, [clock], [principal], ..., schema) -> schema.

Brand partners see only posts and reviews about their brands' products (anything else
looks absent) and never see which customer wrote them: they hold no ``customers:read``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from shequ.core.clock import Clock
from shequ.core.db import transaction
from shequ.core.errors import Conflict, NotFound, ValidationFailed
from shequ.core.permissions import Principal
from shequ.core.web import Services
from shequ.domains.content import moderating, scoring
from shequ.domains.content import references as refs
from shequ.domains.content.bulk import bulk_load
from shequ.domains.content.importers import IMPORTERS
from shequ.domains.content.models import Comment, Creator, Hub, Post, PostScore, Review
from shequ.domains.content.resolving import (
    comment_values,
    creator_values,
    hub_values,
    only_values,
    post_values,
    review_values,
)
from shequ.domains.content.schemas import (
    CommentIn,
    CommentOut,
    CommentRow,
    ContentType,
    CreatorIn,
    CreatorLevel,
    CreatorOut,
    CreatorPage,
    CreatorPostStats,
    CreatorRow,
    DwellByType,
    HubIn,
    HubOut,
    PostDetail,
    PostIn,
    PostOut,
    PostPage,
    PostRow,
    PostScoreOut,
    PostSort,
    PostStatus,
    ReviewIn,
    ReviewOut,
    ReviewPage,
    ReviewRow,
    ScoreComponent,
    ScoreRefreshIn,
    ScoreRefreshReport,
    SentimentBand,
)
from shequ.domains.events.service import event_store

__all__ = [
    "IMPORTERS", "add_comment", "bulk_load", "counts_between", "create_creator",
    "create_hub", "create_post", "create_review", "creator_post_stats", "dwell_by_type",
    "get_post", "get_post_score", "list_creators", "list_hubs", "list_posts", "list_reviews",
    "refresh_scores",
]

CUSTOMER = refs.CUSTOMERS.c
PRODUCT = refs.PRODUCTS.c
BRAND = refs.BRANDS.c
ORDER = refs.ORDERS.c
# Shop apps stamp content with their own clocks, which may run a little ahead of ours.
CLOCK_SKEW = timedelta(minutes=5)


def _stamp(clock: Clock, given: datetime | None, field: str) -> datetime:
    now = clock.now()
    if given is None:
        return now
    if given > now + CLOCK_SKEW:
        raise ValidationFailed("time_in_future", f"{field} lies in the future", field)
    return given


def _customer_key(principal: Principal, key: str) -> str | None:
    # Partners hold no customers:read, so who wrote something stays hidden from them.
    return key if principal.brand_ids is None else None


def _refuse_duplicate(session: Session, model: Any, external_id: str, entity: str) -> None:
    if session.scalar(select(model.id).where(model.external_id == external_id)) is not None:
        raise Conflict(f"{entity}_exists", f"{entity} {external_id!r} exists", "external_id")


def _refuse_unseen_brand(principal: Principal, brand_id: int | None) -> None:
    if principal.brand_ids is not None and not principal.sees_brand(brand_id):
        raise NotFound("product_not_found", "no such product among your brands", "sku")


def _page(session: Session, query: Select[Any], order: Any, limit: int,
          offset: int) -> tuple[int, list[Any]]:
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    return total, list(session.execute(query.order_by(*order).limit(limit).offset(offset)))


# --- hubs -------------------------------------------------------------------------------


def _hub_query() -> Select[Any]:
    return select(Hub, BRAND.external_id).outerjoin(refs.BRANDS, BRAND.id == Hub.brand_id)


def _hub_out(row: Hub, brand_key: str | None) -> HubOut:
    return HubOut(id=row.id, external_id=row.external_id, name=row.name,
                  description=row.description, brand_external_id=brand_key,
                  brand_id=row.brand_id)


def create_hub(session: Session, data: HubIn) -> HubOut:
    """Open a community hub, optionally co-run with a brand."""
    _refuse_duplicate(session, Hub, data.external_id, "hub")
    row = Hub(**only_values(hub_values(session, [data]))[0])
    session.add(row)
    session.flush()
    return _hub_out(row, data.brand_external_id)


def list_hubs(session: Session, principal: Principal) -> list[HubOut]:
    """Hubs the caller may see (a partner: its brands' hubs), by external id."""
    query = _hub_query().order_by(Hub.external_id)
    if principal.brand_ids is not None:
        query = query.where(Hub.brand_id.in_(principal.brand_ids))
    return [_hub_out(*r) for r in session.execute(query)]


# --- creators ---------------------------------------------------------------------------


def _creator_query() -> Select[Any]:
    return (select(Creator, CUSTOMER.external_id, Hub.external_id)
            .join(refs.CUSTOMERS, CUSTOMER.id == Creator.customer_id)
            .outerjoin(Hub, Hub.id == Creator.hub_id))


def _creator_out(principal: Principal, row: Creator, customer_key: str,
                 hub_key: str | None) -> CreatorOut:
    return CreatorOut(id=row.id, external_id=row.external_id,
                      customer_external_id=_customer_key(principal, customer_key),
                      display_name=row.display_name, level=CreatorLevel(row.level),
                      hub_external_id=hub_key, joined_at=row.joined_at)


def create_creator(session: Session, clock: Clock, principal: Principal,
                   data: CreatorIn) -> CreatorOut:
    """Give a customer a creator profile (one per customer), optionally in a hub."""
    _refuse_duplicate(session, Creator, data.external_id, "creator")
    row = CreatorRow.model_validate(
        {**data.model_dump(), "joined_at": _stamp(clock, data.joined_at, "joined_at")})
    session.add(Creator(**only_values(creator_values(session, [row]))[0]))
    session.flush()
    found = session.execute(_creator_query().where(Creator.external_id == data.external_id))
    return _creator_out(principal, *found.one())


def list_creators(session: Session, principal: Principal, *, hub: str | None = None,
                  level: CreatorLevel | None = None, customer: str | None = None,
                  limit: int = 50, offset: int = 0) -> CreatorPage:
    """Creators, by external id; a partner sees those of its brands' hubs."""
    query = _creator_query()
    if principal.brand_ids is not None:
        query = query.where(Hub.brand_id.in_(principal.brand_ids))
    if hub is not None:
        query = query.where(Hub.external_id == hub)
    if level is not None:
        query = query.where(Creator.level == level.value)
    if customer is not None:
        query = query.where(CUSTOMER.external_id == customer)
    total, rows = _page(session, query, [Creator.external_id], limit, offset)
    return CreatorPage(total=total, items=[_creator_out(principal, *r) for r in rows])


# --- posts and comments -----------------------------------------------------------------


def _post_query() -> Select[Any]:
    return (select(Post, CUSTOMER.external_id, Hub.external_id, PRODUCT.sku,
                   PostScore.originality, PostScore.quality)
            .join(refs.CUSTOMERS, CUSTOMER.id == Post.customer_id)
            .outerjoin(Hub, Hub.id == Post.hub_id)
            .outerjoin(refs.PRODUCTS, PRODUCT.id == Post.product_id)
            .outerjoin(PostScore, PostScore.post_id == Post.id))


def _posts_out(session: Session, principal: Principal, rows: list[Any]) -> list[PostOut]:
    ids = [row[0].id for row in rows]
    counts = dict(session.execute(select(Comment.post_id, func.count(Comment.id))
                                  .where(Comment.post_id.in_(ids))
                                  .group_by(Comment.post_id)).tuples().all())
    return [PostOut(id=post.id, external_id=post.external_id,
                    author_customer_external_id=_customer_key(principal, author_key),
                    hub_external_id=hub_key,
                    content_type=ContentType(post.content_type) if post.content_type else None,
                    title=post.title, body=post.body, sku=sku, brand_id=post.brand_id,
                    created_at=post.created_at, status=PostStatus(post.status),
                    comment_count=counts.get(post.id, 0), sentiment=post.sentiment,
                    originality=originality, quality=quality)
            for post, author_key, hub_key, sku, originality, quality in rows]


def _visible_post(session: Session, principal: Principal, external_id: str) -> PostOut:
    found = session.execute(_post_query().where(Post.external_id == external_id)).first()
    if found is None or not principal.sees_brand(found[0].brand_id):
        raise NotFound("post_not_found", f"no post {external_id!r}", "external_id")
    return _posts_out(session, principal, [found])[0]


def create_post(session: Session, clock: Clock, principal: Principal,
                data: PostIn) -> PostOut:
    """Publish a post; a post about a product belongs to that product's brand."""
    _refuse_duplicate(session, Post, data.external_id, "post")
    row = PostRow.model_validate(
        {**data.model_dump(), "created_at": _stamp(clock, data.created_at, "created_at")})
    values = only_values(post_values(session, [row]))[0]
    _refuse_unseen_brand(principal, values["brand_id"])
    scoring.enrich_posts([values])
    post = Post(**values)
    session.add(post)
    session.flush()
    scoring.index_posts(session, [scoring.Arrival(post.id, post.external_id, post.created_at,
                                                  scoring.post_text(post.title, post.body))])
    moderating.moderate_one(session, "post", post.external_id, clock.now())
    session.expire(post)
    return _visible_post(session, principal, data.external_id)


def list_posts(session: Session, principal: Principal, *, hub: str | None = None,
               content_type: ContentType | None = None, product: str | None = None,
               status: PostStatus | None = None, author: str | None = None,
               sentiment: SentimentBand | None = None, min_quality: float | None = None,
               sort: PostSort = PostSort.NEW, limit: int = 50, offset: int = 0) -> PostPage:
    """Posts newest first (or best quality first), filtered by hub, content type, product
    SKU, status, author (customer external id), sentiment band and least quality score."""
    query = _post_query()
    if sentiment is not None:
        low, high = scoring.sentiment_band(sentiment)
        if low is not None:
            query = query.where(Post.sentiment >= low)
        if high is not None:
            query = query.where(Post.sentiment < high)
    if min_quality is not None:
        query = query.where(PostScore.quality >= min_quality)
    if principal.brand_ids is not None:
        query = query.where(Post.brand_id.in_(principal.brand_ids))
    if hub is not None:
        query = query.where(Hub.external_id == hub)
    if content_type is not None:
        query = query.where(Post.content_type == content_type.value)
    if product is not None:
        query = query.where(PRODUCT.sku == product)
    if status is not None:
        query = query.where(Post.status == status.value)
    if author is not None:
        query = query.where(CUSTOMER.external_id == author)
    order: list[Any] = [Post.created_at.desc(), Post.id.desc()]
    if sort is PostSort.SCORE:
        # NULLS LAST spelt portably: unscored posts after every scored one.
        order = [PostScore.quality.is_(None), PostScore.quality.desc(), *order]
    total, rows = _page(session, query, order, limit, offset)
    return PostPage(total=total, items=_posts_out(session, principal, rows))


def _comments_of(session: Session, principal: Principal, post_id: int,
                 post_key: str) -> list[CommentOut]:
    rows = session.execute(select(Comment, CUSTOMER.external_id)
                           .join(refs.CUSTOMERS, CUSTOMER.id == Comment.customer_id)
                           .where(Comment.post_id == post_id)
                           .order_by(Comment.created_at, Comment.id))
    return [CommentOut(id=c.id, external_id=c.external_id, post_external_id=post_key,
                       customer_external_id=_customer_key(principal, key), text=c.text,
                       created_at=c.created_at, status=PostStatus(c.status))
            for c, key in rows]


def get_post(session: Session, principal: Principal, external_id: str) -> PostDetail:
    """One post with its comments, oldest comment first."""
    post = _visible_post(session, principal, external_id)
    comments = _comments_of(session, principal, post.id, external_id)
    return PostDetail(**post.model_dump(), comments=comments)


def add_comment(session: Session, clock: Clock, principal: Principal, post_external_id: str,
                data: CommentIn) -> CommentOut:
    """Comment on a published post."""
    post = _visible_post(session, principal, post_external_id)
    if post.status is not PostStatus.PUBLISHED:
        raise Conflict("post_not_published", f"post {post_external_id!r} is {post.status}",
                       "post_external_id")
    _refuse_duplicate(session, Comment, data.external_id, "comment")
    row = CommentRow.model_validate(
        {**data.model_dump(), "post_external_id": post_external_id,
         "created_at": _stamp(clock, data.created_at, "created_at")})
    comment = Comment(**only_values(comment_values(session, [row]))[0])
    session.add(comment)
    session.flush()
    label = moderating.moderate_one(session, "comment", comment.external_id, clock.now())
    return CommentOut(id=comment.id, external_id=comment.external_id,
                      post_external_id=post_external_id,
                      customer_external_id=_customer_key(principal, data.customer_external_id),
                      text=comment.text, created_at=comment.created_at,
                      status=PostStatus(moderating.STATUS[label]))


# --- reviews ----------------------------------------------------------------------------


def _review_query() -> Select[Any]:
    return (select(Review, CUSTOMER.external_id, ORDER.external_id, PRODUCT.sku)
            .join(refs.CUSTOMERS, CUSTOMER.id == Review.customer_id)
            .join(refs.PRODUCTS, PRODUCT.id == Review.product_id)
            .outerjoin(refs.ORDERS, ORDER.id == Review.order_id))


def _review_out(principal: Principal, row: Review, customer_key: str, order_key: str | None,
                sku: str) -> ReviewOut:
    return ReviewOut(id=row.id, external_id=row.external_id,
                     customer_external_id=_customer_key(principal, customer_key),
                     order_external_id=order_key,
                     sku=sku, rating=row.rating, text=row.text, brand_id=row.brand_id,
                     created_at=row.created_at, status=PostStatus(row.status))


def create_review(session: Session, clock: Clock, principal: Principal,
                  data: ReviewIn) -> ReviewOut:
    """Record a product review; one tied to an order must be by that order's customer."""
    _refuse_duplicate(session, Review, data.external_id, "review")
    row = ReviewRow.model_validate(
        {**data.model_dump(), "created_at": _stamp(clock, data.created_at, "created_at")})
    values = only_values(review_values(session, [row]))[0]
    _refuse_unseen_brand(principal, values["brand_id"])
    scoring.enrich_reviews([values])
    session.add(Review(**values))
    session.flush()
    moderating.moderate_one(session, "review", data.external_id, clock.now())
    session.expire_all()
    found = session.execute(_review_query().where(Review.external_id == data.external_id))
    return _review_out(principal, *found.one())


def list_reviews(session: Session, principal: Principal, *, sku: str | None = None,
                 rating: int | None = None, customer: str | None = None,
                 sentiment: SentimentBand | None = None, limit: int = 50,
                 offset: int = 0) -> ReviewPage:
    """Reviews newest first, filtered by product SKU, star rating, reviewer (customer
    external id) and sentiment band."""
    query = _review_query()
    if sentiment is not None:
        low, high = scoring.sentiment_band(sentiment)
        if low is not None:
            query = query.where(Review.sentiment >= low)
        if high is not None:
            query = query.where(Review.sentiment < high)
    if principal.brand_ids is not None:
        query = query.where(Review.brand_id.in_(principal.brand_ids))
    if sku is not None:
        query = query.where(PRODUCT.sku == sku)
    if rating is not None:
        query = query.where(Review.rating == rating)
    if customer is not None:
        query = query.where(CUSTOMER.external_id == customer)
    order = [Review.created_at.desc(), Review.id.desc()]
    total, rows = _page(session, query, order, limit, offset)
    return ReviewPage(total=total, items=[_review_out(principal, *r) for r in rows])


# --- read helpers for other domains -----------------------------------------------------


def counts_between(session: Session, since: datetime, until: datetime) -> dict[str, int]:
    """Posts, reviews and comments created in ``[since, until)``."""
    counts: dict[str, int] = {}
    for name, model in (("posts", Post), ("reviews", Review), ("comments", Comment)):
        counts[name] = session.scalar(
            select(func.count(model.id)).where(model.created_at >= since,
                                               model.created_at < until)) or 0
    return counts


def creator_post_stats(session: Session, since: datetime,
                       until: datetime) -> list[CreatorPostStats]:
    """Per author of published posts created in ``[since, until)``: posts, mean quality of
    the scored ones, and the views, attributed orders and attributed GMV of their scores
    (as of the last refresh), by customer id."""
    if since >= until:
        raise ValidationFailed("empty_period", "since must lie before until", "since")
    quality = func.avg(PostScore.quality)
    rows = session.execute(
        select(Post.customer_id, Creator.external_id, func.count(Post.id), quality,
               func.coalesce(func.sum(PostScore.views), 0),
               func.coalesce(func.sum(PostScore.attributed_orders), 0),
               func.coalesce(func.sum(PostScore.attributed_gmv_fen), 0))
        .outerjoin(PostScore, PostScore.post_id == Post.id)
        .outerjoin(Creator, Creator.customer_id == Post.customer_id)
        .where(Post.created_at >= since, Post.created_at < until,
               Post.status == PostStatus.PUBLISHED.value)
        .group_by(Post.customer_id, Creator.external_id)
        .order_by(Post.customer_id)).all()
    return [CreatorPostStats(customer_id=customer, creator_external_id=creator, posts=posts,
                             mean_quality=None if mean is None else round(float(mean), 4),
                             views=int(views), orders=int(orders), gmv_fen=int(gmv))
            for customer, creator, posts, mean, views, orders, gmv in rows]


# --- scoring (docs/content-quality.md) --------------------------------------------------


def get_post_score(session: Session, principal: Principal, external_id: str) -> PostScoreOut:
    """A post's explained score and nearest sources (a partner: its brands' posts only)."""
    post = _visible_post(session, principal, external_id)
    score = session.get(PostScore, post.id)
    if score is None:
        raise NotFound("score_not_found", f"post {external_id!r} has no score yet",
                       "external_id")
    explanation = score.explanation or {}
    components = explanation.get("components")
    return PostScoreOut(
        post_external_id=external_id, content_type=post.content_type,
        originality=score.originality, sources=score.sources or [], views=score.views,
        unique_viewers=score.unique_viewers, likes=score.likes, shares=score.shares,
        comments=score.comments, attributed_orders=score.attributed_orders,
        attributed_gmv_fen=score.attributed_gmv_fen, reach=score.reach,
        conversion=score.conversion, quality=score.quality,
        components=None if not isinstance(components, dict) else
        {name: ScoreComponent.model_validate(c) for name, c in components.items()},
        refreshed_at=score.refreshed_at)


def refresh_scores(services: Services, principal: Principal,
                   config: ScoreRefreshIn | None = None,
                   on_progress: Any = None) -> ScoreRefreshReport:
    """Recompute every post's scores as of now (platform-wide: partners are refused);
    ``on_progress(step, done, steps)`` follows the steps."""
    principal.refuse_if_partner("partner_refused", "scores are refreshed platform-wide")
    with transaction(services.sessions, clock=services.clock) as session:
        return scoring.refresh_scores(session, event_store(services), services.clock.now(),
                                      config, on_progress)


def dwell_by_type(session: Session, services: Services, principal: Principal,
                  since: datetime, until: datetime) -> DwellByType:
    """Dwell on post views per content type in ``[since, until)`` (a partner: views of its
    brands' posts)."""
    if since >= until:
        raise ValidationFailed("empty_period", "since must lie before until", "since")
    return scoring.dwell_by_content_type(session, event_store(services), since, until,
                                         principal.brand_ids)


# --- the sentiment signal (crisis detection, docs/crisis.md) ------------------------------

from sqlalchemy import Integer, String, column, null, or_, table  # noqa: E402

from shequ.domains.content.signal_schemas import NegativeText, SentimentSignal  # noqa: E402

_SIGNAL_PRODUCTS = table("products", column("id", Integer), column("sku", String),
                         column("name", String))
_SIGNAL_BRANDS = table("brands", column("id", Integer), column("external_id", String),
                       column("name", String))


def sentiment_signal(session: Session, since: datetime, until: datetime, *,
                     negative_below: float = scoring.NEGATIVE_AT,
                     max_negative_stars: int = 2) -> SentimentSignal:
    """Reviews and published posts of ``[since, until)`` (``since`` whole-hour aligned):
    every text's UTC hour per kind, and the negative ones with their product and brand.

    A text is negative when its sentiment (P(positive)) is below ``negative_below`` (the
    negative band); a review also when it gives at most ``max_negative_stars`` stars, the
    reviewer's own verdict.
    """
    if since.minute or since.second or since.microsecond:
        raise ValidationFailed("since_not_whole_hour", "since must be a whole UTC hour",
                               "since")
    if since >= until:
        raise ValidationFailed("empty_period", "since must lie before until", "since")
    hours = -(-int((until - since).total_seconds()) // 3600)
    products, brands = _SIGNAL_PRODUCTS, _SIGNAL_BRANDS
    published = Post.status == PostStatus.PUBLISHED.value
    volume: dict[str, list[int]] = {}
    queries = (("review", select(Review.created_at).where(Review.created_at >= since,
                                                           Review.created_at < until)),
               ("post", select(Post.created_at).where(Post.created_at >= since,
                                                      Post.created_at < until, published)))
    for kind, query in queries:
        counts = [0] * hours
        for at in session.scalars(query):
            counts[int((at - since).total_seconds() // 3600)] += 1
        volume[kind] = counts
    negative: list[NegativeText] = []
    p, b = products.c, brands.c
    review_rows = session.execute(
        select(Review.external_id, Review.product_id, Review.brand_id, p.sku, p.name,
               b.external_id, b.name, Review.text, Review.sentiment, Review.rating,
               Review.created_at)
        .join(products, p.id == Review.product_id).join(brands, b.id == Review.brand_id)
        .where(Review.created_at >= since, Review.created_at < until,
               or_(Review.sentiment < negative_below, Review.rating <= max_negative_stars))
        .order_by(Review.created_at, Review.id))
    post_rows = session.execute(
        select(Post.external_id, Post.product_id, Post.brand_id, p.sku, p.name,
               b.external_id, b.name, Post.title + "\n" + Post.body, Post.sentiment,
               null(), Post.created_at)
        .outerjoin(products, p.id == Post.product_id).outerjoin(brands, b.id == Post.brand_id)
        .where(Post.created_at >= since, Post.created_at < until, published,
               Post.sentiment < negative_below)
        .order_by(Post.created_at, Post.id))
    for kind, rows in (("review", review_rows), ("post", post_rows)):
        negative.extend(NegativeText(
            kind=kind, external_id=key, product_id=product_id, brand_id=brand_id, sku=sku,
            product_name=product_name, brand_external_id=brand_key, brand_name=brand_name,
            text=text, sentiment=sentiment, rating=rating, created_at=at)
            for key, product_id, brand_id, sku, product_name, brand_key, brand_name, text,
            sentiment, rating, at in rows)
    return SentimentSignal(since=since, until=until, review_hours=volume["review"],
                           post_hours=volume["post"], negative=negative)
