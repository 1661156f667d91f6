"""The README's main job: `plant-disease run` on the embedded synthetic default, offline, on the CPU."""

import json

import pandas as pd

from conftest import ROOT, run_cli

TINY = [
    "--set",
    "data.synthetic_per_class=20",
    "--set",
    "data.synthetic_size=64",
    "--set",
    "pipeline.image_size=32",
    "--set",
    "train.phase1.epochs=2",
    "--set",
    "train.phase2.epochs=1",
    "--set",
    "train.cache_views=2",
]  # the default profile's recipe (ImageNet EfficientNet-Lite0, two phases on cached activations), tiny


def test_run_on_synthetic_default(tmp_path, params_file):
    r = run_cli("run", *TINY, cwd=tmp_path)
    assert "SYNTHETIC" in r.stdout
    for f in [
        "data/manifest.csv",
        "data/rejected.csv",
        "data/manifest.json",
        "models/model.keras",
        "models/classes.json",
        "reports/eda/eda.json",
        "reports/evaluate/metrics.json",
        "reports/evaluate/classification_report.csv",
        "reports/train/history.csv",
        "reports/train/figures/training_curves.png",
        "reports/evaluate/figures/confusion_matrix.png",
        "reports/evaluate/figures/reliability.png",
        "reports/eda/figures/sample_grid.png",
    ]:
        assert (tmp_path / f).exists(), f
    metrics = json.loads((tmp_path / "reports" / "evaluate" / "metrics.json").read_text())
    assert metrics["synthetic"] is True and 0 <= metrics["accuracy"] <= 1
    # temperature scaling: fitted on the validation split by train, applied by evaluate (ECE before and after)
    card = json.loads((tmp_path / "models" / "classes.json").read_text())
    assert metrics["temperature"] == card["temperature"] > 0 and {
        "ece",
        "ece_uncalibrated",
        "nll",
        "nll_uncalibrated",
    } <= set(metrics)
    assert json.loads((tmp_path / "reports" / "eda" / "eda.json").read_text())["synthetic"] is True
    # abstention, fitted by train on the validation split; the ood stage of the run measures it
    # the cpu profile's rule (chosen by bench/feature_ood.py): minus the entropy and the nearest training photo's
    # pooled features, a fifth and four fifths of the budget
    print(json.dumps(card["abstain"]))
    assert (
        card["abstain"]["score"] == "neg_entropy"
        and card["abstain"]["domain_threshold"] is None
        and card["abstain"]["feature_threshold"] is not None
        and card["abstain"]["shares"] == {"score": 0.2, "feature": 0.8}
        and card["reference"]["n"] > 0
    )
    ood = json.loads((tmp_path / "reports" / "ood" / "metrics.json").read_text())
    print(json.dumps({k: ood[k] for k in ("auroc", "rejection", "false_rejection")}))
    assert set(ood["rejection"]) == {"objects", "noise"} and ood["auroc"]["feature"]["noise"] > 0.9, ood

    # predict: good images answer, a bad one is an error line, the others still answer
    imgs = pd.read_csv(tmp_path / "data" / "manifest.csv")["path"].head(2).tolist()
    (tmp_path / "bad.jpg").write_text("not an image")
    r = run_cli(
        "predict",
        "--json",
        imgs[0],
        tmp_path / "bad.jpg",
        imgs[1],
        "--explain",
        tmp_path / "cams",
        cwd=tmp_path,
        check=False,
    )
    out = [json.loads(l) for l in r.stdout.strip().splitlines()]
    assert r.returncode == 1 and [("error" in o) for o in out] == [False, True, False]
    best = out[0]["top_k"][0]["label"]
    assert (
        best.startswith("Synthetic___")
        and out[0]["label"] in (best, "unknown")
        and len(list((tmp_path / "cams").glob("*.png"))) == 2
    )
    # what is not a leaf is answered unknown, with the advice to retake the photo
    from PIL import Image
    from plant_disease.ood import noise_images, non_leaf_photo

    Image.fromarray(noise_images(1, 128)[0]).save(tmp_path / "noise.png")
    (tmp_path / "portrait.jpg").write_bytes(non_leaf_photo("portrait"))
    r = run_cli("predict", "--json", tmp_path / "noise.png", tmp_path / "portrait.jpg", cwd=tmp_path)
    out = [json.loads(l) for l in r.stdout.strip().splitlines()]
    assert [(o["label"], o["unknown"], o["class_id"]) for o in out] == [("unknown", True, None)] * 2, out
    assert "retake" in run_cli("predict", tmp_path / "noise.png", cwd=tmp_path).stdout

    # export: the edge formats answer as the Keras model does (same labels), `auto` picks one of them
    r = run_cli(
        "export",
        *TINY,
        "--set",
        "export.formats=[tflite_int8, onnx]",
        "--set",
        "export.representative_images=16",
        cwd=tmp_path,
    )
    rep = json.loads((tmp_path / "exported" / "export.json").read_text())
    assert set(rep["formats"]) == {"keras", "tflite_int8", "onnx"} and rep["formats"]["onnx"]["agreement"] == 1.0, rep
    assert json.loads((tmp_path / "reports" / "export.json").read_text()) == rep
    labels = {}
    for rt in ("keras", "onnx", "tflite_int8", "auto"):
        r = run_cli("predict", "--json", "--models-dir", "exported", "--runtime", rt, *imgs, cwd=tmp_path)
        labels[rt] = [json.loads(l)["label"] for l in r.stdout.strip().splitlines()]
    assert labels["onnx"] == labels["keras"] == labels["auto"], labels
    r = run_cli("predict", "--models-dir", "models", "--runtime", "onnx", imgs[0], cwd=tmp_path, check=False)
    assert r.returncode == 2 and "model.onnx not found" in r.stderr and "plant-disease export" in r.stderr, r.stderr

    # the same seed gives the same split
    first = (tmp_path / "data" / "manifest.csv").read_text()
    run_cli("data", *TINY, cwd=tmp_path)
    assert (tmp_path / "data" / "manifest.csv").read_text() == first


def test_params_yaml_is_valid_and_profiles_resolve():
    from plant_disease.config import load_params

    p = load_params(ROOT / "params.yaml")
    assert p.profile == ["cpu"] and p.data.source == "synthetic" and not p.from_scratch
    assert (p.model.backbone, p.train.schedule) == ("efficientnet_lite0", "two_phase") and p.train.cache_views > 1
    g = load_params(ROOT / "params.yaml", profile="tomato,gpu")
    assert (g.data.classes, g.pipeline.image_size, g.model.weights, g.pipeline.mixed_precision) == (
        "tomato",
        224,
        "imagenet",
        True,
    )


def test_dvc_stages_match_the_stage_units():
    """dvc.yaml declares the stages of plant_disease.stages.pipeline_stages(), in its order, each with its command, the
    groups it reads (plus `profile` where a profile can change them), its pipeline notebook and its unit's module
    (the rest of its code and the profile values it reads: tests/test_dvc_deps.py)."""
    import yaml
    from plant_disease.stages.runner import PROFILE_GROUPS, pipeline_stages

    declared = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    units = pipeline_stages()
    assert list(declared) == list(units)
    for name, unit in units.items():
        expected = set(unit.groups) | ({"profile"} if set(unit.groups) & set(PROFILE_GROUPS) else set())
        groups = {p for p in declared[name]["params"] if isinstance(p, str)}  # the rest: profiles.yaml (test_dvc_deps)
        assert groups == expected, name
        assert declared[name]["cmd"] == f"plant-disease stage {name}"
        module = unit.run.__module__.replace(".", "/") + ".py"
        assert {f"nbs/pipeline/{name}.ipynb", module} <= set(declared[name]["deps"]), (name, module)


def test_help_and_params_load_neither_tensorflow_nor_mlflow(tmp_path):
    """Building the parser imports every stage's unit (notebook 11: units are light to import), so `plant-disease
    --help` and `plant-disease params` answer without loading TensorFlow, Keras or MLflow (seconds each)."""
    import subprocess
    import sys

    heavy = "sorted({'tensorflow', 'keras', 'mlflow'} & set(sys.modules))"
    probe = (
        "import sys\n"
        "from plant_disease.cli import build_parser\n"
        "from plant_disease.stages.runner import pipeline_stages\n"
        "build_parser(); assert len(pipeline_stages()) == 8\n"
        f"assert not {heavy}, {heavy}\n"
    )
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "robustness" in run_cli("--help", cwd=tmp_path).stdout
    assert "train:" in run_cli("params", cwd=tmp_path).stdout
