"""A real floor: the `cpu` profile trained on real photos (the shared sample's 10 tomato classes) must reach an accuracy a
user would accept, not merely beat chance.

The recipe is the profile's, unchanged: ImageNet EfficientNet-Lite0 (weights read offline from the installed package),
the frozen bottom run once over two views of each training photo (the photo and an augmented copy), the head on the
cached pooled features, then the last blocks and the head on the cached activations (notebook 05b). Its cost and
the accuracy it reached are in docs/training.md (section Training on a CPU); the 28-class numbers are in
reports/benchmarks.md (bench/time_to_accuracy.py)."""

import json

import pandas as pd
import pytest

from conftest import run_cli

# 10 classes: chance is 0.10. Issue 30 aims at 0.95. The cpu profile reached 0.936 / 0.919 here (6.3 minutes of
# training on 2 AVX2 cores, phase 2 warmed up to 1e-3; at a constant 1e-3 it collapsed to 0.858 / 0.776): the floor
# sits just under what it reached, so run-to-run variation (one photo is 0.005) does not turn CI red
FLOOR_ACCURACY, FLOOR_F1 = 0.92, 0.90


@pytest.fixture(scope="module")
def real(shared, tmp_path_factory):
    work = tmp_path_factory.mktemp("real_run")
    r = run_cli(
        "run",
        "--profile",
        "tomato,cpu",
        "--set",
        f"data.source={shared / 'plantvillage'}",
        "--set",
        "train.verbose=0",
        "--set",
        f"eda.full_counts={shared / 'plantvillage_full_counts.csv'}",
        cwd=work,
    )
    print(r.stdout[-4000:])
    return work


def test_real_manifest_is_the_tomato_subset(real):
    m = pd.read_csv(real / "data" / "manifest.csv")
    assert m["class"].nunique() == 10 and m["class"].str.startswith("Tomato___").all()
    counts = m.groupby(["class", "split"]).size().unstack()
    assert (counts["val"] >= 1).all() and (counts["test"] >= 1).all()
    assert abs(len(m[m.split == "train"]) / len(m) - 0.8) < 0.02
    summary = json.loads((real / "data" / "manifest.json").read_text())
    assert summary["synthetic"] is False and summary["n_rejected"] == 0


def test_real_eda(real):
    eda = json.loads((real / "reports" / "eda" / "eda.json").read_text())
    assert eda["full_imbalance_ratio"] == 36.23
    assert eda["cross_split_duplicates"] == 0
    for f in [
        "class_distribution.png",
        "brightness.png",
        "color_stats.png",
        "sample_grid.png",
        "full_class_distribution.png",
    ]:
        assert (real / "reports" / "eda" / "figures" / f).stat().st_size > 5000, f


def test_cpu_profile_reaches_the_floor_on_real_photos(real):
    metrics = json.loads((real / "reports" / "evaluate" / "metrics.json").read_text())
    summary = json.loads((real / "reports" / "train" / "train_summary.json").read_text())
    print(
        {k: metrics[k] for k in ("accuracy", "f1_macro", "top3_accuracy", "ece", "n_test")},
        f"training {summary['seconds']:.0f} s",
    )
    assert metrics["n_test"] >= 200 and metrics["synthetic"] is False
    assert metrics["accuracy"] >= FLOOR_ACCURACY and metrics["f1_macro"] >= FLOOR_F1, metrics
    hist = pd.read_csv(real / "reports" / "train" / "history.csv")
    assert set(hist["phase"]) == {1, 2} and hist["seconds"].is_monotonic_increasing
    # one cache of the training views (float16 on disk), made in phase 1 and used by both phases
    fits = summary["fits"]
    assert fits[0]["cache_bytes"] > 0 and fits[0]["cache_seconds"] > 0 and fits[1]["unfrozen_layers"] > 0, fits
    assert (real / "reports" / "evaluate" / "figures" / "confusion_matrix.png").exists()


def test_predict_command_on_real_test_images(real):
    m = pd.read_csv(real / "data" / "manifest.csv")
    test = m[m.split == "test"].head(5)
    r = run_cli("predict", "--json", *test["path"], cwd=real)
    lines = [json.loads(l) for l in r.stdout.strip().splitlines()]
    assert len(lines) == 5 and all(
        l["top_k"][0]["label"].startswith("Tomato___") and 0 < l["top_k"][0]["probability"] <= 1 for l in lines
    )
    right = sum(l["top_k"][0]["label"] == c for l, c in zip(lines, test["class"]))
    assert right >= 3, (right, lines)
