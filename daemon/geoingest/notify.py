"""Tell systemd how the service is doing, over its notification socket.

systemd passes a ``Type=notify`` service the address of a datagram socket in
``NOTIFY_SOCKET``; each datagram holds newline-separated ``KEY=value``
assignments such as ``READY=1``. The protocol needs nothing beyond the
standard library, so geoingest speaks it directly. An address that starts
with ``@`` names a socket in Linux's abstract namespace; any other is a path.
The ``vsock:`` addresses that newer systemd hands to virtual machines are not
supported, and show up as a failed send.

Outside systemd ``NOTIFY_SOCKET`` is unset and every call here does nothing,
so the daemon calls the :class:`Notifier` unconditionally. A failure to send
is logged once and never raised: losing a status line must not stop ingest.

Example:
    >>> notifier = Notifier.from_environment({})
    >>> notifier.enabled
    False
    >>> notifier.ready()
    False
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable, Mapping

import structlog

_log = structlog.get_logger(__name__)

# systemd enables the watchdog with WATCHDOG_USEC and asks for a ping at
# least that often; pinging at half the period leaves room for a late tick.
_WATCHDOG_SHARE = 0.5
_USEC_PER_S = 1_000_000


class Notifier:
    """Sends sd_notify messages to the service manager, or nothing at all.

    Args:
        address: The value of ``NOTIFY_SOCKET``: a filesystem path, or a name
            in the abstract namespace written with a leading ``@``. ``None``
            or an empty string turns every message into a no-op.
        watchdog_interval_s: How often :func:`watchdog_loop` should ping, or
            ``None`` when systemd expects no pings.

    Example:
        >>> Notifier("@unused", watchdog_interval_s=0.1).watchdog_interval_s
        0.1
    """

    def __init__(self, address: str | None, watchdog_interval_s: float | None = None) -> None:
        self._address = address or None
        self.watchdog_interval_s = watchdog_interval_s
        self._socket: socket.socket | None = None
        self._failure_logged = False

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """Builds a notifier from the variables systemd sets for the service.

        Args:
            environ: The environment to read; the process's own by default.

        Returns:
            A notifier for ``NOTIFY_SOCKET``, with the watchdog interval taken
            from ``WATCHDOG_USEC`` and ``WATCHDOG_PID``.
        """
        env = os.environ if environ is None else environ
        return cls(env.get("NOTIFY_SOCKET"), watchdog_interval_s(env))

    @property
    def enabled(self) -> bool:
        """Whether messages go anywhere, that is whether NOTIFY_SOCKET was set."""
        return self._address is not None

    def ready(self) -> bool:
        """Reports that start-up, or a reload, has finished.

        Returns:
            Whether the message was sent.
        """
        return self.send("READY=1")

    def status(self, text: str) -> bool:
        """Sets the one-line status that ``systemctl status`` shows.

        Args:
            text: The status; line breaks are turned into spaces, because a
                new line would start a new assignment.

        Returns:
            Whether the message was sent.
        """
        return self.send("STATUS=" + " ".join(text.splitlines()))

    def watchdog(self) -> bool:
        """Tells the service manager that the daemon is still alive.

        Returns:
            Whether the message was sent.
        """
        return self.send("WATCHDOG=1")

    def reloading(self) -> bool:
        """Reports that a configuration reload has begun.

        The timestamp on the monotonic clock lets systemd 253 and later match
        the message to the reload it asked for; older versions ignore it. Send
        :meth:`ready` when the reload is over, whether it worked or not.

        Returns:
            Whether the message was sent.
        """
        now_us = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={now_us}")

    def stopping(self) -> bool:
        """Reports that shutdown has begun.

        Returns:
            Whether the message was sent.
        """
        return self.send("STOPPING=1")

    def send(self, *assignments: str) -> bool:
        """Sends ``KEY=value`` assignments as one datagram.

        Args:
            *assignments: The assignments, each without a line break.

        Returns:
            Whether the datagram left; ``False`` when notifications are off or
            the send failed. The first failure is logged, later ones are not.
        """
        if self._address is None:
            return False
        payload = "\n".join(assignments).encode()
        try:
            self._open_socket().sendto(payload, _socket_address(self._address))
        except OSError as error:
            self._log_failure(error)
            return False
        return True

    def close(self) -> None:
        """Closes the socket; a later message opens a new one."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def _open_socket(self) -> socket.socket:
        if self._socket is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            # A full receive queue on systemd's side must not stall the event loop.
            sock.setblocking(False)
            self._socket = sock
        return self._socket

    def _log_failure(self, error: OSError) -> None:
        if not self._failure_logged:
            self._failure_logged = True
            _log.warning("notify_failed", address=self._address, error=str(error))


def watchdog_interval_s(environ: Mapping[str, str]) -> float | None:
    """Reads how often systemd expects a watchdog ping from this process.

    Args:
        environ: The environment systemd gave the service.

    Returns:
        Half of ``WATCHDOG_USEC`` in seconds, or ``None`` when it is unset or
        not a positive integer, or when ``WATCHDOG_PID`` names another process
        (the variables were inherited from a parent that systemd watches).

    Example:
        >>> watchdog_interval_s({"WATCHDOG_USEC": "30000000"})
        15.0
        >>> watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
        True
    """
    pid = environ.get("WATCHDOG_PID")
    if pid is not None and pid != str(os.getpid()):
        return None
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    return usec * _WATCHDOG_SHARE / _USEC_PER_S


async def watchdog_loop(notifier: Notifier, healthy: Callable[[], bool]) -> None:
    """Pings the watchdog for as long as the daemon reports itself healthy.

    Runs until cancelled, and returns at once when there is no watchdog to
    ping. It must run on the daemon's event loop: a loop that blocks stops
    the pings, and systemd then ends the process as hung. A health check that
    fails, or raises, withholds the ping for that interval.

    Args:
        notifier: Where the pings go; its ``watchdog_interval_s`` sets the pace.
        healthy: Called before each ping; the ping is sent only if it is true.
    """
    interval_s = notifier.watchdog_interval_s
    if interval_s is None or not notifier.enabled:
        return
    was_healthy = True
    while True:
        is_healthy = _check(healthy)
        if is_healthy:
            notifier.watchdog()
        if is_healthy != was_healthy:
            _log_health_change(is_healthy)
            was_healthy = is_healthy
        await asyncio.sleep(interval_s)


def _check(healthy: Callable[[], bool]) -> bool:
    try:
        return bool(healthy())
    except Exception:
        _log.exception("watchdog_check_raised")
        return False


def _log_health_change(is_healthy: bool) -> None:
    if is_healthy:
        _log.info("watchdog_resumed")
    else:
        _log.warning("watchdog_withheld")


def _socket_address(address: str) -> str:
    # A leading "@" stands for the NUL byte that opens an abstract address.
    if address.startswith("@"):
        return "\0" + address[1:]
    return address
