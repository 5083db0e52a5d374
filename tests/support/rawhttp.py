"""HTTP/1.1 written byte for byte: clients refuse to send headers that are not ASCII text; attackers do not."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from urllib.parse import urlsplit


async def raw_request(
    url: str, method: str, path: str, *, headers: Mapping[str, bytes | str], body: bytes = b""
) -> tuple[int, bytes]:
    """(status, body) of one request on its own connection; header values go out as given (str as UTF-8)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    reader, writer = await asyncio.open_connection(host, port)
    try:
        lines = [f"{method} {path} HTTP/1.1".encode(), f"Host: {host}:{port}".encode()]
        lines += [name.encode() + b": " + (v if isinstance(v, bytes) else v.encode()) for name, v in headers.items()]
        lines += [f"Content-Length: {len(body)}".encode(), b"Connection: close"]
        writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
    head, _, rest = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), rest
