"""Turning validated inputs, which name things by external id or SKU, into table rows.

The API, the importers and the demo bulk loader all go through these functions, so a rule
(an order's review must be by its customer, one creator profile per customer) holds on
every path. Each input becomes either its row values or the :class:`Problem` that stops it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

from sqlalchemy.orm import Session

from shequ.core.errors import Conflict, ValidationFailed
from shequ.core.importing import ImportReport, RowError
from shequ.domains.content import references as refs
from shequ.domains.content.schemas import CommentRow, CreatorRow, HubIn, PostRow, ReviewRow

T = TypeVar("T")
M = TypeVar("M")  # an input model
Values = dict[str, Any]


@dataclass(frozen=True)
class Problem:
    """Why one input cannot become a row: a stable code, the field at fault, the reason."""

    code: str
    field: str
    reason: str
    conflict: bool = False  # clashes with existing data, rather than naming something unknown


Resolved = list[Values | Problem]


class _RejectedError(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.reason)
        self.problem = problem


def _need(found: Mapping[str, T], key: str, field: str, what: str) -> T:
    try:
        return found[key]
    except KeyError:
        raise _RejectedError(Problem(f"unknown_{what}", field, f"unknown {what} {key!r}")) from None


def _maybe(found: Mapping[str, T], key: str | None, field: str, what: str) -> T | None:
    return None if key is None else _need(found, key, field, what)


def _each(items: Sequence[M], build: Callable[[M], Values]) -> Resolved:
    resolved: Resolved = []
    for item in items:
        try:
            resolved.append(build(item))
        except _RejectedError as exc:
            resolved.append(exc.problem)
    return resolved


def _claim(holders: dict[Any, str], claimed: Any, external_id: str) -> str | None:
    """Record that ``external_id`` holds ``claimed``; the other holder if one exists."""
    holder = holders.setdefault(claimed, external_id)
    return holder if holder != external_id else None


def hub_values(session: Session, items: Sequence[HubIn]) -> Resolved:
    """Rows for hubs; a named brand must exist."""
    brands = refs.brand_ids(session, (i.brand_external_id for i in items))

    def build(item: HubIn) -> Values:
        brand_id = _maybe(brands, item.brand_external_id, "brand_external_id", "brand")
        return {"external_id": item.external_id, "name": item.name,
                "description": item.description, "brand_id": brand_id}

    return _each(items, build)


def creator_values(session: Session, items: Sequence[CreatorRow]) -> Resolved:
    """Rows for creators: the customer must exist and have no other creator profile."""
    customers = refs.customer_ids(session, (i.customer_external_id for i in items))
    hubs = refs.hub_ids(session, (i.hub_external_id for i in items))
    holders = refs.creators_of(session, customers.values())

    def build(item: CreatorRow) -> Values:
        customer_id = _need(customers, item.customer_external_id, "customer_external_id",
                            "customer")
        hub_id = _maybe(hubs, item.hub_external_id, "hub_external_id", "hub")
        other = _claim(holders, customer_id, item.external_id)
        if other is not None:
            raise _RejectedError(Problem("creator_exists", "customer_external_id",
                                    f"customer {item.customer_external_id!r} already has "
                                    f"creator profile {other!r}", conflict=True))
        return {"external_id": item.external_id, "customer_id": customer_id,
                "display_name": item.display_name, "level": item.level.value,
                "hub_id": hub_id, "joined_at": item.joined_at}

    return _each(items, build)


def post_values(session: Session, items: Sequence[PostRow]) -> Resolved:
    """Rows for posts: author, hub and product must exist; the brand is the product's."""
    customers = refs.customer_ids(session, (i.author_customer_external_id for i in items))
    hubs = refs.hub_ids(session, (i.hub_external_id for i in items))
    products = refs.products(session, (i.sku for i in items))

    def build(item: PostRow) -> Values:
        author = _need(customers, item.author_customer_external_id,
                       "author_customer_external_id", "customer")
        hub_id = _maybe(hubs, item.hub_external_id, "hub_external_id", "hub")
        product_id, brand_id = _maybe(products, item.sku, "sku", "sku") or (None, None)
        return {"external_id": item.external_id, "customer_id": author, "hub_id": hub_id,
                "content_type": item.content_type.value if item.content_type else None,
                "title": item.title, "body": item.body, "product_id": product_id,
                "brand_id": brand_id, "created_at": item.created_at}

    return _each(items, build)


def comment_values(session: Session, items: Sequence[CommentRow]) -> Resolved:
    """Rows for comments: the post and the commenter must exist."""
    posts = refs.post_ids(session, (i.post_external_id for i in items))
    customers = refs.customer_ids(session, (i.customer_external_id for i in items))

    def build(item: CommentRow) -> Values:
        post_id = _need(posts, item.post_external_id, "post_external_id", "post")
        customer_id = _need(customers, item.customer_external_id, "customer_external_id",
                            "customer")
        return {"external_id": item.external_id, "post_id": post_id,
                "customer_id": customer_id, "text": item.text, "created_at": item.created_at}

    return _each(items, build)


def _review_order(orders: Mapping[str, tuple[int, int]], item: ReviewRow,
                  customer_id: int) -> int | None:
    if item.order_external_id is None:
        return None
    order_id, owner = _need(orders, item.order_external_id, "order_external_id", "order")
    if owner != customer_id:
        raise _RejectedError(Problem("order_of_other_customer", "order_external_id",
                                f"order {item.order_external_id!r} was placed by another "
                                f"customer than {item.customer_external_id!r}"))
    return order_id


def review_values(session: Session, items: Sequence[ReviewRow]) -> Resolved:
    """Rows for reviews: an order's review is by its customer, once per product."""
    customers = refs.customer_ids(session, (i.customer_external_id for i in items))
    products = refs.products(session, (i.sku for i in items))
    orders = refs.order_owners(session, (i.order_external_id for i in items))
    holders = refs.reviews_of_orders(session, (o for o, _ in orders.values()))

    def build(item: ReviewRow) -> Values:
        customer_id = _need(customers, item.customer_external_id, "customer_external_id",
                            "customer")
        product_id, brand_id = _need(products, item.sku, "sku", "sku")
        order_id = _review_order(orders, item, customer_id)
        other = _claim(holders, (order_id, product_id), item.external_id) if order_id else None
        if other is not None:
            raise _RejectedError(Problem("review_exists", "order_external_id",
                                    f"{item.sku!r} of order {item.order_external_id!r} is "
                                    f"reviewed already by {other!r}", conflict=True))
        return {"external_id": item.external_id, "customer_id": customer_id,
                "order_id": order_id, "product_id": product_id, "brand_id": brand_id,
                "rating": item.rating, "text": item.text, "created_at": item.created_at}

    return _each(items, build)


def raise_problem(problem: Problem) -> NoReturn:
    """Raise ``problem`` as the domain error the API renders."""
    error = Conflict if problem.conflict else ValidationFailed
    raise error(problem.code, problem.reason, problem.field)


def only_values(resolved: Resolved) -> list[Values]:
    """Every row's values; the first problem is raised."""
    values: list[Values] = []
    for item in resolved:
        if isinstance(item, Problem):
            raise_problem(item)
        values.append(item)
    return values


def report_problems(lines: Sequence[int], resolved: Resolved,
                    report: ImportReport) -> list[Values]:
    """The values of good rows; each problem goes to ``report`` under its line."""
    values: list[Values] = []
    for line, item in zip(lines, resolved, strict=True):
        if isinstance(item, Problem):
            report.rejected.append(RowError(line, item.field, item.reason))
        else:
            values.append(item)
    return values
