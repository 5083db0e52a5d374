"""Free loopback ports for services the tests start themselves."""

from __future__ import annotations

import socket


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago.

    The port is released before returning, so another process may grab it before the caller binds it;
    callers that start an external binary on it should retry on "address already in use"
    (``tests.support.prometheus`` does). In-process servers should bind port 0 directly instead.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
