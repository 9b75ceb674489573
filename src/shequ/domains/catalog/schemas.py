"""Catalog contracts: the only catalog shapes other domains and entrypoints see."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shequ.core.money import yuan_to_fen

Key = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]
Name = Annotated[str, Field(min_length=1, max_length=256)]
MAX_FEN = 10**12
MAX_STOCK = 10**9


class BrandIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    external_id: Key
    name: Annotated[str, Field(min_length=1, max_length=128)]
    description: Annotated[str, Field(max_length=4000)] | None = None


class BrandOut(BrandIn):
    id: int


class CategoryIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    external_id: Key
    name: Annotated[str, Field(min_length=1, max_length=128)]
    parent_external_id: Key | None = None


class CategoryOut(CategoryIn):
    id: int


class ProductIn(BaseModel):
    """A product; ``price`` in yuan (``"12.50"``) is accepted in place of ``price_fen``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    sku: Key
    name: Name
    brand_external_id: Key
    category_external_id: Key | None = None
    price_fen: Annotated[int, Field(ge=0, le=MAX_FEN)]
    stock: Annotated[int, Field(ge=0, le=MAX_STOCK)] = 0
    is_active: bool = True

    @model_validator(mode="before")
    @classmethod
    def _yuan_price(cls, data: Any) -> Any:
        if isinstance(data, dict) and "price" in data and "price_fen" not in data:
            data = dict(data)
            try:
                data["price_fen"] = yuan_to_fen(data.pop("price"))
            except ValueError as exc:
                raise ValueError(f"price: {exc}") from exc
        return data


class ProductOut(ProductIn):
    id: int
    brand_id: int


class ProductPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Name | None = None
    price_fen: Annotated[int, Field(ge=0, le=MAX_FEN)] | None = None
    stock: Annotated[int, Field(ge=0, le=MAX_STOCK)] | None = None
    is_active: bool | None = None


class Page(BaseModel):
    """One page of a listing."""

    total: int
    items: list[Any]
