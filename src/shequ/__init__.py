"""shequ (社区): e-commerce community operations platform."""

__version__ = "0.1.0"
