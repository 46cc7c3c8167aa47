"""A stand-in for systemd's notification socket, for tests.

:class:`NotifyListener` binds the datagram socket that systemd would pass in
``NOTIFY_SOCKET``, reads it on a background thread and keeps every message
with the time it arrived and the process that sent it. Unit tests point a
``Notifier`` at it; integration tests start the real daemon with
:meth:`NotifyListener.environ` merged into its environment.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

# struct ucred: pid, uid, gid, as the kernel attaches them with SO_PASSCRED.
_UCRED = struct.Struct("3i")
_MAX_DATAGRAM = 4096
_POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class Message:
    """One datagram as the service manager would see it.

    Attributes:
        received_at: ``time.monotonic()`` when the listener read it.
        fields: Its ``KEY=value`` assignments.
        sender_pid: The sending process, from the kernel's credentials.
    """

    received_at: float
    fields: dict[str, str]
    sender_pid: int | None


class NotifyListener:
    """Receives sd_notify datagrams on a socket the test owns.

    Use as a context manager: the socket is bound and read on entry, closed
    and (for a path) removed on exit.

    Args:
        address: Where to bind, in ``NOTIFY_SOCKET`` form: a path, or an
            abstract name with a leading ``@``.
    """

    def __init__(self, address: str) -> None:
        self.address = address
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._messages: list[Message] = []
        self._arrived = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="notify-listener", daemon=True)

    @classmethod
    def abstract(cls) -> NotifyListener:
        """Makes a listener on a fresh name in the abstract namespace."""
        return cls(f"@geoingest-test-{uuid.uuid4().hex}")

    @classmethod
    def at_path(cls, path: Path) -> NotifyListener:
        """Makes a listener on a socket file; the path must fit in 107 bytes."""
        return cls(str(path))

    def environ(self, **extra: str) -> dict[str, str]:
        """Returns the variables that point a notifier at this listener."""
        return {"NOTIFY_SOCKET": self.address, **extra}

    def __enter__(self) -> NotifyListener:
        bind_to = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        self._socket.bind(bind_to)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self._socket.settimeout(_POLL_S)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._socket.close()
        if not self.address.startswith("@"):
            Path(self.address).unlink(missing_ok=True)

    @property
    def messages(self) -> list[Message]:
        """Every message received so far, oldest first."""
        with self._arrived:
            return list(self._messages)

    def with_key(self, key: str) -> list[Message]:
        """Returns the messages received so far that set ``key``."""
        return [message for message in self.messages if key in message.fields]

    def wait_for(self, key: str, count: int = 1, timeout_s: float = 5.0) -> list[Message]:
        """Waits until ``count`` messages that set ``key`` have arrived.

        Returns:
            Those messages, oldest first.

        Raises:
            TimeoutError: Fewer had arrived when ``timeout_s`` passed.
        """
        deadline = time.monotonic() + timeout_s
        with self._arrived:
            while len(found := self._matching(key)) < count:
                left_s = deadline - time.monotonic()
                if left_s <= 0:
                    raise TimeoutError(f"{len(found)} of {count} {key} messages arrived")
                self._arrived.wait(left_s)
        return found

    def _matching(self, key: str) -> list[Message]:
        return [message for message in self._messages if key in message.fields]

    def _read(self) -> None:
        space = socket.CMSG_SPACE(_UCRED.size)
        while not self._stop.is_set():
            try:
                data, ancillary, _, _ = self._socket.recvmsg(_MAX_DATAGRAM, space)
            except TimeoutError:
                continue
            message = Message(time.monotonic(), _parse(data), _sender_pid(ancillary))
            with self._arrived:
                self._messages.append(message)
                self._arrived.notify_all()


def _parse(data: bytes) -> dict[str, str]:
    fields = {}
    for line in data.decode().splitlines():
        key, _, value = line.partition("=")
        fields[key] = value
    return fields


def _sender_pid(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid, _, _ = _UCRED.unpack(data[: _UCRED.size])
            return int(pid)
    return None
