"""Deterministic demo community: brands, products, customers, orders, content and events.

Pure data (Python, numpy, pyarrow); loading it into the platform is ``shequ.demo.loader``'s
job. See ``docs/demo.md``.
"""

from shequ.demo.generator import EVENT_SCHEMA, SIZES, Community, Size, generate

__all__ = ["EVENT_SCHEMA", "SIZES", "Community", "Size", "generate"]
