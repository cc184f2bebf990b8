"""Health, model metadata and metrics: ``/health`` (the seed's), ``/health/live``,
``/health/ready``, ``/model`` and ``/metrics``."""

import os

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from mlserving.server.protocols.errors import error_response


def router(state) -> APIRouter:
    api = APIRouter()

    def readiness(request: Request, words=("ready", "not_ready")) -> JSONResponse:
        model = state.model
        body = {
            "status": words[0] if model is not None else words[1],
            "model_loaded": model is not None,
            "model_name": model.name if model is not None else state.config.model_name,
            "model_version": model.version if model is not None else None,
            "request_id": request.state.request_id,
        }
        if model is None:
            body["reason"] = state.not_ready_reason
        return JSONResponse(body, status_code=200 if model is not None else 503)

    @api.get("/health")
    async def health(request: Request):
        return readiness(request, ("healthy", "unhealthy"))  # the seed's words

    @api.get("/health/live")
    async def live(request: Request):
        return {"status": "alive", "request_id": request.state.request_id}

    @api.get("/health/ready")
    async def ready(request: Request):
        return readiness(request)

    @api.get("/model")
    async def model_metadata(request: Request):
        model = state.model
        if model is None:
            return error_response(request, 503, f"model not ready: {state.not_ready_reason}", None)
        return {
            "name": model.name,
            "version": model.version,
            "format": model.format,
            "model_path": str(state.config.model_path),
            "loaded_at": model.loaded_at,
            "dispatch": state.dispatch_mode,
            "pid": os.getpid(),
            "call_us": round(model.call_us, 1),
            "batching": None if state.batcher is None else {
                "max_batch_size": state.batcher.max_batch_size,
                "max_batch_time_ms": state.batcher.max_batch_time_s * 1000,
                "model_calls": state.batcher.batches,
                "rows": state.batcher.batched_rows,
            },
            "n_features": model.n_features,
            "feature_names": model.feature_names,
            "task": model.task.describe(),
            "metadata": model.metadata,
            "request_id": request.state.request_id,
        }

    @api.get("/metrics")
    async def metrics():
        body, content_type = state.metrics.render()
        return Response(body, media_type=content_type)

    return api
