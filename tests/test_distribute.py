"""Distributed training for real, on this machine's CPU: `mirrored` over two logical CPU devices, and `multi_worker`
with two worker processes on 127.0.0.1 (each with its TF_CONFIG), both compared with a single-device run of the same
global batch. A tiny MobileNetV2 (BatchNorm, synchronised across replicas) and one short epoch keep it to minutes."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, run_cli

TINY = [
    "--profile",
    "scratch",  # one cycle from scratch: the cached two-phase recipe runs on one device
    "--set",
    "data.synthetic_per_class=16",
    "--set",
    "data.synthetic_size=48",
    "--set",
    "pipeline.image_size=32",
    "--set",
    "model.backbone=mobilenetv2",
    "--set",
    "model.dense_units=16",
    "--set",
    "train.one_cycle.epochs=1",
    "--set",
    "train.one_cycle.progressive=[]",
    "--set",
    "augment.enabled=false",
    "--set",
    "train.verbose=0",
    "--set",
    "pipeline.shuffle_buffer=0",
    "--set",
    "abstain.domain_check=false",
]
PER_REPLICA, REPLICAS = 8, 2


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    w = tmp_path_factory.mktemp("distribute")
    shutil.copy(ROOT / "params.yaml", w / "params.yaml")
    run_cli("data", *TINY, cwd=w)
    return w


def trained(work: Path, name: str) -> tuple[dict, pd.DataFrame]:
    rep = work / "reports" / name / "train"
    return json.loads((rep / "train_summary.json").read_text()), pd.read_csv(rep / "history.csv")


@pytest.fixture(scope="module")
def single(work):
    run_cli(
        "train",
        *TINY,
        "--set",
        f"pipeline.batch_size={PER_REPLICA * REPLICAS}",
        "--models-dir",
        "models/single",
        "--reports-dir",
        "reports/single",
        cwd=work,
    )
    return trained(work, "single")


def close(a: pd.DataFrame, b: pd.DataFrame, tol=0.02, train_rtol=0.15):
    """The trained models agree (validation loss and accuracy within `tol`); the running training loss, averaged
    over batches while dropout draws differ per replica, within `train_rtol` of each other."""
    diffs = {
        c: round(float(np.abs(a[c].to_numpy() - b[c].to_numpy()).max()), 4)
        for c in ("val_loss", "val_accuracy", "loss", "accuracy")
    }
    rel = float(np.abs(a["loss"].to_numpy() / b["loss"].to_numpy() - 1).max())
    return diffs["val_loss"] <= tol and diffs["val_accuracy"] <= tol and rel <= train_rtol, {
        **diffs,
        "loss_relative": round(rel, 4),
    }


def test_mirrored_over_two_logical_cpus_matches_one_device(work, single):
    run_cli(
        "train",
        *TINY,
        "--set",
        "train.distribute=mirrored",
        "--set",
        f"train.logical_cpus={REPLICAS}",
        "--set",
        f"pipeline.batch_size={PER_REPLICA}",
        "--models-dir",
        "models/mirrored",
        "--reports-dir",
        "reports/mirrored",
        cwd=work,
    )
    summary, hist = trained(work, "mirrored")
    assert (summary["devices"]["strategy"], summary["devices"]["replicas"]) == ("MirroredStrategy", REPLICAS), summary[
        "devices"
    ]
    ok, diffs = close(hist, single[1])
    print("mirrored vs single device:", diffs)
    assert ok, diffs
    assert (work / "models" / "mirrored" / "model.keras").exists()
    r = run_cli(
        "predict",
        "--json",
        "--models-dir",
        "models/mirrored",
        pd.read_csv(work / "data" / "manifest.csv")["path"][0],
        cwd=work,
    )
    assert json.loads(r.stdout.splitlines()[0])["top_k"], r.stdout  # the saved model answers without a strategy


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_multi_worker_two_local_processes_match_one_worker(work, single):
    cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(REPLICAS)]}
    exe = shutil.which("plant-disease") or str(Path(sys.executable).parent / "plant-disease")
    procs = []
    for i in range(REPLICAS):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})}
        procs.append(
            subprocess.Popen(
                [
                    exe,
                    "train",
                    *TINY,
                    "--set",
                    "train.distribute=multi_worker",
                    "--set",
                    f"pipeline.batch_size={PER_REPLICA}",
                    "--models-dir",
                    "models/multi",
                    "--reports-dir",
                    "reports/multi",
                ],
                cwd=work,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    try:
        outs = [p.communicate(timeout=600)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0] * REPLICAS, "\n\n".join(o[-3000:] for o in outs)
    summary, hist = trained(work, "multi")
    d = summary["devices"]
    assert (d["strategy"], d["replicas"], d["workers"], d["chief"]) == (
        "KerasMultiWorkerStrategy",
        REPLICAS,
        REPLICAS,
        True,
    ), d
    ok, diffs = close(hist, single[1])
    print(
        "multi-worker vs single worker:",
        diffs,
        "\nsingle:",
        single[1].to_dict("records"),
        "\nmulti:",
        hist.to_dict("records"),
    )
    assert ok, diffs
    # only the chief wrote: one model folder, and worker 1 left no files behind in the project
    assert (work / "models" / "multi" / "model.keras").exists()
    assert sorted(p.name for p in (work / "models").iterdir()) == sorted(
        {"single", "multi", "mirrored"} & {p.name for p in (work / "models").iterdir()}
    )


def test_multi_worker_without_tf_config_is_a_clear_error(work):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    exe = shutil.which("plant-disease") or str(Path(sys.executable).parent / "plant-disease")
    r = subprocess.run(
        [exe, "train", *TINY, "--set", "train.distribute=multi_worker"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2 and "needs TF_CONFIG" in r.stderr, r.stderr
