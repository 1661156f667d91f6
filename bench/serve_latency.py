"""Latency and throughput of the prediction service over HTTP: /predict at concurrency 1, 8 and 32, and the async
path (submit, then poll until done). Prints a table and writes `reports/bench_serve.json`.

Against a running service:
    python bench/serve_latency.py --url http://127.0.0.1:8000 --token "$TOKEN" --images ../shared/data/plantvillage
Or let it train two tiny models and start everything (Redis, a Celery worker, the API; SQLite log) itself:
    python bench/serve_latency.py --start
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from testkit.load import load_photos, percentiles, sync_load

ROOT = Path(__file__).resolve().parents[1]


async def async_load(url: str, headers: dict, photos: list[bytes], n: int, concurrency: int = 8) -> dict:
    "n images through POST /predict/async + GET /result: end-to-end time from submit to answer."
    lat, queued, errors, sem = [], [], 0, asyncio.Semaphore(concurrency)

    async def one(c: httpx.AsyncClient, k: int):
        nonlocal errors
        async with sem:
            t = time.perf_counter()
            r = await c.post(
                f"{url}/predict/async",
                files={"file": ("leaf.jpg", photos[k % len(photos)], "image/jpeg")},
                headers=headers,
            )
            if r.status_code != 202:
                errors += 1
                return
            task = r.json()
            while True:
                body = (await c.get(f"{url}{task['result_url']}", params={"wait_s": 2}, headers=headers)).json()
                if body["status"] != "pending":
                    break
            lat.append(1000 * (time.perf_counter() - t))
            if body["status"] == "done":
                queued.append(body["result"]["queued_ms"])
            else:
                errors += 1

    async with httpx.AsyncClient(timeout=120) as c:
        t = time.perf_counter()
        await asyncio.gather(*(one(c, k) for k in range(n)))
        wall = time.perf_counter() - t
    return {
        "concurrency": concurrency,
        "requests": n,
        "errors": errors,
        **percentiles(lat),
        "queued_p50_ms": round(statistics.median(queued), 1) if queued else None,
        "throughput_rps": round(n / wall, 1),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url")
    ap.add_argument("--token", default=os.environ.get("PD_TOKEN"))
    ap.add_argument("--start", action="store_true", help="train tiny models and start Redis, a worker and the API")
    ap.add_argument(
        "--images",
        type=Path,
        default=Path(os.environ.get("PLANT_DISEASE_SHARED_DATA", ROOT.parent / "shared" / "data")) / "plantvillage",
    )
    ap.add_argument("--requests", type=int, default=200, help="requests per concurrency level")
    ap.add_argument("--variant", default="A", help="force this A/B variant (X-Model-Variant) so runs compare")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "bench_serve.json")
    a = ap.parse_args(argv)
    svc = None
    if a.start:
        from testkit.service import start_service

        work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
        shared = a.images.parent if (a.images.parent / "plantvillage").is_dir() else None
        svc = start_service(
            work,
            shared,
            f"sqlite:///{work / 'predictions.db'}",
            PD_RATE_LIMIT="100000/minute",
            PD_ADMIN_RATE_LIMIT="100000/minute",
        )
        url, headers = svc.url, svc.headers("bench", ("admin",))
    else:
        if not (a.url and a.token):
            ap.error("give --url and --token (or --start)")
        url, headers = a.url.rstrip("/"), {"Authorization": f"Bearer {a.token}"}
    headers["X-Model-Variant"] = a.variant
    try:
        photos = load_photos(a.images)
        models = httpx.get(f"{url}/models", headers=headers).json()
        for _ in range(5):
            httpx.post(
                f"{url}/predict", files={"file": ("w.jpg", photos[0], "image/jpeg")}, headers=headers, timeout=60
            )
        rows = [asyncio.run(sync_load(url, headers, photos, c, a.requests)) for c in (1, 8, 32)]
        asy = asyncio.run(async_load(url, headers, photos, max(40, a.requests // 4)))
    finally:
        if svc:
            svc.stop()
    report = {
        "machine": f"{platform.node()} ({os.cpu_count()} cores, {platform.processor() or platform.machine()})",
        "command": "python bench/serve_latency.py " + " ".join(argv or sys.argv[1:]),
        "variant": a.variant,
        "models": models,
        "predict": rows,
        "async": asy,
        "note": "client, API, worker and Redis share this machine's cores; latency is as the client sees it",
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=2))
    print(f"{'path':<16}{'conc':>5}{'n':>6}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'req/s':>8}{'errors':>8}")
    for r in rows + [{**asy, "path": "async"}]:
        print(
            f"{r.get('path', '/predict'):<16}{r['concurrency']:>5}{r['requests']:>6}{r['p50_ms']:>9}{r['p95_ms']:>9}"
            f"{r['p99_ms']:>9}{r['throughput_rps']:>8}{r['errors']:>8}"
        )
    print(f"written to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
