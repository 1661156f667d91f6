"""Request and response bodies of the HTTP API (they make `/openapi.json`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, Field


class TopK(BaseModel):
    class_id: int
    label: str
    crop: str
    disease: str
    probability: float


class PredictionOut(BaseModel):
    "The answer for one image."

    request_id: str
    filename: str | None = None
    image_sha256: str
    class_id: int | None = Field(description="null when the answer is unknown")
    label: str = Field(examples=["Tomato___Early_blight"], description='the class, or "unknown" (see `unknown`)')
    crop: str | None = Field(examples=["Tomato"], description="null when the answer is unknown")
    disease: str | None = Field(examples=["Early blight"], description="null when the answer is unknown")
    healthy: bool | None = Field(description="null when the answer is unknown")
    confidence: float = Field(
        ge=0, le=1, description="the top class's probability (for an unknown answer: the best guess's)"
    )
    top_k: list[TopK] = Field(description="the model's best guesses, also when the answer is unknown")
    unknown: bool = Field(
        False, description="the photo does not look like a leaf the model knows: retake it (see `advice`)"
    )
    ood_score: float | None = Field(
        None,
        description="the calibrated-probability score the abstention rule compares with "
        "its threshold (null: the model has no rule)",
    )
    domain_score: float | None = Field(
        None,
        description="how much the photo looks like the training photos (higher: more "
        "familiar; null: the model has no domain model)",
    )
    feature_score: float | None = Field(
        None,
        description="how close the photo's pooled features are to a class the model learned (higher: closer; "
        "null: the model has no feature check)",
    )
    advice: str | None = Field(None, description="what to do when the answer is unknown")
    variant: str
    model_name: str
    model_version: str
    latency_ms: float = Field(description="time spent in the service for this request")
    inference_ms: float = Field(description="validation, resize and forward pass (and Grad-CAM) of this image")
    queued_ms: float | None = Field(None, description="async only: time the task waited in the queue")
    heatmap_png_base64: str | None = Field(None, description="Grad-CAM overlay (PNG) when ?explain=true")


class BatchItem(BaseModel):
    filename: str | None = None
    ok: bool
    error: str | None = None
    status_code: int | None = None
    prediction: PredictionOut | None = None


class BatchOut(BaseModel):
    request_id: str
    variant: str
    n: int
    n_ok: int
    latency_ms: float
    results: list[BatchItem]


class TaskOut(BaseModel):
    task_id: str
    status: Literal["pending", "done", "failed"]
    result_url: str | None = None
    result: PredictionOut | None = None
    error: str | None = None
    status_code: int | None = Field(None, description="failed: the HTTP status the synchronous call would have given")


class TokenIn(BaseModel):
    subject: str = Field(min_length=1, max_length=128, pattern=r"^[\w.@:-]+$")
    scopes: list[Literal["predict", "review", "admin"]] = ["predict"]
    ttl_s: int = Field(3600, ge=60, le=30 * 24 * 3600)


class FeedbackIn(BaseModel):
    "A reviewer's verdict on one answer."

    request_id: str = Field(min_length=1, max_length=64, description="the `request_id` of the answer judged")
    image_sha256: str | None = Field(
        None, pattern=r"^[0-9a-f]{64}$", description="the photo's SHA-256 (the answer's `image_sha256`): required for "
        "the photos of a batch, which share one request id",
    )  # fmt: skip
    verdict: Literal["confirmed", "corrected", "not_a_leaf", "unsure"] = Field(
        description="confirmed: the answer is right; corrected: the photo shows `label`; not_a_leaf: no leaf at all"
    )
    label: str | None = Field(
        None, max_length=128, examples=["Tomato___Late_blight"],
        description="with `corrected`: the class the photo shows, one of the model's classes (folder names)",
    )  # fmt: skip
    note: str | None = Field(None, max_length=2000, description="what the reviewer saw")


class FeedbackOut(BaseModel):
    "A recorded verdict."

    id: str
    request_id: str
    image_sha256: str | None
    verdict: str
    label: str | None = Field(
        description="the class the photo shows (confirmed: the answer's; corrected: the reviewer's)"
    )
    reviewer: str
    checked: bool = Field(
        description="false (HTTP 202): the prediction log could not be read, so the verdict was kept without checking "
        "it against its answer; it is written when the database returns and counts once its answer is found"
    )
    duplicate: bool = Field(
        False, description="true (HTTP 200): a verdict with this `Idempotency-Key` was recorded before; nothing new"
    )


class GuessIn(BaseModel):
    "One of the device's best guesses."

    class_id: int = Field(ge=0, le=10_000)
    label: str = Field(min_length=1, max_length=128)
    probability: float = Field(ge=0, le=1)
    crop: str | None = Field(None, max_length=128)
    disease: str | None = Field(None, max_length=128)


class DeviceAnswerIn(BaseModel):
    "An answer the web page computed on the user's device (offline mode), as `POST /predictions/device` takes it."

    label: str = Field(min_length=1, max_length=128, description='the class, or "unknown"')
    class_id: int | None = Field(None, ge=0, le=10_000, description="null when the answer is unknown")
    confidence: float = Field(ge=0, le=1)
    top_k: list[GuessIn] = Field(max_length=38)
    unknown: bool = False
    ood_score: float | None = None
    domain_score: float | None = None
    feature_score: float | None = None
    variant: str = Field(min_length=1, max_length=32)
    model_name: str = Field(min_length=1, max_length=128)
    model_version: str = Field(min_length=1, max_length=64)
    model_hash: str | None = Field(None, max_length=64, description="the browser model's content hash")
    diagnosed_at: AwareDatetime = Field(description="when the device made the answer (its clock; never after receipt)")
    latency_ms: float | None = Field(None, ge=0, description="the device's time for the diagnosis")
    filename: str | None = Field(None, max_length=255)


class DeviceAnswerOut(BaseModel):
    "A device's answer in the prediction log."

    id: str = Field(description="the idempotency key: the answer's id and `request_id` (what a verdict on it names)")
    request_id: str
    image_sha256: str
    origin: Literal["device"] = "device"
    created_at: str = Field(description="when the device made the answer (UTC), as recorded")
    duplicate: bool = Field(description="true (HTTP 200): this key was recorded before; nothing new was written")


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_at: int


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    ready: bool
    models: list[dict]
    prediction_log: dict
    queue: dict


# -- error answers: every refusal is `{"detail": ...}` (FastAPI's HTTPException and validation-error bodies)


class ErrorBody(BaseModel):
    "The body of an error answer."

    detail: str = Field(description="what went wrong, in words", examples=["token lacks scope 'admin'"])


class ValidationIssue(BaseModel):
    "One reason a request failed validation (FastAPI's format)."

    loc: list[str | int] = Field(description="where: body, query, header or path, then the field")
    msg: str
    type: str
    input: Any = None
    ctx: dict | None = None


class ValidationErrorBody(BaseModel):
    "422: a parameter or the body does not match this schema (a list of issues), or why an image is unreadable."

    detail: list[ValidationIssue] | str


STATUS_HEADERS = {
    401: {"WWW-Authenticate": {"description": "`Bearer`", "required": True, "schema": {"type": "string"}}},
    429: {
        "Retry-After": {
            "description": "seconds until the limit allows another request",
            "required": True,
            "schema": {"type": "integer", "minimum": 1},
        }
    },
}
ERROR_DESCRIPTIONS = {
    400: "the body cannot be parsed",
    401: "missing (when auth is required), forged or expired bearer token",
    403: "the token lacks the scope this operation needs",
    404: "not found",
    409: "conflict",
    413: "request body or upload too large",
    415: "unsupported media type",
    422: "a parameter or the body does not match this schema",
    429: "the caller's rate limit is used up: retry after `Retry-After` seconds",
    503: "the service is starting (models not loaded yet) or a backing store is unavailable",
}


def error_responses(*codes: int, **descriptions: str) -> dict[int | str, dict]:
    """The OpenAPI `responses=` of a route for its error statuses `codes`, each with its body model (and headers:
    401 WWW-Authenticate, 429 Retry-After); `descriptions` override the general ones, keyed `e400`, `e503`, ..."""
    out: dict[int | str, dict] = {}
    for code in codes:
        r = {
            "model": ValidationErrorBody if code == 422 else ErrorBody,
            "description": descriptions.get(f"e{code}", ERROR_DESCRIPTIONS[code]),
        }
        if code in STATUS_HEADERS:
            r["headers"] = STATUS_HEADERS[code]
        out[code] = r
    return out
