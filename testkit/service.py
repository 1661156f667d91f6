"""The real service for the tests: two tiny models trained here (ResNet50 and EfficientNetB0; one served from an
MLflow registry alias, one from its folder), a private Redis server, a Celery worker and uvicorn on 127.0.0.1
(`start_service`); the API alone over a SQLite log for the benchmarks (`start_api`); headless Chromium (`chromium`)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from testkit.processes import Redis, free_port, run, wait_for
from testkit.repo import ROOT

SECRET = "test-secret-for-ci-only-0123456789abcdef"
BIN = Path(sys.executable).parent


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def chromium():
    "Debian's headless Chromium driven by Playwright; the calling test skips when either is missing."
    import pytest

    playwright = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
    )
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found (apt-get install chromium); these tests drive the system Chromium")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def _source(shared: Path | None) -> list[str]:
    "The data options of the tiny test models: 40 real tomato photos per class, else synthetic leaves."
    return (
        [
            "--profile",
            "tomato,scratch",
            "--set",
            f"data.source={shared / 'plantvillage'}",
            "--set",
            "data.max_per_class=40",
        ]
        if shared
        else ["--profile", "scratch", "--set", "data.synthetic_per_class=40"]
    )


def train_models(work: Path, shared: Path | None) -> dict[str, Path]:
    """Train a tiny ResNet50 and a tiny EfficientNetB0 (tomato leaves at 64 px when the real sample is here).
    For quick local iterations, PLANT_DISEASE_TEST_MODELS=DIR reuses a folder an earlier call trained into."""
    reuse = os.environ.get("PLANT_DISEASE_TEST_MODELS")
    if reuse and (Path(reuse) / "models" / "efficientnetb0" / "model.keras").exists():
        shutil.copytree(Path(reuse) / "models", work / "models")
        shutil.copytree(Path(reuse) / "data", work / "data")
        if (Path(reuse) / "reports").is_dir():
            shutil.copytree(Path(reuse) / "reports", work / "reports")
        return {b: work / "models" / b for b in ("resnet50", "efficientnetb0")}
    exe = str(BIN / "plant-disease")
    shutil.copy(ROOT / "params.yaml", work / "params.yaml")
    source = _source(shared)
    run([exe, "data", *source], work)
    short = [
        "--set",
        "train.one_cycle.epochs=2",
        "--set",
        "train.one_cycle.progressive=[]",
        "--set",
        "pipeline.image_size=64",
        "--set",
        "train.verbose=0",
    ]
    out = {}
    for backbone in ("resnet50", "efficientnetb0"):
        run(
            [
                exe,
                "train",
                *source,
                *short,
                "--set",
                f"model.backbone={backbone}",
                "--models-dir",
                f"models/{backbone}",
                "--reports-dir",
                f"reports/{backbone}",
            ],
            work,
        )
        out[backbone] = work / "models" / backbone
    return out


def evaluate_model(work: Path, shared: Path | None, backbone: str) -> Path:
    "Run the real `plant-disease evaluate` on the test split for one trained model; return its reports folder."
    if not (work / "params.yaml").exists():
        shutil.copy(ROOT / "params.yaml", work / "params.yaml")
    run(
        [
            str(BIN / "plant-disease"),
            "evaluate",
            *_source(shared),
            "--models-dir",
            f"models/{backbone}",
            "--reports-dir",
            f"reports/{backbone}",
        ],
        work,
    )
    return work / "reports" / backbone


def register(model_dir: Path, tracking_uri: str, name: str, reports_dir: Path | None = None) -> str:
    """Log `model_dir` to MLflow and register it with alias `production`. With `reports_dir` (holding `train/` and
    `evaluate/`), as the pipeline does: a parent run with a `train` child (the model) and an `evaluate` child (test
    metrics, report, confusion matrix), then the register stage's gate (thresholds 0: it passes)."""
    if reports_dir is None:
        code = f"""
import mlflow
from mlflow import MlflowClient
from plant_disease.modellog import log_models
mlflow.set_tracking_uri({tracking_uri!r})
mlflow.set_experiment("service-tests")
with mlflow.start_run():
    uri = log_models({str(model_dir)!r})
mv = mlflow.register_model(uri, {name!r})
MlflowClient().set_registered_model_alias({name!r}, "production", mv.version)
print(mv.version)
"""
    else:
        work = model_dir.parent.parent
        code = f"""
import json, os
from pathlib import Path
os.environ["MLFLOW_TRACKING_URI"] = {tracking_uri!r}
from plant_disease.config import RegisterParams, parse_params
from plant_disease.data import load_manifest
from plant_disease.registry import register_and_gate
from plant_disease.stages import Dirs
from plant_disease.stages.runner import get_stage
from plant_disease.tracking import stage_run
work, models, reports = Path({str(work)!r}), Path({str(model_dir)!r}), Path({str(reports_dir)!r})
params = parse_params({{"tracking": {{"experiment": "service-tests"}}}})
summary = json.loads((work / "data" / "manifest.json").read_text())
for stage in ("train", "evaluate"):
    with stage_run(stage, params, summary, work):
        get_stage(stage).log(Dirs(work / "data", models, reports, work / "exported"))
uri = json.loads((models / "mlflow_run.json").read_text())["model_uri"]
gate = register_and_gate(uri, RegisterParams(model_name={name!r}, min_accuracy=0, min_f1_macro=0), load_manifest(work / "data"),
                         reports / "gate.json")
print(gate["version"])
"""
    return run([sys.executable, "-c", code], model_dir.parent).strip().splitlines()[-1]


@dataclass
class Service:
    "The running service and what the tests need to call it."

    url: str
    port: int
    env: dict
    classes: list[str]
    leaf_photos: list[Path]
    workdir: Path
    api: subprocess.Popen
    worker: subprocess.Popen
    api_log: Path
    worker_log: Path
    redis: Redis
    extra: dict = field(default_factory=dict)

    def token(self, subject: str, scopes=("predict",), ttl: int = 3600) -> str:
        from app.auth import mint_token

        return mint_token(subject, list(scopes), ttl, SECRET)[0]

    def headers(self, subject: str, scopes=("predict",)) -> dict:
        return {"Authorization": f"Bearer {self.token(subject, scopes)}"}

    def stop(self):
        for p in (self.api, self.worker):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in (self.api, self.worker):
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        self.redis.stop()


def leaf_photos(shared: Path | None, work: Path, n: int = 6, per_class: int = 1) -> list[Path]:
    """Real tomato leaf photos when the sample is here (the last `per_class` of each class, classes interleaved),
    else synthetic leaves."""
    if shared:
        by_class = [
            sorted(d.glob("*.[jJ][pP]*[gG]"))[-per_class:][::-1]
            for d in sorted((shared / "plantvillage").glob("Tomato___*"))
        ]
        return [ps[i] for i in range(per_class) for ps in by_class if i < len(ps)][:n]
    m = [l.split(",")[0] for l in (work / "data" / "manifest.csv").read_text().splitlines()[1:]]
    return [Path(p) if Path(p).is_absolute() else work / p for p in m[: n * per_class]][:n]


def known_leaf_photos(shared: Path | None, work: Path, models: dict, n: int = 6) -> list[Path]:
    """Leaf photos that both served models answer with a class (not `unknown`), for the tests of how a known answer
    is shown; the tiny test models answer ~5% of leaves unknown, and unknown answers have tests of their own."""
    from plant_disease.inference import Predictor

    judges = [
        Predictor.from_dir(models["resnet50"]),
        Predictor.from_dir(models["efficientnetb0_exported"], runtime="auto"),
    ]
    cands = leaf_photos(shared, work, n * 3, per_class=3)
    known = [p for p in cands if not any(j.predict(p).unknown for j in judges)]
    assert len(known) >= n, (
        f"only {len(known)} of {len(cands)} leaf photos are answered with a class by both test models"
    )
    return known[:n]


def export_model(work: Path, shared: Path | None, backbone: str) -> Path:
    "Run the real `plant-disease export` (LiteRT full int8 and ONNX) for one trained model; return the exported folder."
    run(
        [
            str(BIN / "plant-disease"),
            "export",
            *_source(shared),
            "--models-dir",
            f"models/{backbone}",
            "--export-dir",
            f"exported/{backbone}",
            "--reports-dir",
            f"reports/{backbone}",
            "--set",
            "export.formats=[tflite_int8, onnx]",
            "--set",
            "export.representative_images=50",
        ],
        work,
    )
    return work / "exported" / backbone


def start_service(work: Path, shared: Path | None, database_url: str, **overrides) -> Service:
    """Train, register (A) and export (B), start Redis + a Celery worker + the API; return when /ready answers.
    B is served from its exported folder with PD_RUNTIME=auto: the fastest of Keras and the formats within the
    accuracy limit, micro-batched."""
    models = train_models(work, shared)
    tracking = f"sqlite:///{work / 'mlflow.db'}"
    register(models["resnet50"], tracking, "plant-disease-resnet50", evaluate_model(work, shared, "resnet50"))
    models["efficientnetb0_exported"] = export_model(work, shared, "efficientnetb0")
    redis = Redis(work)
    env = {
        **os.environ,
        "PD_VARIANTS": json.dumps(
            [
                {"name": "A", "source": "models:/plant-disease-resnet50@production", "weight": 0.5},
                {"name": "B", "source": str(models["efficientnetb0_exported"]), "weight": 0.5},
            ]
        ),
        "PD_RUNTIME": "auto",
        "PD_BATCH_MAX": "32",
        "PD_BATCH_WAIT_MS": "20",
        "PD_TRACKING_URI": tracking,
        "PD_MODEL_CACHE": str(work / "model-cache"),
        "PD_DATABASE_URL": database_url,
        "PD_SPOOL_DIR": str(work / "spool"),
        "PD_KEEP_PHOTOS": "true",
        "PD_PHOTO_STORE": str(work / "photos"),
        "PD_REDIS_URL": redis.url,
        "PD_JWT_SECRET": SECRET,
        "PD_RATE_LIMIT": "40/minute",
        "PD_ANONYMOUS_RATE_LIMIT": "10/minute",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        **overrides,
    }
    port = free_port()
    api_log, worker_log = work / "api.log", work / "worker.log"
    worker = subprocess.Popen(
        [
            str(BIN / "celery"),
            "-A",
            "app.worker",
            "worker",
            "-Q",
            "predict",
            "-c",
            "1",
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        cwd=ROOT,
        env=env,
        stdout=worker_log.open("w"),
        stderr=subprocess.STDOUT,
    )
    api = subprocess.Popen(
        [sys.executable, "-m", "app", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=api_log.open("w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(f"{url}/ready", timeout=5).status_code == 200, 240, "API /ready", api, api_log)
        wait_for(lambda: "ready" in worker_log.read_text(), 240, "celery worker", worker, worker_log)
    except Exception:
        for p in (api, worker):
            p.kill()
        redis.stop()
        raise
    classes = json.loads((models["resnet50"] / "classes.json").read_text())["classes"]
    return Service(
        url,
        port,
        {k: v for k, v in env.items() if k.startswith("PD_")},
        classes,
        known_leaf_photos(shared, work, models),
        work,
        api,
        worker,
        api_log,
        worker_log,
        redis,
        {"models": models},
    )


def start_api(
    work: Path, settings: dict, log_name: str = "api.log", timeout_s: float = 300, port: int | None = None
) -> tuple[subprocess.Popen, str]:
    """`python -m app` on `port` (default: a free local port) with `settings` (`PD_*` variables) over a private SQLite
    log, no auth, no rate limit, no Redis; returns the process and its URL once `/ready` answers 200."""
    port = port or free_port()
    env = {
        **os.environ,
        "PD_REQUIRE_AUTH": "false",
        "PD_ANONYMOUS_RATE_LIMIT": "1000000/minute",
        "PD_DATABASE_URL": f"sqlite:///{work / 'predictions.db'}",
        "PD_SPOOL_DIR": str(work / "spool"),
        "PD_MODEL_CACHE": str(work / "cache"),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        **settings,
    }
    env.pop("PD_REDIS_URL", None)
    log = (work / log_name).open("w")
    p = subprocess.Popen(
        [sys.executable, "-m", "app", "--port", str(port), "--log-level", "WARNING"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    t = time.time()
    while time.time() - t < timeout_s:
        if p.poll() is not None:
            raise SystemExit(f"the API exited {p.returncode}: see {log.name}")
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return p, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    p.kill()
    raise SystemExit(f"the API did not become ready in {timeout_s:.0f} s: see {log.name}")
