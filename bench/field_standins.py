"""The field loop on the real sample, end to end, with stand-in field photos: how far accuracy falls from lab to
field photos of the same leaves, what the loop measures as field accuracy, and what retraining with the reviewed
photos changes. Prints the numbers and writes `reports/bench_field_standins.json`.

1. v1: `data` (the sample, at most --lab-per-class photos per class) -> `train` (the cpu profile) -> `evaluate`.
2. Stand-in field photos: photos of the sample the lab manifest left out, each under one field-like corruption
   (cluttered background, blur, dim light, severity 3 of 5). v1 answers each one (prediction log, photo store) and a
   reviewer who knows the class gives the verdict (confirmed, or corrected to the true class); `field.field_summary`
   gives field accuracy with its interval; v1's accuracy on the same photos uncorrupted is the lab figure beside it.
3. `plant-disease field-export`, then v2: `data` with `data.field_sources` -> `train` -> `evaluate` (lab and field
   test photos scored apart).

    python bench/field_standins.py --images ../shared/data/plantvillage
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from PIL import Image

from testkit.machine import cpu_name, matmul_peak_gflops, vector_extensions

ROOT = Path(__file__).resolve().parents[1]
CORRUPTIONS = (("background", 3), ("blur", 3), ("brightness", 3))


def jpeg(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--images",
        type=Path,
        default=Path(os.environ.get("PLANT_DISEASE_SHARED_DATA", ROOT.parent / "shared" / "data")) / "plantvillage",
    )
    ap.add_argument("--lab-per-class", type=int, default=140, help="lab photos per class (the rest can stand in)")
    ap.add_argument("--field-per-class", type=int, default=30, help="stand-in field photos per class, at most")
    ap.add_argument(
        "--epochs", type=int, default=None, help="override the cpu profile's phase-2 epochs (default: its 8)"
    )
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "bench_field_standins.json")
    a = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from plant_disease.cli import main as cli
    from plant_disease.config import parse_params
    from plant_disease.feedback import FeedbackLog, feedback_row
    from plant_disease.field import field_summary
    from plant_disease.inference import Predictor
    from plant_disease.photostore import PhotoStore
    from plant_disease.predlog import PredictionLog, upgrade
    from plant_disease.robustness import corrupt
    from plant_disease.stages import Dirs
    from plant_disease.stages.runner import run_in_process

    work = a.work or Path(tempfile.mkdtemp(prefix="bench-field-standins-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
    os.environ["PD_SPOOL_DIR"] = str(work / "spool")
    raw = {"profile": ["cpu"], "data": {"source": str(a.images.resolve()), "max_per_class": a.lab_per_class}}
    if a.epochs:
        raw["train"] = {"phase2": {"epochs": a.epochs}}
    t0 = time.perf_counter()
    report = {
        "command": "python bench/field_standins.py " + " ".join(argv or sys.argv[1:]),
        "machine": {
            "cores": os.cpu_count(),
            "cpu": cpu_name(),
            "vector_extensions": vector_extensions(),
            "matmul_peak_gflops": matmul_peak_gflops(),
        },
    }
    print(json.dumps(report["machine"]), flush=True)

    # 1. v1 on lab photos only
    v1 = Dirs.of(work / "v1" / "data", work / "v1" / "models", work / "v1" / "reports")
    lab = run_in_process("data", parse_params(raw, "bench"), v1)
    run_in_process("train", parse_params(raw, "bench"), v1)
    run_in_process("evaluate", parse_params(raw, "bench"), v1)
    m1 = json.loads((v1.reports / "evaluate" / "metrics.json").read_text())
    report["v1"] = {"test_accuracy": m1["accuracy"], "test_f1_macro": m1["f1_macro"], "n_test": m1.get("n_test")}

    # 2. stand-in field photos, answered by v1 and reviewed
    used, classes = set(lab.df["path"]), sorted(lab.df["class"].unique())
    spare = {
        c: [f for f in sorted((a.images / c).iterdir()) if str(f) not in used][: a.field_per_class] for c in classes
    }
    spare = {c: fs for c, fs in spare.items() if fs}
    rng = np.random.default_rng(0)
    url = f"sqlite:///{work / 'predictions.db'}"
    upgrade(url)
    store = PhotoStore(str(work / "photos"), work / "spool" / "photos")
    pred = Predictor.from_dir(v1.models)
    clean_right, n = 0, 0
    per_corruption: dict[str, list[int]] = {k: [0, 0] for k, _ in CORRUPTIONS}
    with PredictionLog(url, work / "spool") as plog, FeedbackLog(url, work / "spool") as flog:
        for c, files in spare.items():
            for i, f in enumerate(files):
                kind, sev = CORRUPTIONS[i % len(CORRUPTIONS)]
                original = np.asarray(Image.open(f).convert("RGB"))
                data = jpeg(corrupt(original, kind, sev, rng))
                clean_right += pred.predict(f.read_bytes()).label == c
                p = pred.predict(data)
                answer = {"request_id": uuid.uuid4().hex, "image_sha256": store.keep(data), "label": p.label}
                plog.record(
                    **answer, confidence=p.confidence, variant="A", model_name="plant-disease", model_version="1"
                )
                if p.label == c:
                    row = feedback_row(answer, "confirmed", None, classes, "bench-reviewer", source="api")
                else:
                    row = feedback_row(answer, "corrected", c, classes, "bench-reviewer", source="api")
                flog.record(**row)
                per_corruption[kind][0] += p.label == c
                per_corruption[kind][1] += 1
                n += 1
        assert plog.flush(60) and flog.flush(60)
        summary = field_summary(plog.frame(), flog.frame(), {"1": m1["accuracy"]})
    assert store.flush(60)
    store.close()
    report["standins"] = {
        "n": n,
        "classes": len(spare),
        "v1_accuracy_same_photos_uncorrupted": round(clean_right / n, 4),
        "v1_field_accuracy_measured_by_the_loop": summary["field_accuracy"],
        "v1_abstained": summary["abstained"],
        "v1_accuracy_per_corruption": {k: round(r / t, 4) for k, (r, t) in per_corruption.items() if t},
    }
    print(json.dumps(report["standins"], indent=1), flush=True)

    # 3. export, retrain with the field photos
    assert (
        cli(
            ["field-export", "--out", str(work / "field"), "--database-url", url, "--photo-store", str(work / "photos")]
        )
        == 0
    )
    raw["data"]["field_sources"] = [str(work / "field")]
    v2 = Dirs.of(work / "v2" / "data", work / "v2" / "models", work / "v2" / "reports")
    run_in_process("data", parse_params(raw, "bench"), v2)
    run_in_process("train", parse_params(raw, "bench"), v2)
    run_in_process("evaluate", parse_params(raw, "bench"), v2)
    m2 = json.loads((v2.reports / "evaluate" / "metrics.json").read_text())
    keys = (
        "accuracy",
        "accuracy_lab",
        "accuracy_field",
        "accuracy_field_ci_low",
        "accuracy_field_ci_high",
        "n_test_lab",
        "n_test_field",
    )
    report["v2"] = {k: m2.get(k) for k in keys}
    # v1 on v2's field test photos: the same photos, before and after learning from the field
    import pandas as pd

    test = pd.read_csv(v2.data / "manifest.csv", keep_default_na=False)
    ft = test[(test["split"] == "test") & (test["origin"] == "field")]
    v1_on = [pred.predict(Path(p).read_bytes()).label == c for p, c in zip(ft["path"], ft["class"])]
    report["v1_on_v2_field_test"] = {"n": len(v1_on), "accuracy": round(float(np.mean(v1_on)), 4) if v1_on else None}
    report["minutes"] = round((time.perf_counter() - t0) / 60, 1)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
