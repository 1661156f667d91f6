"""Agronomists' verdicts on the answers (`POST /feedback`, scope `review`) and the field accuracy they measure
(`GET /feedback/stats`, admin): the service's side of the field loop (`plant_disease.feedback`, `plant_disease.field`)."""

from __future__ import annotations

import logging
from uuid import UUID
from datetime import datetime, timedelta, timezone
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from plant_disease.feedback import FeedbackError, feedback_row, find_answers
from plant_disease.field import field_summary
from plant_disease.serving import lab_accuracy

from ..auth import Caller, require_scope
from ..deps import OPTIONAL_IDEMPOTENCY_KEY, get_state
from ..ratelimit import rate_limited
from ..state import ServiceState
from ..schemas import FeedbackIn, FeedbackOut
from . import FEEDBACK, FEEDBACK_STATS

log = logging.getLogger(__name__)
router = APIRouter(tags=["feedback"])

STATUS = {  # every FeedbackError code, the status it is answered with
    "unknown_request": 404,
    "ambiguous": 400,
    "unknown_class": 400,
    "missing_label": 400,
    "bad_verdict": 400,
    "bad_sha256": 400,
    "too_long": 400,
}


def served_classes(state: ServiceState, model_name: str | None = None, model_version: str | None = None) -> list[str]:
    "The classes of the variant serving `model_name` version `model_version`; else those of every served variant."
    variants = state.models.variants.values()
    same = [v for v in variants if (v.model_name, str(v.model_version)) == (model_name, str(model_version))]
    return sorted({c for v in (same or variants) for c in v.predictor.classes})


def _answer(state: ServiceState, body: FeedbackIn) -> dict | None:
    "The answer judged (a prediction-log row); None when the log cannot be read (the verdict is then kept unchecked)."
    for attempt in range(2):
        try:
            return find_answers(state.predlog, body.request_id, body.image_sha256).iloc[-1].to_dict()
        except FeedbackError as e:
            if e.code != "unknown_request":
                raise
            if not state.predlog.healthy or state.predlog.spooled:
                return None  # the answer may be waiting in the spool
            if attempt == 0 and state.predlog.flush(2.0):
                continue  # the answer may still be queued: written now, look again
            raise
        except Exception as e:  # the database is down
            log.warning("feedback: the prediction log cannot be read (%s): verdict kept unchecked", type(e).__name__)
            return None


def _recorded(state: ServiceState, key: str) -> dict | None:
    "The verdict written under idempotency `key`, or None (none yet, or the database cannot be read: see SpooledLog)."
    try:
        state.feedback.flush(2.0)  # a verdict sent again at once may still be queued
        return state.feedback.get(key)
    except Exception:
        return None


@router.post("/feedback", status_code=201, response_model=FeedbackOut, responses=FEEDBACK)
def give_feedback(
    body: FeedbackIn,
    response: Response,
    key: UUID = OPTIONAL_IDEMPOTENCY_KEY,  # (not `UUID | None`: the schema then says a UUID or no header, never null)
    caller: Caller = Depends(require_scope("review")),
    _: Caller = Depends(rate_limited),
    state: ServiceState = Depends(get_state),
) -> FeedbackOut:
    """Record a reviewer's verdict on an answer: `confirmed`, `corrected` to one of the model's classes, `not_a_leaf`
    or `unsure`. Every verdict is kept; the latest one on a photo counts. The caller is recorded as the reviewer.
    With an `Idempotency-Key` (the web page's queue sends one), a verdict sent again is recorded once."""
    key = str(key) if key else None
    if key and (earlier := _recorded(state, key)) is not None:
        if (earlier["request_id"], earlier["verdict"]) != (body.request_id, body.verdict) and not (
            earlier["verdict"] == "confirmed" and body.verdict == "corrected"  # a correction to the answer's own class
        ):
            raise HTTPException(409, f"Idempotency-Key {key} was used for another verdict: make a new key per verdict")
        response.status_code = 200
        fields = ("request_id", "image_sha256", "verdict", "label", "reviewer")
        return FeedbackOut(id=key, **{k: earlier[k] for k in fields}, checked=True, duplicate=True)
    try:
        answer = _answer(state, body)
        checked = answer is not None
        if answer is None:  # unchecked: what can be checked without the log is
            answer = {"request_id": body.request_id, "image_sha256": body.image_sha256, "label": None}
            classes = served_classes(state)
        else:
            classes = served_classes(state, answer.get("model_name"), answer.get("model_version"))
        row = feedback_row(answer, body.verdict, body.label, classes, caller.key, body.note, source="api")
    except FeedbackError as e:
        raise HTTPException(STATUS[e.code], e.detail) from None
    fid = state.feedback.record(**row, id=key)
    if not checked:
        response.status_code = 202
    return FeedbackOut(
        id=fid, **{k: row[k] for k in ("request_id", "image_sha256", "verdict", "label", "reviewer")}, checked=checked
    )


@router.get("/feedback/stats", responses=FEEDBACK_STATS, dependencies=[Depends(require_scope("admin"))])
def feedback_stats(
    window_s: int = Query(
        90 * 24 * 3600, ge=1, le=366 * 24 * 3600, description="answers of the last this many seconds"
    ),
    freq: Literal["D", "W", "MS"] = Query("W", description="the period of `over_time`: day, week or month"),
    state: ServiceState = Depends(get_state),
) -> dict:
    """Field accuracy: the answers of the window judged by the reviewers' latest verdict on each photo, overall, per
    model version (beside its lab test accuracy), per variant, per class and over time, each with `n` and a 95% Wilson
    interval; verdict counts, abstentions and non-leaf photos answered as leaves are counted apart."""
    until = datetime.now(timezone.utc)
    try:
        pred = state.predlog.frame(since=until - timedelta(seconds=window_s), until=until)
        fb = state.feedback.frame()
    except Exception as e:
        raise HTTPException(
            503,
            f"the prediction log database is unavailable ({type(e).__name__}); {state.feedback.spooled} verdicts and "
            f"{state.predlog.spooled} answers are spooled and will be written when it returns",
        ) from None
    uri = state.settings.registry_uri()
    versions = {(v.model_name, str(v.model_version)) for v in state.models.variants.values()}
    versions |= set(zip(pred.model_name.astype(str), pred.model_version.astype(str))) if len(pred) else set()
    lab = {ver: a for name, ver in versions if (a := lab_accuracy(uri, name, ver)) is not None}
    return {
        **field_summary(pred, fb, lab, freq),
        "window_s": window_s,
        "spooled": {"answers": state.predlog.spooled, "verdicts": state.feedback.spooled},
    }
