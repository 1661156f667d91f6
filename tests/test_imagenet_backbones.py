"""EfficientNet-Lite with its ImageNet weights, offline: the ImageNet classifier through full-int8 LiteRT, and the
backbone through every path of the pipeline (two-phase training with block freezing, every export format, Grad-CAM,
the runtimes, the registry and its pyfunc)."""

import json
import os

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, run_cli

CATS = {281, 282, 285}  # tabby, tiger cat, Egyptian cat
ESPRESSO = 967


def _photo(img: np.ndarray, size: int) -> np.ndarray:
    "The centre square of a photo, resized."
    import keras

    h, w = img.shape[:2]
    s = min(h, w)
    img = img[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    return keras.ops.convert_to_numpy(keras.ops.image.resize(img[None].astype("float32"), (size, size)))[0]


def _crops(img: np.ndarray, n: int, rng, size: int) -> list[np.ndarray]:
    "n random square crops (40-100% of the short side), half of them mirrored, resized; grey images as RGB."
    import keras

    img = (np.stack([img] * 3, -1) if img.ndim == 2 else img[..., :3]).astype("float32")
    h, w = img.shape[:2]
    out = []
    for _ in range(n):
        s = int(min(h, w) * rng.uniform(0.4, 1.0))
        y, x = rng.integers(0, h - s + 1), rng.integers(0, w - s + 1)
        c = img[y : y + s, x : x + s]
        c = c[:, ::-1] if rng.random() < 0.5 else c
        out.append(keras.ops.convert_to_numpy(keras.ops.image.resize(c[None], (size, size)))[0])
    return out


# photos shipped with scikit-image, for int8 calibration: neither chelsea (nor `cat`, the same photo) nor coffee
CALIBRATION = ("astronaut", "rocket", "immunohistochemistry", "retina", "hubble_deep_field", "colorwheel", "camera")
CALIBRATION += ("grass", "gravel", "brick", "coins", "moon")


def test_full_int8_imagenet_classifier_keeps_its_answers(tmp_path):
    "The 1000-class Lite0 exported to full-int8 LiteRT gives the same top-1 as Keras on scikit-image's photos."
    from skimage import data

    from plant_disease.efficientnet_lite import EfficientNetLite
    from plant_disease.export import export_savedmodel, export_tflite
    from plant_disease.runtimes import LiteRTRuntime

    net = EfficientNetLite(
        0, include_top=True, weights="imagenet", include_preprocessing=True, input_shape=(224, 224, 3)
    )
    x = np.stack([_photo(data.chelsea(), 224), _photo(data.coffee(), 224)])
    rng = np.random.default_rng(0)
    calib = np.stack([c for n in CALIBRATION for c in _crops(getattr(data, n)(), 8, rng, 224)])
    sm = export_savedmodel(net, tmp_path / "sm")
    rt = LiteRTRuntime(export_tflite(sm, tmp_path / "int8.tflite", "int8", calib))
    ref, q = net.predict(x, verbose=0), rt(x)
    assert CATS & set(ref[0].argsort()[-3:].tolist()) and ref[1].argmax() == ESPRESSO
    # chelsea is a close call even in float32 (Egyptian cat 0.40, tiger cat 0.33): the int8 model must keep it
    np.testing.assert_array_equal(q.argmax(1), ref.argmax(1))
    assert np.abs(q - ref).max() < 0.05, np.abs(q - ref).max()


@pytest.fixture(scope="module")
def lite_run(tmp_path_factory):
    """A tiny two-phase run of Lite0 from its ImageNet weights on synthetic leaves, through the pipeline's own stage
    notebooks (tracked in MLflow): data, train, export (every format), register."""
    work = tmp_path_factory.mktemp("lite")
    (work / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
    sets = [
        "data.synthetic_per_class=20",
        "data.synthetic_size=64",
        "pipeline.image_size=64",
        "model.backbone=efficientnet_lite0",
        "model.weights=imagenet",
        "model.dense_units=0",
        "train.schedule=two_phase",
        "train.phase1={epochs: 1, lr: 0.003, unfreeze_last: 0, decay: plateau}",
        "train.phase2={epochs: 1, lr: 0.0003, unfreeze_last: 2 blocks, decay: plateau}",
        "export.formats=[savedmodel, tflite_fp32, tflite_dynamic, tflite_int8, onnx]",
        "export.representative_images=[16]",
        "register.min_accuracy=0",
        "register.min_f1_macro=0",
    ]
    args = [a for s in sets for a in ("--set", s)]
    args += ["--params", work / "params.yaml", "--data-dir", work / "data", "--models-dir", work / "models"]
    args += ["--reports-dir", work / "reports", "--export-dir", work / "exported"]
    try:
        run_cli("data", *args, cwd=work)
        out = {name: run_cli("stage", name, *args, cwd=ROOT) for name in ("train", "export", "register")}
        yield work, out
    finally:
        if old is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old


def test_two_phase_training_unfreezes_whole_blocks(lite_run):
    work, runs = lite_run
    out = runs["train"].stdout
    assert "phase 1: 1 epoch(s) at 64 px, lr 0.003, unfrozen backbone layers: 0" in out, out[-2000:]
    # phase 2: block 14 (10 layers: three convolutions, their BatchNorm and ReLU6 but the last, drop-connect, the
    # residual Add), block 15 (8: no residual, 192 -> 320 channels) and the top (conv_head, bn1, ReLU6)
    assert "phase 2: 1 epoch(s) at 64 px, lr 0.0003, unfrozen backbone layers: 21" in out, out[-2000:]
    card = json.loads((work / "models" / "classes.json").read_text())
    assert card["backbone"] == "efficientnet_lite0" and card["image_size"] == 64
    gate = json.loads((work / "reports" / "gate.json").read_text())
    assert 0 <= gate["metrics"]["accuracy"] <= 1 and gate["decision"], gate


def test_every_export_format_runs_and_is_checked(lite_run):
    work = lite_run[0]
    rep = json.loads((work / "exported" / "export.json").read_text())
    assert set(rep["formats"]) == {"keras", "savedmodel", "tflite_fp32", "tflite_dynamic", "tflite_int8", "onnx"}
    for f in ("savedmodel", "tflite_fp32", "onnx"):
        assert rep["formats"][f]["agreement"] == 1.0, (f, rep["formats"][f])
    for f in ("tflite_dynamic", "tflite_int8"):  # quantised: a few answers near a tie may flip
        assert rep["formats"][f]["agreement"] >= 0.8, (f, rep["formats"][f])
    # the abstention rule's feature check in every format: the pooled features are each graph's second output,
    # and each runtime's thresholds are refitted on validation with its own outputs
    assert (work / "exported" / "features.npz").exists()
    for f, r in rep["formats"].items():
        assert r["feature_threshold"] is not None and r["abstain_threshold"] is not None, (f, r)
    imgs = pd.read_csv(work / "data" / "manifest.csv").query("split == 'test'")["path"].head(3).tolist()
    labels, scores = {}, {}
    for rt in ("keras", "savedmodel", "tflite_fp32", "tflite_dynamic", "tflite_int8", "onnx"):
        r = run_cli("predict", "--json", "--models-dir", "exported", "--runtime", rt, *imgs, cwd=work)
        rows = [json.loads(l) for l in r.stdout.strip().splitlines()]
        labels[rt], scores[rt] = [a["label"] for a in rows], [a["feature_score"] for a in rows]
        assert all(s is not None for s in scores[rt]), (rt, rows)
    assert labels["keras"] == labels["savedmodel"] == labels["tflite_fp32"] == labels["onnx"], labels
    for rt in ("savedmodel", "tflite_fp32", "onnx"):  # the same features, so the same score, to float precision
        assert scores[rt] == pytest.approx(scores["keras"], rel=1e-3), scores


def test_gradcam_explains_on_the_last_feature_map(lite_run):
    work = lite_run[0]
    img = pd.read_csv(work / "data" / "manifest.csv")["path"].iloc[0]
    run_cli("predict", img, "--explain", work / "cams", cwd=work)
    assert len(list((work / "cams").glob("*_gradcam.png"))) == 1


def test_registered_model_serves_through_its_pyfunc(lite_run):
    work = lite_run[0]
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model("models:/plant-disease@production")
    imgs = pd.read_csv(work / "data" / "manifest.csv").query("split == 'test'")["path"].head(3).tolist()
    out = model.predict(pd.DataFrame({"path": imgs}))
    r = run_cli("predict", "--json", "--models-dir", "models", *imgs, cwd=work)
    assert out["label"].tolist() == [json.loads(l)["label"] for l in r.stdout.strip().splitlines()], out


def test_mirrored_training_starts_from_the_imagenet_weights(lite_run):
    "train.distribute: the backbone is built and its ImageNet weights loaded inside the strategy's scope."
    work = lite_run[0]
    sets = [
        "data.synthetic_per_class=20",
        "pipeline.image_size=64",
        "pipeline.batch_size=16",
        "model.backbone=efficientnet_lite0",
        "model.weights=imagenet",
        "model.dense_units=0",
        "train.schedule=two_phase",
        "train.phase1={epochs: 1, lr: 0.003, unfreeze_last: 0}",
        "train.phase2={epochs: 0, lr: 0.0003, unfreeze_last: 0}",
        "train.distribute=mirrored",
        "train.logical_cpus=2",
        "train.cache_views=0",  # the cpu profile caches activations on one device; a strategy runs the whole model
    ]
    args = [a for s in sets for a in ("--set", s)]
    run_cli("train", *args, "--models-dir", "models/mirrored", "--reports-dir", "reports/mirrored", cwd=work)
    summary = json.loads((work / "reports" / "mirrored" / "train" / "train_summary.json").read_text())
    assert (summary["devices"]["strategy"], summary["devices"]["replicas"]) == ("MirroredStrategy", 2)
    import keras

    import plant_disease.model  # noqa: F401  (registers the preprocessing layer)
    from plant_disease.efficientnet_lite import EfficientNetLite

    trained = keras.saving.load_model(work / "models" / "mirrored" / "model.keras", compile=False)
    ref = EfficientNetLite(0, weights="imagenet")
    for name in ("conv_stem", "blocks_15_project_conv", "conv_head"):  # frozen in phase 1: still ImageNet's
        np.testing.assert_array_equal(trained.get_layer(name).get_weights()[0], ref.get_layer(name).get_weights()[0])
