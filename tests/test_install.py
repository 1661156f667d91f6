"""The library installed as a user installs it (a wheel, not editable, no checkout next to it) migrates its
prediction log and reads its management notes: both are package data."""

import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGING = ("setup.py", "settings.ini", "README.md", "MANIFEST.in")

CHECK = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import sqlalchemy as sa
    import plant_disease
    from plant_disease.serving import MANAGEMENT_NOTES, open_prediction_log
    from plant_disease.dashboard import load_notes

    here = Path(plant_disease.__file__).resolve()
    assert here.is_relative_to(Path(sys.argv[1]).resolve()), f"imported from {here}, not from the installed copy"
    url = "sqlite:///" + sys.argv[2]
    with open_prediction_log(url, sys.argv[3]) as log:
        log.record(label="Tomato___healthy", confidence=0.9, variant="A")
        assert log.flush(10) and len(log.frame()) == 1, "the record did not reach the migrated table"
    with sa.create_engine(url).connect() as c:
        print("revision", c.execute(sa.text("select version_num from alembic_version")).scalar_one())
    print("notes", len(load_notes(MANAGEMENT_NOTES)))
    """
)


def test_non_editable_install_migrates_the_log_and_reads_the_notes(tmp_path):
    src, target, work = tmp_path / "src", tmp_path / "site", tmp_path / "work"
    shutil.copytree(ROOT / "plant_disease", src / "plant_disease", ignore=shutil.ignore_patterns("__pycache__"))
    for f in PACKAGING:
        shutil.copy(ROOT / f, src / f)
    r = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", target, src],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert (target / "plant_disease" / "migrations" / "versions").is_dir(), sorted(
        p.name for p in (target / "plant_disease").iterdir()
    )
    work.mkdir()
    # -S: no site-packages processing, so the checkout's editable install (a .pth finder) cannot answer the import;
    # the dependencies come from this environment's site-packages, after the installed copy.
    path = f"{target}:{sysconfig.get_paths()['purelib']}:{sysconfig.get_paths()['platlib']}"
    r = subprocess.run(
        [sys.executable, "-S", "-c", CHECK, str(target), str(work / "log.db"), str(work / "spool")],
        cwd=work,
        env={"PYTHONPATH": path, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    head = sorted(p.name[:4] for p in (ROOT / "plant_disease" / "migrations" / "versions").glob("0*.py"))[-1]
    assert f"revision {head}" in r.stdout and "notes 38" in r.stdout, r.stdout  # migrated to the latest revision
