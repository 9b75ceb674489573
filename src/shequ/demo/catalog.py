"""Brands, categories, community hubs and products of the demo shop."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np

from shequ.demo import phrases_catalog as pc
from shequ.demo.sizes import Size
from shequ.demo.text import ProductText
from shequ.demo.timing import Floats, Ints

Row = dict[str, Any]
TOP_IDS = tuple(top for top, _ in pc.TOP_CATEGORIES)


@dataclass
class Catalog:
    """Catalogue rows plus the arrays the other builders sample from."""

    brands: list[Row]
    categories: list[Row]
    hubs: list[Row]
    products: list[Row]
    product_top: Ints
    product_brand: Ints
    price_fen: Ints
    popularity: Floats
    texts: list[ProductText]
    hub_by_top: dict[int, int]
    hub_by_brand: dict[int, int]
    _order: Ints
    _keys: Floats

    def sample_products(self, rng: np.random.Generator, top: Ints) -> Ints:
        """One product per row, from top category ``top[i]``, weighted by popularity."""
        x = np.asarray(top, dtype=np.float64) + rng.random(len(top)) * (1.0 - 1e-12)
        pos = np.searchsorted(self._keys, x, side="right")
        return self._order[np.minimum(pos, self._order.size - 1)]

    def sku(self, product: int) -> str:
        """The SKU of product index ``product``."""
        return str(self.products[product]["sku"])


def make_categories() -> list[Row]:
    """The fixed two-level category tree (top categories first)."""
    rows: list[Row] = [{"external_id": top, "name": name, "parent_external_id": None}
                       for top, name in pc.TOP_CATEGORIES]
    rows += [{"external_id": leaf, "name": spec[1], "parent_external_id": spec[0]}
             for leaf, spec in pc.LEAVES.items()]
    return rows


def make_brands(size: Size) -> list[Row]:
    """The ``size.brands`` invented brands (at most 10)."""
    return [{"external_id": f"b{i + 1:02d}", "name": name, "description": desc}
            for i, (name, _top, desc) in enumerate(pc.BRANDS[: size.brands])]


def make_hubs(size: Size) -> list[Row]:
    """The first ``size.hubs`` community hubs."""
    return [{"external_id": hub_id, "name": name, "description": desc,
             "brand_external_id": None if brand is None else f"b{brand + 1:02d}"}
            for hub_id, name, desc, _top, brand in pc.HUBS[: size.hubs]]


def _charm_price(rng: np.random.Generator, low: float, high: float) -> int:
    """A shop-like price in fen between ``low`` and ``high`` yuan (ends in 9 or 9.9)."""
    yuan = float(np.exp(rng.uniform(np.log(low), np.log(high))))
    if yuan < 20:
        return round(yuan) * 100 - 10 if yuan >= 1.5 else 990
    base = int(yuan // 10) * 10 + 9
    return base * 100 - (10 if rng.random() < 0.25 else 0)


def _product_names(rnd: random.Random, n: int) -> list[tuple[int, str, str, str, str]]:
    """``n`` unique (brand, leaf, series, noun, spec) combinations, brands round-robin."""
    leaves_of = {top: [leaf for leaf, spec in pc.LEAVES.items() if spec[0] == top]
                 for top in TOP_IDS}
    used: set[tuple[int, str, str, str, str]] = set()
    out: list[tuple[int, str, str, str, str]] = []
    for i in range(n):
        brand = i % len(pc.BRANDS)
        leaves = leaves_of[pc.BRANDS[brand][1]]
        leaf = leaves[(i // len(pc.BRANDS)) % len(leaves)]
        _parent, _name, series, nouns, specs, _price = pc.LEAVES[leaf]
        combo = (brand, leaf, rnd.choice(series), rnd.choice(nouns), rnd.choice(specs))
        while combo in used:
            combo = (brand, leaf, rnd.choice(series), rnd.choice(nouns), rnd.choice(specs))
        used.add(combo)
        out.append(combo)
    return out


def make_products(rng: np.random.Generator, rnd: random.Random, size: Size) -> list[Row]:
    """``size.products`` products with names, prices (integer fen) and stock."""
    rows: list[Row] = []
    for i, (brand, leaf, series, noun, spec) in enumerate(_product_names(rnd, size.products)):
        low, high = pc.LEAVES[leaf][5]
        stock = 0 if rng.random() < 0.03 else int(rng.integers(20, 5000))
        name = f"{pc.BRANDS[brand][0]} {series}{noun} {spec}"
        rows.append({"sku": f"SK{100001 + i}", "name": name,
                     "brand_external_id": f"b{brand + 1:02d}", "category_external_id": leaf,
                     "price_fen": _charm_price(rng, low, high), "stock": stock,
                     "_series": series, "_noun": noun})
    return rows


def _sampling_keys(top: Ints, popularity: Floats) -> tuple[Ints, Floats]:
    order = np.argsort(top, kind="stable").astype(np.int64)
    sorted_top = top[order]
    weights = popularity[order]
    keys = np.empty(order.size, dtype=np.float64)
    for t in np.unique(sorted_top):
        idx = np.flatnonzero(sorted_top == t)
        cum = np.cumsum(weights[idx]) / weights[idx].sum()
        cum[-1] = 1.0
        keys[idx] = t + cum
    return order, keys


def _product_text(row: Row, top: int) -> ProductText:
    brand = str(row["name"]).split(" ", 1)[0]
    return ProductText(name=str(row["name"]), short=f"{brand}{row['_series']}{row['_noun']}",
                       noun=str(row["_noun"]), brand=brand, top=TOP_IDS[top],
                       price_yuan=max(1, int(row["price_fen"]) // 100))


def make_catalog(rng: np.random.Generator, rnd: random.Random, size: Size) -> Catalog:
    """Brands, categories, hubs and products, plus sampling helpers."""
    hubs = make_hubs(size)
    products = make_products(rng, rnd, size)
    brand_idx = np.array([int(p["brand_external_id"][1:]) - 1 for p in products], dtype=np.int64)
    top = np.array([TOP_IDS.index(pc.BRANDS[b][1]) for b in brand_idx], dtype=np.int64)
    popularity = rng.lognormal(0.0, 1.0, len(products))
    order, keys = _sampling_keys(top, popularity)
    texts = [_product_text(p, int(t)) for p, t in zip(products, top, strict=True)]
    for p in products:
        del p["_series"], p["_noun"]
    hub_specs = pc.HUBS[: size.hubs]
    return Catalog(
        brands=make_brands(size), categories=make_categories(), hubs=hubs, products=products,
        product_top=top, product_brand=brand_idx,
        price_fen=np.array([p["price_fen"] for p in products], dtype=np.int64),
        popularity=popularity, texts=texts,
        hub_by_top={TOP_IDS.index(s[3]): i for i, s in enumerate(hub_specs) if s[3] is not None},
        hub_by_brand={s[4]: i for i, s in enumerate(hub_specs) if s[4] is not None},
        _order=order, _keys=keys,
    )
