"""Answers computed on the users' devices (the web page's offline mode), sent when the connection returns:
`POST /predictions/device` records one in the prediction log (`origin` device), exactly once per idempotency key,
its photo kept under the photo store's rules (`plant_disease.device_answers`)."""

from __future__ import annotations

import logging
from uuid import UUID
from datetime import datetime, timezone

from fastapi import APIRouter, Depends, Form, HTTPException, Response, UploadFile
from plant_disease.device_answers import DeviceAnswerError, device_log_row
from plant_disease.serving import registry_tags
from pydantic import ValidationError

from ..auth import Caller, require_scope
from ..deps import IDEMPOTENCY_KEY, get_state, read_upload
from ..predicting import UploadError, validate_upload
from ..ratelimit import rate_limited
from ..schemas import DeviceAnswerIn, DeviceAnswerOut
from ..state import ServiceState
from . import DEVICE_ANSWER
from .predict import LEAF_PHOTO

log = logging.getLogger(__name__)
router = APIRouter(tags=["predict"])

ANSWER = Form(
    ...,
    min_length=2,
    description="the answer the page computed (JSON: `DeviceAnswerIn`, the shape of `PredictionOut` with "
    "`diagnosed_at`)",
    json_schema_extra={"contentMediaType": "application/json"},
)


def model_classes(state: ServiceState, name: str, version: str) -> list[str] | None:
    """The classes of model `name` version `version` when a variant serves it; None for one this service no longer
    serves but has had (the registry holds it, or the prediction log has its answers); 409 for any other."""
    for v in state.models.variants.values():
        if (v.model_name, str(v.model_version)) == (name, version):
            return list(v.predictor.classes)
    # a phone's queue sends many answers of one model: the registry and the log are asked once per model
    if (name, version) in state.retired_models:
        return None
    if registry_tags(state.settings.registry_uri(), name, version) is not None:
        state.retired_models.add((name, version))
        return None
    try:
        if state.predlog.has_answers_of(name, version):
            state.retired_models.add((name, version))
            return None
    except Exception as e:  # the database is down: the answer came from a model this service published
        log.warning("device answer: the prediction log cannot be read (%s): model %s v%s taken", e, name, version)
        return None
    raise HTTPException(
        409,
        f"model {name} version {version} is not one this service has: it no longer serves it, and neither the "
        "registry nor the prediction log knows it. The answer stays on the device until an operator restores the "
        "model; the user may discard it there",
    )


def _answer(text: str) -> DeviceAnswerIn:
    try:
        return DeviceAnswerIn.model_validate_json(text)
    except ValidationError as e:
        issues = [{**i, "loc": ["body", "answer", *i["loc"]]} for i in e.errors(include_url=False)]
        for i in issues:
            i.pop("ctx", None)
            i.pop("input", None)
        raise HTTPException(422, issues) from None


@router.post("/predictions/device", status_code=201, response_model=DeviceAnswerOut, responses=DEVICE_ANSWER)
def record_device_answer(
    response: Response,
    file: UploadFile = LEAF_PHOTO,
    answer: str = ANSWER,
    key: UUID = IDEMPOTENCY_KEY,
    caller: Caller = Depends(require_scope("predict")),
    _: Caller = Depends(rate_limited),
    state: ServiceState = Depends(get_state),
) -> DeviceAnswerOut:
    """Record an answer the web page computed on the user's device, without a network, with its photo: in the
    prediction log with `origin` device and the device's time, its `Idempotency-Key` (a UUID the page made) as its id
    and `request_id`, which verdicts on it name. Sent again under the same key (a dropped connection, a reload), it
    is recorded once: 200 with `duplicate` true."""
    received, key = datetime.now(timezone.utc), str(key)
    body = _answer(answer)
    s = state.settings
    data = read_upload(file, s.max_upload_bytes)
    try:
        sha = validate_upload(data, s.max_upload_bytes, s.max_pixels)
    except UploadError as e:
        raise HTTPException(e.status, e.detail) from None
    try:
        earlier = state.predlog.get(key)
    except Exception:  # the database is down: the log skips a repeated key when it replays its spool
        earlier = None
    if earlier is not None:
        if earlier.get("image_sha256") != sha:
            raise HTTPException(409, f"Idempotency-Key {key} was used for another photo: make a new key per answer")
        response.status_code = 200
        return DeviceAnswerOut(
            id=key, request_id=key, image_sha256=sha, created_at=earlier["created_at"].isoformat(), duplicate=True
        )
    classes = model_classes(state, body.model_name, body.model_version)
    try:
        row = device_log_row(
            body.model_dump(), key=key, caller=caller.key, sha256=sha, received_at=received, classes=classes
        )
    except DeviceAnswerError as e:
        raise HTTPException(422, e.detail) from None
    state.keep_photo(data, sha)
    state.predlog.record(**row)
    return DeviceAnswerOut(
        id=key, request_id=key, image_sha256=sha, created_at=row["created_at"].isoformat(), duplicate=False
    )
