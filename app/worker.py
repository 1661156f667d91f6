"""Celery workers for `POST /predict/async`: Redis is broker and result store; each worker process loads the models
once. Scale by starting more workers (or `-c N` processes):

    PD_REDIS_URL=redis://127.0.0.1:6379/0 celery -A app.worker worker -Q predict -c 1 --loglevel INFO
"""

from __future__ import annotations

import base64
import logging
import time

from celery import Celery
from celery.signals import setup_logging, worker_process_init, worker_process_shutdown

from .config import get_settings

log = logging.getLogger(__name__)
settings = get_settings()

celery_app = Celery(
    "plant_disease",
    broker=settings.redis_url or "redis://127.0.0.1:6379/0",
    backend=settings.redis_url or "redis://127.0.0.1:6379/0",
)
celery_app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_default_queue=settings.queue,
    result_expires=settings.result_ttl_s,
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_track_started=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)

_state = None


@setup_logging.connect
def _json_logs(**_):
    "JSON log lines like the API's, each carrying the request id of the task being run."
    import logging.config
    from .observability import logging_config

    logging.config.dictConfig(logging_config())


def service_state():
    "This process's models and log, loaded on first use (prefork children load them at start)."
    global _state
    if _state is None:
        from .state import ServiceState

        _state = ServiceState.start(get_settings(), migrate=False)
    return _state


@worker_process_init.connect
def _load(**_):
    service_state()


@worker_process_shutdown.connect
def _close(**_):
    if _state is not None:
        _state.close()


@celery_app.task(name="plant_disease.predict")
def predict_task(
    image_b64: str,
    filename: str | None,
    variant: str,
    caller: str,
    request_id: str,
    explain: bool = False,
    top_k: int | None = None,
    submitted: float | None = None,
) -> dict:
    "Answer one queued image; upload problems come back as {'error', 'status_code'}, not as task failures."
    from asgi_correlation_id import correlation_id
    from .predicting import UploadError, log_record, predict_bytes

    correlation_id.set(request_id)
    state = service_state()
    v = state.models.variants[variant]
    started = time.time()
    data = base64.b64decode(image_b64)
    t = time.perf_counter()
    try:
        body = predict_bytes(v, data, filename, explain=explain, top_k=top_k)
    except UploadError as e:
        ms = round(1000 * (time.perf_counter() - t), 2)
        state.predlog.record(
            **log_record(
                None,
                request_id=request_id,
                caller=caller,
                route="async",
                latency_ms=ms,
                variant=v,
                filename=filename,
                error=e.detail,
            )
        )
        return {"error": e.detail, "status_code": e.status}
    state.keep_photo(data, body["image_sha256"])
    ms = round(1000 * (time.perf_counter() - t), 2)
    state.predlog.record(
        **log_record(body, request_id=request_id, caller=caller, route="async", latency_ms=ms, variant=v)
    )
    log.info("prediction", extra={"variant": v.name, "label": body["label"], "ms": ms})
    return {
        **body,
        "request_id": request_id,
        "latency_ms": ms,
        "queued_ms": round(1000 * (started - submitted), 2) if submitted else None,
    }
