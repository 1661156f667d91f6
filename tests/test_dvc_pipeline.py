"""`dvc repro` of the pipeline from a clean copy of the repository, tracked in MLflow, with the quality gate.

The copy holds exactly what git would clone (tracked + untracked-not-ignored files), committed in a fresh repo,
so DVC has git for diffs and experiments. The real run trains the `scratch` profile briefly on the shared PlantVillage
sample (10 tomato classes: the pipeline's mechanics; tests/test_real_training.py checks the recipe); the
tracking-server run uses a tiny synthetic configuration.
"""

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from conftest import shared_data
from plant_disease.stages.runner import pipeline_stages
from testkit.processes import free_port
from testkit.repo import clean_copy, set_params

BIN = Path(sys.executable).parent


def sh(*cmd, cwd, env=None, check=True, timeout=1800):
    e = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}  # the embedded store unless given
    e.update(PATH=f"{BIN}:{os.environ['PATH']}", **(env or {}))
    r = subprocess.run(list(map(str, cmd)), cwd=cwd, capture_output=True, text=True, env=e, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {r.returncode}\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}")
    return r


def commit(repo: Path, msg: str):
    sh("git", "add", "-A", cwd=repo)
    sh("git", "-c", "user.name=ci", "-c", "user.email=ci@localhost", "commit", "-qm", msg, cwd=repo)


def production_version(repo: Path, name="plant-disease", uri=None):
    code = (
        "import mlflow,sys; c=mlflow.MlflowClient();\n"
        "try: print(c.get_model_version_by_alias(sys.argv[1], 'production').version)\n"
        "except Exception: print('none')"
    )
    env = {"MLFLOW_TRACKING_URI": uri or f"sqlite:///{repo / 'mlflow.db'}"}
    return sh(sys.executable, "-c", code, name, cwd=repo, env=env).stdout.strip()


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    if shared_data() is None:
        pytest.skip("real PlantVillage sample not found: set PLANT_DISEASE_SHARED_DATA")
    r = clean_copy(tmp_path_factory.mktemp("clone"))
    set_params(
        r,
        profile=["tomato", "scratch"],
        data={"source": str(shared_data() / "plantvillage"), "holdout_classes": 2},
        pipeline={"image_size": 96},
        train={"one_cycle": {"epochs": 6, "progressive": []}},  # a short run: the full one is test_real_training
        register={"min_accuracy": 0.5, "min_f1_macro": 0.4},  # the default gate is 0.80
        robustness={"twin": False, "max_images": 100, "severities": [1, 4]},
    )  # the twin: the tiny synthetic run below
    commit(r, "scratch profile on the real tomato sample")
    t0 = time.time()
    out = sh("bash", "-c", "dvc repro 2>&1", cwd=r)  # stderr in its place among the lines
    print(f"dvc repro: {time.time() - t0:.0f} s\n{out.stdout[-3000:]}")
    REPRO_OUTPUT["output"] = out.stdout
    return r


REPRO_OUTPUT = {}  # what the first `dvc repro` of the fixture printed
STAGES = tuple(pipeline_stages())


def test_repro_runs_every_stage_and_tracks_it(repo):
    for stage in STAGES:
        assert (repo / "reports" / "notebooks" / f"{stage}.ipynb").exists(), stage
    nb = json.loads((repo / "reports" / "notebooks" / "eda.ipynb").read_text())
    assert any(
        o.get("output_type") == "display_data" and "image/png" in o.get("data", {})
        for c in nb["cells"]
        for o in c.get("outputs", [])
    ), "executed EDA notebook keeps its figures"
    gate = json.loads((repo / "reports" / "gate.json").read_text())
    print(json.dumps(gate, indent=1)[:2000])
    assert gate["decision"] == "pass", gate
    assert production_version(repo) == str(gate["version"])
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["plant-disease"], output_format="pandas")
    children = runs[runs["tags.stage"].notna()]
    assert set(children["tags.stage"]) == set(STAGES)
    assert children["tags.pipeline_group"].nunique() == 1 and children["tags.git_commit"].notna().all()
    assert children["tags.manifest_sha256"].str.len().eq(64).all()
    train_run = children[children["tags.stage"] == "train"].iloc[0]
    hist = mlflow.MlflowClient().get_metric_history(train_run.run_id, "epoch_val_loss")
    assert len(hist) == len(pd.read_csv(repo / "reports" / "train" / "history.csv"))
    assert (
        train_run["metrics.val_calibration_temperature"] > 0
        and train_run["metrics.val_calibration_nll_after"] <= train_run["metrics.val_calibration_nll_before"]
    )
    evaluate_run = children[children["tags.stage"] == "evaluate"].iloc[0]
    assert {"metrics.test_ece", "metrics.test_ece_uncalibrated", "metrics.test_temperature"} <= set(
        evaluate_run.dropna().index
    )
    # ood: two tomato classes held out of training, presented with non-leaf photos and noise; numbers in MLflow and dvc
    ood = json.loads((repo / "reports" / "ood" / "metrics.json").read_text())
    print(json.dumps({k: ood[k] for k in ("auroc", "rejection", "false_rejection", "accuracy_accepted")}, indent=1))
    assert len(ood["holdout_classes"]) == 2 and set(ood["rejection"]) == {"holdout_classes", "objects", "noise"}
    assert ood["auroc"]["domain"]["noise"] > 0.9 and ood["auroc"]["domain"]["objects"] > 0.9, ood["auroc"]
    assert ood["rejection"]["noise"] > 0.9 and ood["false_rejection"] < 0.15, ood
    ood_run = children[children["tags.stage"] == "ood"].iloc[0]
    assert ood_run["metrics.ood_rejection_noise"] == ood["rejection"]["noise"]
    assert ood_run["metrics.ood_auroc_msp_holdout_classes"] == ood["auroc"]["msp"]["holdout_classes"]
    rob = json.loads((repo / "reports" / "robustness" / "metrics.json").read_text())
    ((name, summary),) = rob["models"].items()
    assert name == "augmentation on" and 0 <= summary["corrupted_accuracy"] <= 1 and "background_accuracy" in summary
    table = pd.read_csv(repo / "reports" / "robustness" / "robustness.csv")
    assert (
        len(table) == 1 + 8 * 2
        and (repo / "reports" / "robustness" / "figures" / "robustness.png").stat().st_size > 10_000
    )
    rob_run = children[children["tags.stage"] == "robustness"].iloc[0]
    assert rob_run["metrics.robustness_model_clean_accuracy"] == summary["clean_accuracy"]
    shown = sh("dvc", "metrics", "show", "--json", cwd=repo).stdout
    assert "reports/ood/metrics.json" in shown and "reports/robustness/metrics.json" in shown
    # the export stage: its numbers in its run, every format logged next to the Keras model in the train run,
    # and that model is the registered one
    export_run = children[children["tags.stage"] == "export"].iloc[0]
    rep = json.loads((repo / "reports" / "export.json").read_text())
    assert export_run["metrics.export_tflite_int8_accuracy"] == rep["formats"]["tflite_int8"]["accuracy"]
    logged = {
        lm.name
        for lm in mlflow.search_logged_models(
            experiment_ids=[train_run.experiment_id],
            filter_string=f"source_run_id = '{train_run.run_id}'",
            output_format="list",
        )
    }
    assert logged == {"keras_model", "model", "model_all_formats"}, logged
    mv = mlflow.MlflowClient().get_model_version("plant-disease", str(gate["version"]))
    uri = json.loads((repo / "exported" / "mlflow_run.json").read_text())["model_uri"]
    assert mv.run_id == train_run.run_id and uri.split("/")[-1] in mv.source, (uri, mv.source)
    from plant_disease.registry import fetch_model

    folder, _, _ = fetch_model("models:/plant-disease@production", repo / "cache", f"sqlite:///{repo / 'mlflow.db'}")
    assert {"model.keras", "model_int8.tflite", "model_fp32.tflite", "model.onnx", "export.json"} <= {
        p.name for p in folder.iterdir()
    }


def test_repro_prints_each_line_once(repo):
    """Per stage: a start line, its own progress (Keras' epoch lines) and a closing line with its time and headline;
    no line twice within a stage (papermill's log, the kernel's echo and the stage's own print were three copies),
    none of TensorFlow's C++ start-up lines, and a few hundred lines for the whole pipeline."""
    out = REPRO_OUTPUT["output"]
    lines = [line for line in out.splitlines() if line.strip()]
    print(f"{len(lines)} lines:\n" + "\n".join(lines[:60]))
    assert len(lines) < 300, len(lines)
    blocks = re.split(r"^Running stage '", out, flags=re.M)[1:]
    assert [b.split("'")[0] for b in blocks] == list(STAGES)
    for block in blocks:
        name = block.split("'")[0]
        repeated = {k: n for k, n in Counter(x for x in block.splitlines() if x.strip()).items() if n > 1}
        assert not repeated, (name, repeated)
        assert re.search(rf"^stage {name}: started", block, re.M), block
        assert re.search(rf"^stage {name}: done in \d+\.\d s — \S", block, re.M), block
    assert re.search(r"^Epoch 1/6$", out, re.M), out  # Keras' epoch lines
    assert "INFO papermill" not in out and "port.cc" not in out and "[IPKernelApp]" not in out, out


def test_production_model_classifies_test_images_as_metrics_say(repo):
    code = f"""
import json, sys, mlflow, pandas as pd
mlflow.set_tracking_uri("sqlite:///{repo / "mlflow.db"}")
model = mlflow.pyfunc.load_model("models:/plant-disease@production")
m = pd.read_csv("data/manifest.csv"); test = m[m.split == "test"]
out = model.predict(pd.DataFrame({{"path": test["path"]}}))
best = out["top_k"].map(lambda t: json.loads(t)[0]["label"])  # the model's class, also when the answer is unknown
print(json.dumps({{"accuracy": float((best.values == test["class"].values).mean()), "n": len(test),
                  "unknown": float(out["unknown"].mean()),
                  "answered_right": float((out["label"].values == test["class"].values).mean())}}))
"""
    res = json.loads(sh(sys.executable, "-c", code, cwd=repo).stdout.strip().splitlines()[-1])
    metrics = json.loads((repo / "reports" / "evaluate" / "metrics.json").read_text())
    assert res["n"] == metrics["n_test"]
    assert abs(res["accuracy"] - metrics["accuracy"]) < 0.01, (res, metrics["accuracy"])
    # the registered model abstains as the ood stage measured (it may run another runtime: a little tolerance)
    ood = json.loads((repo / "reports" / "ood" / "metrics.json").read_text())
    assert abs(res["unknown"] - ood["false_rejection"]) < 0.05, (res, ood["false_rejection"])


def test_second_repro_does_nothing(repo):
    out = sh("dvc", "repro", cwd=repo).stdout
    assert "Data and pipelines are up to date" in out, out
    assert "Running stage" not in out


def test_impossible_gate_moves_nothing(repo):
    commit(repo, "first pipeline run")
    before = production_version(repo)
    set_params(repo, register={"min_accuracy": 1.0, "min_f1_macro": 1.0})
    out = sh("dvc", "repro", cwd=repo).stdout
    assert (
        "Running stage 'register'" in out and "Running stage 'train'" not in out and "Running stage 'data'" not in out
    )
    gate = json.loads((repo / "reports" / "gate.json").read_text())
    assert gate["decision"] == "fail" and "accuracy" in gate["reason"], gate
    assert production_version(repo) == before
    assert "register.min_accuracy" in sh("dvc", "params", "diff", cwd=repo).stdout
    sh("git", "checkout", "params.yaml", cwd=repo)
    sh("dvc", "repro", "--force", "register", cwd=repo)  # back to the committed gate


def test_param_change_shows_in_params_and_metrics_diff(repo):
    # one_cycle.lr is left to the profile in params.yaml, so Hydra's add-or-override syntax (++) sets it
    out = sh("dvc", "exp", "run", "-S", "++train.one_cycle.lr=0.001", "-n", "lower-lr", cwd=repo).stdout
    assert "Running stage 'train'" in out and "Running stage 'data'" not in out and "Running stage 'eda'" not in out, (
        out
    )
    params = sh("dvc", "params", "diff", cwd=repo).stdout
    assert "train.one_cycle.lr" in params, params
    metrics = sh("dvc", "metrics", "diff", cwd=repo).stdout
    assert "reports/evaluate/metrics.json" in metrics and "accuracy" in metrics, metrics
    assert "lower-lr" in sh("dvc", "exp", "show", "--csv", cwd=repo).stdout


def test_bad_inputs_name_the_stage_and_keep_outputs(repo):
    manifest = (repo / "data" / "manifest.csv").read_bytes()
    r = sh(
        "plant-disease",
        "stage",
        "data",
        cwd=repo,
        env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"},
        check=False,
        timeout=120,
    )
    assert r.returncode == 2 and "stage data" in r.stderr and "127.0.0.1:9" in r.stderr, r.stderr
    r = sh("plant-disease", "stage", "data", "--set", f"data.source={repo / 'missing'}", cwd=repo, check=False)
    assert r.returncode == 2 and "stage data" in r.stderr and "does not exist" in r.stderr, r.stderr
    assert (repo / "data" / "manifest.csv").read_bytes() == manifest


def test_pipeline_against_a_real_mlflow_server(tmp_path):
    repo = clean_copy(tmp_path / "clone")
    set_params(
        repo,
        profile=["scratch"],
        data={"synthetic_per_class": 20, "synthetic_size": 64},
        pipeline={"image_size": 32},
        model={"backbone": "mobilenetv2", "dense_units": 16},
        train={"one_cycle": {"epochs": 2, "lr": 0.003, "progressive": []}},
        register={"min_accuracy": 0.0, "min_f1_macro": 0.0},
        robustness={"max_images": 20, "severities": [3], "corruptions": ["blur", "background"]},
    )  # with the twin
    commit(repo, "tiny synthetic")
    port = free_port()
    server = subprocess.Popen(
        [
            BIN / "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination",
            str(tmp_path / "server-artifacts"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        import requests

        for _ in range(120):
            try:
                if requests.get(f"{uri}/health", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.5)
        sh("dvc", "repro", cwd=repo, env={"MLFLOW_TRACKING_URI": uri})
        assert not (repo / "mlflow.db").exists()  # everything went to the server
        assert production_version(repo, uri=uri) == "1"
        gate = json.loads((repo / "reports" / "gate.json").read_text())
        assert gate["decision"] == "pass"
        rob = json.loads((repo / "reports" / "robustness" / "metrics.json").read_text())
        assert list(rob["models"]) == ["augmentation on", "augmentation off (twin)"], (
            rob
        )  # the twin trained without augmentation
        assert (repo / "models_twin" / "model.keras").exists()
        twin = json.loads((repo / "reports" / "robustness" / "twin" / "train_summary.json").read_text())
        assert twin["epochs"] >= 1
    finally:
        server.terminate()
        server.wait(30)
