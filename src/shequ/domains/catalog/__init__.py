"""Catalog: brands, categories and products (SKU, price in fen, stock)."""
