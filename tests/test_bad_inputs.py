"""Bad inputs each give a clear message and lose nothing else."""

import json
import shutil

import pandas as pd
import pytest

from conftest import run_cli

FAST = [
    "--set",
    "pipeline.image_size=32",
    "--set",
    "model.backbone=mobilenetv2",
    "--set",
    "model.dense_units=16",
    "--set",
    "train.one_cycle.epochs=2",
    "--set",
    "train.one_cycle.progressive=[]",
    "--set",
    "train.verbose=0",
]


@pytest.fixture
def messy_tree(shared, tmp_path):
    "12 real images of 2 classes, plus a corrupt JPEG, a text file named .jpg, a zero-byte PNG and an empty class folder."
    src = shared / "plantvillage"
    root = tmp_path / "messy"
    for cls in ["Tomato___healthy", "Tomato___Leaf_Mold"]:
        (root / cls).mkdir(parents=True)
        for f in sorted((src / cls).iterdir())[:12]:
            shutil.copy(f, root / cls / f.name)
    good = next((root / "Tomato___healthy").iterdir()).read_bytes()
    (root / "Tomato___healthy" / "corrupt.JPG").write_bytes(good[:600] + b"\x00" * 50)
    (root / "Tomato___Leaf_Mold" / "notes.jpg").write_text("this is a text file named .jpg")
    (root / "Tomato___Leaf_Mold" / "empty.png").write_bytes(b"")
    (root / "Tomato___Target_Spot").mkdir()
    return root


def test_bad_files_are_reported_and_skipped(messy_tree, tmp_path):
    r = run_cli("run", "--profile", "scratch", "--set", f"data.source={messy_tree}", *FAST, cwd=tmp_path)
    assert "3 file(s) rejected" in r.stdout
    assert "Tomato___Target_Spot" in r.stderr  # the empty class folder is named in a warning
    rejected = pd.read_csv(tmp_path / "data" / "rejected.csv")
    reasons = dict(zip(rejected["path"].str.rsplit("/", n=1).str[-1], rejected["reason"]))
    assert reasons["corrupt.JPG"].startswith(("truncated", "not a readable image")), reasons
    assert reasons["notes.jpg"].startswith("not a readable image")
    assert reasons["empty.png"] == "zero-byte file"
    manifest = pd.read_csv(tmp_path / "data" / "manifest.csv")
    assert len(manifest) == 24 and manifest["class"].nunique() == 2  # every good image kept
    assert json.loads((tmp_path / "reports" / "evaluate" / "metrics.json").read_text())["n_test"] >= 2


def test_params_typo_is_named_and_earlier_outputs_survive(messy_tree, tmp_path, params_file):
    run_cli("data", "--set", f"data.source={messy_tree}", cwd=tmp_path)
    before = (tmp_path / "data" / "manifest.csv").read_bytes()
    params_file.write_text(params_file.read_text().replace("  seed: 42\n", "  sead: 42\n", 1))
    r = run_cli("data", "--set", f"data.source={messy_tree}", cwd=tmp_path, check=False)
    assert r.returncode == 2
    assert "data.sead: unknown key (did you mean 'data.seed'?)" in r.stderr
    assert "Traceback" not in r.stderr
    assert (tmp_path / "data" / "manifest.csv").read_bytes() == before


@pytest.mark.parametrize(
    "setting, message",
    [
        ("pipeline.batch_size=lots", "pipeline.batch_size: Input should be a valid integer"),
        ("train.phase1.lr=-1", "train.phase1.lr: Input should be greater than 0"),
        (
            "model.backbone=vgg",
            "model.backbone: Input should be 'resnet50', 'efficientnetb0', 'mobilenetv2', 'mobilenetv3small', "
            "'resnet18slim', 'efficientnet_lite0', 'efficientnet_lite1' or 'efficientnet_lite2'",
        ),
    ],
)
def test_wrong_type_or_range_is_named(tmp_path, setting, message):
    r = run_cli("params", "--set", setting, cwd=tmp_path, check=False)
    assert r.returncode == 2 and message in r.stderr, r.stderr


def test_missing_data_and_model_are_clear(tmp_path):
    r = run_cli("data", "--set", f"data.source={tmp_path / 'nowhere'}", cwd=tmp_path, check=False)
    assert r.returncode == 2 and "does not exist" in r.stderr
    r = run_cli("evaluate", cwd=tmp_path, check=False)
    assert r.returncode == 2 and "model.keras not found: run the train stage first" in r.stderr
    r = run_cli("predict", str(tmp_path / "x.jpg"), cwd=tmp_path, check=False)
    assert r.returncode == 2 and "train a model first" in r.stderr
