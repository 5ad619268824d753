"""HTTP attempts with one deadline and no redirects, on the standard library's urllib.

`Deadline(seconds).opener()` gives an opener (environment proxies included) whose connections are shut
down when the deadline passes, whatever the server does, and which follows no redirect: a 3xx reaches
the caller as an `HTTPError`, so credentials never travel to a URL the user did not configure.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import urllib.parse
import urllib.request


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    default_port = {"http": 80, "https": 443}.get(parts.scheme.lower())
    try:
        port = parts.port or default_port
    except ValueError:  # a malformed port: an origin of its own
        port = None
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


def same_origin(first: str, second: str) -> bool:
    """Same scheme, host and port (the default port when none is written)."""
    return _origin(first) == _origin(second)


def display_url(url: str) -> str:
    """The URL without user:password and query, fit for an error message."""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # the 3xx reaches the caller as an HTTPError


class Deadline:
    """One deadline for a whole HTTP attempt. A socket timeout bounds each read, not their sum (a
    server sending a byte a second never trips it), so at the deadline a timer shuts the attempt's
    sockets down, which ends any read in progress; `expired` tells that failure from others."""

    def __init__(self, seconds: float):
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)

    def watch(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shut(sock)

    def opener(self) -> urllib.request.OpenerDirector:
        """urllib's opener (proxies from the environment included) whose connections obey the deadline
        and which follows no redirect."""
        deadline = self

        class HTTPConnection(http.client.HTTPConnection):
            def connect(self) -> None:
                super().connect()
                deadline.watch(self.sock)

        class HTTPSConnection(http.client.HTTPSConnection):
            def connect(self) -> None:
                super().connect()
                deadline.watch(self.sock)

        class HTTPHandler(urllib.request.HTTPHandler):
            def http_open(self, req):
                return self.do_open(HTTPConnection, req)

        class HTTPSHandler(urllib.request.HTTPSHandler):
            def https_open(self, req):
                return self.do_open(HTTPSConnection, req, context=self._context)

        return urllib.request.build_opener(HTTPHandler, HTTPSHandler, _NoRedirect)


def _shut(sock: socket.socket) -> None:
    # the plain socket's shutdown, also for TLS sockets: it wakes a read blocked in another thread
    with contextlib.suppress(OSError):  # already closed
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
