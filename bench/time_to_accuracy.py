"""Time to accuracy on a CPU: train recipes through the user's entry point on the real sample and record validation
accuracy against wall-clock minutes after every epoch, then test accuracy once at the end.

Usage: python bench/time_to_accuracy.py [--data DIR] [--recipes cpu,cpu_before,...] [--work DIR]
       [--out reports/bench_time_to_accuracy.json]

DIR defaults to $PLANT_DISEASE_SHARED_DATA/plantvillage (the 28-class sample). Every recipe runs
`plant-disease data` once (the same split for all), then `plant-disease train` and `plant-disease evaluate` with
`--profile` and `--set` exactly as a user would. Results (one entry per recipe, kept across invocations so recipes
can be run one at a time) go to --out; the plot to reports/bench_time_to_accuracy.png; `python bench/report.py`
writes the section of reports/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

from testkit.machine import cpu_name, matmul_peak_gflops, vector_extensions

ROOT = Path(__file__).resolve().parents[1]
CLI = [str(Path(sys.executable).parent / "plant-disease")]  # the user's entry point, from this environment

ZOOM_AUG = ["augment.crop_scale=1", "augment.zoom=0.1", "augment.translation=0.05", "augment.brightness=0.2"]
MNV3S = ["model.backbone=mobilenetv3small"]
# name -> (what it is, --profile, --set overrides). "cpu" is the committed profile as it is today.
RECIPES: dict[str, tuple[str, str, list[str]]] = {
    "cpu": (
        "the cpu profile: ImageNet EfficientNet-Lite0, two phases on cached activations (the frozen bottom run once "
        "over 2 views of each training photo; the head, then the last 5 blocks and the head, 160 px)",
        "cpu",
        [],
    ),
    "cpu_phase2_1e-3": (
        "the cpu profile with phase 2 at lr 1e-3 without a warm-up (the profile before: its first epoch knocked "
        "training accuracy from 0.98 to 0.73)",
        "cpu",
        ["train.phase2.lr=0.001", "train.phase2.warmup_epochs=0"],
    ),
    "cpu_phase2_3e-4": (
        "the cpu profile with phase 2 at a constant peak of 3e-4 (no warm-up)",
        "cpu",
        ["train.phase2.lr=0.0003", "train.phase2.warmup_epochs=0"],
    ),
    "scratch": (
        "the scratch profile (the cpu profile before pretrained weights): the compact ResNet-18 (resnet18slim) from "
        "scratch, one cycle of 40 epochs (AdamW, label smoothing, random resized crops), 15 of them at 96 px, then 128 px",
        "scratch",
        [],
    ),
    "scratch_8": (
        "the scratch profile in about the cpu profile's time: one cycle of 8 epochs, 3 of them at 96 px",
        "scratch",
        ["train.one_cycle.epochs=8", "train.one_cycle.progressive=[[96, 3]]"],
    ),
    "mnv3s": ("MobileNetV3Small with the scratch profile's recipe", "scratch", MNV3S),
    "mnv3s_50x128": (
        "MobileNetV3Small, the scratch profile's recipe, 50 epochs all at 128 px",
        "scratch",
        [*MNV3S, "train.one_cycle.epochs=50", "train.one_cycle.progressive=[]"],
    ),
    "mnv3s_zoom_aug": (
        "MobileNetV3Small, the scratch profile's schedule, zoom 0.1 and shifts 0.05 instead of random resized crops",
        "scratch",
        [*MNV3S, *ZOOM_AUG],
    ),
    "mnv3s_50x128_zoom_aug": (
        "MobileNetV3Small, 50 epochs all at 128 px, zoom and shifts instead of crops",
        "scratch",
        [*MNV3S, "train.one_cycle.epochs=50", "train.one_cycle.progressive=[]", *ZOOM_AUG],
    ),
    "cpu_before": (
        "the cpu profile before issue 14: ResNet50 at 64 px, two phases of 3 + 2 epochs, no augmentation",
        "scratch",
        [
            "pipeline.image_size=64",
            "pipeline.cache=false",
            "pipeline.imbalance=class_weight",
            "model.backbone=resnet50",
            "model.dropout=0.4",
            "model.dense_units=256",
            "augment.enabled=false",
            "train.schedule=two_phase",
            "train.optimizer=adam",
            "train.weight_decay=0",
            "train.label_smoothing=0",
            "train.phase1={epochs: 3, lr: 0.001, unfreeze_last: all}",
            "train.phase2={epochs: 2, lr: 0.0003, unfreeze_last: all}",
            "train.early_stopping_patience=3",
            "train.reduce_lr_patience=1",
        ],
    ),
}
# What issue 14 measured for `cpu_before` on this sample and machine (37 minutes of training; not rerun by default).
BEFORE = {"minutes": 37.0, "test_accuracy": 0.442, "test_f1_macro": 0.395}
THRESHOLDS = (0.80, 0.90, 0.95)
# The targets of issue 30, in minutes of training on an AVX2 2-core machine whose fp32 matmul peak is about
# REFERENCE_GFLOPS: >= 98.5% test accuracy and >= 0.97 macro F1 within 15 minutes, >= 95% validation within 3.
REFERENCE_GFLOPS, TARGET_MINUTES, FIRST_MINUTES = 83.0, 15.0, 3.0


def target_minutes(peak: dict) -> tuple[float, float]:
    "The targets' minutes on this machine: scaled by its measured fp32 matmul peak against the reference's."
    scale = REFERENCE_GFLOPS / peak["float32"]
    return round(TARGET_MINUTES * scale, 1), round(FIRST_MINUTES * scale, 1)


def forward_gflops(models_dir: Path, sizes: list[int]) -> dict[int, float]:
    """Forward GFLOPs per image of the trained network (TensorFlow's graph profiler) at its saved size, scaled by
    pixel count to the other sizes of a progressive schedule (convolutions scale with it; the head is negligible)."""
    import keras
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
    import plant_disease.model  # noqa: F401  (registers the preprocessing layer)

    model = keras.saving.load_model(models_dir / "model.keras", compile=False)
    size = int(model.input_shape[1])
    fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(
        tf.TensorSpec([1, size, size, 3], tf.float32)
    )
    opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    opts["output"] = "none"
    flops = tf.compat.v1.profiler.profile(
        graph=convert_variables_to_constants_v2(fn).graph, options=opts
    ).total_float_ops
    return {s: round(flops / 1e9 * (s / size) ** 2, 4) for s in sizes}


def run(cmd: list[str], cwd: Path, log) -> float:
    "Run `cmd`; return its peak resident memory in MiB (the kernel's count for that process, os.wait4)."
    log.write(f"$ {shlex.join(cmd)}\n")
    log.flush()
    proc = subprocess.Popen(
        cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{shlex.join(cmd)} failed ({proc.returncode}); see {log.name}")
    return round(usage.ru_maxrss / 1024, 1)  # KiB on Linux


def crossing(hist, col: str, level: float) -> float | None:
    "Minutes until `col` first reaches `level` (None if never)."
    hit = hist[hist[col] >= level]
    return None if hit.empty else round(float(hit["seconds"].iloc[0]) / 60, 2)


def bench_recipe(name: str, data_args: list[str], work: Path, peak: dict) -> dict:
    import pandas as pd

    what, profile, sets = RECIPES[name]
    d = work / name
    d.mkdir(parents=True, exist_ok=True)
    args = [
        "--profile",
        profile,
        *data_args,
        *(a for s in sets for a in ("--set", s)),
        "--data-dir",
        str(work / "data"),
        "--models-dir",
        str(d / "models"),
        "--reports-dir",
        str(d / "reports"),
    ]
    with open(d / "log.txt", "w") as log:
        t0 = time.perf_counter()
        rss = run([*CLI, "train", *args], ROOT, log)
        wall = time.perf_counter() - t0
        run([*CLI, "evaluate", *args], ROOT, log)
    hist = pd.read_csv(d / "reports" / "train" / "history.csv")
    summary = json.loads((d / "reports" / "train" / "train_summary.json").read_text())
    metrics = json.loads((d / "reports" / "evaluate" / "metrics.json").read_text())
    per_class = pd.read_csv(d / "reports" / "evaluate" / "classification_report.csv", index_col=0)
    worst = per_class.sort_values("f1").head(3)
    n_train = summary["n_train"]
    sizes = sorted(set(int(s) for s in hist["image_size"]))
    gflops = forward_gflops(d / "models", sizes)
    train_s = float(hist["train_seconds"].iloc[-1])
    images = {s: int((hist["image_size"] == s).sum()) * n_train for s in sizes}
    cached = sum(f.get("cache_seconds", 0.0) for f in summary["fits"])
    # forward + backward ~ 3x forward, every layer every epoch; not so on cached activations (the frozen layers ran
    # once, the rest every epoch): no FLOP count there
    achieved = None if cached else sum(3 * gflops[s] * 1e9 * images[s] for s in sizes) / train_s / 1e9
    return {
        "recipe": name,
        "what": what,
        "command": shlex.join(
            ["plant-disease", "train", "--profile", profile, *data_args[:2], *(a for s in sets for a in ("--set", s))]
        ),
        "n_train": n_train,
        "n_test": metrics["n_test"],
        "classes": metrics["n_classes"],
        "epochs": int(len(hist)),
        "image_sizes": sizes,
        "train_minutes": round(train_s / 60, 2),
        "wall_minutes_incl_validation": round(float(hist["seconds"].iloc[-1]) / 60, 2),
        "stage_wall_minutes": round(wall / 60, 2),
        "train_images_per_second": round(sum(images.values()) / train_s, 1),
        "forward_gflops_per_image": gflops,
        "achieved_gflops": None if achieved is None else round(achieved, 1),
        "share_of_fp32_matmul_peak": None if achieved is None else round(achieved / peak["float32"], 3),
        "cache_minutes": round(cached / 60, 2),
        "cache_mib": round(sum(f.get("cache_bytes", 0) for f in summary["fits"]) / 2**20, 1),
        "peak_rss_mib": rss,
        "minutes_to_val": {f"{int(t * 100)}%": crossing(hist, "val_accuracy", t) for t in THRESHOLDS},
        "best_val_accuracy": round(float(hist["val_accuracy"].max()), 4),
        "test_accuracy": metrics["accuracy"],
        "test_f1_macro": metrics["f1_macro"],
        "worst_classes": [
            {"class": c, "f1": round(float(r["f1"]), 3), "support": int(r["support"])} for c, r in worst.iterrows()
        ],
        "curve": [
            {
                "minutes": round(float(r.seconds) / 60, 3),
                "train_minutes": round(float(r.train_seconds) / 60, 3),
                "val_accuracy": round(float(r.val_accuracy), 4),
                "image_size": int(r.image_size),
            }
            for r in hist.itertuples()
        ],
    }


def plot(results: dict, path: Path, peak: dict) -> None:
    "Validation accuracy against minutes for each recipe, with the targets scaled to this machine."
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for name, r in results.items():
        xs = [p["minutes"] for p in r["curve"]]
        ys = [p["val_accuracy"] for p in r["curve"]]
        ax.plot(
            xs, ys, marker="o", ms=3, label=f"{name}: test {r['test_accuracy']:.3f} in {r['train_minutes']:.0f} min"
        )
    old = Path(__file__).resolve().parents[1] / "reports" / "bench_time_to_accuracy_issue14.json"
    if "scratch" not in results and old.exists():  # the full scratch recipe, measured on another machine
        o = json.loads(old.read_text())
        r = o["recipes"]["cpu"]
        ax.plot(
            [q["minutes"] for q in r["curve"]],
            [q["val_accuracy"] for q in r["curve"]],
            color="grey",
            ls="--",
            lw=1,
            label=f"scratch, 40 epochs, on a Xeon ({o['matmul_peak_gflops']['float32']:.0f} GFLOP/s; issue 14): "
            f"test {r['test_accuracy']:.3f} in {r['train_minutes']:.0f} min",
        )
    if "cpu_before" not in results:
        ax.plot(
            [BEFORE["minutes"]],
            [BEFORE["test_accuracy"]],
            "kx",
            ms=8,
            label=f"cpu profile before (issue 14, ResNet50@64): test {BEFORE['test_accuracy']:.3f} in 37 min",
        )
    for t in THRESHOLDS:
        ax.axhline(t, color="grey", lw=0.6, ls=":")
    full, first = target_minutes(peak)
    ax.axvline(full, color="red", lw=0.8, ls="--", label=f"target: 98.5% test within {full} min (15 at 83 GFLOP/s)")
    ax.plot([first], [0.95], "r^", ms=7, label=f"target: 95% validation within {first} min (3 at 83 GFLOP/s)")
    ax.set(
        xlabel="wall-clock minutes of training (caching and validation included)",
        ylabel="validation accuracy",
        ylim=(0.3, 1),
        xlim=(0, max(40, max((r["curve"][-1]["minutes"] for r in results.values()), default=0) + 2)),
        title=f"Time to accuracy on {os.cpu_count()} CPU cores ({cpu_name()}, {peak['float32']:.0f} GFLOP/s fp32), "
        "28-class PlantVillage sample",
    )
    ax.title.set_fontsize(9)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    shared = Path(os.environ.get("PLANT_DISEASE_SHARED_DATA", ROOT.parent / "shared" / "data")) / "plantvillage"
    ap.add_argument("--data", default=str(shared))
    ap.add_argument("--recipes", default="cpu,resnet18slim", help=f"comma-separated, of: {', '.join(RECIPES)}")
    ap.add_argument("--work", default="/tmp/plant-disease-tta", help="where the runs' data, models and logs go")
    ap.add_argument("--out", default=str(ROOT / "reports" / "bench_time_to_accuracy.json"))
    ap.add_argument("--replot", action="store_true", help="only redraw the plot of --out")
    a = ap.parse_args()
    if a.replot:
        replot(Path(a.out))
        return 0
    if not Path(a.data).is_dir():
        raise SystemExit(f"{a.data}: no such folder (set PLANT_DISEASE_SHARED_DATA or --data)")
    names = [n.strip() for n in a.recipes.split(",") if n.strip()]
    if unknown := [n for n in names if n not in RECIPES]:
        raise SystemExit(f"unknown recipe(s) {unknown}; choose from {list(RECIPES)}")
    work, out = Path(a.work), Path(a.out)
    work.mkdir(parents=True, exist_ok=True)
    data_args = ["--set", f"data.source={a.data}"]
    with open(work / "data_log.txt", "w") as log:
        run([*CLI, "data", "--profile", "cpu", *data_args, "--data-dir", str(work / "data")], ROOT, log)
    import tensorflow as tf

    peak = matmul_peak_gflops()
    print(
        f"machine: {cpu_name()}, {os.cpu_count()} cores, {' '.join(vector_extensions())}; fp32 matmul peak "
        f"{peak['float32']} GFLOP/s (targets scale from {REFERENCE_GFLOPS} GFLOP/s: {target_minutes(peak)} min)",
        flush=True,
    )
    saved = json.loads(out.read_text()) if out.exists() else {}
    results = saved.get("recipes", {})
    for name in names:
        print(f"{name}: training ({RECIPES[name][0]}) ...", flush=True)
        results[name] = r = bench_recipe(name, data_args, work, peak)
        r["matmul_peak_gflops"] = peak  # this run's: a shared host's peak varies between runs
        print(
            f"{name}: test accuracy {r['test_accuracy']:.4f}, macro F1 {r['test_f1_macro']:.4f}, {r['train_minutes']} min, "
            f"{r['train_images_per_second']} img/s, peak RSS {r['peak_rss_mib']} MiB, "
            f"minutes to 80/90/95% val: {list(r['minutes_to_val'].values())}",
            flush=True,
        )
        doc = {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.platform()}",
            "cpu_model": cpu_name(),
            "vector_extensions": vector_extensions(),
            "tensorflow": tf.__version__,
            "matmul_peak_gflops": peak,
            "data": a.data,
            "command": f"python bench/time_to_accuracy.py --recipes {','.join(results)}",
            "recipes": results,
        }
        out.write_text(json.dumps(doc, indent=2))
        plot(results, out.with_suffix(".png"), peak)
    print(f"-> {out}, {out.with_suffix('.png')}")
    return 0


def replot(out: Path) -> None:
    "Redraw the plot of a results file (`--replot`)."
    doc = json.loads(out.read_text())
    plot(doc["recipes"], out.with_suffix(".png"), doc["matmul_peak_gflops"])


if __name__ == "__main__":
    sys.exit(main())
