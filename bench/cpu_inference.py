"""CPU inference runtimes compared on the same test images: Keras `predict`, a `tf.function`-compiled call, the
exported SavedModel, LiteRT (fp32, dynamic-range int8, full int8 calibrated on training photos) and ONNX Runtime.

For each: batch-1 latency p50/p99 (model call only, preprocessed pixels), batch-32 throughput, file size, and
accuracy on the test split against the Keras model. Prints a table, writes `reports/bench_inference.json`.

    python bench/cpu_inference.py --model-dir models --data-dir data     # a trained model and its manifest
    python bench/cpu_inference.py --speed-only --image-size 224          # ResNet50 at 224, untrained: speed and size only

The export itself is the library's (`plant_disease.export.export_model`), so the files measured are the files served.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from testkit.machine import cpu_name, latency, throughput

ROOT = Path(__file__).resolve().parents[1]
FORMATS = ["savedmodel", "tflite_fp32", "tflite_dynamic", "tflite_int8", "onnx"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", type=Path, default=ROOT / "models")
    ap.add_argument("--data-dir", type=Path, default=ROOT / "data")
    ap.add_argument(
        "--speed-only", action="store_true", help="an untrained ResNet50 (weights none): speed and size only"
    )
    ap.add_argument("--image-size", type=int, default=224, help="with --speed-only")
    ap.add_argument("--classes", type=int, default=38, help="with --speed-only")
    ap.add_argument("--latency-n", type=int, default=100)
    ap.add_argument("--batches", type=int, default=5, help="batches of 32 for the throughput")
    ap.add_argument(
        "--representative", type=int, nargs="+", default=[50, 100, 200], help="int8 calibration sizes to choose from"
    )
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "bench_inference.json")
    a = ap.parse_args(argv)
    import keras
    import tensorflow as tf
    from plant_disease.config import ExportParams, ModelParams
    from plant_disease.data import build_manifest, DataParams, load_manifest
    from plant_disease.export import export_model, split_images
    from plant_disease.model import build_model
    from plant_disease.runtimes import load_runtime

    work = Path(tempfile.mkdtemp(prefix="bench-inference-"))
    if (
        a.speed_only
    ):  # a random ResNet50 at the production size; accuracy is meaningless, so the check runs on synthetic leaves
        m = build_model(a.classes, a.image_size, ModelParams(backbone="resnet50", weights="none"))
        src = work / "model"
        src.mkdir()
        m.save(src / "model.keras")
        (src / "classes.json").write_text(
            json.dumps({"classes": [f"C{i}___x" for i in range(a.classes)], "image_size": a.image_size})
        )
        manifest = build_manifest(DataParams(source="synthetic", synthetic_per_class=12), work / "data")
        x = np.random.default_rng(0).uniform(0, 255, (32, a.image_size, a.image_size, 3)).astype(np.float32)
        data_desc = f"untrained ResNet50 at {a.image_size} px, {a.classes} classes (speed and size only)"
    else:
        src, manifest = a.model_dir, load_manifest(a.data_dir)
        card, summary = json.loads((src / "classes.json").read_text()), manifest.summary
        fits = ", ".join(
            f"{s_['epochs_run']} epoch(s)" for s_ in card.get("fits", card.get("stages", []))
        )  # older cards: stages
        data_desc = (
            f"{card.get('backbone')} at {card.get('image_size')} px, weights {card.get('weights')}, "
            f"{len(card['classes'])} classes, "
            f"trained {fits} on {summary.get('n_images')} {'SYNTHETIC' if summary.get('synthetic') else 'real'} images "
            f"({a.model_dir}, test split of {a.data_dir}/manifest.csv)"
        )
    out = work / "exported"
    t = time.perf_counter()
    rep = export_model(src, out, manifest, ExportParams(formats=FORMATS, representative_images=a.representative))
    export_s = time.perf_counter() - t
    meta = json.loads((out / "classes.json").read_text())
    size = rep["image_size"]
    if not a.speed_only:
        x, _ = split_images(manifest, meta["classes"], rep["split"], size, limit=64)

    model = keras.saving.load_model(out / "model.keras", compile=False)
    engines = {
        "keras_predict": lambda b: model.predict(b, verbose=0),
        "keras_tf_function": load_runtime("keras", out, model),
    }
    for f in FORMATS:
        engines[f] = load_runtime(f, out)
    rows = []
    for name, fn in engines.items():
        fmt = "keras" if name.startswith("keras") else name
        r = rep["formats"][fmt]
        row = {
            "runtime": name,
            **latency(fn, x, a.latency_n if name != "keras_predict" else max(20, a.latency_n // 5)),
            "throughput_b32_img_s": throughput(fn, x, 32, a.batches),
            "size_mb": round(r["size_bytes"] / 1e6, 1),
            "accuracy": None if a.speed_only else r["accuracy"],
            "accuracy_drop_pts": None if a.speed_only or fmt == "keras" else round(100 * r["accuracy_drop"], 2),
            "agreement": None if fmt == "keras" else r["agreement"],
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    report = {
        "machine": f"{os.cpu_count()} cores, {cpu_name()}, {platform.platform()}",
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "what": data_desc,
        "image_size": size,
        "n_test": rep["n_images"],
        "export_seconds": round(export_s, 1),
        "command": "python bench/cpu_inference.py " + " ".join(argv or sys.argv[1:]),
        "threads": os.environ.get("PLANT_DISEASE_THREADS") or os.cpu_count(),
        "rows": rows,
        "fastest_within_limit": rep["fastest_within_limit"],
        "int8_calibration": rep.get("int8_calibration"),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=2))
    print(f"\n{data_desc}; {report['machine']}")
    print(
        f"{'runtime':<18}{'b1 p50 ms':>10}{'b1 p99 ms':>10}{'b32 img/s':>10}{'MB':>7}{'accuracy':>10}{'drop pts':>9}{'agree':>7}"
    )
    for r in rows:
        f = lambda v, fmt: "-" if v is None else format(v, fmt)
        print(
            f"{r['runtime']:<18}{r['p50_ms']:>10}{r['p99_ms']:>10}{r['throughput_b32_img_s']:>10}{r['size_mb']:>7}"
            f"{f(r['accuracy'], '.4f'):>10}{f(r['accuracy_drop_pts'], '+.2f'):>9}{f(r['agreement'], '.3f'):>7}"
        )
    print(f"written to {a.out}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
