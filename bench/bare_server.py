"""The ceiling: a bare aiohttp handler that reads the webhook body and answers 200, in one process.

Same framework, same event loop policy and the same JSON answer shape as autoremedy's webhook, without
authentication, validation or storage. Usage: python bench/bare_server.py PORT
"""

from __future__ import annotations

import sys

from aiohttp import web


async def receive(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"stored": 0, "duplicates": 0})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def main() -> None:
    port = int(sys.argv[1])
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_post("/api/v1/alerts", receive)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
