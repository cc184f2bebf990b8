"""CPU cost per request of the limited HTTP protocol (server/http_protocol.py) against uvicorn's own
httptools protocol, in the same process, A B A B.

Each request goes through the real protocol object: bytes fed to ``data_received``, the ASGI app
(a minimal one answering 200 with a small JSON body) run on the event loop, the answer written to
a transport that only counts bytes. What differs between A and B is only the protocol class, so
the difference is what the limits cost per request; a share of the server's ~60 µs per request
(16,000 rps on one core, docs/performance.md) is printed next to it.

Run: .venv/bin/python bench/http_protocol_overhead.py [--requests 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from mlserving.server.http_protocol import LimitedHttpToolsProtocol
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

REQUEST = (b"POST /predict HTTP/1.1\r\nhost: 127.0.0.1:8000\r\ncontent-type: application/json\r\n"
           b"content-length: 40\r\n\r\n" + b'{"features": [1, 2, 3, 4, 5, 6, 7, 8, 9]}'[:40])
ANSWER = b'{"is_fraud": false, "fraud_probability": 0.1}'
SERVER_US_PER_REQUEST = 1e6 / 16_000


async def app(scope, receive, send):
    await receive()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]})
    await send({"type": "http.response.body", "body": ANSWER})


class CountingTransport(asyncio.Transport):
    def __init__(self):
        super().__init__()
        self.written = 0
        self.closing = False

    def write(self, data) -> None:
        self.written += len(data)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def get_extra_info(self, name, default=None):
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def cpu_per_request(protocol_class, requests: int) -> float:
    config = Config(app, lifespan="off", access_log=False, log_level="warning")
    config.load()
    state = ServerState()
    protocol = protocol_class(config=config, server_state=state, app_state={}, _loop=asyncio.get_running_loop())
    transport = CountingTransport()
    protocol.connection_made(transport)
    started = time.process_time()
    for _ in range(requests):
        protocol.data_received(REQUEST)
        while state.tasks:  # the request's ASGI task runs to its end
            await asyncio.sleep(0)
    spent = time.process_time() - started
    assert transport.written > requests * len(ANSWER) and not transport.closing
    protocol.connection_lost(None)
    return spent / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sides = {"uvicorn": HttpToolsProtocol, "limited": LimitedHttpToolsProtocol}
    results: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(args.rounds):
        for name, cls in sides.items():  # A B A B
            results[name].append(asyncio.run(cpu_per_request(cls, args.requests)))
    median = {name: sorted(v)[len(v) // 2] for name, v in results.items()}
    for name, values in results.items():
        print(f"{name:8s} CPU µs/request: median {median[name]:.2f} (rounds: {', '.join(f'{v:.2f}' for v in values)})")
    added = median["limited"] - median["uvicorn"]
    print(f"added by the limits: {added:+.2f} µs/request = {added / SERVER_US_PER_REQUEST:+.1%} of the server's "
          f"{SERVER_US_PER_REQUEST:.1f} µs per request; throughput ratio ≈ "
          f"{SERVER_US_PER_REQUEST / (SERVER_US_PER_REQUEST + added):.3f}")


if __name__ == "__main__":
    main()
