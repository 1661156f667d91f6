"""`dvc repro` re-runs what changed: each stage's `deps` are the library code its unit runs and its params include the
profile groups it reads (`testkit.dvc` derives both from the code), so editing a profile value or a module makes
`dvc status` name exactly the stages that read or run it, and no other.

The pipeline is recorded as if it had run (`dvc commit` over placeholder outputs), so this takes seconds, not a
training run; `tests/test_dvc_pipeline.py` runs it for real."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from testkit.dvc import PROFILES_FILE, expected_deps
from testkit.repo import ROOT, clean_copy

BIN = Path(sys.executable).parent


def dvc(*args, cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    r = subprocess.run(["dvc", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, f"dvc {' '.join(args)} exited {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout


def declared_profiles(stage: dict) -> list[str]:
    return next((p[PROFILES_FILE] for p in stage["params"] if isinstance(p, dict) and PROFILES_FILE in p), [])


def test_deps_are_the_code_each_stage_runs_and_the_profiles_it_reads():
    declared = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, expected in expected_deps().items():
        code = sorted(d for d in declared[name]["deps"] if d.startswith("plant_disease/"))
        fix = "run `python -m testkit.dvc --write` and commit dvc.yaml"
        assert code == expected["code"], f"{name}: deps {code} != the code its unit runs {expected['code']}: {fix}"
        assert declared_profiles(declared[name]) == expected["profiles"], f"{name}: profile params: {fix}"
    # the derivation itself: the unit, the science it calls, and nothing above it
    train = expected_deps()["train"]
    assert {"plant_disease/stages/train.py", "plant_disease/train.py", "plant_disease/model.py"} <= set(train["code"])
    assert not {"plant_disease/cli.py", "plant_disease/stages/runner.py"} & set(train["code"])
    assert "cpu.train" in train["profiles"] and not any(k.endswith(".data") for k in train["profiles"])


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    "A clean copy whose pipeline DVC has recorded as run: placeholder outputs, `dvc commit`, `dvc status` clean."
    repo = clean_copy(tmp_path_factory.mktemp("dvc"))
    for stage in yaml.safe_load((repo / "dvc.yaml").read_text())["stages"].values():
        for entry in [*stage.get("outs", []), *stage.get("metrics", []), *stage.get("plots", [])]:
            path = repo / (next(iter(entry)) if isinstance(entry, dict) else entry)
            if path.suffix:  # a file
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("{}" if path.suffix == ".json" else "placeholder\n")
            else:  # a folder
                path.mkdir(parents=True, exist_ok=True)
                (path / "placeholder.txt").write_text("placeholder\n")
    dvc("commit", "--force", "--quiet", cwd=repo)
    assert changed(repo) == set()
    return repo


def changed(repo: Path) -> set[str]:
    "The stages `dvc status` says must run again."
    return set(json.loads(dvc("status", "--json", cwd=repo) or "{}"))


def edited(repo: Path, rel: str, old: str, new: str):
    f = repo / rel
    text = f.read_text()
    assert text.count(old) == 1, (rel, old)
    f.write_text(text.replace(old, new))
    return lambda: f.write_text(text)


def test_a_profile_value_reruns_exactly_the_stages_that_read_it(recorded):
    undo = edited(recorded, PROFILES_FILE, "    cache_views: 2\n", "    cache_views: 3\n")  # the cpu profile
    assert changed(recorded) == {"train", "robustness"}  # the groups that read `train`
    undo()
    undo = edited(recorded, PROFILES_FILE, "one_cycle: {epochs: 40,", "one_cycle: {epochs: 41,")  # scratch
    assert changed(recorded) == {"train", "robustness"}
    undo()
    undo = edited(recorded, PROFILES_FILE, "    image_size: 160\n", "    image_size: 192\n")
    assert changed(recorded) == {"train", "evaluate", "robustness"}  # ... and `pipeline`
    undo()
    undo = edited(recorded, PROFILES_FILE, "tomato:\n  data: {classes: tomato}", "tomato:\n  data: {classes: all}")
    assert changed(recorded) == {"data"}
    undo()
    assert changed(recorded) == set()


def test_a_module_reruns_exactly_the_stages_that_run_it(recorded):
    deps = expected_deps()
    for module in ("plant_disease/robustness.py", "plant_disease/abstention.py", "plant_disease/eda.py"):
        with open(recorded / module, "a") as f:
            f.write("# edited\n")
        expected = {name for name, d in deps.items() if module in d["code"]}
        assert changed(recorded) == expected, module
        edited(recorded, module, "# edited\n", "")
    assert {n for n, d in deps.items() if "plant_disease/robustness.py" in d["code"]} == {"robustness"}
    assert changed(recorded) == set()
