"""/predict over HTTP with each serving configuration: Keras vs the runtime `auto` picks, micro-batching off vs on;
latency at concurrency 1 against the raw runtime's own batch-1 latency, and throughput at concurrency 32.

    python bench/serve_runtime.py --model-dir exported --images ../shared/data/plantvillage

`--model-dir` is a folder written by `plant-disease export` (the Keras model, the edge formats and `export.json`).
Only the API runs (no auth, SQLite prediction log, no Redis), one configuration at a time, on this machine;
the client shares its cores. Prints a table and writes `reports/bench_serve_runtime.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from testkit.load import load_photos, sync_load
from testkit.service import start_api

ROOT = Path(__file__).resolve().parents[1]


def raw_latency(model_dir: Path, runtime: str, photos: list[bytes], n: int = 100) -> dict:
    "The runtime alone, in this process: batch-1 model call p50, and decode+resize+call (`Predictor.predict`) p50."
    from plant_disease.inference import Predictor

    p = Predictor.from_dir(model_dir, runtime=runtime)
    x = np.stack([p.preprocess(b).numpy() for b in photos[:16]])
    for i in range(5):
        p.runtime(x[i % len(x)][None])
        p.predict(photos[i % len(photos)])
    call, full = [], []
    for i in range(n):
        t = time.perf_counter()
        p.runtime(x[i % len(x)][None])
        call.append(1000 * (time.perf_counter() - t))
        t = time.perf_counter()
        p.predict(photos[i % len(photos)])
        full.append(1000 * (time.perf_counter() - t))
    return {
        "runtime": p.runtime.name,
        "model_call_p50_ms": round(float(np.median(call)), 2),
        "predict_p50_ms": round(float(np.median(full)), 2),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", type=Path, default=ROOT / "exported")
    ap.add_argument(
        "--images",
        type=Path,
        default=Path(os.environ.get("PLANT_DISEASE_SHARED_DATA", ROOT.parent / "shared" / "data")) / "plantvillage",
    )
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--batch-wait-ms", type=float, default=5.0)
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "bench_serve_runtime.json")
    a = ap.parse_args(argv)
    photos = load_photos(a.images)
    work = Path(tempfile.mkdtemp(prefix="bench-serve-runtime-"))
    rows = []
    for runtime, batch_max in [("keras", 1), ("keras", 32), ("auto", 1), ("auto", 32)]:
        settings = {
            "PD_VARIANTS": json.dumps([{"name": "A", "source": str(a.model_dir.resolve())}]),
            "PD_RUNTIME": runtime,
            "PD_BATCH_MAX": str(batch_max),
            "PD_BATCH_WAIT_MS": str(a.batch_wait_ms),
        }
        api, url = start_api(work, settings, f"api-{runtime}-{batch_max}.log")
        try:
            info = httpx.get(f"{url}/models").json()[0]
            for i in range(10):
                httpx.post(
                    f"{url}/predict", files={"file": ("w.jpg", photos[i % len(photos)], "image/jpeg")}, timeout=60
                )
            c1 = asyncio.run(sync_load(url, {}, photos, 1, a.requests))
            c32 = asyncio.run(sync_load(url, {}, photos, 32, a.requests))
        finally:
            api.terminate()
            api.wait(30)
        raw = raw_latency(a.model_dir, info["runtime"], photos)
        row = {
            "config": f"runtime={runtime} batching={'on' if batch_max > 1 else 'off'}",
            "runtime": info["runtime"],
            "runtime_choice": info["runtime_choice"],
            "raw": raw,
            "c1": c1,
            "c32": c32,
            "c1_p50_over_raw_call": round(c1["p50_ms"] / raw["model_call_p50_ms"], 2),
            "c1_p50_over_raw_predict": round(c1["p50_ms"] / raw["predict_p50_ms"], 2),
        }
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "runtime_choice"}), flush=True)
    gain = {
        r_on["runtime"]: round(r_on["c32"]["throughput_rps"] / r_off["c32"]["throughput_rps"], 2)
        for r_off, r_on in [(rows[0], rows[1]), (rows[2], rows[3])]
    }
    report = {
        "machine": f"{os.cpu_count()} cores",
        "command": "python bench/serve_runtime.py " + " ".join(argv or sys.argv[1:]),
        "model_dir": str(a.model_dir),
        "batch_wait_ms": a.batch_wait_ms,
        "rows": rows,
        "c32_throughput_gain_of_batching": gain,
        "c32_throughput_auto_batched_over_keras_unbatched": round(
            rows[3]["c32"]["throughput_rps"] / rows[0]["c32"]["throughput_rps"], 2
        ),
        "note": "client and API share the machine's cores; latency as the client sees it",
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=2))
    print(
        f"\n{'config':<30}{'runtime':<13}{'raw call':>9}{'raw pred':>9}{'c1 p50':>8}{'c1 p99':>8}{'c1 rps':>7}"
        f"{'c32 p50':>9}{'c32 rps':>8}"
    )
    for r in rows:
        print(
            f"{r['config']:<30}{r['runtime']:<13}{r['raw']['model_call_p50_ms']:>9}{r['raw']['predict_p50_ms']:>9}{r['c1']['p50_ms']:>8}"
            f"{r['c1']['p99_ms']:>8}{r['c1']['throughput_rps']:>7}{r['c32']['p50_ms']:>9}{r['c32']['throughput_rps']:>8}"
        )
    print(f"batching multiplies c32 throughput by {gain} (per runtime); written to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
