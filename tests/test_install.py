"""The library installed as a user installs it (a wheel, not editable, no checkout next to it) migrates its
prediction log and reads its management notes: both are package data. Serving and predicting with its default
settings writes nothing into site-packages: the spool, the kept photos and the model cache go to the user's data and
cache folders, the embedded stores to the working directory."""

import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

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


WRITES_NOTHING = textwrap.dedent(
    """
    import hashlib, io, json, sys
    from pathlib import Path
    from PIL import Image

    site = Path(sys.argv[1]).resolve()

    def files():
        return {p for p in site.rglob("*") if "__pycache__" not in p.parts}

    before = files()
    from plant_disease.config import ModelParams
    from plant_disease.inference import Predictor
    from plant_disease.model import build_model
    from plant_disease.serving import ServingSettings, keep_photo, open_photo_store, open_prediction_log, project_dir

    s = ServingSettings.from_env({"PD_KEEP_PHOTOS": "true"})
    where = [s.model_cache, s.spool_dir, Path(s.photo_store), project_dir(), Path(s.registry_uri()[len("sqlite:///"):])]
    assert not any(p.resolve().is_relative_to(site) for p in where), where
    # predicting: a tiny untrained model in a folder of the working directory
    Path("models").mkdir()
    build_model(2, 32, ModelParams(backbone="resnet18slim", weights="none", dense_units=0)).save("models/model.keras")
    Path("models/classes.json").write_text(json.dumps({"classes": ["Tomato___healthy", "Tomato___Early_blight"]}))
    buf = io.BytesIO()
    Image.new("RGB", (48, 48), (40, 160, 60)).save(buf, "JPEG")
    photo = buf.getvalue()
    answer = Predictor.from_dir("models").predict(photo)
    # serving: the prediction log with the default spool, the photo store in the default folder
    with open_prediction_log(f"sqlite:///{Path.cwd() / 'log.db'}", s.spool_dir) as log:
        log.record(label=answer.label, confidence=answer.confidence, variant="A")
        assert log.flush(10)
    store = open_photo_store(s)
    keep_photo(store, photo, hashlib.sha256(photo).hexdigest())
    assert store.flush(30)
    store.close()
    assert any(f.is_file() for f in Path(s.photo_store).rglob("*")), "the photo was not kept"
    new = sorted(str(p.relative_to(site)) for p in files() - before)
    assert not new, new[:20]
    print("answered", answer.label, "; nothing written in site-packages")
    """
)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The library installed from a wheel into a folder of its own, its folder, its HOME, and `run(script, *args, cwd)`:
    the script's output, run where that copy answers the import (a failure shows the script's output)."""
    tmp = tmp_path_factory.mktemp("install")
    src, target = tmp / "src", tmp / "site"
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
    # -S: no site-packages processing, so the checkout's editable install (a .pth finder) cannot answer the import;
    # the dependencies come from this environment's site-packages, after the installed copy.
    path = f"{target}:{sysconfig.get_paths()['purelib']}:{sysconfig.get_paths()['platlib']}"
    env = {"PYTHONPATH": path, "PATH": "/usr/bin:/bin", "HOME": str(tmp), "TF_CPP_MIN_LOG_LEVEL": "2"}

    def run(script: str, *args, cwd: Path) -> str:
        r = subprocess.run(
            [sys.executable, "-S", "-c", script, str(target), *map(str, args)],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        return r.stdout

    return target, tmp, run


def test_non_editable_install_migrates_the_log_and_reads_the_notes(installed, tmp_path):
    _, _, run = installed
    work = tmp_path / "work"
    work.mkdir()
    out = run(CHECK, work / "log.db", work / "spool", cwd=work)
    head = sorted(p.name[:4] for p in (ROOT / "plant_disease" / "migrations" / "versions").glob("0*.py"))[-1]
    assert f"revision {head}" in out and "notes 38" in out, out  # migrated to the latest revision


def test_installed_library_writes_nothing_into_site_packages(installed, tmp_path):
    "Predicting and serving with the default settings from a working directory outside the package."
    _, home, run = installed
    out = run(WRITES_NOTHING, cwd=tmp_path)
    assert "nothing written in site-packages" in out, out
    photos = home / ".local" / "share" / "plant-disease" / "photos"  # the user's data folder
    assert any(f.is_file() for f in photos.rglob("*")), sorted(home.rglob("*"))[:20]
