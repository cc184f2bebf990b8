"""The router's HTTP/1.1 client against real sockets: raw asyncio servers that answer exactly
the bytes a test needs (chunked bodies, close-delimited bodies, idle connections closed)."""

import asyncio

import pytest
from mlserving.server.router.http_pool import BadAnswer, ConnectFailed, UpstreamPool


class RawServer:
    """Reads one request head at a time and answers with ``answer(n)`` bytes; counts connections."""

    def __init__(self, answer, close_after=False):
        self.answer = answer
        self.close_after = close_after
        self.connections = 0
        self.requests: list[bytes] = []

    async def handle(self, reader, writer):
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length) if length else b""
                self.requests.append(head + body)
                writer.write(self.answer(len(self.requests)))
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    async def __aenter__(self):
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc):
        self.server.close()


def fixed(body: bytes, extra: bytes = b""):
    return lambda n: b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s" % (len(body), extra, body)


def run(coro):
    return asyncio.run(coro)


def test_keep_alive_reuses_one_connection_and_sends_a_well_formed_request():
    async def main():
        async with RawServer(fixed(b'{"ok": 1}', b"x-up: yes\r\n")) as srv:
            pool = UpstreamPool(srv.url)
            for _ in range(20):
                status, headers, body = await pool.request(
                    "POST", b"/predict?a=1", [(b"content-type", b"application/json")], b'{"x": 1}')
                assert (status, body) == (200, b'{"ok": 1}')
                assert (b"x-up", b"yes") in headers
            assert srv.connections == 1
            first = srv.requests[0]
            assert first.startswith(b"POST /predict?a=1 HTTP/1.1\r\nhost: 127.0.0.1:")
            assert b"content-type: application/json\r\n" in first and b"content-length: 8\r\n" in first
            assert first.endswith(b'\r\n\r\n{"x": 1}')
            pool.close()
    run(main())


def test_chunked_answer_is_reassembled():
    chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n"

    async def main():
        async with RawServer(lambda n: chunked) as srv:
            pool = UpstreamPool(srv.url)
            assert (await pool.request("GET", b"/v2/models/m", [], b""))[2] == b"abcdefg"
            assert (await pool.request("GET", b"/v2/models/m", [], b""))[2] == b"abcdefg"
            assert srv.connections == 1
    run(main())


def test_body_delimited_by_close_and_connection_close_are_handled():
    async def main():
        async with RawServer(lambda n: b"HTTP/1.1 200 OK\r\n\r\nuntil-close", close_after=True) as srv:
            pool = UpstreamPool(srv.url)
            assert (await pool.request("GET", b"/", [], b""))[2] == b"until-close"
            assert (await pool.request("GET", b"/", [], b""))[2] == b"until-close"
            assert srv.connections == 2
        answer = fixed(b"bye", b"connection: close\r\n")
        async with RawServer(answer, close_after=True) as srv:
            pool = UpstreamPool(srv.url)
            for _ in range(3):
                assert (await pool.request("GET", b"/", [], b""))[2] == b"bye"
            assert srv.connections == 3
    run(main())


def test_head_answer_has_no_body():
    async def main():
        async with RawServer(lambda n: b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n") as srv:
            status, headers, body = await UpstreamPool(srv.url).request("HEAD", b"/v2", [], b"")
            assert (status, body) == (200, b"") and (b"content-length", b"100") in headers
    run(main())


def test_idle_connection_closed_by_the_upstream_is_replaced_transparently():
    async def main():
        async with RawServer(fixed(b"ok"), close_after=True) as srv:  # closes without saying so
            pool = UpstreamPool(srv.url)
            for _ in range(5):
                assert (await pool.request("POST", b"/predict", [], b"{}"))[2] == b"ok"
                await asyncio.sleep(0.02)  # let the close arrive, or not: both must work
            assert srv.connections == 5
    run(main())


def test_connection_refused_and_garbage_are_reported():
    async def main():
        async with RawServer(fixed(b"")) as srv:
            url = srv.url
        with pytest.raises(ConnectFailed, match="cannot connect to 127.0.0.1"):
            await UpstreamPool(url).request("GET", b"/", [], b"")
        async with RawServer(lambda n: b"NOT HTTP AT ALL\r\n\r\n") as srv:
            with pytest.raises(BadAnswer, match="invalid HTTP answer"):
                await UpstreamPool(srv.url).request("GET", b"/", [], b"")
    run(main())


def test_connect_that_hangs_fails_within_the_connect_timeout():
    import socket
    import time

    # A listener that never accepts, its accept queue already full: further SYNs go unanswered.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        fillers.append(s)
    time.sleep(0.1)

    async def main():
        pool = UpstreamPool(f"http://127.0.0.1:{port}", connect_timeout_s=0.3)
        started = time.monotonic()
        with pytest.raises(ConnectFailed, match="no answer within 0.3 s"):
            await pool.request("GET", b"/", [], b"")
        return time.monotonic() - started

    try:
        assert run(main()) < 1.0
    finally:
        for s in fillers:
            s.close()
        listener.close()
