"""The service's HTTP edge: limits on what a connection may send before the app sees a request,
and one answer for paths the service does not have.

BentoML builds uvicorn's configuration itself and exposes none of its HTTP protocol options
(only ``--timeout-keep-alive``); uvicorn's httptools protocol, the one it picks, has no header
timeout and no header size limit (``h11_max_incomplete_event_size`` applies to the h11 protocol
only, and answers 400). :func:`install` registers :class:`EdgeProtocol`, a subclass of uvicorn's
httptools protocol, as uvicorn's ``auto`` HTTP protocol of the worker process (the service module
is imported before BentoML configures uvicorn). It adds:

- a header timeout: the request line and headers must arrive within ``header_timeout`` of the
  request's first byte (or of the connection's opening): otherwise 408 and the connection closed;
- a header size limit: more than ``max_header_bytes`` of request line and headers, or more than
  ``max_headers`` fields: 431 and the connection closed;
- a route filter in front of BentoML's app: a path no route of the app serves is answered 404
  here, counted under one label (``on_unmatched``), and never reaches BentoML's request metrics,
  which label each series with the request's path (5,000 random paths made 100,000 series).

The body timeout (408) is the request guard's (:mod:`modelops.serving.http`): only the app knows
which routes read a body.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from modelops.serving.http import ASGIApp, Receive, Scope, Send, error_body, respond

UNMATCHED = "(unmatched)"


@dataclass(frozen=True)
class EdgeLimits:
    header_timeout: float = 10.0
    max_header_bytes: int = 16 * 1024
    max_headers: int = 100


class _Refused(Exception):
    """Raised from a parser callback to stop parsing a request the edge refuses."""


def raw_response(status: int, body: dict[str, Any]) -> bytes:
    """A complete HTTP/1.1 response that closes the connection, for answers given before the
    app has a request (no ASGI ``send`` exists yet)."""
    payload = json.dumps(body).encode()
    phrase = HTTPStatus(status).phrase
    return (
        f"HTTP/1.1 {status} {phrase}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(payload)}\r\n"
        "connection: close\r\n\r\n"
    ).encode("latin-1") + payload


class EdgeProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header timeout, header limits and the route filter.

    Settings are class attributes, set once per process by :func:`install`.
    """

    limits = EdgeLimits()
    on_unmatched: Callable[[], None] = staticmethod(lambda: None)

    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.app = _filtered(config.loaded_app, type(self).on_unmatched)
        self._header_timer: Any = None
        self._header_bytes = 0
        self._header_count = 0
        self._in_head = True  # between a request's first byte (or the connection) and its headers
        self._head_raw = 0
        self._refusal: tuple[int, dict[str, Any]] | None = None

    # -- the header timeout
    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.limits.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        seconds = f"{self.limits.header_timeout:g}"
        self._close_with(408, error_body(f"request headers not received within {seconds} s", None))

    def _close_with(self, status: int, body: dict[str, Any]) -> None:
        self._disarm()
        self.transport.write(raw_response(status, body))
        self.transport.close()

    # -- the raw bytes of unfinished headers
    def data_received(self, data: bytes) -> None:
        """The parser reports a header only once its value ends: an endless value is counted
        here, as the bytes that arrive while a request's headers are unfinished."""
        heading = self._in_head
        super().data_received(data)
        if not (heading and self._in_head) or self.transport.is_closing():
            return
        self._head_raw += len(data)
        if self._head_raw > self.limits.max_header_bytes:
            limit = self.limits.max_header_bytes
            message = f"request line and headers exceed {limit} bytes"
            self._close_with(431, error_body(message, "headers"))

    # -- parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._header_count = 0
        self._in_head = True
        self._head_raw = 0
        if self._header_timer is None:
            self._arm()

    def on_url(self, url: bytes) -> None:
        self._count(len(url), 0)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value), 1)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm()
        self._in_head = False
        super().on_headers_complete()

    def _count(self, size: int, fields: int) -> None:
        self._header_bytes += size
        self._header_count += fields
        limits = self.limits
        if self._header_bytes > limits.max_header_bytes:
            message = f"request line and headers exceed {limits.max_header_bytes} bytes"
        elif self._header_count > limits.max_headers:
            message = f"more than {limits.max_headers} header fields"
        else:
            return
        self._refusal = (431, error_body(message, "headers"))
        raise _Refused(message)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a parser error; a refusal raised from a callback is one."""
        if self._refusal is None:
            self._disarm()
            super().send_400_response(msg)
            return
        status, body = self._refusal
        self._close_with(status, body)


# -- routes ------------------------------------------------------------------------------------


def _starlette(app: Any) -> Any:
    """The Starlette app under uvicorn's wrappers (``ProxyHeadersMiddleware`` and the like)."""
    from starlette.applications import Starlette

    seen = 0
    while app is not None and seen < 8:
        if isinstance(app, Starlette):
            return app
        app = getattr(app, "app", None)
        seen += 1
    raise TypeError("no Starlette app under the server's app: the route table is unknown")


def _static_files(mount: Any) -> Iterator[str]:
    from starlette.staticfiles import StaticFiles

    app = mount.app
    if not isinstance(app, StaticFiles):
        return
    for directory in app.all_directories:
        root = Path(directory)
        for path in root.rglob("*"):
            if path.is_file():
                yield f"{mount.path}/{path.relative_to(root).as_posix()}"


class RouteTable:
    """Which requests a Starlette app routes: its routes, and the files of its static mounts
    (a mount would otherwise match every path under it)."""

    def __init__(self, app: Any) -> None:
        from starlette.routing import Mount

        self._routes = [r for r in app.routes if not isinstance(r, Mount)]
        self._files: set[str] = set()
        self._mounts: list[Any] = []
        for route in app.routes:
            if isinstance(route, Mount):
                files = set(_static_files(route))
                if files:
                    self._files |= files
                else:
                    self._mounts.append(route)

    def routed(self, scope: Scope) -> bool:
        from starlette.routing import Match

        if scope.get("path") in self._files:
            return True
        return any(r.matches(scope)[0] != Match.NONE for r in (*self._routes, *self._mounts))


class RouteFilter:
    """Answers a path no route serves with 404 before the app (and its metrics) sees it."""

    def __init__(self, app: ASGIApp, on_unmatched: Callable[[], None]) -> None:
        self.app = app
        self.on_unmatched = on_unmatched
        self._table: RouteTable | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") == "http":
            if self._table is None:
                self._table = RouteTable(_starlette(self.app))
            if not self._table.routed(scope):
                self.on_unmatched()
                method, path = scope.get("method", ""), scope.get("path", "")
                body = error_body(f"no route for {method} {path[:200]}", "(path)")
                await respond(send, 404, body, close=False)
                return
        await self.app(scope, receive, send)


_FILTERS: dict[int, RouteFilter] = {}


def _filtered(app: Any, on_unmatched: Callable[[], None]) -> RouteFilter:
    """One filter per server app (a protocol object is made per connection)."""
    key = id(app)
    if key not in _FILTERS:
        _FILTERS[key] = RouteFilter(app, on_unmatched)
    return _FILTERS[key]


def install(limits: EdgeLimits, on_unmatched: Callable[[], None]) -> None:
    """Make :class:`EdgeProtocol`, with ``limits``, uvicorn's ``auto`` HTTP protocol in this
    process (BentoML's worker creates its ``uvicorn.Config`` with the default ``http="auto"``)."""
    from uvicorn import config

    EdgeProtocol.limits = limits
    EdgeProtocol.on_unmatched = staticmethod(on_unmatched)
    config.HTTP_PROTOCOLS["auto"] = f"{__name__}:EdgeProtocol"


__all__ = ["UNMATCHED", "EdgeLimits", "EdgeProtocol", "RouteFilter", "RouteTable", "install"]
