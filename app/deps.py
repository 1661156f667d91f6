"""FastAPI dependencies shared by the routes."""

from __future__ import annotations

from functools import lru_cache

from fastapi import Header, HTTPException, Request, UploadFile
from redis import Redis

from .state import ServiceState


IDEMPOTENCY_DOC = (
    "a UUID the client made for this record: sent again (a connection that dropped before the reply, a reload), the "
    "record is kept once"
)
IDEMPOTENCY_KEY = Header(..., alias="Idempotency-Key", description=IDEMPOTENCY_DOC)  # annotate with uuid.UUID
OPTIONAL_IDEMPOTENCY_KEY = Header(None, alias="Idempotency-Key", description=IDEMPOTENCY_DOC)


def get_state(request: Request) -> ServiceState:
    "The process's loaded models and prediction log (503 while the service is still starting)."
    state = getattr(request.app.state, "service", None)
    if state is None:
        raise HTTPException(503, "the service is starting: models are not loaded yet")
    return state


def read_upload(file: UploadFile, max_bytes: int) -> bytes:
    "The uploaded file's bytes; 413 past `max_bytes` (read no further than that)."
    data = file.file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise HTTPException(413, f"{file.filename or 'upload'} exceeds the limit of {max_bytes:,} bytes")
    return data


def request_id() -> str:
    from asgi_correlation_id import correlation_id

    return correlation_id.get() or "-"


@lru_cache
def redis_client(url: str) -> Redis:
    "One Redis client (and connection pool) per URL for the process, short timeouts."
    return Redis.from_url(url, socket_timeout=2, socket_connect_timeout=1)
