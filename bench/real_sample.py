"""The real-sample run behind reports/real_sample/: `dvc repro` from clean clones of this repository on the shared
PlantVillage sample, then the A/B pair served side by side through the real API.

    python bench/real_sample.py [--data DIR] [--work DIR] [--steps a,b,ab,collect]

- a: a clean clone with `data.source` pointed at the sample (28 classes, 4 held out for the ood stage), the `cpu`
  profile, the default quality gate, and `dvc repro`: train, evaluate, ood, robustness (with the augmentation twin),
  export, register -> `plant-disease@production`.
- b: the same in a second clone with the `scratch` profile (the compact ResNet-18 from scratch, the recipe before
  pretrained weights), registered as `plant-disease-scratch` in the same MLflow registry (`dvc repro register`: the
  stages up to the registry).
- ab: the API (`python -m app`) serving `plant-disease@production` (the pretrained `cpu` recipe) as variant A and
  `plant-disease-scratch@production` as variant B, both with `runtime auto`; every test photo sent to both
  (X-Model-Variant), each answer reviewed through `POST /feedback` (confirmed, or corrected to the photo's class),
  then `/stats` and `/feedback/stats`: accuracy on the reviewed answers, unknown answers, latency and drift per
  variant -> ab.json.
- collect: the numbers, figures and executed notebooks into reports/real_sample/ (README.md there is written by hand
  from them).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from testkit.repo import clean_copy, set_params
from testkit.service import start_api

ROOT = Path(__file__).resolve().parents[1]


def clean_clone(dest: Path) -> Path:
    "A fresh `clean_copy` of this work tree at `dest` (an old one is removed first)."
    if dest.exists():
        shutil.rmtree(dest)
    return clean_copy(dest)


BIN = Path(sys.executable).parent
OUT = ROOT / "reports" / "real_sample"
B_NAME = "plant-disease-scratch"


def sh(cmd: list, cwd: Path, env: dict | None = None, log: Path | None = None) -> None:
    e = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", **(env or {})}
    print(f"$ {' '.join(map(str, cmd))}  (in {cwd})", flush=True)
    with log.open("a") if log else open(os.devnull, "w") as f:
        r = subprocess.run(
            list(map(str, cmd)), cwd=cwd, env=e, stdout=f if log else None, stderr=subprocess.STDOUT if log else None
        )
    if r.returncode:
        raise SystemExit(f"{cmd} exited {r.returncode}" + (f"; see {log}" if log else ""))


def repro(repo: Path, work: Path, *targets: str, **groups) -> None:
    set_params(repo, **groups)
    subprocess.run(
        ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qam", "real sample"],
        cwd=repo,
        check=True,
    )
    t0 = time.time()
    sh(["dvc", "repro", *targets], repo, {"MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"}, repo / "repro.log")
    (repo / "repro_seconds.txt").write_text(f"{time.time() - t0:.0f}\n")


def common(data: Path) -> dict:
    return {
        "data": {"source": str(data / "plantvillage"), "holdout_classes": 4},
        "eda": {"full_counts": str(data / "plantvillage_full_counts.csv")},
        "robustness": {"max_images": 300},
    }


def ab(work: Path) -> dict:
    "Serve A and B, send every test photo of A's manifest to both, and read /stats."
    import httpx
    import numpy as np
    import pandas as pd

    settings = {
        "PD_VARIANTS": json.dumps(
            [
                {"name": "A", "source": "models:/plant-disease@production"},
                {"name": "B", "source": f"models:/{B_NAME}@production"},
            ]
        ),
        "PD_RUNTIME": "auto",
        "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
    }
    (work / "predictions.db").unlink(missing_ok=True)
    p, url = start_api(work, settings, timeout_s=600)
    try:
        models = httpx.get(f"{url}/models", timeout=10).json()
        m = pd.read_csv(work / "a" / "data" / "manifest.csv")
        test = m[m.split == "test"]
        rows = []
        with httpx.Client(base_url=url, timeout=60) as c:
            for path, cls in zip(test["path"], test["class"]):
                data = Path(path).read_bytes()
                for v in ("A", "B"):
                    t0 = time.perf_counter()
                    r = c.post(
                        "/predict",
                        files={"file": (Path(path).name, data, "image/jpeg")},
                        headers={"X-Model-Variant": v},
                    )
                    ms = (time.perf_counter() - t0) * 1000
                    r.raise_for_status()
                    b = r.json()
                    # an agronomist who knows the class reviews every answer: confirmed, or corrected to the class
                    right = b["label"] == cls
                    f = c.post(
                        "/feedback",
                        json={
                            "request_id": b["request_id"],
                            "image_sha256": b.get("image_sha256"),
                            "verdict": "confirmed" if right else "corrected",
                            "label": None if right else cls,
                        },
                    )
                    f.raise_for_status()
                    rows.append(
                        {
                            "variant": v,
                            "true": cls,
                            "label": b["label"],
                            "best": b["top_k"][0]["label"],
                            "unknown": bool(b["unknown"]),
                            "client_ms": ms,
                        }
                    )
            stats = c.get("/stats").json()
            end = time.time() + 60  # the log writes answers and verdicts in the background: wait for the last
            while (reviewed := c.get("/feedback/stats").json())["n_verdicts"] < len(rows) and time.time() < end:
                time.sleep(0.5)
        df = pd.DataFrame(rows)
        per = {}
        for v, g in df.groupby("variant"):
            per[v] = {
                "n": len(g),
                "accuracy_top1": round(float((g["best"] == g["true"]).mean()), 4),
                "answered_unknown": round(float(g["unknown"].mean()), 4),
                "accuracy_of_answered": round(
                    float((g.loc[~g["unknown"], "label"] == g.loc[~g["unknown"], "true"]).mean()), 4
                ),
                "client_p50_ms": round(float(np.percentile(g["client_ms"], 50)), 1),
                "client_p99_ms": round(float(np.percentile(g["client_ms"], 99)), 1),
            }
        a, b = (df[df.variant == v].reset_index(drop=True) for v in ("A", "B"))
        both = {
            "agree": round(float((a["best"] == b["best"]).mean()), 4),
            "only_a_right": int(((a["best"] == a["true"]) & (b["best"] != b["true"])).sum()),
            "only_b_right": int(((a["best"] != a["true"]) & (b["best"] == b["true"])).sum()),
        }
        return {
            "models": models,
            "per_variant": per,
            "paired": both,
            "reviewed_by_variant": reviewed.get("by_variant"),
            "stats": stats,
            "feedback_stats": reviewed,
            "n_test": len(test),
        }
    finally:
        p.terminate()
        p.wait(30)


def collect(work: Path) -> None:
    a, b = work / "a", work / "b"
    OUT.mkdir(parents=True, exist_ok=True)
    copies = {
        "params.yaml": a / "params.yaml",
        "evaluate_metrics.json": a / "reports/evaluate/metrics.json",
        "classification_report.csv": a / "reports/evaluate/classification_report.csv",
        "confusion_matrix.png": a / "reports/evaluate/figures/confusion_matrix.png",
        "train_summary.json": a / "reports/train/train_summary.json",
        "history.csv": a / "reports/train/history.csv",
        "training_curves.png": a / "reports/train/figures/training_curves.png",
        "export.json": a / "reports/export.json",
        "gate.json": a / "reports/gate.json",
        "ood/metrics.json": a / "reports/ood/metrics.json",
        "ood/figures/scores.png": a / "reports/ood/figures/scores.png",
        "robustness/metrics.json": a / "reports/robustness/metrics.json",
        "robustness/robustness.csv": a / "reports/robustness/robustness.csv",
        "robustness/robustness.md": a / "reports/robustness/robustness.md",
        "robustness/figures/robustness.png": a / "reports/robustness/figures/robustness.png",
        "robustness/twin/history.csv": a / "reports/robustness/twin/history.csv",
        "robustness/twin/train_summary.json": a / "reports/robustness/twin/train_summary.json",
        "variant_b/params.yaml": b / "params.yaml",
        "variant_b/evaluate_metrics.json": b / "reports/evaluate/metrics.json",
        "variant_b/train_summary.json": b / "reports/train/train_summary.json",
        "variant_b/history.csv": b / "reports/train/history.csv",
        "variant_b/export.json": b / "reports/export.json",
        "variant_b/gate.json": b / "reports/gate.json",
        "ab.json": work / "ab.json",
    }
    for stage in ("train", "evaluate", "ood", "robustness", "export", "register"):
        copies[f"notebooks/{stage}.ipynb"] = a / "reports/notebooks" / f"{stage}.ipynb"
    for dst, src in copies.items():
        if src.exists():
            (OUT / dst).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, OUT / dst)
        else:
            print(f"missing: {src}")
    for name in ("a", "b"):
        s = work / name / "repro_seconds.txt"
        if s.exists():
            print(f"dvc repro ({name}): {s.read_text().strip()} s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.environ.get("PLANT_DISEASE_SHARED_DATA", str(ROOT.parent / "shared" / "data")))
    ap.add_argument("--work", default="/tmp/plant-disease-real")
    ap.add_argument("--steps", default="a,b,ab,collect")
    x = ap.parse_args()
    data, work, steps = Path(x.data).resolve(), Path(x.work), x.steps.split(",")
    if not (data / "plantvillage").is_dir():
        raise SystemExit(f"{data / 'plantvillage'}: not found (--data)")
    work.mkdir(parents=True, exist_ok=True)
    if "a" in steps:
        repro(clean_clone(work / "a"), work, profile=["cpu"], **common(data))
    if "b" in steps:
        repro(
            clean_clone(work / "b"),
            work,
            "register",
            profile=["scratch"],
            register={"model_name": B_NAME},
            **common(data),
        )
    if "ab" in steps:
        res = ab(work)
        (work / "ab.json").write_text(json.dumps(res, indent=2, default=str))
        print(json.dumps({k: res[k] for k in ("per_variant", "paired", "reviewed_by_variant")}, indent=2, default=str))
    if "collect" in steps:
        collect(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
