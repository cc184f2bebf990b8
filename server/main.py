"""The inference server's ASGI application: ``uvicorn mlserving.server.main:app``.

Settings come from the environment (MODEL_PATH, MODEL_NAME, ...; see docs/server.md). The model
is verified and loaded at startup; until then, or if that fails, the server is live but not ready.
"""

import gc
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from mlserving.server.config import ServerConfig
from mlserving.server.hotpath import HotPathDispatcher
from mlserving.server.logs import setup_logging
from mlserving.server.model_state import ModelState
from mlserving.server.protocols import health, seed, v2
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("mlserving.server")


def _error(request: Request, status: int, message: str, field: str | None) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None)
    return JSONResponse({"error": message, "field": field, "status": status, "request_id": request_id},
                        status_code=status)


def create_app(config: ServerConfig | None = None) -> HotPathDispatcher:
    config = config if config is not None else ServerConfig.from_env()
    setup_logging(config.log_level)
    state = ModelState(config)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        state.load()
        # Everything alive now (FastAPI, pydantic, numpy, the model: tens of thousands of objects)
        # lives as long as the process; leaving it out of the cyclic collector stops the periodic
        # full collections that would otherwise stall the event loop for milliseconds under load.
        gc.freeze()
        yield
        state.close()

    api = FastAPI(title="mlserving inference server", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    api.include_router(health.router(state))
    api.include_router(v2.router(state))

    @api.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 404:
            return _error(request, 404, f"path: {request.url.path} does not exist", "path")
        if exc.status_code == 405:
            return _error(request, 405, f"method: {request.method} is not allowed on {request.url.path}", "method")
        return _error(request, exc.status_code, str(exc.detail), None)

    @api.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        field = ".".join(str(p) for p in first.get("loc", ()))
        return _error(request, 422, f"{field}: {first.get('msg', 'invalid')}", field or None)

    app = HotPathDispatcher(
        api, state,
        routes={"/predict": seed.predict, "/predict/": seed.predict,
                "/predict/batch": seed.predict_batch, "/predict/batch/": seed.predict_batch},
        v2_infer=v2.infer,
    )
    app.state = state  # for tests and embedding
    return app


app = create_app()
