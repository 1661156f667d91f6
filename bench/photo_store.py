"""Photo store: what `PhotoStore.keep()` costs the caller (the request's thread), and how fast the writer stores.

Usage: python bench/photo_store.py [--n 400] [--kb 100] [--out reports/bench_photo_store.json]

A ~100 KB JPEG with a phone's EXIF (orientation, camera, GPS) is kept N times (a distinct trailer byte string after
the image makes each one a new photo) into a local folder store:
  * `keep(data, sha256)`: the service's path (it has the SHA-256 for the prediction log already);
  * `keep(data)`: the store hashes the photo itself;
  * paced (one photo every --gap-ms, the writer keeping up) and burst (back to back, the writer busy in parallel);
  * `queue full`: `max_queue_bytes=0`, every photo spooled on the caller's thread (the fallback when the queue holds
    more than 64 MB);
and the writer's side: `strip_location` per photo, and photos stored per second (strip + exists + write + fsync).
Prints the figures and writes them as JSON (with the machine) to --out.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import piexif
from PIL import Image

from plant_disease.photostore import PhotoStore, strip_location


def phone_jpeg(kb: int) -> bytes:
    "A JPEG of about `kb` KB (noise) with orientation, camera make, date and a GPS position in its EXIF."
    exif = piexif.dump(
        {
            "0th": {piexif.ImageIFD.Orientation: 6, piexif.ImageIFD.Make: b"LeafPhone"},
            "Exif": {piexif.ExifIFD.DateTimeOriginal: b"2025:06:01 10:00:00"},
            "GPS": {
                piexif.GPSIFD.GPSLatitudeRef: b"N",
                piexif.GPSIFD.GPSLatitude: ((52, 1), (31, 1), (1234, 100)),
                piexif.GPSIFD.GPSLongitudeRef: b"E",
                piexif.GPSIFD.GPSLongitude: ((13, 1), (24, 1), (0, 1)),
            },
        }
    )
    rng, side = np.random.default_rng(0), 64
    while True:
        b = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(b, "JPEG", quality=85, exif=exif)
        if b.tell() >= kb * 1000:
            return b.getvalue()
        side += 16


def percentiles_us(ns: list[int]) -> dict:
    a = np.asarray(ns, dtype=float) / 1000
    return {
        "p50_us": round(float(np.percentile(a, 50)), 1),
        "p99_us": round(float(np.percentile(a, 99)), 1),
        "mean_us": round(float(a.mean()), 1),
        "max_us": round(float(a.max()), 1),
    }


def measure(tmp: Path, name: str, photos: list[bytes], give_sha: bool, gap_s: float, **store_kw) -> dict:
    "Caller-side time of `keep()` for each photo into a fresh local store; then the time until all are stored."
    shas = [hashlib.sha256(p).hexdigest() for p in photos]
    ps = PhotoStore(tmp / name / "photos", tmp / name / "spool", **store_kw)
    try:
        ps.keep(photos[0] + b"warm-up")  # first call: thread running, imports done
        ps.flush(30)
        times, t_start = [], time.perf_counter()
        for p, s in zip(photos, shas):
            t0 = time.perf_counter_ns()
            ps.keep(p, s if give_sha else None)
            times.append(time.perf_counter_ns() - t0)
            if gap_s:
                time.sleep(gap_s)
        ps.flush(120)
        if store_kw.get("max_queue_bytes") == 0:
            ps.replay()
        elapsed = time.perf_counter() - t_start
        n_stored = sum((tmp / name / "photos" / s[:2] / s).is_file() for s in shas)
    finally:
        ps.close()
    assert n_stored == len(photos), f"{name}: {n_stored} of {len(photos)} photos stored"
    return {"case": name, "n": len(photos), **percentiles_us(times), "all_stored_s": round(elapsed, 2)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--kb", type=int, default=100)
    ap.add_argument("--gap-ms", type=float, default=5.0, help="time between photos in the paced cases")
    ap.add_argument("--out", default="reports/bench_photo_store.json")
    a = ap.parse_args()

    base = phone_jpeg(a.kb)
    photos = [base + f"trailer {i}".encode() for i in range(a.n)]  # after the JPEG's end: decoders ignore it
    gap = a.gap_ms / 1000
    with tempfile.TemporaryDirectory(dir=os.environ.get("PHOTO_BENCH_DIR")) as d:
        tmp = Path(d)
        rows = [
            measure(tmp, "keep(data, sha256), paced", photos, True, gap),
            measure(tmp, "keep(data), paced", photos, False, gap),
            measure(tmp, "keep(data, sha256), burst", photos, True, 0),
            measure(tmp, "keep(data, sha256), queue full: spooled by the caller", photos, True, 0, max_queue_bytes=0),
        ]
        strip = []
        for p in photos[:100]:
            t0 = time.perf_counter_ns()
            strip_location(p)
            strip.append(time.perf_counter_ns() - t0)
        hashing = []
        for p in photos[:100]:
            t0 = time.perf_counter_ns()
            hashlib.sha256(p).hexdigest()
            hashing.append(time.perf_counter_ns() - t0)
    burst = rows[2]
    report = {
        "what": "PhotoStore.keep() caller-side cost; local folder store",
        "command": " ".join(["python bench/photo_store.py", *sys.argv[1:]]),
        "machine": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, {platform.platform()}",
        "python": platform.python_version(),
        "load_average_1m": round(os.getloadavg()[0], 2),  # the machine may be shared: figures vary with its load
        "photo_bytes": len(base),
        "photo": "JPEG with EXIF orientation, make, date and GPS (stripped by the writer)",
        "paced_gap_ms": a.gap_ms,
        "rows": rows,
        "strip_location_us": percentiles_us(strip),
        "sha256_us": percentiles_us(hashing),
        "writer_photos_per_s": round(burst["n"] / burst["all_stored_s"], 1),
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"photo {len(base)} bytes; {report['machine']}")
    print(f"{'case':56} {'p50 us':>8} {'p99 us':>8} {'mean us':>8} {'max us':>9} {'stored in s':>11}")
    for r in rows:
        print(
            f"{r['case']:56} {r['p50_us']:8.1f} {r['p99_us']:8.1f} {r['mean_us']:8.1f} {r['max_us']:9.1f} "
            f"{r['all_stored_s']:11.2f}"
        )
    s, h = report["strip_location_us"], report["sha256_us"]
    print(
        f"writer: strip_location p50 {s['p50_us']} us, sha256 p50 {h['p50_us']} us, {report['writer_photos_per_s']} photos/s"
    )
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
