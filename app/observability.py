"""Prometheus metrics, JSON logs that carry the request id, and the request-body size guard."""

from __future__ import annotations

import logging
import logging.config
import time

from fastapi import HTTPException
from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily

INFERENCE_SECONDS = Histogram(
    "plant_disease_inference_seconds",
    "Model inference time per image (validation, resize, forward pass; Grad-CAM when asked)",
    ["variant"],
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5),
)
PREDICTIONS = Counter(
    "plant_disease_predictions_total", "Images answered, by variant and predicted class", ["variant", "label"]
)
BATCH_SIZE = Histogram(
    "plant_disease_batch_size",
    "Images per model call of the micro-batcher, by variant",
    ["variant"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
QUEUE_DEPTH = Gauge(
    "plant_disease_queue_depth", "Async prediction tasks waiting in the Redis queue (NaN: Redis unreachable)"
)
LOG_SPOOLED = Gauge(
    "plant_disease_predlog_spooled", "Prediction-log records spooled on disk while the database is down"
)


class DriftCollector:
    """The drift gauges, computed when Prometheus scrapes from `source()` (`{variant: drift report}`, set by the app):
    PSI of the answers and of the confidences, the unknown rate and the status (0 stable, 1 watch, 2 drift, -1 too few
    answers or unavailable); NaN where a value is not known."""

    def __init__(self):
        self.source = None

    def _families(self):
        return (
            GaugeMetricFamily(
                "plant_disease_drift_psi",
                "Population stability index of a variant's recent answers against its model's validation profile",
                labels=["variant", "kind"],
            ),
            GaugeMetricFamily(
                "plant_disease_unknown_rate",
                "Share of a variant's recent answers that are unknown (retake the photo)",
                labels=["variant"],
            ),
            GaugeMetricFamily(
                "plant_disease_drift_status",
                "Drift status of a variant: 0 stable, 1 watch, 2 drift, -1 too few answers or no reference",
                labels=["variant"],
            ),
        )

    def describe(self):
        return list(self._families())

    def collect(self):
        from .drift import STATUS_CODES

        psi, unknown, status = self._families()
        try:
            reports = self.source() if self.source else {}
        except Exception as e:  # a scrape never fails for this
            logging.getLogger(__name__).warning("drift gauges unavailable: %s: %s", type(e).__name__, e)
            reports = {}
        num = lambda v: float("nan") if v is None else float(v)
        for variant, r in reports.items():
            psi.add_metric([variant, "answers"], num(r.get("answers_psi")))
            psi.add_metric([variant, "confidence"], num(r.get("confidence_psi")))
            unknown.add_metric([variant], num(r.get("unknown_rate")))
            status.add_metric([variant], float(STATUS_CODES.get(r.get("status"), -1)))
        yield from (psi, unknown, status)


DRIFT = DriftCollector()
REGISTRY.register(DRIFT)


def logging_config(level: str = "INFO") -> dict:
    "dictConfig for JSON lines on stderr, each with the request id (uvicorn's own loggers included)."
    fmt = {
        "()": "pythonjsonlogger.json.JsonFormatter",
        "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(correlation_id)s",
        "rename_fields": {"asctime": "time", "levelname": "level", "correlation_id": "request_id"},
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "asgi_correlation_id.CorrelationIdFilter", "default_value": "-"}},
        "formatters": {"json": fmt},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["request_id"]}},
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.error": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }


access_log = logging.getLogger("plant_disease.access")


class AccessLog:
    "ASGI middleware: one JSON log line per request (method, path, status, ms, request id, caller)."

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t, status = time.perf_counter(), {"code": 500}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            caller = getattr(scope.get("state", {}).get("caller"), "subject", None)  # set by auth.get_caller
            access_log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status["code"],
                    "ms": round(1000 * (time.perf_counter() - t), 2),
                    "caller": caller,
                    "client": (scope.get("client") or ["-"])[0],
                },
            )


class BodySizeLimit:
    "ASGI middleware: refuse bodies over `max_bytes` with 413 before they are read (Content-Length) or as they stream."

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await self._refuse(send, int(length))
        seen, started = {"n": 0}, {"v": False}

        async def guarded_receive():
            message = await receive()
            if message["type"] == "http.request":
                seen["n"] += len(message.get("body", b""))
                if seen["n"] > self.max_bytes:
                    raise _TooLarge(self.max_bytes)
            return message

        async def tracking_send(message):
            if message["type"] == "http.response.start":
                started["v"] = True
            await send(message)

        try:
            await self.app(scope, guarded_receive, tracking_send)
        except _TooLarge:
            if not started["v"]:
                await self._refuse(send, seen["n"])

    async def _refuse(self, send, n: int):
        import json

        body = json.dumps({"detail": f"request body of {n:,}+ bytes exceeds the limit of {self.max_bytes:,}"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )  # X-Request-ID: added by CorrelationIdMiddleware
        await send({"type": "http.response.body", "body": body})


class _TooLarge(HTTPException):
    "Raised while the body streams in; FastAPI answers it as a 413 (it re-raises HTTPExceptions from the body)."

    def __init__(self, max_bytes: int):
        super().__init__(413, f"request body exceeds the limit of {max_bytes:,} bytes")
