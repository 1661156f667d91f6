"""Real training on the shared PlantVillage sample: tomato profile, small images, 1 epoch per stage.

The cpu profile has augmentation off: measured on this sample, 1 + 1 epochs from scratch reach 0.59 test accuracy
without it and 0.39 with the full augmentation (it pays off over longer schedules, not in two epochs)."""
import json

import pandas as pd
import pytest

from conftest import run_cli


@pytest.fixture(scope="module")
def real(shared, tmp_path_factory):
    work = tmp_path_factory.mktemp("real_run")
    r = run_cli("run", "--profile", "tomato,cpu",
                "--set", f"data.source={shared / 'plantvillage'}",
                "--set", "train.stage1.epochs=1", "--set", "train.stage2.epochs=1",
                "--set", f"eda.full_counts={shared / 'plantvillage_full_counts.csv'}", cwd=work)
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
    for f in ["class_distribution.png", "brightness.png", "color_stats.png", "sample_grid.png", "full_class_distribution.png"]:
        assert (real / "reports" / "eda" / "figures" / f).stat().st_size > 5000, f


def test_real_training_beats_chance(real):
    metrics = json.loads((real / "reports" / "evaluate" / "metrics.json").read_text())
    print({k: metrics[k] for k in ("accuracy", "f1_macro", "top3_accuracy", "ece", "n_test")})
    assert metrics["n_test"] >= 200 and metrics["synthetic"] is False
    assert metrics["accuracy"] > 0.40, metrics  # chance is 0.10 for 10 classes
    hist = pd.read_csv(real / "reports" / "train" / "history.csv")
    assert hist["stage"].tolist() == [1, 2]
    assert (real / "reports" / "evaluate" / "figures" / "confusion_matrix.png").exists()


def test_predict_command_on_real_test_images(real):
    m = pd.read_csv(real / "data" / "manifest.csv")
    test = m[m.split == "test"].head(5)
    r = run_cli("predict", "--json", *test["path"], cwd=real)
    lines = [json.loads(l) for l in r.stdout.strip().splitlines()]
    assert len(lines) == 5 and all(l["label"].startswith("Tomato___") and 0 < l["confidence"] <= 1 for l in lines)
