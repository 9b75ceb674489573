"""Printable reports rendered from domain data (HTML with inline SVG charts, then PDF)."""
