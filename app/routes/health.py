"""Liveness, readiness and what is being served."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from ..auth import require_scope
from ..deps import get_runtime, redis_client
from ..runtime import Runtime
from ..schemas import Health, Ready
from . import MODELS

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
def health() -> Health:
    "Liveness: the process answers (no auth)."
    return Health(status="ok")


def queue_status(rt: Runtime) -> dict:
    "Is the async queue's Redis reachable, and how deep is the queue?"
    if not rt.settings.redis_url:
        return {"configured": False}
    try:
        return {
            "configured": True,
            "reachable": True,
            "depth": int(redis_client(rt.settings.redis_url).llen(rt.settings.queue)),
        }
    except Exception as e:
        return {"configured": True, "reachable": False, "error": f"{type(e).__name__}: {e}"}


@router.get("/ready", response_model=Ready, responses={503: {"model": Ready}})
def ready(request: Request):
    "Readiness: models loaded and warmed up, prediction-log database reachable (no auth)."
    rt = getattr(request.app.state, "runtime", None)
    if rt is None:
        return JSONResponse(Ready(ready=False, models=[], prediction_log={}, queue={}).model_dump(), 503)
    db_ok = rt.predlog.ping() and rt.migrate()
    body = Ready(
        ready=db_ok,
        models=[v.describe() for v in rt.models.variants.values()],
        prediction_log={"reachable": db_ok, "spooled": rt.predlog.spooled},
        queue=queue_status(rt),
    )
    return JSONResponse(body.model_dump(), 200 if db_ok else 503)


@router.get("/models", dependencies=[Depends(require_scope("predict"))], responses=MODELS)
def models(rt: Runtime = Depends(get_runtime)) -> list[dict]:
    "The served variants: model name and version, backbone, input size, traffic weight."
    return [v.describe() for v in rt.models.variants.values()]
