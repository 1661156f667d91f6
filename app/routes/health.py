"""Liveness, readiness and what is being served."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from ..auth import require_scope
from ..deps import get_state, redis_client
from ..state import ServiceState
from ..schemas import Health, Ready
from . import MODELS

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
def health() -> Health:
    "Liveness: the process answers (no auth)."
    return Health(status="ok")


def queue_status(state: ServiceState) -> dict:
    "Is the async queue's Redis reachable, and how deep is the queue?"
    if not state.settings.redis_url:
        return {"configured": False}
    try:
        return {
            "configured": True,
            "reachable": True,
            "depth": int(redis_client(state.settings.redis_url).llen(state.settings.queue)),
        }
    except Exception as e:
        return {"configured": True, "reachable": False, "error": f"{type(e).__name__}: {e}"}


@router.get("/ready", response_model=Ready, responses={503: {"model": Ready}})
def ready(request: Request):
    "Readiness: models loaded and warmed up, prediction-log database reachable (no auth)."
    state = getattr(request.app.state, "service", None)
    if state is None:
        return JSONResponse(Ready(ready=False, models=[], prediction_log={}, queue={}).model_dump(), 503)
    db_ok = state.predlog.ping() and state.migrate()
    body = Ready(
        ready=db_ok,
        models=[v.describe() for v in state.models.variants.values()],
        prediction_log={"reachable": db_ok, "spooled": state.predlog.spooled},
        queue=queue_status(state),
    )
    return JSONResponse(body.model_dump(), 200 if db_ok else 503)


@router.get("/models", dependencies=[Depends(require_scope("predict"))], responses=MODELS)
def models(state: ServiceState = Depends(get_state)) -> list[dict]:
    "The served variants: model name and version, backbone, input size, traffic weight."
    return [v.describe() for v in state.models.variants.values()]
