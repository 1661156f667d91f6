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
        pytest.skip("real PlantVillage sample not found: set PLANT_DISEASE_SHARED_DATA to the folder holding plantvillage/")
    return p


def run_cli(*args, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    "Run the installed `plant-disease` command (as a user would) in `cwd`."
    exe = shutil.which("plant-disease") or str(Path(sys.executable).parent / "plant-disease")
    r = subprocess.run([exe, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=1800)
    if check and r.returncode != 0:
        raise AssertionError(f"plant-disease {' '.join(map(str, args))} exited {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


@pytest.fixture
def params_file(tmp_path) -> Path:
    "A copy of the project's params.yaml in a fresh working folder."
    f = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", f)
    return f
