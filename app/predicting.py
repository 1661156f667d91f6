"""One prediction, as the API and the Celery workers both make it: validate the bytes, predict (and explain),
time it, log it. Upload problems become `UploadError`s carrying the HTTP status to answer with."""

from __future__ import annotations

import base64
import hashlib
import io
import math
import time

from plant_disease.data import check_image
from plant_disease.inference import InvalidImageError

from .modelset import Variant
from .observability import INFERENCE_SECONDS, PREDICTIONS

FORMATS = ("JPEG", "PNG", "WEBP")


class UploadError(ValueError):
    "An upload the service refuses; `status` is the HTTP status to answer with."

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


def upload_error(reason: str) -> UploadError:
    "Map an image check's reason to a status: 415 wrong type, 413 too many pixels, 422 unreadable."
    if reason.startswith("unsupported format"):
        return UploadError(415, f"not a JPEG, PNG or WebP image: {reason}")
    if reason.startswith("too many pixels"):
        return UploadError(413, f"image too large: {reason}")
    if reason == "zero-byte file":
        return UploadError(400, "empty upload: the file has no bytes")
    if "cannot identify image file" in reason:
        return UploadError(415, "not a JPEG, PNG or WebP image: the bytes are not an image format this service reads")
    return UploadError(422, f"corrupt or unreadable image: {reason}")


def validate_upload(data: bytes, max_bytes: int, max_pixels: int) -> str:
    "Check size, type (from the bytes, not the name) and pixel count; return the image's sha256."
    if not data:
        raise UploadError(400, "empty upload: the file has no bytes")
    if len(data) > max_bytes:
        raise UploadError(413, f"upload of {len(data):,} bytes exceeds the limit of {max_bytes:,}")
    chk = check_image(data, formats=FORMATS, max_pixels=max_pixels)
    if not chk.ok:
        raise upload_error(chk.reason)
    return chk.sha256


def _png_base64(image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


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
        raise upload_error(str(e)) from None
    seconds = time.perf_counter() - t
    INFERENCE_SECONDS.labels(variant.name).observe(seconds)
    PREDICTIONS.labels(variant.name, pred.label).inc()
    return answer_body(variant, pred, filename, sha, seconds, overlay, top_k)


def _finite(x: float | None) -> float | None:
    "A score as JSON can carry it: None for none, NaN or infinity."
    return None if x is None or not math.isfinite(x) else float(x)


def answer_body(
    variant: Variant, pred, filename: str | None, sha256: str, seconds: float, overlay=None, top_k: int | None = None
) -> dict:
    """The answer for one image (a `Prediction`), as /predict, /predict/batch and the workers return it. An image that
    does not look like a leaf the model knows is answered `unknown` (label "unknown", no class, `advice`), with the
    model's guesses still in `top_k`."""
    return {
        "filename": filename,
        "image_sha256": sha256,
        "class_id": pred.class_id,
        "label": pred.label,
        "crop": pred.crop,
        "disease": pred.disease,
        "healthy": pred.healthy,
        "confidence": pred.confidence,
        "top_k": pred.top_k[: top_k or len(pred.top_k)],
        "unknown": bool(getattr(pred, "unknown", False)),
        "ood_score": _finite(getattr(pred, "ood_score", None)),
        "domain_score": _finite(getattr(pred, "domain_score", None)),
        "advice": getattr(pred, "advice", None),
        "variant": variant.name,
        "model_name": variant.model_name,
        "model_version": variant.model_version,
        "inference_ms": round(1000 * seconds, 2),
        "heatmap_png_base64": _png_base64(overlay) if overlay is not None else None,
    }


def log_record(
    body: dict | None,
    *,
    request_id: str,
    caller: str,
    route: str,
    latency_ms: float,
    variant: Variant,
    filename: str | None = None,
    sha256: str | None = None,
    error: str | None = None,
) -> dict:
    "The prediction log's row for one answer (or one refused image)."
    body = body or {}
    return {
        "request_id": request_id,
        "filename": (filename or body.get("filename") or None),  # cut to size by the log
        "image_sha256": sha256 or body.get("image_sha256"),
        "class_id": body.get("class_id"),
        "label": body.get("label"),
        "confidence": body.get("confidence"),
        "top_k": body.get("top_k"),
        "latency_ms": latency_ms,
        "model_name": variant.model_name,
        "model_version": variant.model_version,
        "variant": variant.name,
        "caller": caller,
        "route": route,
        "status": "error" if error else "ok",
        "error": error,
    }
