"""Every route declares its permission; errors share one shape; OpenAPI is served."""

from __future__ import annotations

from typing import Any

from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from shequ.core.web import declared_permission


def _declared(route: APIRoute) -> set[str]:
    found: set[str] = set()
    stack = [route.dependant]
    while stack:
        dep = stack.pop()
        if dep.call is not None and declared_permission(dep.call):
            found.add(declared_permission(dep.call) or "")
        stack.extend(dep.dependencies)
    return found


def _api_routes(routes: list[Any]) -> list[APIRoute]:
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):  # FastAPI keeps included routers nested
            found += _api_routes(route.original_router.routes)
    return found


def test_every_route_declares_a_permission(client: TestClient) -> None:
    routes = _api_routes(client.app.routes)  # type: ignore[attr-defined]
    assert len(routes) > 10
    missing = [f"{sorted(r.methods)} {r.path}" for r in routes if not _declared(r)]
    assert missing == []


def test_health(client: TestClient) -> None:
    r = client.get("/api/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_openapi_is_served(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert "/api/v1/events" in schema["paths"]
    assert "/api/v1/products" in schema["paths"]


def test_unknown_route_uses_error_shape(client: TestClient) -> None:
    r = client.get("/api/v1/nowhere")
    assert r.status_code == 404
    assert set(r.json()) == {"type", "code", "detail", "attr"}


def test_validation_error_names_the_field(client: TestClient,
                                          admin_headers: dict[str, str]) -> None:
    r = client.post("/api/v1/brands", json={"external_id": "b 1", "name": "x"},
                    headers=admin_headers)
    assert r.status_code == 422
    assert r.json()["attr"] == "external_id"
    assert r.json()["type"] == "validation_error"
