"""One prediction, as the API and the Celery workers both make it, on the library's serving core
(`plant_disease.serving`): check the bytes, predict (and explain), time it, log it. What is the service's own: an
upload problem's code becomes an `UploadError` with the HTTP status to answer with, and Prometheus counts."""

from __future__ import annotations

import hashlib
import time

from plant_disease.images import ImageProblem, formats_words
from plant_disease.inference import InvalidImageError
from plant_disease.serving import UploadProblem, answer_dict, check_upload, log_row, problem_of

from .modelset import Variant
from .observability import INFERENCE_SECONDS, PREDICTIONS

P = ImageProblem
STATUS = {  # every problem code, the HTTP status it is answered with
    P.EMPTY: 400,
    P.TOO_LARGE: 413,
    P.TOO_MANY_PIXELS: 413,
    P.NOT_AN_IMAGE: 415,
    P.UNSUPPORTED_FORMAT: 415,
    P.TRUNCATED: 422,
    P.CORRUPT: 422,
    P.TOO_SMALL: 422,
    P.COLOUR_MODE: 422,
    P.UNREADABLE: 422,
    P.BAD_INPUT: 422,
}
NOT_ACCEPTED = f"not a {formats_words()} image"
DETAIL = {  # the response's detail per code ({detail}: the check's technical reason); default: corrupt or unreadable
    P.EMPTY: "empty upload: the file has no bytes",
    P.TOO_LARGE: "{detail}",
    P.TOO_MANY_PIXELS: "image too large: {detail}",
    P.NOT_AN_IMAGE: NOT_ACCEPTED + ": the bytes are not an image format this service reads",
    P.UNSUPPORTED_FORMAT: NOT_ACCEPTED + ": {detail}",
    P.TOO_SMALL: "image too small: {detail}",
    P.COLOUR_MODE: "unsupported image: {detail}",
}


class UploadError(ValueError):
    "An upload the service refuses; `status` is the HTTP status to answer with, `code` the problem."

    def __init__(self, status: int, detail: str, code: ImageProblem | None = None):
        super().__init__(detail)
        self.status, self.detail, self.code = status, detail, code


def upload_error(problem: UploadProblem | InvalidImageError) -> UploadError:
    "The service's answer to an upload problem: its status and detail, from the problem's code."
    p = problem_of(problem)
    detail = DETAIL.get(p.code, "corrupt or unreadable image: {detail}").format(detail=p.detail)
    return UploadError(STATUS[p.code], detail, p.code)


def validate_upload(data: bytes, max_bytes: int, max_pixels: int) -> str:
    "Check size, type (from the bytes, not the name) and pixel count; return the image's sha256."
    try:
        return check_upload(data, max_bytes, max_pixels)
    except UploadProblem as e:
        raise upload_error(e) from None


def predict_bytes(
    variant: Variant, data: bytes, filename: str | None = None, explain: bool = False, top_k: int | None = None
) -> dict:
    "Answer for one uploaded image with `variant`; raises `UploadError` for bad bytes."
    p = variant.predictor
    sha = hashlib.sha256(data).hexdigest()
    t = time.perf_counter()
    try:
        if explain:
            pred, overlay = p.explain(data)
        else:
            pred, overlay = p.predict(data, top_k=top_k), None
    except InvalidImageError as e:
        raise upload_error(e) from None
    seconds = time.perf_counter() - t
    INFERENCE_SECONDS.labels(variant.name).observe(seconds)
    PREDICTIONS.labels(variant.name, pred.label).inc()
    return answer_body(variant, pred, filename, sha, seconds, overlay, top_k)


def answer_body(
    variant: Variant, pred, filename: str | None, sha256: str, seconds: float, overlay=None, top_k: int | None = None
) -> dict:
    "The core's answer dict (`serving.answer_dict`) for `variant`."
    served = {"variant": variant.name, "model_name": variant.model_name, "model_version": variant.model_version}
    return answer_dict(
        pred, **served, filename=filename, sha256=sha256, inference_s=seconds, overlay=overlay, top_k=top_k
    )


def log_record(body: dict | None, *, variant: Variant, **fields) -> dict:
    "The core's log row (`serving.log_row`) for `variant`: `request_id`, `caller`, `route`, `latency_ms`, ..."
    return log_row(
        body, variant=variant.name, model_name=variant.model_name, model_version=variant.model_version, **fields
    )
