"""Search the levers of the cached transfer recipe (issue 30) on the real sample, cheaply: one activation cache per
(variant, input size), at the input of the earliest block considered, and many tops trained on it.

The frozen bottom runs once over the training photos (the photo, then augmented views) and the validation and test
photos, at the input of block `--cut` ("N blocks": the last N blocks and the top train). Later cuts and the pooled
features are derived from that cache by running the frozen blocks between them once. Each top is then trained for
`--epochs` (AdamW, cosine decay, or the seed's constant rate with ReduceLROnPlateau) and its validation accuracy is
recorded after every epoch with the minutes it took, caching included. The choice is made on validation; the test
accuracy of each is written too, to be read for the chosen one only.

Usage: python bench/recipe_search.py --data-dir DIR (a `plant-disease data` output) --variant efficientnet_lite0
       --size 160 --cut "5 blocks" --views 3 [--tops SPEC,...] [--out reports/bench_recipe_search.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--variant", default="efficientnet_lite0")
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--cut", default="5 blocks")
    ap.add_argument("--views", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument(
        "--warm-epochs", type=int, default=20, help="epochs of the head alone before the blocks (warm tops)"
    )
    ap.add_argument(
        "--tops",
        default="0:adamw:0.001:15,1:adamw:0.001:15,2:adamw:0.001:15,5:adamw:0.001:15",
        help="comma-separated blocks[w]:adamw|adamw+warmup|plateau:lr:epochs[:views] (blocks 0: the head alone; w: the "
        "head first)",
    )
    ap.add_argument("--cache", default="/tmp/plant-disease-recipe-cache")
    ap.add_argument("--out", default=str(ROOT / "reports" / "bench_recipe_search.json"))
    a = ap.parse_args()

    import keras
    from plant_disease.activation_cache import (
        ActivationCache,
        CachedBatches,
        cache_activations,
        cut_point,
        split_model,
    )
    from plant_disease.config import load_params, parse_overrides
    from plant_disease.data import load_manifest
    from plant_disease.model import build_model, set_trainable
    from plant_disease.pipeline import configure_devices, make_dataset, make_datasets
    from testkit.machine import cpu_name, matmul_peak_gflops

    params = load_params(
        None,
        profile="cpu",
        overrides=parse_overrides(
            [
                f"model.backbone={a.variant}",
                "model.weights=imagenet",
                f"pipeline.image_size={a.size}",
                f"pipeline.batch_size={a.batch}",
                "pipeline.cache=false",
            ]
        ),
    )
    configure_devices(params.pipeline)
    manifest = load_manifest(a.data_dir)
    classes = manifest.classes
    index = {c: i for i, c in enumerate(classes)}
    model = build_model(len(classes), a.size, params.model)
    fresh = model.get_weights()
    cut = cut_point(model, a.cut)
    bottom, _ = split_model(model, cut)
    cache = Path(a.cache) / f"{a.variant}-{a.size}-{a.cut.replace(' ', '')}"
    data = make_datasets(manifest.df, classes, params.pipeline, params.augment, seed=42)
    timings = {}
    caches = {}
    t_start = time.perf_counter()
    for split in ("train0", *(f"train{v}" for v in range(1, a.views)), "val", "test"):
        folder = cache / split
        if (folder / "y.npy").exists():
            caches[split] = ActivationCache(folder)
            timings[split] = json.loads((folder / "seconds.json").read_text())["seconds"]
            continue
        t0 = time.perf_counter()
        name = "train" if split.startswith("train") else split
        df = manifest.split(name)
        if split in ("train0", "val", "test"):
            batches = make_dataset(df["path"], df["class"].map(index).to_numpy(), params.pipeline, tag=split)
        else:
            batches = data.train_batches().take(math.ceil(len(df) / a.batch) + 1)
        caches[split] = cache_activations(bottom, batches, len(df), folder)
        timings[split] = round(time.perf_counter() - t0, 2)
        (folder / "seconds.json").write_text(json.dumps({"seconds": timings[split]}))
        log(f"cached {split}: {len(df)} at {tuple(cut.shape[1:])} in {timings[split]:.0f} s")
    log(f"caches: {timings}")

    def derived(blocks: int, views: int):
        """Cached activations at the input of the last `blocks` blocks (0: pooled features), from the cache at the
        cut, by running the frozen blocks between once (kept on disk beside it for later runs)."""
        target = cut_point(model, f"{blocks} blocks") if blocks else cut_point(model, 0)
        if target is cut:
            return None, 0.0
        mid = keras.Model(cut, target)
        out, secs = {}, 0.0
        for split in [*(f"train{v}" for v in range(views)), "val", "test"]:
            folder, src, t0 = cache / f"derived-{blocks}" / split, caches[split], time.perf_counter()
            if (folder / "y.npy").exists():  # derived by an earlier run: its time still counts
                out[split] = ActivationCache(folder)
                secs += json.loads((folder / "seconds.json").read_text())["seconds"]
                continue
            out[split] = cache_activations(mid, CachedBatches(src, 256, shuffle=False), len(src), folder)
            (folder / "seconds.json").write_text(json.dumps({"seconds": time.perf_counter() - t0}))
            secs += time.perf_counter() - t0
        return {k: (c.x, c.y) for k, c in out.items()}, secs

    class Stacked:
        "Arrays (views stacked) in the shape CachedBatches reads."

        def __init__(self, x, y):
            self.x, self.y = x, y

        def __len__(self):
            return len(self.y)

    def as_batches(x, y, batch, shuffle):
        return CachedBatches(Stacked(x, y), batch, shuffle=shuffle)

    out_path = Path(a.out)
    doc = json.loads(out_path.read_text()) if out_path.exists() else {"runs": []}
    doc["machine"] = {"cpu": cpu_name(), "cores": os.cpu_count(), "matmul_peak_gflops": matmul_peak_gflops()}
    n_train = len(manifest.split("train"))
    for spec in [s for s in a.tops.split(",") if s]:
        parts = spec.split(":")
        warm = parts[0].endswith("w")  # the head first on the pooled features (phase 1), then the blocks
        blocks, sched, lr, epochs = int(parts[0].rstrip("w")), parts[1], float(parts[2]), int(parts[3])
        views = int(parts[4]) if len(parts) > 4 else a.views
        model.set_weights(fresh)
        warm_s = 0.0
        if warm and blocks:
            set_trainable(model, 0, train_bn=False)
            pooled, pooled_s = derived(0, views)
            head = keras.Model(cut_point(model, 0), model.output)
            xh = np.concatenate([pooled[f"train{v}"][0] for v in range(views)])
            yh = np.concatenate([pooled[f"train{v}"][1] for v in range(views)])
            hsteps = math.ceil(len(yh) / a.batch)
            head.compile(
                keras.optimizers.AdamW(
                    keras.optimizers.schedules.CosineDecay(3e-3, hsteps * a.warm_epochs), weight_decay=0.01
                ),
                "sparse_categorical_crossentropy",
                metrics=["accuracy"],
            )
            t_w = time.perf_counter()
            hh = head.fit(
                as_batches(xh, yh, a.batch, True),
                validation_data=as_batches(*pooled["val"], 256, False),
                epochs=a.warm_epochs,
                verbose=0,
            )
            warm_s = pooled_s + time.perf_counter() - t_w
            log(f"warm head: val {max(hh.history['val_accuracy']):.4f} in {warm_s:.0f} s")
        set_trainable(model, f"{blocks} blocks" if blocks else 0, train_bn=False)
        der, der_s = derived(blocks, views)
        start = cut_point(model, f"{blocks} blocks") if blocks else cut_point(model, 0)
        top = keras.Model(start, model.output)
        if der is None:
            xtr = np.concatenate([caches[f"train{v}"].x for v in range(views)])
            ytr = np.concatenate([caches[f"train{v}"].y for v in range(views)])
            xva, yva, xte, yte = caches["val"].x, caches["val"].y, caches["test"].x, caches["test"].y
        else:
            xtr = np.concatenate([der[f"train{v}"][0] for v in range(views)])
            ytr = np.concatenate([der[f"train{v}"][1] for v in range(views)])
            (xva, yva), (xte, yte) = der["val"], der["test"]
        steps = math.ceil(len(ytr) / a.batch)
        if sched in ("adamw", "adamw+warmup"):  # cosine decay to 0; +warmup: from 0 to lr over the first epoch
            warmup = steps if sched.endswith("warmup") else 0
            rate = keras.optimizers.schedules.CosineDecay(
                0.0 if warmup else lr,
                steps * epochs - warmup,
                warmup_target=lr if warmup else None,
                warmup_steps=warmup,
            )
            opt = keras.optimizers.AdamW(rate, weight_decay=0.01)
            callbacks = []
        else:  # the seed's: a constant rate, ReduceLROnPlateau
            opt = keras.optimizers.Adam(lr)
            callbacks = [keras.callbacks.ReduceLROnPlateau("val_accuracy", factor=0.3, patience=3, min_lr=1e-7)]
        top.compile(opt, "sparse_categorical_crossentropy", metrics=["accuracy"])
        cache_s = sum(timings[f"train{v}"] for v in range(views)) + timings["val"] + der_s + warm_s
        curve, t0 = [], time.perf_counter()

        class Clock(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                curve.append(
                    {
                        "epoch": epoch + 1,
                        "minutes": round((cache_s + time.perf_counter() - t0) / 60, 3),
                        "val_accuracy": round(float(logs["val_accuracy"]), 4),
                    }
                )

        best_w, best = None, -1.0

        class Best(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                nonlocal best_w, best
                if logs["val_accuracy"] > best:
                    best, best_w = logs["val_accuracy"], top.get_weights()

        top.fit(
            as_batches(xtr, ytr, a.batch, True),
            validation_data=as_batches(xva, yva, 256, False),
            epochs=epochs,
            callbacks=[*callbacks, Clock(), Best()],
            verbose=0,
        )
        top.set_weights(best_w)
        p = top.predict(as_batches(xte, yte, 256, False), verbose=0)
        from sklearn.metrics import f1_score

        test_acc = float((p.argmax(1) == yte).mean())
        f1 = float(f1_score(yte, p.argmax(1), average="macro"))
        r = {
            "variant": a.variant,
            "size": a.size,
            "blocks": blocks,
            "warm_head": warm,
            "schedule": sched,
            "lr": lr,
            "epochs": epochs,
            "views": views,
            "batch": a.batch,
            "n_train": n_train,
            "cache_minutes": round(cache_s / 60, 2),
            "minutes": curve[-1]["minutes"],
            "epoch_seconds": round((time.perf_counter() - t0) / epochs, 1),
            "best_val_accuracy": round(best, 4),
            "test_accuracy": round(test_acc, 4),
            "test_f1_macro": round(f1, 4),
            "curve": curve,
        }
        log(
            f"{a.variant}@{a.size} blocks={blocks}{'w' if warm else ''} {sched} lr={lr} ep={epochs} views={views}: "
            f"val {best:.4f} "
            f"test {test_acc:.4f} f1 {f1:.4f}, cache {cache_s / 60:.1f} min, {r['epoch_seconds']} s/epoch, "
            f"total {r['minutes']:.1f} min; curve {[c['val_accuracy'] for c in curve]}"
        )
        doc["runs"].append(r)
        out_path.write_text(json.dumps(doc, indent=1))
    log(f"total {(time.perf_counter() - t_start) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
