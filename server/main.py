"""The inference server's ASGI application: ``uvicorn mlserving.server.main:app``.

Settings come from the environment (MODEL_PATH, MODEL_NAME, ...; see docs/server.md). The model
is verified and loaded at startup; until then, or if that fails, the server is live but not ready.
"""

import asyncio
import gc
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from mlserving.server import openapi
from mlserving.server.config import ServerConfig
from mlserving.server.hotpath import HotPathDispatcher
from mlserving.server.logs import clip, setup_logging
from mlserving.server.metrics_port import start_metrics_server
from mlserving.server.model_state import ModelState
from mlserving.server.protocols import drift, health, seed, v2
from mlserving.server.protocols.errors import error_response
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("mlserving.server")


def create_app(config: ServerConfig | None = None) -> HotPathDispatcher:
    config = config if config is not None else ServerConfig.from_env()
    setup_logging(config.log_level)
    state = ModelState(config)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        state.load()
        metrics_server = None
        if config.metrics_port:
            metrics_server = start_metrics_server(config.host, config.metrics_port, state.metrics.render,
                                                  "METRICS_PORT")
        # Everything alive now (FastAPI, pydantic, numpy, the model: tens of thousands of objects)
        # lives as long as the process; leaving it out of the cyclic collector stops the periodic
        # full collections that would otherwise stall the event loop for milliseconds under load.
        gc.freeze()
        drift_task = None
        if state.drift is not None:
            drift_task = asyncio.create_task(state.drift.run(config.drift_interval_s), name="drift")
        yield
        if drift_task is not None:
            drift_task.cancel()
        if metrics_server is not None:
            metrics_server.stop()
        state.close()

    api = FastAPI(title="mlserving inference server", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    api.include_router(health.router(state))
    api.include_router(v2.router(state))
    api.include_router(drift.router(state))

    openapi_doc: dict = {}

    @api.get("/openapi.json", include_in_schema=False)
    async def openapi_json():
        if not openapi_doc:
            openapi_doc.update(openapi.document(api, v2.package_version()))
        return openapi_doc

    @api.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 404:
            return error_response(request, 404, f"path: {clip(request.url.path, 200)} does not exist", "path")
        if exc.status_code == 405:
            # Starlette names the allowed methods in exc.headers (Allow), as HTTP requires.
            return error_response(request, 405, f"method: {request.method} is not allowed on "
                                  f"{clip(request.url.path, 200)}", "method", exc.headers)
        return error_response(request, exc.status_code, str(exc.detail), None, exc.headers)

    @api.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        field = ".".join(str(p) for p in first.get("loc", ()))
        return error_response(request, 422, f"{field}: {first.get('msg', 'invalid')}", field or None)

    app = HotPathDispatcher(
        api, state,
        routes={"/predict": seed.predict, "/predict/": seed.predict,
                "/predict/batch": seed.predict_batch, "/predict/batch/": seed.predict_batch},
        v2_infer=v2.infer,
    )
    app.state = state  # for tests and embedding
    return app


app = create_app()
