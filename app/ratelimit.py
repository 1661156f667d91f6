"""Rate limits per token subject (per client address without a token), kept in Redis when configured so they
hold across API processes; built on the `limits` library (moving window)."""

from __future__ import annotations

import math
import time
from functools import lru_cache

from fastapi import Depends, HTTPException, Response, status
from limits import parse_many, storage, strategies

from .auth import Caller, get_caller
from .config import Settings, get_settings


@lru_cache
def _limiter(uri: str) -> strategies.MovingWindowRateLimiter:
    return strategies.MovingWindowRateLimiter(storage.storage_from_string(uri))


def limiter(settings: Settings) -> strategies.MovingWindowRateLimiter:
    return _limiter(settings.redis_url or "memory://")


def rate_limited(
    response: Response, caller: Caller = Depends(get_caller), settings: Settings = Depends(get_settings)
) -> Caller:
    "Dependency: count this request against the caller's limits; 429 with Retry-After when one is used up."
    lim = limiter(settings)
    limit = (
        settings.anonymous_rate_limit
        if not caller.authenticated
        else settings.admin_rate_limit
        if "admin" in caller.scopes
        else settings.rate_limit
    )
    items = parse_many(limit)
    for item in items:
        if not lim.hit(item, "plant-disease", caller.key):
            reset, _ = lim.get_window_stats(item, "plant-disease", caller.key)
            retry = max(1, math.ceil(reset - time.time()))
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                f"rate limit {item} exceeded; retry in {retry} s",
                headers={"Retry-After": str(retry)},
            )
    reset, remaining = lim.get_window_stats(items[0], "plant-disease", caller.key)
    response.headers["X-RateLimit-Limit"] = str(items[0].amount)
    response.headers["X-RateLimit-Remaining"] = str(remaining)
    return caller
