"""The API's routes as the URL resolver sees them, so tests cover every route that exists."""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import URLPattern, URLResolver, get_resolver

API_PREFIX = "api/v1/"


@dataclass(frozen=True)
class Route:
    name: str
    route: str  # the pattern text, for messages
    kwargs: frozenset[str]
    methods: tuple[str, ...]  # upper case, without HEAD and OPTIONS

    def __str__(self) -> str:
        return self.name


def _kwargs_of(pattern) -> set[str]:
    return set(pattern.pattern.regex.groupindex)


def _methods_of(callback) -> tuple[str, ...]:
    actions = getattr(callback, "actions", None)
    if actions:
        return tuple(sorted(method.upper() for method in actions))
    view_class = getattr(callback, "view_class", None) or getattr(callback, "cls", None)
    return tuple(
        sorted(
            method.upper()
            for method in ("get", "post", "put", "patch", "delete")
            if hasattr(view_class, method)
        )
    )


def _walk(patterns, prefix: str, kwargs: set[str]):
    for pattern in patterns:
        text = prefix + str(pattern.pattern)
        names = kwargs | _kwargs_of(pattern)
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, text, names)
        elif isinstance(pattern, URLPattern):
            yield text, pattern, names


def api_routes() -> list[Route]:
    routes = {}
    for text, pattern, kwargs in _walk(get_resolver().url_patterns, "", set()):
        if not text.startswith(API_PREFIX) or "format" in kwargs or not pattern.name:
            continue
        routes[pattern.name] = Route(
            name=pattern.name,
            route=text,
            kwargs=frozenset(kwargs),
            methods=_methods_of(pattern.callback),
        )
    return sorted(routes.values(), key=lambda route: route.name)


def organization_routes() -> list[Route]:
    return [route for route in api_routes() if "org_slug" in route.kwargs]


def staff_routes() -> list[Route]:
    return [route for route in api_routes() if route.route.startswith(f"{API_PREFIX}staff/")]
