"""HTTP load on the service's `/predict` for the benchmarks: photos to send, concurrent clients, latency percentiles."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import numpy as np


def percentiles(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {
        "p50_ms": round(float(np.percentile(a, 50)), 1),
        "p95_ms": round(float(np.percentile(a, 95)), 1),
        "p99_ms": round(float(np.percentile(a, 99)), 1),
        "mean_ms": round(float(a.mean()), 1),
    }


async def sync_load(url: str, headers: dict, photos: list[bytes], concurrency: int, n: int) -> dict:
    "n requests to /predict from `concurrency` concurrent clients; latency as the client sees it."
    lat, errors, i = [], 0, iter(range(n))

    async def client(c: httpx.AsyncClient):
        nonlocal errors
        for k in i:
            t = time.perf_counter()
            r = await c.post(
                f"{url}/predict", files={"file": ("leaf.jpg", photos[k % len(photos)], "image/jpeg")}, headers=headers
            )
            lat.append(1000 * (time.perf_counter() - t))
            errors += r.status_code != 200

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=120, limits=limits) as c:
        t = time.perf_counter()
        await asyncio.gather(*(client(c) for _ in range(concurrency)))
        wall = time.perf_counter() - t
    return {
        "concurrency": concurrency,
        "requests": n,
        "errors": errors,
        **percentiles(lat),
        "throughput_rps": round(n / wall, 1),
    }


def load_photos(folder: Path, n: int = 32) -> list[bytes]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not files:
        raise SystemExit(f"no images under {folder}")
    step = max(1, len(files) // n)
    return [p.read_bytes() for p in files[::step][:n]]
