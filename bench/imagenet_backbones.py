"""EfficientNet-Lite0/1/2 with their ImageNet weights: inference speed in Keras fp32 and full-int8 LiteRT, parameters
and file size per export format, with the CPU, its vector extensions and its measured matmul peak.

    python bench/imagenet_backbones.py                     # Lite0/1/2 at 128, 160, 192, 224 px
    python bench/imagenet_backbones.py --variants 0 --sizes 224

Speed and full-int8 fidelity (top-1 agreement with Keras fp32) are measured on each variant's ImageNet classifier
(1000 classes, the (x - 127) / 128 scaling inside), whose top-1 means something on any photo; file sizes on the
network the pipeline serves: the backbone and a classifier on the pooled features (`dense_units: 0`) for the 38
PlantVillage classes. Full int8 is calibrated on real leaf photos of
the shared sample (PLANT_DISEASE_SHARED_DATA) when it is there, else on scikit-image's photos. Writes
reports/bench_imagenet_backbones.json; `python bench/report.py` puts it into reports/benchmarks.md.
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

from testkit.machine import cpu_name, latency, matmul_peak_gflops, throughput, vector_extensions

ROOT = Path(__file__).resolve().parents[1]


def leaf_photos() -> list[Path]:
    "The shared sample's photos (empty when it is absent)."
    shared = Path(os.environ.get("PLANT_DISEASE_SHARED_DATA", ROOT.parent / "shared" / "data"))
    return sorted(shared.rglob("*.[jJ][pP][gG]"))


def photos(size: int, n: int) -> np.ndarray:
    "n photos at size px: leaves of the shared sample when it is there, else scikit-image's photos."
    from plant_disease.pipeline import load_image

    files = leaf_photos()
    files = files[:: max(1, len(files) // n)][:n]
    if files:
        return np.stack([load_image(str(f), size).numpy() for f in files]).astype(np.float32)
    import keras
    from skimage import data

    imgs = [getattr(data, k)() for k in ("chelsea", "coffee", "astronaut", "rocket", "immunohistochemistry")]
    out = [keras.ops.image.resize(i[None].astype("float32"), (size, size))[0] for i in imgs]
    return np.resize(np.stack([keras.ops.convert_to_numpy(o) for o in out]), (n, size, size, 3)).astype(np.float32)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 160, 192, 224])
    ap.add_argument("--classes", type=int, default=38)
    ap.add_argument("--latency-n", type=int, default=30)
    ap.add_argument("--batches", type=int, default=3, help="batches of 32 for the throughput")
    ap.add_argument("--representative", type=int, default=64, help="full-int8 calibration images")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "bench_imagenet_backbones.json")
    a = ap.parse_args(argv)
    import keras
    import tensorflow as tf

    from plant_disease.config import ModelParams
    from plant_disease.export import _size, export_onnx, export_savedmodel, export_tflite
    from plant_disease.efficientnet_lite import EfficientNetLite
    from plant_disease.model import build_model
    from plant_disease.runtimes import LiteRTRuntime, OnnxRuntime, load_runtime

    peak = matmul_peak_gflops()
    machine = {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "vector_extensions": vector_extensions(),
        "matmul_peak_gflops": peak,
        "platform": platform.platform(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }
    print(json.dumps(machine), flush=True)
    work = Path(tempfile.mkdtemp(prefix="bench-lite-"))
    rows, sizes_mb = [], {}
    for v in a.variants:
        name = f"efficientnet_lite{v}"
        for size in a.sizes:
            # speed and int8 fidelity: the ImageNet classifier itself, whose top-1 on any photo means something
            net = EfficientNetLite(
                v, include_top=True, weights="imagenet", input_shape=(size, size, 3), include_preprocessing=True
            )
            x = photos(size, a.representative)
            sm = export_savedmodel(net, work / f"{name}_{size}_sm")
            t0 = time.perf_counter()
            int8 = export_tflite(sm, work / f"{name}_{size}_int8.tflite", "int8", x)
            int8_s = time.perf_counter() - t0
            engines = {"keras_fp32": load_runtime("keras", work, net), "litert_int8": LiteRTRuntime(int8)}
            ref = np.concatenate([engines["keras_fp32"](x[i : i + 32]) for i in range(0, len(x), 32)])
            for rt, fn in engines.items():
                lat = latency(fn, x, a.latency_n)
                out = np.concatenate([fn(x[i : i + 32]) for i in range(0, len(x), 32)])
                row = {
                    "backbone": name,
                    "image_size": size,
                    "runtime": rt,
                    "params": int(net.count_params()),
                    "b1_p50_ms": lat["p50_ms"],
                    "b1_img_s": round(1000 / lat["p50_ms"], 1),
                    "b32_img_s": throughput(fn, x, 32, a.batches),
                    "top1_agreement_with_keras": round(float((out.argmax(1) == ref.argmax(1)).mean()), 3),
                    "max_abs_prob_diff": round(float(np.abs(out - ref).max()), 4),
                }
                if rt == "litert_int8":
                    row["convert_s"] = round(int8_s, 1)
                rows.append(row)
                print(json.dumps(row), flush=True)
            shutil.rmtree(sm, ignore_errors=True)
            keras.backend.clear_session()
        # file size per export format: the network the pipeline serves, at the largest size
        size = max(a.sizes)
        model = build_model(a.classes, size, ModelParams(backbone=name, weights="imagenet", dense_units=0))
        x = photos(size, a.representative)
        sm = export_savedmodel(model, work / f"{name}_sm")
        files = {
            "savedmodel": sm,
            "tflite_fp32": export_tflite(sm, work / f"{name}_fp32.tflite"),
            "tflite_dynamic": export_tflite(sm, work / f"{name}_dyn.tflite", "dynamic"),
            "tflite_int8": export_tflite(sm, work / f"{name}_int8.tflite", "int8", x),
            "onnx": export_onnx(sm, work / f"{name}.onnx"),
            "keras": work / f"{name}.keras",
        }
        model.save(files["keras"])
        sizes_mb[name] = {
            "image_size": size,
            "params": int(model.count_params()),
            **{f: round(_size(Path(q)) / 1e6, 2) for f, q in files.items()},
        }
        ref = model.predict(x[:8], verbose=0)
        sizes_mb[name]["onnx_max_abs_prob_diff"] = round(
            float(np.abs(OnnxRuntime(files["onnx"])(x[:8]) - ref).max()), 6
        )
        print(json.dumps({name: sizes_mb[name]}), flush=True)
        keras.backend.clear_session()
    calibrated_on = "real leaf photos of the shared sample" if leaf_photos() else "scikit-image's photos"
    report = {
        "what": "EfficientNet-Lite ImageNet classifiers (speed, int8 agreement); file sizes: the backbone with a "
        f"{a.classes}-class classifier on the pooled features; full int8 calibrated on {a.representative} "
        + calibrated_on,
        "command": "python bench/imagenet_backbones.py " + " ".join(argv or sys.argv[1:]),
        "machine": machine,
        "threads": os.environ.get("PLANT_DISEASE_THREADS") or os.cpu_count(),
        "rows": rows,
        "file_sizes_mb": sizes_mb,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=2))
    print(
        f"\n{machine['cpu']} ({machine['cores']} cores; {' '.join(machine['vector_extensions'])}; matmul peak "
        f"{peak['float32']} GFLOP/s fp32)"
    )
    print(f"{'backbone':<20}{'px':>5}{'runtime':>13}{'b1 img/s':>10}{'b32 img/s':>10}{'agree':>7}")
    for r in rows:
        print(
            f"{r['backbone']:<20}{r['image_size']:>5}{r['runtime']:>13}{r['b1_img_s']:>10}{r['b32_img_s']:>10}"
            f"{r['top1_agreement_with_keras']:>7}"
        )
    print(f"written to {a.out}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
