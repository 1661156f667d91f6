"""`make clean` removes what the main job, the pipeline, the service and the tests wrote, and nothing committed."""

import subprocess

from testkit.repo import clean_copy

MADE = [
    "data/synthetic/Tomato___healthy/0.png",
    "data/manifest.csv",
    "data/manifest.json",
    "models/model.keras",
    "models/features.npz",
    "exported/model_int8.tflite",
    "reports/evaluate/metrics.json",
    "reports/notebooks/train.ipynb",
    "reports/ood/figures/scores.png",
    "reports/bench_not_committed.json",
    "mlflow.db",
    "mlartifacts/1/x/artifacts/model.keras",
    "predictions.db",
    "spool/predictions/0001.json",
    "photos/ab/abcd.jpg",
    ".cache/models/x",
]


def test_make_clean_removes_outputs_and_keeps_committed(tmp_path):
    repo = clean_copy(tmp_path / "repo")
    committed = subprocess.run(["git", "ls-files"], cwd=repo, capture_output=True, text=True, check=True).stdout
    assert "reports/real_sample/README.md" in committed and "reports/bench_feature_ood.json" in committed
    for f in MADE:
        (repo / f).parent.mkdir(parents=True, exist_ok=True)
        (repo / f).write_bytes(b"x")
    (repo / ".venv").mkdir()
    (repo / ".venv" / "keep").write_text("the environment stays")
    subprocess.run(["make", "clean"], cwd=repo, check=True, capture_output=True)
    left = [f for f in MADE if (repo / f).exists()]
    assert not left, left
    assert (repo / ".venv" / "keep").exists()
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, check=True)
    assert status.stdout == "", status.stdout  # every committed file is where it was, unchanged
