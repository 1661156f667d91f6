"""Synchronous predictions: one image, or several in one request."""

from __future__ import annotations

import hashlib
import time

import numpy as np
from plant_disease.inference import InvalidImageError

from fastapi import APIRouter, Depends, File, Header, HTTPException, Query, UploadFile

from ..auth import Caller, require_scope
from ..deps import get_state, read_upload, request_id
from ..observability import INFERENCE_SECONDS, PREDICTIONS
from ..modelset import UnknownVariantError, Variant
from ..predicting import UploadError, answer_body, log_record, predict_bytes, upload_error
from ..ratelimit import rate_limited
from ..state import ServiceState
from ..schemas import BatchItem, BatchOut, PredictionOut
from . import PREDICT, PREDICT_BATCH

router = APIRouter(tags=["predict"])

VARIANT_HEADER = Header(
    None, alias="X-Model-Variant", min_length=1, description="force a model variant (A/B testing)"
)  # its names: see app.main (they are the deployment's)
BYTES = {"type": "string", "format": "binary", "contentMediaType": "application/octet-stream"}  # a file, as 3.0 says
LEAF_PHOTO = File(..., description="a leaf photo: JPEG, PNG or WebP", json_schema_extra={**BYTES, "minLength": 1})


def pick_variant(state: ServiceState, caller: Caller, forced: str | None) -> Variant:
    "The caller's sticky A/B variant, or the forced one (400 if unknown)."
    try:
        return state.models.choose(caller.key, forced)
    except UnknownVariantError as e:
        raise HTTPException(400, str(e)) from None


@router.post("/predict", response_model=PredictionOut, responses=PREDICT)
def predict(
    file: UploadFile = LEAF_PHOTO,
    explain: bool = Query(False, description="add a Grad-CAM overlay (PNG, base64)"),
    top_k: int | None = Query(None, ge=1, le=38),
    variant: str | None = VARIANT_HEADER,
    caller: Caller = Depends(require_scope("predict")),
    _: Caller = Depends(rate_limited),
    state: ServiceState = Depends(get_state),
) -> PredictionOut:
    "Diagnose one leaf photo."
    t = time.perf_counter()
    v = pick_variant(state, caller, variant)
    rid = request_id()
    data = read_upload(file, state.settings.max_upload_bytes)
    try:
        body = predict_bytes(v, data, file.filename, explain=explain, top_k=top_k)
    except UploadError as e:
        state.predlog.record(
            **log_record(
                None,
                request_id=rid,
                caller=caller.key,
                route="predict",
                variant=v,
                latency_ms=round(1000 * (time.perf_counter() - t), 2),
                filename=file.filename,
                error=e.detail,
            )
        )
        raise HTTPException(e.status, e.detail) from None
    state.keep_photo(data, body["image_sha256"])
    ms = round(1000 * (time.perf_counter() - t), 2)
    state.predlog.record(
        **log_record(body, request_id=rid, caller=caller.key, route="predict", latency_ms=ms, variant=v)
    )
    return PredictionOut(**body, request_id=rid, latency_ms=ms)


@router.post("/predict/batch", response_model=BatchOut, responses=PREDICT_BATCH)
def predict_batch(
    files: list[UploadFile] = File(
        ..., min_length=1, description="several leaf photos (at most PD_MAX_BATCH)", json_schema_extra={"items": BYTES}
    ),
    top_k: int | None = Query(None, ge=1, le=38),
    variant: str | None = VARIANT_HEADER,
    caller: Caller = Depends(require_scope("predict")),
    _: Caller = Depends(rate_limited),
    state: ServiceState = Depends(get_state),
) -> BatchOut:
    "Diagnose several photos in one model call; a bad image fails alone, with its reason."
    t = time.perf_counter()
    s = state.settings
    if len(files) > s.max_batch:
        raise HTTPException(422, f"{len(files)} files: at most {s.max_batch} per batch")  # the schema's maxItems
    v = pick_variant(state, caller, variant)
    rid = request_id()
    items: list[BatchItem | None] = []
    good: list[tuple[int, np.ndarray, str]] = []
    kept: dict[int, bytes] = {}
    total, ti = 0, time.perf_counter()
    for i, f in enumerate(files):
        data = read_upload(f, s.max_upload_bytes)
        total += len(data)
        if total > s.max_upload_bytes:
            raise HTTPException(413, f"batch exceeds the limit of {s.max_upload_bytes:,} bytes")
        try:
            good.append((i, v.predictor.preprocess(data).numpy(), hashlib.sha256(data).hexdigest()))
            items.append(None)
            kept[i] = data
        except InvalidImageError as e:  # checked and decoded once, here; the model call below gets pixels
            err = upload_error(e)
            items.append(BatchItem(filename=f.filename, ok=False, error=err.detail, status_code=err.status))
    preds = v.predictor.predict_batch([x for _, x, _ in good], top_k=top_k) if good else []
    per_image_s = (time.perf_counter() - ti) / max(1, len(good))
    ms = round(1000 * (time.perf_counter() - t), 2)
    for (i, _, sha), p in zip(good, preds):
        state.keep_photo(kept[i], sha)
        INFERENCE_SECONDS.labels(v.name).observe(per_image_s)
        PREDICTIONS.labels(v.name, p.label).inc()
        body = answer_body(v, p, files[i].filename, sha, per_image_s)
        items[i] = BatchItem(
            filename=files[i].filename, ok=True, prediction=PredictionOut(**body, request_id=rid, latency_ms=ms)
        )
    for i, item in enumerate(items):
        state.predlog.record(
            **log_record(
                item.prediction.model_dump() if item.ok else None,
                request_id=rid,
                caller=caller.key,
                route="batch",
                latency_ms=ms,
                variant=v,
                filename=files[i].filename,
                error=item.error,
            )
        )
    return BatchOut(request_id=rid, variant=v.name, n=len(items), n_ok=len(good), latency_ms=ms, results=items)
