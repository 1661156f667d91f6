"""The checkout and copies of it: `ROOT`, a clean copy as a fresh git repo (what `git clone` would give), and setting
params in a copy."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def clean_copy(dest: Path) -> Path:
    "What a clone of this work tree would hold, as a new git repo with one commit."
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    for f in filter(None, files):
        src = ROOT / f
        if src.is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f)
    for cmd in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "-A", "-f"],  # -f: the force-added files too (committed although ignored), as a clone has them
        ["git", "-c", "user.name=ci", "-c", "user.email=ci@localhost", "commit", "-qm", "clean copy"],
    ):
        subprocess.run(cmd, cwd=dest, check=True, capture_output=True)
    return dest


def set_params(repo: Path, **groups):
    f = repo / "params.yaml"
    p = yaml.safe_load(f.read_text())
    for k, v in groups.items():
        p[k] = {**p.get(k, {}), **v} if isinstance(v, dict) else v
    f.write_text(yaml.safe_dump(p, sort_keys=False))
