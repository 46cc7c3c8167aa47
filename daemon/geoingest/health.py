"""The metrics and health endpoint, and the event-loop monitor that feeds it.

The endpoint runs in its own thread, never on the event loop: a scrape must
still be answered when the loop is blocked or every worker is busy, because
that is exactly when the numbers matter. Each connection gets a thread of
its own, which suits a scraper and a health checker on a trusted network,
not the open internet. It serves three paths and nothing else:

- ``/metrics``: the registry in the Prometheus text format (or OpenMetrics,
  when the scraper asks for it);
- ``/healthz``: 200 while the event loop keeps ticking, 503 once the
  :class:`Heartbeat` that the loop updates has gone stale;
- ``/readyz``: 200 once :class:`Readiness` says the daemon can do its work,
  503 with the one-line reason otherwise.

:func:`monitor_event_loop` is the coroutine that ticks: it records how late
each tick ran and beats the heartbeat.
"""

from __future__ import annotations

import asyncio
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

import structlog
from prometheus_client import CollectorRegistry, disable_created_metrics
from prometheus_client.exposition import choose_encoder

from geoingest.metrics import Metrics

HEARTBEAT_STALE_AFTER_S = 5.0
_TEXT = "text/plain; charset=utf-8"
_CLIENT_TIMEOUT_S = 10.0
# How often the serving thread checks whether stop() was called.
_STOP_POLL_S = 0.025

_log = structlog.get_logger(__name__)


class Heartbeat:
    """The time the event loop last ticked, readable from any thread.

    Args:
        stale_after_s: How long without a beat before the loop counts as stalled.
        clock: A monotonic clock in seconds; tests pass a fake one.

    Example:
        >>> now = [100.0]
        >>> heartbeat = Heartbeat(stale_after_s=5.0, clock=lambda: now[0])
        >>> now[0] += 6.0
        >>> heartbeat.is_fresh()
        False
        >>> heartbeat.beat()
        >>> heartbeat.is_fresh()
        True
    """

    def __init__(
        self,
        stale_after_s: float = HEARTBEAT_STALE_AFTER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stale_after_s = stale_after_s
        self._clock = clock
        self._lock = threading.Lock()
        # Counting from creation gives a starting daemon the same grace as a running one.
        self._last_beat = clock()

    def beat(self) -> None:
        """Record that the event loop is ticking now."""
        now = self._clock()
        with self._lock:
            self._last_beat = now

    def age_s(self) -> float:
        """Return the seconds since the last beat."""
        with self._lock:
            last_beat = self._last_beat
        return self._clock() - last_beat

    def is_fresh(self) -> bool:
        """Return True unless the last beat is older than ``stale_after_s``."""
        return self.age_s() <= self.stale_after_s


class Readiness:
    """Whether the daemon can do its work, and if not, why; safe to share between threads.

    The daemon starts not ready. It calls :meth:`set_ready` once the inputs are
    watched and the output and state folders are writable, and
    :meth:`set_not_ready` with a short reason whenever one of those stops being
    true. Each change of state is logged once.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reason: str | None = "starting"

    @property
    def reason(self) -> str | None:
        """Why the daemon is not ready, or None when it is."""
        with self._lock:
            return self._reason

    def set_ready(self) -> None:
        """Mark the daemon ready."""
        self._change(None)

    def set_not_ready(self, reason: str) -> None:
        """Mark the daemon not ready.

        Args:
            reason: A short explanation for operators; line breaks are folded
                into spaces so that it stays one line.
        """
        self._change(" ".join(reason.split()) or "not ready")

    def _change(self, reason: str | None) -> None:
        """Store the new state, and log it if it differs from the old one."""
        with self._lock:
            changed = reason != self._reason
            self._reason = reason
        if changed:
            _log.info("readiness_changed", ready=reason is None, reason=reason)


async def monitor_event_loop(
    metrics: Metrics, heartbeat: Heartbeat, interval_s: float = 0.25
) -> None:
    """Tick every ``interval_s`` seconds, measuring how late each tick runs, until cancelled.

    Each tick observes its delay in ``metrics.event_loop_lag_seconds`` and beats
    the heartbeat, so a loop blocked for longer than the heartbeat allows turns
    ``/healthz`` to 503.

    Args:
        metrics: Where the lag is observed.
        heartbeat: Beaten on every tick.
        interval_s: The time between ticks, in seconds.
    """
    loop = asyncio.get_running_loop()
    while True:
        heartbeat.beat()
        due = loop.time() + interval_s
        await asyncio.sleep(interval_s)
        metrics.event_loop_lag_seconds.observe(max(0.0, loop.time() - due))


@dataclass(frozen=True, slots=True)
class _Response:
    """What one request is answered with."""

    status: HTTPStatus
    content_type: str
    body: bytes


class _Endpoints:
    """The answers for the three paths, free of any HTTP plumbing."""

    def __init__(
        self, registry: CollectorRegistry, readiness: Readiness, heartbeat: Heartbeat
    ) -> None:
        self._registry = registry
        self._readiness = readiness
        self._heartbeat = heartbeat

    def respond(self, path: str, accept: str) -> _Response:
        """Return the response for a GET of ``path``."""
        if path == "/metrics":
            encoder, content_type = choose_encoder(accept)
            return _Response(HTTPStatus.OK, content_type, encoder(self._registry))
        if path == "/healthz":
            return self._health()
        if path == "/readyz":
            return self._ready()
        return _text(HTTPStatus.NOT_FOUND, "not found: try /metrics, /healthz or /readyz")

    def _health(self) -> _Response:
        """Answer whether the event loop has ticked recently."""
        age_s = self._heartbeat.age_s()
        if age_s > self._heartbeat.stale_after_s:
            return _text(HTTPStatus.SERVICE_UNAVAILABLE, f"event loop silent for {age_s:.1f} s")
        return _text(HTTPStatus.OK, "ok")

    def _ready(self) -> _Response:
        """Answer whether the daemon can do its work, with the reason when it cannot."""
        reason = self._readiness.reason
        if reason is not None:
            return _text(HTTPStatus.SERVICE_UNAVAILABLE, f"not ready: {reason}")
        return _text(HTTPStatus.OK, "ready")


def _text(status: HTTPStatus, line: str) -> _Response:
    """Build a plain-text response holding one line."""
    return _Response(status, _TEXT, f"{line}\n".encode())


class _Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """A threaded TCP server that carries the endpoints for its handlers.

    It derives from ``TCPServer`` rather than ``http.server.HTTPServer`` because
    the latter resolves the host's fully qualified name at bind time, which can
    wait on DNS.
    """

    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, host: str, port: int, endpoints: _Endpoints) -> None:
        self.endpoints = endpoints
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), _Handler)


class _Handler(BaseHTTPRequestHandler):
    """Answers GET and HEAD from the endpoints, and 405 for other common methods."""

    server: _Server
    timeout = _CLIENT_TIMEOUT_S

    def do_GET(self) -> None:
        """Answer a GET with headers and body."""
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        """Answer a HEAD with the headers a GET would get."""
        self._answer(send_body=False)

    def _refuse_method(self) -> None:
        """Answer a method other than GET and HEAD."""
        self._send(_text(HTTPStatus.METHOD_NOT_ALLOWED, "only GET and HEAD"), send_body=True)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse_method

    def _answer(self, *, send_body: bool) -> None:
        """Route the request path and send the response."""
        path = urlsplit(self.path).path
        try:
            response = self.server.endpoints.respond(path, self.headers.get("Accept", ""))
        except Exception:
            # Without this, the server would print the traceback to stderr, outside the logs.
            _log.exception("metrics_request_failed", path=path)
            response = _text(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error; see the log")
        self._send(response, send_body=send_body)

    def _send(self, response: _Response, *, send_body: bool) -> None:
        """Write the status line, headers and, unless asked not to, the body."""
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Cache-Control", "no-store")
        if response.status == HTTPStatus.METHOD_NOT_ALLOWED:
            self.send_header("Allow", "GET, HEAD")
        self.end_headers()
        if send_body:
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: object) -> None:
        """Send the server's per-request lines to DEBUG, since scrapes come every few seconds."""
        _log.debug("metrics_http", client=self.client_address[0], message=format % args)


class HealthServer:
    """The HTTP server for ``/metrics``, ``/healthz`` and ``/readyz``, in a thread of its own.

    Args:
        registry: The registry ``/metrics`` exposes.
        readiness: What ``/readyz`` reports.
        heartbeat: What ``/healthz`` judges the event loop by.
        host: The address to listen on.
        port: The port to listen on; 0 lets the system pick a free one.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        readiness: Readiness,
        heartbeat: Heartbeat,
        host: str,
        port: int,
    ) -> None:
        self._endpoints = _Endpoints(registry, readiness, heartbeat)
        self._host = host
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The host and port the server is bound to, with the real port when 0 was asked for.

        Raises:
            RuntimeError: Before :meth:`start`.
        """
        if self._server is None:
            raise RuntimeError("the metrics server has not been started")
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Bind the socket, then serve from a daemon thread.

        Binding happens here, in the caller's thread, so that an address in use
        raises ``OSError`` to the caller instead of ending a thread quietly.
        """
        # The created-time series of every counter and histogram add bytes to each scrape
        # and nothing any panel or alert uses. (The ignore: the library leaves it unannotated.)
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self._server = _Server(self._host, self._port, self._endpoints)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": _STOP_POLL_S},
            name="geoingest-metrics",
            daemon=True,
        )
        self._thread.start()
        host, port = self.address
        _log.info("metrics_server_started", host=host, port=port)

    def stop(self) -> None:
        """Stop serving, close the socket and wait for the thread; safe to call twice."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.shutdown()
        server.server_close()
        thread.join()
        self._server = self._thread = None
        _log.info("metrics_server_stopped")
