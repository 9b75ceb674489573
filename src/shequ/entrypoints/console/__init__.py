"""The operations console (server-rendered)."""

from __future__ import annotations

from fastapi import FastAPI


def mount(app: FastAPI) -> None:
    """Attach the console's routes and static files to ``app``."""
    return None
