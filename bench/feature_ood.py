"""Unknown answers from the backbone's pooled features: which score tells known leaves from held-out diseases,
non-leaf photos and noise, measured on a trained model and its manifest (a `dvc repro` with `data.holdout_classes`).

Every score is computed on the same images: the probability scores the abstention rule uses today (on calibrated
probabilities), the energy of the logits, the image-domain score (colour and texture descriptors), and scores on
the 1280 pooled features of the training photos (no augmentation): a class-conditional Mahalanobis distance with one
shared, shrunk covariance (Lee et al. 2018), a class-agnostic probabilistic-PCA distance (the domain model's
`fit_domain` on features), and the distance to the k-th nearest training feature after L2 normalisation (Sun et al.
2022; the library's `fit_features` / `feature_score`, the abstention rule's feature check). For each: AUROC per
outlier set, and, with its threshold fitted on the validation photos at the abstention target, the share of each set
answered unknown; for the feature scores also the whole rule (top probability, domain check and that score, a third
of the target each). Prints the tables and writes `reports/bench_feature_ood.json`.

    python bench/feature_ood.py --repo /tmp/pdreal/a     # a clone where `dvc repro` ran (models/, data/)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from testkit.machine import cpu_name, matmul_peak_gflops, vector_extensions

ROOT = Path(__file__).resolve().parents[1]
KS = (1, 5, 10, 20, 50)  # neighbours for the feature score
# the rule's choices of k: a PlantVillage leaf has several photos, so below about 10 the distance measures how far
# the same leaf's other photos are, which no photo from a field has
RULE_KS = (10, 20, 50)
SHARES = np.round(np.arange(0, 1.01, 0.1), 1)  # a check's share of the false-rejection budget


def choose_rule(scores: dict, holdout_class: np.ndarray, target: float, dom: bool) -> dict:
    """The abstention rule the library can apply (a probability score, the domain check, the kNN feature score at
    one k of RULE_KS, each with a share of the false-rejection budget, the probability score's at least 0.1, thresholds on
    the validation photos) that answers unknown most often for half of the held-out diseases while every non-leaf
    photo and every noise image is unknown; measured on the other half and on the test photos, beside the rule
    before it (msp, domain, kNN k 10, a third each). The halves: the held-out classes in sorted order, alternately."""
    from plant_disease.abstention import fit_threshold

    names = sorted(set(holdout_class))
    pick = np.isin(holdout_class, names[0::2])
    halves = {"choose": pick, "report": ~pick}
    probs, feats = ("msp", "margin", "neg_entropy"), [f"feature_knn{k}" for k in RULE_KS]
    val = scores["val"]

    def row(checks: list) -> dict:  # checks: (score, share of the target), thresholds at the validation photos
        t = {c: fit_threshold(val[c], target * s) for c, s in checks}

        def unknown(o):
            return np.any([scores[o][c] < v for c, v in t.items()], axis=0)

        h = unknown("holdout_classes")
        return {
            "checks": {c: round(float(s), 3) for c, s in checks},
            "val_false_rejection": round(float(unknown("val").mean()), 4),
            "test_false_rejection": round(float(unknown("test").mean()), 4),
            "holdout_all": round(float(h.mean()), 4),
            **{f"holdout_{k}": round(float(h[m].mean()), 4) for k, m in halves.items()},
            "objects": round(float(unknown("objects").mean()), 4),
            "noise": round(float(unknown("noise").mean()), 4),
        }

    rows, seen = [], set()
    for p in probs:
        for f in feats:
            for sp in SHARES[1:]:
                for sd in SHARES if dom else (0.0,):
                    sf = round(1 - sp - sd, 1)
                    checks = tuple((c, s) for c, s in ((p, sp), ("domain", sd), (f, sf)) if s > 0)
                    if sf < 0 or checks in seen:
                        continue
                    seen.add(checks)
                    rows.append(row(list(checks)))
    ok = [r for r in rows if r["objects"] == 1.0 and r["noise"] == 1.0]
    # ties: fewer validation leaves rejected, then the smaller k
    best = min(
        ok or rows,
        key=lambda r: (
            -r["holdout_choose"],
            r["val_false_rejection"],
            [int(c.removeprefix("feature_knn")) for c in r["checks"] if c.startswith("feature_knn")],
        ),
    )
    return {
        "halves": {"choose": names[0::2], "report": names[1::2]},
        "chosen": best,
        "before": row([("msp", 1 / 3), ("domain", 1 / 3), ("feature_knn10", 1 / 3)]) if dom else None,
        "candidates": len(rows),
        "meeting_objects_and_noise": len(ok),
    }


def run_images(pred, fm, images: list, chunk: int = 64):
    "Probabilities (uncalibrated), pooled features and image descriptors of images (paths or arrays)."
    import tensorflow as tf

    from plant_disease.abstention import image_descriptors

    probs, feats, desc = [], [], []
    fn = tf.function(lambda x: fm(x, training=False))
    for i in range(0, len(images), chunk):
        x = tf.stack([pred.preprocess(im) for im in images[i : i + chunk]])
        p, f = fn(x)
        probs.append(p.numpy())
        feats.append(f.numpy())
        desc.append(image_descriptors(x.numpy()))
    return np.concatenate(probs), np.concatenate(feats).astype(np.float64), np.concatenate(desc)


def fit_class_gaussians(f: np.ndarray, y: np.ndarray) -> dict:
    "Class means and one shared covariance (Ledoit-Wolf shrinkage) of training features; its precision."
    from sklearn.covariance import LedoitWolf

    classes = np.unique(y)
    means = np.stack([f[y == c].mean(0) for c in classes])
    lw = LedoitWolf().fit(f - means[np.searchsorted(classes, y)])
    return {"means": means, "precision": lw.precision_, "shrinkage": float(lw.shrinkage_)}


def class_mahalanobis(f: np.ndarray, g: dict) -> np.ndarray:
    "Minus the smallest Mahalanobis distance to a class mean (higher: more like a known class)."
    d = []
    for mu in g["means"]:
        z = f - mu
        d.append(((z @ g["precision"]) * z).sum(1))
    return -np.min(np.stack(d, 1), axis=1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo", required=True, help="a checkout where `dvc repro` ran: its models/ and data/")
    ap.add_argument("--objects", type=int, default=60)
    ap.add_argument("--noise", type=int, default=60)
    ap.add_argument("--out", default=str(ROOT / "reports" / "bench_feature_ood.json"))
    ap.add_argument("--cache", default=None, help="an .npz for the images' probabilities, features and descriptors")
    x = ap.parse_args()
    from scipy.special import logsumexp

    from plant_disease.abstention import (
        SCORES,
        domain_score,
        feature_score,
        fit_domain,
        fit_features,
        fit_threshold,
        ood_score,
    )
    from plant_disease.calibration import apply_temperature
    from plant_disease.data import load_manifest
    from plant_disease.inference import Predictor
    from plant_disease.model import features_model
    from plant_disease.ood import auroc, noise_images, object_images

    repo = Path(x.repo)
    machine = {"cpu": cpu_name(), "vector_extensions": vector_extensions(), **matmul_peak_gflops()}
    print(f"machine: {machine}", flush=True)
    t0 = time.time()
    pred = Predictor.from_dir(repo / "models")
    fm = features_model(pred.model)
    m = load_manifest(repo / "data")
    if not len(m.holdout):
        raise SystemExit(f"{repo / 'data'}: no held-out classes (set data.holdout_classes and rerun the data stage)")
    idx = {c: i for i, c in enumerate(pred.classes)}

    def paths(df) -> list[str]:  # the manifest's paths are relative to the checkout where the data stage ran
        return [str(repo / p) for p in df["path"]]

    sets = {
        "train": paths(m.split("train")),
        "val": paths(m.split("val")),
        "test": paths(m.split("test")),
        "holdout_classes": paths(m.holdout),
        "objects": list(object_images(x.objects, 256, 0)),
        "noise": list(noise_images(x.noise, 256, 0)),
    }
    cache = Path(x.cache) if x.cache else None
    if cache and cache.exists():  # the same model's arrays from an earlier run: the tables again in seconds
        z = np.load(cache)
        run = {k: (z[f"{k}_probs"], z[f"{k}_features"], z[f"{k}_desc"]) for k in sets}
    else:
        run = {k: run_images(pred, fm, v) for k, v in sets.items()}
        if cache:
            np.savez(cache, **{f"{k}_{n}": a for k, r in run.items() for n, a in zip(("probs", "features", "desc"), r)})
    print(f"features of {sum(map(len, sets.values()))} images in {time.time() - t0:.0f} s", flush=True)
    y_train = m.split("train")["class"].map(idx).to_numpy()
    w, b = pred.model.get_layer("predictions").get_weights()
    f_train = run["train"][1]
    gauss = fit_class_gaussians(f_train, y_train)
    ppca = fit_domain(f_train, k=64)
    knn = {k: fit_features(f_train, k) for k in KS}  # the library's feature score
    dom = pred.domain
    scores = {}
    for name, (p, f, desc) in run.items():
        cal = apply_temperature(p, pred.temperature)
        logits = f @ w + b
        s = {k: ood_score(cal, k) for k in SCORES}
        s["energy"] = logsumexp(logits, axis=1)
        s["max_logit"] = logits.max(1)
        if dom:
            s["domain"] = domain_score(desc, dom)
        s["feature_mahalanobis"] = class_mahalanobis(f, gauss)
        s["feature_ppca"] = domain_score(f, ppca)
        for k, fm in knn.items():
            s[f"feature_knn{k}"] = feature_score(f, fm)
        scores[name] = s
    target = (pred.abstain or {}).get("target_false_rejection", 0.05)
    outs = ("holdout_classes", "objects", "noise")
    table = {}
    for k in scores["test"]:
        t = fit_threshold(scores["val"][k], target)
        table[k] = {
            "auroc": {o: round(auroc(scores["test"][k], scores[o][k]), 4) for o in outs},
            "threshold_at_val": round(float(t), 6),
            "false_rejection_test": round(float((scores["test"][k] < t).mean()), 4),
            "answered_unknown": {o: round(float((scores[o][k] < t).mean()), 4) for o in outs},
        }
        if dom and k != "domain":  # the rule's shape: this score or the domain check, half the target each
            th, td = fit_threshold(scores["val"][k], target / 2), fit_threshold(scores["val"]["domain"], target / 2)

            def rule(o, th=th, td=td, k=k):
                return (scores[o][k] < th) | (scores[o]["domain"] < td)

            table[k]["with_domain_check"] = {
                "false_rejection_test": round(float(rule("test").mean()), 4),
                "answered_unknown": {o: round(float(rule(o).mean()), 4) for o in outs},
            }
        if dom and k.startswith("feature_"):  # the library's rule with a feature check: three checks, a third each
            t3 = {c: fit_threshold(scores["val"][c], target / 3) for c in ("msp", "domain", k)}

            def rule3(o, t3=t3):
                return np.any([scores[o][c] < t for c, t in t3.items()], axis=0)

            table[k]["rule_msp_domain_feature"] = {
                "false_rejection_test": round(float(rule3("test").mean()), 4),
                "answered_unknown": {o: round(float(rule3(o).mean()), 4) for o in outs},
            }
    hc = m.holdout["class"].to_numpy()
    chosen = choose_rule(scores, hc, target, bool(dom))
    res = {
        "machine": machine,
        "repo": str(repo),
        "classes": len(pred.classes),
        "holdout": m.summary.get("holdout_classes", []),
        "n": {k: len(v) for k, v in sets.items()},
        "target_false_rejection": target,
        "temperature": pred.temperature,
        "covariance_shrinkage": round(gauss["shrinkage"], 4),
        "scores": table,
        "rule_chosen_on_half_the_held_out_diseases": chosen,
        "seconds": round(time.time() - t0, 1),
    }
    Path(x.out).write_text(json.dumps(res, indent=2))
    print(
        f"{'score':22s} {'AUROC held-out':>14s} {'objects':>8s} {'noise':>8s}   unknown at {target:.0%} FR on val:"
        " test / held-out / objects / noise"
    )
    for k, r in table.items():
        a, u = r["auroc"], r["answered_unknown"]
        print(
            f"{k:22s} {a['holdout_classes']:14.3f} {a['objects']:8.3f} {a['noise']:8.3f}   "
            f"{r['false_rejection_test']:.3f} / {u['holdout_classes']:.3f} / {u['objects']:.3f} / {u['noise']:.3f}"
        )
    for key, title in (
        ("with_domain_check", "with the domain check (half the target each)"),
        ("rule_msp_domain_feature", "the rule with three checks (msp, domain, this score; a third of the target each)"),
    ):
        print(f"{title}: test / held-out / objects / noise answered unknown")
        for k, r in table.items():
            if key in r:
                c, u = r[key], r[key]["answered_unknown"]
                print(
                    f"{k:22s} {c['false_rejection_test']:.3f} / {u['holdout_classes']:.3f} / {u['objects']:.3f} / "
                    f"{u['noise']:.3f}"
                )
    print("the rule chosen on half the held-out diseases (every object and noise image unknown), its other half:")
    print(json.dumps(chosen, indent=1))
    print(f"-> {x.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
