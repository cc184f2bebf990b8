"""A misbehaving upstream for the router's hostile-client tests, written on raw sockets because no
HTTP framework can be made to send what these send. The request's path picks the misbehaviour:

  /v2/big?mb=N   a valid 200 with an N MB body
  /v2/endless    a chunked 200 whose body never ends
  /v2/status?line=S  the status line ``HTTP/1.1 S X``, then a small body
  /v2/interim    ``100 Continue``, then a 200
  /v2/hang       reads the request and never answers
  anything else       a small 200

Run: python router_raw_upstream.py --port PORT
"""

import argparse
import asyncio
from urllib.parse import parse_qs, urlsplit

SMALL = b'{"ok": true}'
CHUNK = b"x" * 65536


def answer(status_line: bytes, body: bytes) -> bytes:
    return (b"HTTP/1.1 " + status_line + b"\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


async def read_request(reader) -> bytes | None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    if length:
        await reader.readexactly(length)
    return head.split(b" ", 2)[1]


async def handle(reader, writer):
    try:
        while True:
            target = await read_request(reader)
            parts = urlsplit(target.decode())
            query = parse_qs(parts.query)
            path = parts.path
            if path == "/v2/big":
                size = int(query["mb"][0]) << 20
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                             + str(size).encode() + b"\r\n\r\n")
                for _ in range(size // len(CHUNK)):
                    writer.write(CHUNK)
                    await writer.drain()
            elif path == "/v2/endless":
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n")
                while True:
                    writer.write(b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK))
                    await writer.drain()
            elif path == "/v2/status":
                writer.write(answer(query["line"][0].encode(), SMALL))
            elif path == "/v2/interim":
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" + answer(b"200 OK", SMALL))
            elif path == "/v2/hang":
                await asyncio.sleep(3600)
            else:
                writer.write(answer(b"200 OK", SMALL))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(main(parser.parse_args().port))
