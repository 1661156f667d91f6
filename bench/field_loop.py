"""What the field loop costs the service: `/predict` p50/p95 with the photo store off and on (PD_KEEP_PHOTOS, a local
folder), alternated to cancel drift of a shared machine, and the latency of `POST /feedback` (checked against the
prediction log). Prints the numbers and writes `reports/bench_field_loop.json`.

    python bench/field_loop.py --model-dir models --images ../shared/data/plantvillage
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

from testkit.load import load_photos, percentiles, sync_load
from testkit.service import start_api

ROOT = Path(__file__).resolve().parents[1]


def feedback_latency(url: str, photos: list[bytes], classes: list[str], n: int) -> dict:
    "n answers, then one verdict on each (alternately confirmed and corrected); the client's latency of POST /feedback."
    ms = []
    with httpx.Client(base_url=url, timeout=60) as c:
        answers = [
            c.post("/predict", files={"file": ("l.jpg", photos[i % len(photos)], "image/jpeg")}).json()
            for i in range(n)
        ]
        time.sleep(1.0)  # the answers reach the log
        for i, a in enumerate(answers):
            body = {"request_id": a["request_id"], "verdict": "confirmed"}
            if i % 2:
                body = {**body, "verdict": "corrected", "label": next(k for k in classes if k != a["label"])}
            t = time.perf_counter()
            r = c.post("/feedback", json=body)
            ms.append(1000 * (time.perf_counter() - t))
            assert r.status_code == 201, r.text
        stats = c.get("/feedback/stats").json()
    return {**percentiles(ms), "n": n, "field_accuracy": stats["field_accuracy"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", type=Path, required=True, help="a trained model folder (models/ after make run)")
    ap.add_argument(
        "--images",
        type=Path,
        default=Path(os.environ.get("PLANT_DISEASE_SHARED_DATA", ROOT.parent / "shared" / "data")) / "plantvillage",
    )
    ap.add_argument("--requests", type=int, default=150, help="requests per round")
    ap.add_argument("--rounds", type=int, default=2, help="off/on rounds, alternated")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "bench_field_loop.json")
    a = ap.parse_args(argv)
    photos = load_photos(a.images)
    work = Path(tempfile.mkdtemp(prefix="bench-field-loop-"))
    base = {"PD_VARIANTS": json.dumps([{"name": "A", "source": str(a.model_dir.resolve())}]), "PD_BATCH_MAX": "1"}
    p50 = {"off": [], "on": []}
    runs = {"off": [], "on": []}
    fb = None
    for r in range(a.rounds):
        for mode in ("off", "on"):
            settings = {
                **base,
                "PD_KEEP_PHOTOS": "true" if mode == "on" else "false",
                "PD_PHOTO_STORE": str(work / "photos"),
            }
            api, url = start_api(work, settings, f"api-{mode}-{r}.log")
            try:
                for i in range(10):
                    httpx.post(
                        f"{url}/predict", files={"file": ("w.jpg", photos[i % len(photos)], "image/jpeg")}, timeout=60
                    )
                c1 = asyncio.run(sync_load(url, {}, photos, 1, a.requests))
                if mode == "on" and fb is None:
                    classes = json.loads((a.model_dir / "classes.json").read_text())["classes"]
                    fb = feedback_latency(url, photos, classes, 40)
            finally:
                api.terminate()
                api.wait(30)
            p50[mode].append(c1["p50_ms"])
            runs[mode].append(c1)
            print(f"round {r} photo store {mode}: /predict p50 {c1['p50_ms']} ms, p95 {c1['p95_ms']} ms", flush=True)
    kept = sum(1 for _ in (work / "photos").rglob("*") if _.is_file())
    report = {
        "machine": f"{os.cpu_count()} cores",
        "command": "python bench/field_loop.py " + " ".join(argv or sys.argv[1:]),
        "model_dir": str(a.model_dir),
        "predict_c1": runs,
        "predict_p50_ms": {k: round(float(np.median(v)), 1) for k, v in p50.items()},
        "photo_store_overhead_p50_ms": round(float(np.median(p50["on"]) - np.median(p50["off"])), 1),
        "photos_kept": kept,
        "feedback_post": fb,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=2))
    print(
        f"/predict p50: {report['predict_p50_ms']['off']} ms with the photo store off, {report['predict_p50_ms']['on']} ms "
        f"on ({report['photo_store_overhead_p50_ms']:+.1f} ms); POST /feedback p50 {fb['p50_ms']} ms, p95 {fb['p95_ms']} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
