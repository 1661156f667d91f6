"""Service settings, read from the environment (prefix `PD_`) or a `.env` file; every bad value is named at start-up.
The settings the service shares with the dashboard (prediction log, registry, model cache, drift window) are the
library's `plant_disease.serving.ServingSettings`, which `Settings` extends."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from plant_disease.runtimes import RUNTIMES
from plant_disease.serving import ServingSettings, project_dir


class VariantSpec(BaseModel):
    "One model served side by side with the others: a registry URI (`models:/name@alias`) or a local model folder."

    name: str = Field("A", pattern=r"^[A-Za-z0-9_-]{1,32}$")
    source: str = "models:/plant-disease@production"
    weight: float = Field(1.0, ge=0)
    runtime: str | None = None  # overrides PD_RUNTIME for this variant


RUNTIME_CHOICES = ("auto", *RUNTIMES)


class Settings(ServingSettings):
    """Everything the API and its workers read; `PD_VARIANTS` is a JSON list of `VariantSpec`s. Inherited: `tracking_uri`
    (default: MLFLOW_TRACKING_URI, else the project's embedded mlflow.db), `model_cache`, `spool_dir`, `drift_window`
    (/stats, /metrics: each variant's last drift_window answers against its validation profile)."""

    model_config = SettingsConfigDict(env_prefix="PD_", env_file=".env", extra="ignore")

    # models
    variants: list[VariantSpec] = [VariantSpec()]
    warmup: bool = True
    top_k: int = Field(5, ge=1, le=38)
    # model engine: auto = the fastest exported format (timed at start-up) whose measured test accuracy is within
    # max_accuracy_drop of the Keras model (default: the limit the export used); or a name, used as is
    runtime: str = "auto"
    max_accuracy_drop: float | None = Field(None, ge=0, le=1)
    # micro-batching of concurrent /predict requests (1: off): at most batch_wait_ms for callers already in flight
    batch_max: int = Field(32, ge=1, le=256)
    batch_wait_ms: float = Field(5.0, ge=0, le=1000)
    # uploads
    max_upload_bytes: int = Field(10 * 2**20, ge=1024)  # per request; nginx allows a little more (deploy/nginx)
    max_pixels: int = Field(40_000_000, ge=64)
    max_batch: int = Field(16, ge=1, le=256)
    # prediction log (spool_dir inherited)
    database_url: str = Field(default_factory=lambda: f"sqlite:///{project_dir() / 'predictions.db'}")
    # async workers and shared rate-limit storage
    redis_url: str | None = None
    queue: str = "predict"
    result_ttl_s: int = Field(3600, ge=60)
    # auth
    require_auth: bool = True
    jwt_algorithm: Literal["HS256", "RS256"] = "HS256"
    jwt_secret: SecretStr | None = None  # HS256
    jwt_public_key: str | None = None  # RS256: PEM text or a path to it
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    # rate limits (the `limits` notation: "120/minute", "10/second;1000/hour")
    rate_limit: str = "120/minute"
    anonymous_rate_limit: str = "30/minute"
    admin_rate_limit: str = "600/minute"

    @field_validator("variants", mode="before")
    @classmethod
    def _json(cls, v):
        return json.loads(v) if isinstance(v, str) else v

    @field_validator("rate_limit", "anonymous_rate_limit", "admin_rate_limit")
    @classmethod
    def _limit(cls, v: str) -> str:
        from limits import parse_many

        try:
            parse_many(v)
        except ValueError as e:
            raise ValueError(f"not a rate limit like '120/minute': {v!r} ({e})") from None
        return v

    @model_validator(mode="after")
    def _check(self):
        for r in [self.runtime] + [v.runtime for v in self.variants if v.runtime]:
            if r not in RUNTIME_CHOICES:
                raise ValueError(f"unknown runtime {r!r}: choose one of {', '.join(RUNTIME_CHOICES)}")
        names = [v.name for v in self.variants]
        if not names:
            raise ValueError("PD_VARIANTS is empty: give at least one model")
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must be unique, got {names}")
        if sum(v.weight for v in self.variants) <= 0:
            raise ValueError("variant weights must not all be 0")
        if self.require_auth:
            if self.jwt_algorithm == "HS256" and not self.jwt_secret:
                raise ValueError(
                    "PD_JWT_SECRET is required for HS256 tokens (or PD_REQUIRE_AUTH=false for a local, open service)"
                )
            if self.jwt_algorithm == "HS256" and len(self.jwt_secret.get_secret_value().encode()) < 32:
                raise ValueError("PD_JWT_SECRET must be at least 32 bytes (RFC 7518): e.g. `openssl rand -hex 32`")
            if self.jwt_algorithm == "RS256" and not self.jwt_public_key:
                raise ValueError("PD_JWT_PUBLIC_KEY (PEM or path) is required for RS256 tokens")
        return self

    def public_key(self) -> str | None:
        "The RS256 public key as PEM text (`jwt_public_key` may be a path)."
        k = self.jwt_public_key
        if k and not k.lstrip().startswith("-----") and Path(k).exists():
            return Path(k).read_text()
        return k


@lru_cache
def get_settings() -> Settings:
    return Settings()
