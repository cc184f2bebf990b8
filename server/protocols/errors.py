"""Error answers of the FastAPI side (health, metadata), in the body format of server/logs.py."""

from fastapi import Request
from fastapi.responses import JSONResponse
from mlserving.server.logs import error_payload
from mlserving.server.tracecontext import trace_id_in


def error_response(request: Request, status: int, message: str, field: str | None,
                   headers=None) -> JSONResponse:
    return JSONResponse(error_payload(status, message, field, getattr(request.state, "request_id", None),
                                      trace_id_in(request.scope["headers"])), status_code=status, headers=headers)
