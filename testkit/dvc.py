"""What each pipeline stage must declare in `dvc.yaml` so that `dvc repro` re-runs what changed: the library code
its unit runs (its module and everything that imports, directly or not, lazily or not: read by grimp, the graph
behind import-linter) and the profile groups it reads (`plant_disease/profiles.yaml`).

`python -m testkit.dvc` prints each stage's expected `plant_disease/` deps and profile params, `python -m
testkit.dvc --write` puts them into `dvc.yaml` (everything else stays as written); `tests/test_dvc_deps.py` checks
`dvc.yaml` against them."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

from testkit.repo import ROOT

PROFILES_FILE = "plant_disease/profiles.yaml"


@functools.cache
def _graph():
    import grimp

    return grimp.build_graph("plant_disease")


def module_file(module: str) -> str:
    "The source file of `module`, relative to the checkout (`plant_disease/stages/__init__.py` for a package)."
    return Path(importlib.util.find_spec(module).origin).resolve().relative_to(ROOT).as_posix()


def stage_code(name: str) -> list[str]:
    "The library files stage `name` runs: its unit's module and every module it imports, transitively, sorted."
    from plant_disease.stages.runner import get_stage

    unit = get_stage(name).run.__module__
    modules = {unit} | _graph().find_upstream_modules(unit)
    return sorted(module_file(m) for m in modules if not m.endswith("._modidx"))


def stage_profile_params(name: str) -> list[str]:
    "The `profiles.yaml` keys (`<profile>.<group>`) of the groups stage `name` reads: what a profile can change for it."
    from plant_disease.config import PROFILES
    from plant_disease.stages.runner import get_stage

    groups = set(get_stage(name).groups)
    return [f"{p}.{g}" for p, preset in PROFILES.items() for g in preset if g in groups]


def expected_deps() -> dict[str, dict[str, list[str]]]:
    "For every stage: `code` (its `plant_disease/` deps) and `profiles` (its params from `profiles.yaml`)."
    from plant_disease.stages.runner import pipeline_stages

    return {s: {"code": stage_code(s), "profiles": stage_profile_params(s)} for s in pipeline_stages()}


def write_deps(dvc_yaml: Path = ROOT / "dvc.yaml") -> None:
    "Replace each stage's `plant_disease/` deps and `profiles.yaml` params in `dvc_yaml` by the expected ones."
    import re

    expected, out, stage, section = expected_deps(), [], None, None
    lines = dvc_yaml.read_text().splitlines()

    def close(section):  # what goes at the end of the section just left
        if stage in expected and section == "deps":
            out.extend(f"      - {f}" for f in expected[stage]["code"])
        if stage in expected and section == "params" and expected[stage]["profiles"]:
            out.append(f"      - {PROFILES_FILE}:")
            out.extend(f"          - {k}" for k in expected[stage]["profiles"])

    for line in lines:
        if m := re.match(r"^  (\w+):$", line):
            close(section)
            stage, section = m.group(1), None
        elif m := re.match(r"^    (\w+):", line):
            close(section)
            section = m.group(1)
        elif not line.strip() or not line.startswith("      "):
            close(section)
            section = None
        if section == "deps" and re.match(r"^      - plant_disease/", line):
            continue
        if section == "params" and (line.startswith(f"      - {PROFILES_FILE}:") or line.startswith("          - ")):
            continue
        out.append(line)
    close(section)
    dvc_yaml.write_text("\n".join(out) + "\n")


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--write"]:
        write_deps()
        sys.exit()
    for stage, exp in expected_deps().items():
        print(f"{stage}:\n  deps:")
        print("\n".join(f"    - {f}" for f in exp["code"]))
        if exp["profiles"]:
            print(f"  params:\n    - {PROFILES_FILE}:")
            print("\n".join(f"        - {k}" for k in exp["profiles"]))
