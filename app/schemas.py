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
    class_id: int
    label: str = Field(examples=["Tomato___Early_blight"])
    crop: str = Field(examples=["Tomato"])
    disease: str = Field(examples=["Early blight"])
    healthy: bool
    confidence: float = Field(ge=0, le=1)
    top_k: list[TopK]
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
