"""CPU baseline: input pipeline throughput, train step time per training phase, single-image predict latency.

Usage: python bench/cpu_baseline.py [--data DIR] [--image-size 64] [--backbone resnet50] [--out reports/bench_cpu.json]
DIR defaults to $PLANT_DISEASE_SHARED_DATA/plantvillage (the real sample), else a generated synthetic set.
Prints a table and writes it as JSON (with the machine described) to --out.
"""

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=None)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--backbone", default="resnet50")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--out", default="reports/bench_cpu.json")
    a = ap.parse_args()

    import keras
    import tensorflow as tf
    from plant_disease.config import AugmentParams, ModelParams, PipelineParams
    from plant_disease.data import DataParams, build_manifest
    from plant_disease.inference import Predictor
    from plant_disease.model import build_model, set_trainable
    from plant_disease.pipeline import make_dataset, measure_throughput
    from plant_disease.train import compile_model

    shared = Path(os.environ.get("PLANT_DISEASE_SHARED_DATA", "../shared/data")) / "plantvillage"
    src = a.data or (str(shared) if shared.is_dir() else "synthetic")
    tmp = Path(tempfile.mkdtemp())
    m = build_manifest(DataParams(source=src, classes="tomato" if src != "synthetic" else "all"), tmp)
    train = m.split("train")
    classes = m.classes
    y = train["class"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    pp = PipelineParams(image_size=a.image_size, batch_size=a.batch_size, shuffle_buffer=1000)
    res = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "data": src,
        "n_train_images": len(train),
        "image_size": a.image_size,
        "backbone": a.backbone,
        "batch_size": a.batch_size,
    }

    for name, aug in [("decode_resize", None), ("decode_resize_augment", AugmentParams())]:
        ds = make_dataset(train["path"], y, pp, aug, training=aug is not None).repeat()
        res[f"pipeline_{name}_img_s"] = round(measure_throughput(ds, batches=30), 1)

    model = build_model(len(classes), a.image_size, ModelParams(backbone=a.backbone, weights="none"))
    ds = make_dataset(train["path"], y, pp, None).repeat().take(12).cache()
    list(ds)  # decode once, so the step time is the model's
    for phase, unfreeze, train_bn in [
        ("phase1_head_only", 0, False),
        ("phase2_last50", 50, False),
        ("from_scratch_all", "all", True),
    ]:
        set_trainable(model, unfreeze, train_bn)
        compile_model(model, 1e-4)
        model.fit(ds.take(2), epochs=1, verbose=0)  # trace
        t0 = time.perf_counter()
        model.fit(ds.skip(2), epochs=1, verbose=0)
        dt = time.perf_counter() - t0
        res[f"train_step_ms_{phase}"] = round(dt / 10 * 1000, 1)
        res[f"train_img_s_{phase}"] = round(10 * a.batch_size / dt, 1)

    pred = Predictor(model, classes)
    imgs = [Path(p).read_bytes() for p in m.split("test")["path"].head(50)]
    pred.predict(imgs[0])
    lat = []
    for b in imgs:
        t0 = time.perf_counter()
        pred.predict(b)
        lat.append((time.perf_counter() - t0) * 1000)
    res["predict_ms_p50"] = round(statistics.median(lat), 1)
    res["predict_ms_p95"] = round(float(np.percentile(lat, 95)), 1)
    t0 = time.perf_counter()
    model.predict(np.zeros((1, a.image_size, a.image_size, 3)), verbose=0)
    lat_kp = []
    for _ in range(20):
        t0 = time.perf_counter()
        model.predict(np.zeros((1, a.image_size, a.image_size, 3)), verbose=0)
        lat_kp.append((time.perf_counter() - t0) * 1000)
    res["keras_predict_ms_p50"] = round(statistics.median(lat_kp), 1)

    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2))
    w = max(map(len, res))
    for k, v in res.items():
        print(f"{k:<{w}}  {v}")
    print(f"-> {a.out}")


if __name__ == "__main__":
    main()
