"""Shared fixtures: the real PlantVillage sample (when present) and the `plant-disease` command."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def shared_data() -> Path | None:
    p = Path(os.environ.get("PLANT_DISEASE_SHARED_DATA", ROOT.parent / "shared" / "data"))
    return p if (p / "plantvillage").is_dir() else None


@pytest.fixture(scope="session")
def shared() -> Path:
    "The shared data folder; tests that need it skip, visibly, when it is absent."
    p = shared_data()
    if p is None:
        pytest.skip(
            "real PlantVillage sample not found: set PLANT_DISEASE_SHARED_DATA to the folder holding plantvillage/"
        )
    return p


def run_cli(*args, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    "Run the installed `plant-disease` command (as a user would) in `cwd`."
    exe = shutil.which("plant-disease") or str(Path(sys.executable).parent / "plant-disease")
    r = subprocess.run([exe, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=1800)
    if check and r.returncode != 0:
        raise AssertionError(
            f"plant-disease {' '.join(map(str, args))} exited {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
        )
    return r


@pytest.fixture
def params_file(tmp_path) -> Path:
    "A copy of the project's params.yaml in a fresh working folder."
    f = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", f)
    return f


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    "Under `--dist loadgroup`, a test file is one group (module fixtures run once) unless it names a group itself."
    # pytest stays below 9 (settings.ini, constraints.txt): with pytest 9.2 and pytest-xdist 3.8 `loadgroup` groups
    # nothing (xdist appends `@group` to `item._nodeid`, pytest 9 builds `nodeid` from `item._id`), so every module
    # fixture would run once per worker: the real-photo training and the service twice.
    for item in items:
        if not any(True for _ in item.iter_markers("xdist_group")):
            item.add_marker(pytest.mark.xdist_group(Path(item.fspath).stem))


@pytest.fixture(scope="session")
def postgres_server():
    "A private PostgreSQL server for the prediction log, reached through pyodbc and psqlODBC."
    from testkit.pg import PostgresServer

    with PostgresServer() as pg:
        yield pg


@pytest.fixture(scope="session")
def service(tmp_path_factory, postgres_server):
    """The real service (tests marked `xdist_group("service")` share one): two tiny trained models, A/B,
    a private Redis, a Celery worker, uvicorn on 127.0.0.1, the prediction log in PostgreSQL via ODBC."""
    from testkit.service import start_service

    svc = start_service(tmp_path_factory.mktemp("service"), shared_data(), postgres_server.odbc_url)
    yield svc
    svc.stop()
