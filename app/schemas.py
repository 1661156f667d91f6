"""Request and response bodies of the HTTP API (they make `/openapi.json`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


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
    scopes: list[Literal["predict", "admin"]] = ["predict"]
    ttl_s: int = Field(3600, ge=60, le=30 * 24 * 3600)


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
