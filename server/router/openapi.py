"""The router's OpenAPI document, served at GET /openapi.json: the paths it forwards (their bodies
are the variants' API, see the server's own /openapi.json) and the ones it answers itself, with the
router's error bodies. tests/router/test_router_openapi.py checks it against the paths served."""

from __future__ import annotations

ROUTER_ERROR = {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "string"}, "variant": {"type": ["string", "null"]},
                   "version": {"type": "string"}, "requestId": {"type": "string"},
                   "tried": {"type": "array", "items": {"type": "string"}},
                   "upstreamStatus": {"type": "integer"}, "upstreamBody": {"type": "string"},
                   "limit": {"type": "object"}, "retryAfterSeconds": {"type": "integer"}},
}
ANY_JSON = {"application/json": {"schema": {}}}
ERROR_JSON = {"application/json": {"schema": {"$ref": "#/components/schemas/RouterError"}}}
ROUTER_STATUSES = {
    "401": "bearer token missing or invalid (with --auth-tokens-dir)",
    "413": "request body over --max-body-bytes",
    "429": "over the rate limit (with --rate-limit-rps)",
    "502": "the variant could not be reached, answered 5xx or an invalid answer",
    "503": "no routing table yet, or auth not configured",
    "504": "the variant did not answer within --timeout",
}


def _forwarded(summary: str) -> dict:
    responses = {"default": {"description": "the variant's answer (its own API)", "content": ANY_JSON}}
    responses.update({code: {"description": d, "content": ERROR_JSON} for code, d in ROUTER_STATUSES.items()})
    return {"summary": summary, "requestBody": {"required": False, "content": ANY_JSON}, "responses": responses}


def _own(summary: str, content_type: str = "application/json") -> dict:
    return {"get": {"summary": summary, "responses": {
        "200": {"description": "ok", "content": {content_type: {"schema": {}}}},
        "503": {"description": "not ready", "content": ANY_JSON}}}}


V2_ANY = {"name": "rest", "in": "path", "required": True, "schema": {"type": "string"},
          "description": "anything under /v2/, forwarded as is"}

DOCUMENT = {
    "openapi": "3.1.0",
    "info": {"title": "mlserving A/B router", "version": "1"},
    "paths": {
        "/predict": {"post": _forwarded("Forwarded to one variant by weight or sticky header")},
        "/predict/batch": {"post": _forwarded("Forwarded to one variant by weight or sticky header")},
        "/v2/{rest}": {method: {**_forwarded("Forwarded to one variant (Open Inference Protocol v2)"),
                                "parameters": [V2_ANY]} for method in ("get", "post")},
        "/health/live": _own("The router process is up (no auth)"),
        "/health/ready": _own("A valid routing table is in force (no auth)"),
        "/metrics": _own("Prometheus metrics (also on --metrics-port)", "text/plain"),
        "/openapi.json": _own("This document"),
    },
    "components": {
        "schemas": {"RouterError": ROUTER_ERROR},
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                       "description": "required with --auth-tokens-dir; health stays open"}},
    },
}
