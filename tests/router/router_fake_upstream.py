"""A stand-in upstream for the router's tests: a tiny ASGI app on uvicorn.

Fake on purpose, for what the real inference server cannot be made to do on demand: answer 5xx
(header x-fake-status), hang past the router's timeout (x-fake-delay seconds), and report exactly
which requests and headers reached it (GET /fake/stats, asked directly, never through the router).
With --fail-every N every Nth request is answered 500 (a partly broken model version).
Run: python router_fake_upstream.py --name NAME --port PORT [--fail-every N]
"""

import argparse
import asyncio
import json

import uvicorn


class FakeUpstream:
    def __init__(self, name: str, fail_every: int = 0):
        self.name = name
        self.fail_every = fail_every
        self.count = 0
        self.last_headers: dict[str, str] = {}
        self.request_ids: list[str] = []
        self.bodies_seen = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        if scope["path"] == "/fake/stats":
            return await self._send(send, 200, {"name": self.name, "count": self.count,
                                                "request_ids": self.request_ids, "last_headers": self.last_headers})
        self.count += 1
        self.last_headers = headers
        self.request_ids.append(headers.get("x-request-id", ""))
        if "x-fake-delay" in headers:
            await asyncio.sleep(float(headers["x-fake-delay"]))
        status = int(headers.get("x-fake-status", "200"))
        if self.fail_every and self.count % self.fail_every == 0:
            status = 500
        await self._send(status=status, send=send, payload={
            "served_by": self.name, "path": scope["path"], "query": scope["query_string"].decode(),
            "method": scope["method"], "body": body.decode("latin-1")})

    @staticmethod
    async def _send(send, status, payload):
        body = json.dumps(payload).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--fail-every", type=int, default=0)
    args = parser.parse_args()
    uvicorn.run(FakeUpstream(args.name, args.fail_every), host="127.0.0.1", port=args.port, log_level="warning",
                access_log=False, lifespan="off")
