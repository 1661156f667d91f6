"""The README's main job: `plant-disease run` on the embedded synthetic default, offline, on the CPU."""
import json

import pandas as pd

from conftest import ROOT, run_cli

TINY = ["--set", "data.synthetic_per_class=20", "--set", "data.synthetic_size=64", "--set", "pipeline.image_size=32",
        "--set", "model.backbone=mobilenetv2", "--set", "train.stage1.epochs=1", "--set", "train.stage2.epochs=1"]


def test_run_on_synthetic_default(tmp_path, params_file):
    r = run_cli("run", *TINY, cwd=tmp_path)
    assert "SYNTHETIC" in r.stdout
    for f in ["data/manifest.csv", "data/rejected.csv", "data/manifest.json", "models/model.keras", "models/classes.json",
              "reports/eda/eda.json", "reports/evaluate/metrics.json", "reports/evaluate/classification_report.csv",
              "reports/train/history.csv", "reports/train/figures/training_curves.png", "reports/evaluate/figures/confusion_matrix.png",
              "reports/evaluate/figures/reliability.png", "reports/eda/figures/sample_grid.png"]:
        assert (tmp_path / f).exists(), f
    metrics = json.loads((tmp_path / "reports" / "evaluate" / "metrics.json").read_text())
    assert metrics["synthetic"] is True and 0 <= metrics["accuracy"] <= 1
    assert json.loads((tmp_path / "reports" / "eda" / "eda.json").read_text())["synthetic"] is True

    # predict: good images answer, a bad one is an error line, the others still answer
    imgs = pd.read_csv(tmp_path / "data" / "manifest.csv")["path"].head(2).tolist()
    (tmp_path / "bad.jpg").write_text("not an image")
    r = run_cli("predict", "--json", imgs[0], tmp_path / "bad.jpg", imgs[1], "--explain", tmp_path / "cams", cwd=tmp_path, check=False)
    out = [json.loads(l) for l in r.stdout.strip().splitlines()]
    assert r.returncode == 1 and [("error" in o) for o in out] == [False, True, False]
    assert out[0]["label"].startswith("Synthetic___") and len(list((tmp_path / "cams").glob("*.png"))) == 2

    # the same seed gives the same split
    first = (tmp_path / "data" / "manifest.csv").read_text()
    run_cli("data", *TINY, cwd=tmp_path)
    assert (tmp_path / "data" / "manifest.csv").read_text() == first


def test_params_yaml_is_valid_and_profiles_resolve():
    from plant_disease.config import load_params
    p = load_params(ROOT / "params.yaml")
    assert p.profile == ["cpu"] and p.data.source == "synthetic" and p.from_scratch
    g = load_params(ROOT / "params.yaml", profile="tomato,gpu")
    assert (g.data.classes, g.pipeline.image_size, g.model.weights, g.pipeline.mixed_precision) == ("tomato", 224, "imagenet", True)
