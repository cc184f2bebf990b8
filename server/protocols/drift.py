"""GET /drift: the drift window's per-feature and prediction PSI (server/drift.py)."""

from fastapi import APIRouter


def router(state) -> APIRouter:
    api = APIRouter()

    @api.get("/drift")
    async def drift_report():
        monitor = state.drift
        if monitor is None:
            return {"enabled": False, "reason": state.drift_status}
        return monitor.report()

    return api
