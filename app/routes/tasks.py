"""Asynchronous predictions: queue an image for the Celery workers (202 + task id), then poll its result."""

from __future__ import annotations

import base64
import time
import uuid

from fastapi import APIRouter, Depends, HTTPException, Query, UploadFile

from ..auth import Caller, require_scope
from ..deps import get_state, read_upload, redis_client, request_id
from ..predicting import UploadError, validate_upload
from ..ratelimit import rate_limited
from ..state import ServiceState
from ..schemas import PredictionOut, TaskOut
from . import PREDICT_ASYNC, RESULT
from .predict import LEAF_PHOTO, VARIANT_HEADER, pick_variant

router = APIRouter(tags=["async"])
TASK_KEY = "plant-disease:task:{}"


def _redis(state: ServiceState):
    if not state.settings.redis_url:
        raise HTTPException(503, "async predictions need a Redis queue: set PD_REDIS_URL")
    return redis_client(state.settings.redis_url)


@router.post(
    "/predict/async",
    status_code=202,
    response_model=TaskOut,
    responses=PREDICT_ASYNC,
)
def predict_async(
    file: UploadFile = LEAF_PHOTO,
    explain: bool = Query(False),
    top_k: int | None = Query(None, ge=1, le=38),
    variant: str | None = VARIANT_HEADER,
    caller: Caller = Depends(require_scope("predict")),
    _: Caller = Depends(rate_limited),
    state: ServiceState = Depends(get_state),
) -> TaskOut:
    "Queue one photo; the answer comes from `GET /result/{task_id}`. Bad images are refused here, not queued."
    from ..worker import predict_task  # imported on use: app.worker reads the settings when it is imported

    s = state.settings
    data = read_upload(file, s.max_upload_bytes)
    try:
        validate_upload(data, s.max_upload_bytes, s.max_pixels)
    except UploadError as e:
        raise HTTPException(e.status, e.detail) from None
    v = pick_variant(state, caller, variant)
    r, task_id = _redis(state), uuid.uuid4().hex
    try:
        r.set(TASK_KEY.format(task_id), caller.key, ex=s.result_ttl_s)
        predict_task.apply_async(
            kwargs={
                "image_b64": base64.b64encode(data).decode(),
                "filename": file.filename,
                "variant": v.name,
                "caller": caller.key,
                "request_id": request_id(),
                "explain": explain,
                "top_k": top_k,
                "submitted": time.time(),
            },
            task_id=task_id,
            retry=True,
            retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
        )
    except Exception as e:
        raise HTTPException(
            503, f"the prediction queue is unavailable ({type(e).__name__}); retry later or use POST /predict"
        ) from None
    return TaskOut(task_id=task_id, status="pending", result_url=f"/result/{task_id}")


@router.get("/result/{task_id}", response_model=TaskOut, responses=RESULT)
def result(
    task_id: str,
    caller: Caller = Depends(require_scope("predict")),
    state: ServiceState = Depends(get_state),
    wait_s: float = Query(0, ge=0, le=10, description="wait up to this long for the answer"),
) -> TaskOut:
    "The task's state: pending, done (the same body as /predict) or failed (with the reason)."
    from celery.result import AsyncResult
    from ..worker import celery_app

    r = _redis(state)
    try:
        owner = r.get(TASK_KEY.format(task_id))
    except Exception as e:
        raise HTTPException(503, f"the result store is unavailable ({type(e).__name__})") from None
    if owner is None or (owner.decode() != caller.key and "admin" not in caller.scopes):
        raise HTTPException(404, f"no task {task_id} for this caller (unknown, expired or someone else's)")
    res = AsyncResult(task_id, app=celery_app)
    deadline = time.monotonic() + wait_s
    while not res.ready() and time.monotonic() < deadline:
        time.sleep(0.05)
    if res.state == "SUCCESS":
        out = res.result
        if "error" in out:
            return TaskOut(task_id=task_id, status="failed", error=out["error"], status_code=out["status_code"])
        return TaskOut(task_id=task_id, status="done", result=PredictionOut(**out))
    if res.state == "FAILURE":
        return TaskOut(
            task_id=task_id, status="failed", error=f"{type(res.result).__name__}: {res.result}", status_code=500
        )
    return TaskOut(task_id=task_id, status="pending", result_url=f"/result/{task_id}")
