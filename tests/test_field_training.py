"""The field loop's training half on real photos: reviewed field photos -> data (`data.field_sources`) -> train ->
evaluate, with lab and field test photos scored apart, and the `not_a_leaf` photos in the ood stage.

Stand-in field photos: lab photos of the shared sample (ones the lab manifest does not use) altered by the
robustness corruptions a field photo suffers (a cluttered background, blur, dim light), written as the folder
`plant-disease field-export` writes it (`make_field_folder`: answered, kept, reviewed, exported, through the library).
"""

import hashlib
import io
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import ROOT
from plant_disease.config import parse_params
from plant_disease.data import load_manifest
from plant_disease.field_sources import FIELD_MANIFEST, NOT_A_LEAF
from plant_disease.ood import non_leaf_photo
from plant_disease.robustness import corrupt
from plant_disease.stages import Dirs
from plant_disease.stages.runner import run_in_process, run_stage

CLASSES = ["Tomato___Early_blight", "Tomato___Leaf_Mold", "Tomato___healthy"]
MAX_PER_CLASS = 30  # lab photos per class
FIELD_PER_CLASS = 5  # 3 / 1 / 1 after the split: every class has a field test photo
CORRUPTIONS = (("background", 4), ("blur", 3), ("brightness", 4))  # what the robustness table shows costs most
EXPORT_COLUMNS = [
    "path",
    "sha256",
    "class",
    "origin",
    "verdict",
    "reviewer",
    "reviewed_at",
    "model_name",
    "model_version",
    "predicted_label",
    "variant",
    "request_id",
    "note",
]


def _jpeg(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def add_to_export(folder: Path, data: bytes, cls: str, verdict: str, predicted: str = "", ext: str = "jpg") -> dict:
    "Write one photo into a field-export folder (named by its SHA-256) and append its row to manifest.csv."
    sha = hashlib.sha256(data).hexdigest()
    rel = Path(cls or NOT_A_LEAF) / f"{sha}.{ext}"
    (folder / rel).parent.mkdir(parents=True, exist_ok=True)
    (folder / rel).write_bytes(data)
    row = dict.fromkeys(EXPORT_COLUMNS, "") | {
        "path": rel.as_posix(),
        "sha256": sha,
        "class": cls,
        "origin": "field",
        "verdict": verdict,
        "reviewer": "agronomist@example.org",
        "reviewed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model_name": "plant-disease",
        "model_version": "1",
        "predicted_label": predicted or cls,
        "variant": "a",
        "request_id": sha[:16],
    }
    f = folder / FIELD_MANIFEST
    pd.DataFrame([row], columns=EXPORT_COLUMNS).to_csv(f, mode="a", header=not f.exists(), index=False)
    return row


def make_field_folder(dest: Path, photos: dict[str, list[Path]], not_a_leaf: list[bytes], seed: int = 0) -> Path:
    """The field-export folder of stand-in field photos, made by the loop itself: each lab photo in `photos` (class ->
    files), under one of CORRUPTIONS in turn, is answered (prediction log), kept (photo store) and reviewed (a verdict
    checked by `feedback_row`, in the feedback log) in a SQLite log; every other one `corrected` (the model had
    answered another class), the rest `confirmed`; the `not_a_leaf` photos answered as a leaf and marked so. Then
    `plant-disease field-export` writes `dest` from the log and the store."""
    import os
    import uuid

    from plant_disease.cli import main
    from plant_disease.feedback import FeedbackLog, feedback_row
    from plant_disease.photostore import PhotoStore
    from plant_disease.predlog import PredictionLog, upgrade

    rng = np.random.default_rng(seed)
    work = dest.parent / f"{dest.name}-service"
    work.mkdir(parents=True)
    url = f"sqlite:///{work / 'predictions.db'}"
    upgrade(url)
    store = PhotoStore(str(work / "photos"), work / "spool" / "photos")
    classes = list(photos)
    with PredictionLog(url, work / "spool") as plog, FeedbackLog(url, work / "spool") as flog:

        def review(data: bytes, answered: str, verdict: str, label: str | None) -> None:
            answer = {"request_id": uuid.uuid4().hex, "image_sha256": store.keep(data), "label": answered}
            plog.record(**answer, confidence=0.5, variant="A", model_name="plant-disease", model_version="1")
            flog.record(**feedback_row(answer, verdict, label, classes, "agronomist@example.org", source="dashboard"))

        for cls, files in photos.items():
            for i, f in enumerate(files):
                kind, severity = CORRUPTIONS[i % len(CORRUPTIONS)]
                image = corrupt(np.asarray(Image.open(f).convert("RGB")), kind, severity, rng)
                other = next(c for c in classes if c != cls)
                if i % 2:
                    review(_jpeg(image), other, "corrected", cls)
                else:
                    review(_jpeg(image), cls, "confirmed", None)
        for data in not_a_leaf:
            review(data, classes[0], NOT_A_LEAF, None)
    assert store.flush(30)
    store.close()
    env = os.environ.get("PD_SPOOL_DIR")
    os.environ["PD_SPOOL_DIR"] = str(work / "spool")
    try:
        assert (
            main(["field-export", "--out", str(dest), "--database-url", url, "--photo-store", str(work / "photos")])
            == 0
        )
    finally:
        os.environ.pop("PD_SPOOL_DIR") if env is None else os.environ.__setitem__("PD_SPOOL_DIR", env)
    exported = json.loads((dest / "export.json").read_text())
    assert exported["n_exported"] == sum(map(len, photos.values())) + len(not_a_leaf), exported
    return dest


@pytest.fixture(scope="module")
def field_run(shared, tmp_path_factory, _tracking):
    "Lab-only data, then the field folder, then data -> train -> evaluate (stage runner, MLflow) -> ood."
    import time

    work = tmp_path_factory.mktemp("field_run")
    t0 = time.perf_counter()
    raw = {
        "profile": ["scratch"],
        "data": {"source": str(shared / "plantvillage"), "classes": CLASSES, "max_per_class": MAX_PER_CLASS},
        "pipeline": {"image_size": 48, "batch_size": 16},
        "model": {"weights": "none"},  # the scratch profile's compact ResNet-18
        "train": {"one_cycle": {"epochs": 2, "progressive": []}, "verbose": 0},
        "ood": {"n_objects": 8, "n_noise": 8},
    }
    lab = run_in_process("data", parse_params(raw, "test"), Dirs.of(work / "lab_data"))
    used = set(lab.df["path"])
    originals = {
        c: [f for f in sorted((shared / "plantvillage" / c).iterdir()) if str(f) not in used][:FIELD_PER_CLASS]
        for c in CLASSES
    }
    nal = [non_leaf_photo(n) for n in ("portrait", "building", "gift_box")]
    folder = make_field_folder(work / "field" / "2025-06", originals, nal)
    # a field photo byte-identical to a lab test photo, and one that arrived broken
    twin = lab.split("test").iloc[0]
    add_to_export(folder, Path(twin["path"]).read_bytes(), twin["class"], "confirmed")
    broken = add_to_export(folder, _jpeg(np.full((64, 64, 3), 90, np.uint8))[:300], CLASSES[1], "confirmed")

    raw["data"]["field_sources"] = [str(folder)]
    params = parse_params(raw, "test")
    dirs = Dirs.of(work / "data", work / "models", work / "reports", work / "exported")
    run_in_process("data", params, dirs)
    run_in_process("train", params, dirs)
    run_stage("evaluate", params, ROOT, dirs)  # the executed notebook, logged to MLflow (MLFLOW_TRACKING_URI)
    ood = run_in_process("ood", params, dirs)
    print(f"field run: {time.perf_counter() - t0:.0f} s")
    return {"work": work, "dirs": dirs, "lab": lab, "twin": twin, "broken": broken, "ood": ood}


@pytest.fixture(scope="module")
def _tracking(tmp_path_factory):
    "An MLflow store of this module's own."
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}")
    yield
    mp.undo()


def test_manifest_merges_field_photos(field_run):
    dirs, lab = field_run["dirs"], field_run["lab"]
    m = load_manifest(dirs.data)
    df = m.df
    assert set(df["origin"]) == {"lab", "field"}
    field = df[df["origin"] == "field"]
    assert field.groupby("class").size().to_dict() == {
        c: FIELD_PER_CLASS + (c == field_run["twin"]["class"]) for c in CLASSES
    }
    # adding field photos moves no lab photo
    assert df[df["origin"] == "lab"].reset_index(drop=True).to_dict() == lab.df.to_dict()
    # one SHA-256, one split: across origins too (the twin follows its lab photo into test)
    assert (df.groupby("sha256")["split"].nunique() == 1).all()
    twin = df[(df["origin"] == "field") & (df["sha256"] == field_run["twin"]["sha256"])]
    assert twin["split"].tolist() == ["test"]
    # field photos split on their own: each class has one in test
    assert set(field.loc[field["split"] == "test", "class"]) == set(CLASSES)
    summary = m.summary
    assert summary["origins"]["field"]["test"] == int(((df["origin"] == "field") & (df["split"] == "test")).sum())
    assert (summary["n_field"], summary["n_field_not_a_leaf"], summary["n_field_same_as_lab"]) == (16, 3, 1)
    rejected = pd.read_csv(dirs.data / "rejected.csv", keep_default_na=False)
    bad = rejected[rejected["path"].str.endswith(field_run["broken"]["path"].split("/")[-1])]
    assert bad["origin"].tolist() == ["field"] and bad["reason"].iloc[0].startswith(("truncated", "not a readable"))
    assert len(pd.read_csv(dirs.data / "field_not_a_leaf.csv")) == 3


def test_evaluate_scores_lab_and_field_apart(field_run):
    dirs = field_run["dirs"]
    metrics = json.loads((dirs.reports / "evaluate" / "metrics.json").read_text())
    test = load_manifest(dirs.data).split("test")
    n_field = int((test["origin"] == "field").sum())
    print({k: v for k, v in metrics.items() if k.endswith(("_lab", "_field", "_high", "_low")) or k == "accuracy"})
    assert metrics["n_test_lab"] + metrics["n_test_field"] == metrics["n_test"] == len(test)
    assert metrics["n_test_field"] == n_field == 4
    assert metrics["accuracy_field_ci_low"] <= metrics["accuracy_field"] <= metrics["accuracy_field_ci_high"]
    overall = (metrics["n_test_lab"] * metrics["accuracy_lab"] + n_field * metrics["accuracy_field"]) / len(test)
    assert overall == pytest.approx(metrics["accuracy"])
    preds = pd.read_csv(dirs.reports / "evaluate" / "predictions.csv")
    assert preds.groupby("origin")["correct"].mean().to_dict() == pytest.approx(
        {"lab": metrics["accuracy_lab"], "field": metrics["accuracy_field"]}
    )


def test_mlflow_carries_the_field_metrics(field_run, _tracking):
    from mlflow.tracking import MlflowClient

    metrics = json.loads((field_run["dirs"].reports / "evaluate" / "metrics.json").read_text())
    client = MlflowClient()  # this module's store: MLFLOW_TRACKING_URI
    exp = client.get_experiment_by_name("plant-disease")
    run = client.search_runs([exp.experiment_id], "tags.stage = 'evaluate'", max_results=1)[0]
    logged = run.data.metrics
    for key in ("accuracy_lab", "accuracy_field", "f1_macro_field", "n_test_field", "accuracy_field_ci_low"):
        assert logged[f"test_{key}"] == pytest.approx(metrics[key]), key


def test_ood_reports_the_field_not_a_leaf_photos(field_run):
    rep = field_run["ood"]
    assert rep["n_out"]["field_not_a_leaf"] == 3
    assert {"field_not_a_leaf", "objects", "noise"} <= set(rep["rejection"])
    assert 0 <= rep["auroc"]["msp"]["field_not_a_leaf"] <= 1
    assert rep["n_in_field"] == 4 and 0 <= rep["false_rejection_field"] <= 1
    saved = json.loads((field_run["dirs"].reports / "ood" / "metrics.json").read_text())
    assert saved["rejection"]["field_not_a_leaf"] == rep["rejection"]["field_not_a_leaf"]
