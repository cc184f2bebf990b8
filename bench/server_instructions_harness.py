"""One server in-process behind its uvicorn HTTP protocol, fed raw requests; run by server_instructions.py.

The request bytes go into the protocol's ``data_received`` and the answer comes out of a stand-in
transport's ``write``: uvicorn's parser and response cycle, our protocol, dispatcher, validation,
model call, metrics and encoding all run; sockets and the kernel do not. Between ``MARKER.warm``
and ``MARKER.done`` it serves exactly ``REQUESTS`` requests, waiting for ``MARKER.go`` first, so
that callgrind counts the instructions of those requests only.

    MODEL_PATH=DIR MARKER=/tmp/m REQUESTS=2000 python server_instructions_harness.py v2|predict [ceiling]
"""

import asyncio
import gc
import json
import os
import sys
import time
from pathlib import Path

import uvicorn
from uvicorn.server import ServerState

ROW = [0.1 * i for i in range(20)]
BODIES = {
    "v2": ("/v2/models/{name}/infer", {"inputs": [{"name": "input-0", "shape": [1, 20], "datatype": "FP32",
                                                  "data": ROW}], "outputs": [{"name": "predict_proba"}]}),
    "predict": ("/predict", {"features": ROW}),
}


class Transport:
    """The connection as the protocol sees it; every write completes the awaited answer."""

    def __init__(self):
        self.answer = None

    def write(self, data):
        if self.answer is not None and not self.answer.done():
            self.answer.set_result(bytes(data))

    def writelines(self, chunks):
        self.write(b"".join(chunks))

    def is_closing(self):
        return False

    def close(self):
        raise SystemExit("the server closed the connection")

    def get_extra_info(self, name, default=None):
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def pause_reading(self):
        pass

    def resume_reading(self):
        pass


def server_config(ceiling: bool) -> uvicorn.Config:
    if ceiling:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import server_ceiling_app

        return uvicorn.Config(server_ceiling_app.app, http="httptools", access_log=False, log_config=None,
                              lifespan="off")
    from mlserving.server.http_protocol import UVICORN_SETTINGS
    from mlserving.server.main import create_app

    app = create_app()
    app.state.load()
    return uvicorn.Config(app, access_log=False, log_config=None, lifespan="off", **UVICORN_SETTINGS)


async def main(endpoint: str, ceiling: bool) -> None:
    config = server_config(ceiling)
    config.load()
    gc.collect()
    gc.freeze()  # as the server's lifespan does
    name = json.loads((Path(os.environ["MODEL_PATH"]) / "metadata.json").read_text()).get("name", "fraud")
    path, document = BODIES[endpoint]
    body = json.dumps(document).encode()
    request = (f"POST {path.format(name=name)} HTTP/1.1\r\nhost: 127.0.0.1:8000\r\n"
               f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n").encode() + body
    protocol = config.http_protocol_class(config=config, server_state=ServerState(), app_state={})
    transport = Transport()
    protocol.connection_made(transport)
    loop = asyncio.get_running_loop()

    async def one() -> bytes:
        transport.answer = loop.create_future()
        protocol.data_received(request)
        return await transport.answer

    first = await one()
    if not first.startswith(b"HTTP/1.1 200"):
        raise SystemExit(f"not a 200 answer: {first[:300]!r}")
    for _ in range(300):
        await one()
    marker = os.environ["MARKER"]
    Path(marker + ".warm").touch()
    # Blocking on purpose: no event-loop work (timers) between the toggles and the requests.
    while not os.path.exists(marker + ".go"):
        time.sleep(0.1)  # noqa: ASYNC251
    for _ in range(int(os.environ["REQUESTS"])):
        await one()
    Path(marker + ".done").touch()
    while not os.path.exists(marker + ".end"):
        time.sleep(0.1)  # noqa: ASYNC251


if __name__ == "__main__":
    import uvloop

    uvloop.run(main(sys.argv[1], len(sys.argv) > 2 and sys.argv[2] == "ceiling"))
