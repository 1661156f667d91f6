"""The agronomists' side of the Voilà dashboard in a real browser (Chromium through Playwright): a tiny model trained,
evaluated and registered here as the pipeline does, Voilà serving app/dashboard.ipynb with the library backend, a
SQLite prediction log and the photo store on. A reviewer diagnoses a photo, corrects it to another class, sees field
accuracy at 0% of 1 reviewed answer beside the lab test accuracy; diagnoses a second photo, finds it (with its kept
photo) in the Review tab, confirms it there, and sees field accuracy change to 50% of 2. The verdicts are then read
back from the database, and the photos from the store. Writes reports/dashboard/review*.png."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from testkit.processes import free_port, run, wait_for
from testkit.service import chromium, register

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "reports" / "dashboard"
BIN = Path(sys.executable).parent
TIMEOUT_MS = 60_000
REVIEWER = "ana.ruiz@extension.example"
MODEL = "plant-disease-review"


def shared_sample() -> Path | None:
    "The real PlantVillage sample when it is here (as conftest's `shared_data`), else None: synthetic leaves."
    p = Path(os.environ.get("PLANT_DISEASE_SHARED_DATA", ROOT.parent / "shared" / "data")) / "plantvillage"
    return p if p.is_dir() else None


@pytest.fixture(scope="module")
def registered(tmp_path_factory) -> dict:
    """A tiny ResNet18-slim (32 px, one epoch, 12 photos per class) trained, evaluated and registered with its gate
    (`plant-disease-review@production`, version 1), as the pipeline does. Its abstention rule is taken out of
    classes.json before it is registered, so that every leaf gets a class to confirm or correct (answers of unknown
    are not scored, and the notebooks test them)."""
    work = tmp_path_factory.mktemp("review-model")
    (work / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    sample = shared_sample()
    source = (
        ["--profile", "tomato,scratch", "--set", f"data.source={sample}", "--set", "data.max_per_class=12"]
        if sample
        else ["--profile", "scratch", "--set", "data.synthetic_per_class=12"]
    )
    small = ["--set", "pipeline.image_size=32", "--models-dir", "models/review", "--reports-dir", "reports/review"]
    exe = str(BIN / "plant-disease")
    run([exe, "data", *source], work)
    one_epoch = ["--set", "train.one_cycle.epochs=1", "--set", "train.one_cycle.progressive=[]"]
    run([exe, "train", *source, *small, *one_epoch, "--set", "train.verbose=0"], work)
    run([exe, "evaluate", *source, *small], work)
    meta_file = work / "models" / "review" / "classes.json"
    meta = json.loads(meta_file.read_text())
    meta.pop("abstain", None)
    meta_file.write_text(json.dumps(meta))
    tracking = f"sqlite:///{work / 'mlflow.db'}"
    version = register(work / "models" / "review", tracking, MODEL, work / "reports" / "review")
    photos = [Path(p) for p in pd.read_csv(work / "data" / "manifest.csv")["path"]]
    photos = [p if p.is_absolute() else work / p for p in photos]
    return {
        "work": work,
        "tracking": tracking,
        "version": version,
        "classes": meta["classes"],
        "lab_accuracy": json.loads((work / "reports" / "review" / "evaluate" / "metrics.json").read_text())["accuracy"],
        "photos": photos[:2],
    }


@pytest.fixture(scope="module")
def voila(registered, tmp_path_factory):
    "Voilà serving app/dashboard.ipynb as `make dashboard` does, library backend, photos kept, a fresh SQLite log."
    work = tmp_path_factory.mktemp("voila-review")
    port, log = free_port(), work / "voila.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PD_", "MLFLOW_"))}
    env.update(
        {
            "PD_DASHBOARD_BACKEND": "library",
            "PD_DASHBOARD_MODEL": f"models:/{MODEL}@production",
            "PD_TRACKING_URI": registered["tracking"],
            "PD_MODEL_CACHE": str(work / "model-cache"),
            "PD_DATABASE_URL": f"sqlite:///{work / 'predictions.db'}",
            "PD_SPOOL_DIR": str(work / "spool"),
            "PD_KEEP_PHOTOS": "true",
            "PD_PHOTO_STORE": str(work / "photos"),
            "PD_DASHBOARD_REVIEWER": REVIEWER,
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
    )
    proc = subprocess.Popen(
        [str(BIN / "voila"), "app/dashboard.ipynb", "--Voila.config_file_paths=app", f"--port={port}"],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(lambda: socket.create_connection(("127.0.0.1", port), 1).close() or True, 60, "voila", proc, log)
        wait_for(lambda: "loaded and warmed up" in log.read_text(), 240, "voila's preheated kernel", proc, log)
    except Exception:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    yield {"url": f"http://127.0.0.1:{port}/", "env": env, "work": work}
    text = log.read_text()
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    assert "Traceback" not in text, text[-4000:]


def upload(page, path: Path, batch: int):
    "Diagnose one photo in the Diagnose tab; its card."
    page.get_by_role("tab", name="Diagnose").click()
    with page.expect_file_chooser(timeout=TIMEOUT_MS) as chooser:
        page.click(".pd-upload")
    chooser.value.set_files(str(path))
    page.wait_for_selector(f'.pd-status .pd-done[data-batch="{batch}"]', timeout=TIMEOUT_MS)
    card = page.locator(".pd-results > .pd-result")
    assert card.count() == 1, page.locator(".pd-results").inner_text()[:500]
    return card


def field_accuracy(page) -> tuple[str, str, str]:
    "Open (or refresh) Analytics; the field panel's reviewed answers, accuracy and the lab test accuracy shown."
    done = page.locator(".pd-summary .pd-analytics-done")
    render = int(done.get_attribute("data-render")) if done.count() else 0
    tab = page.get_by_role("tab", name="Analytics")
    if tab.get_attribute("aria-selected") == "true":
        page.click(".pd-analytics-refresh")
    else:
        tab.click()
    page.wait_for_selector(f'.pd-summary .pd-analytics-done[data-render="{render + 1}"]', timeout=TIMEOUT_MS)
    page.wait_for_function(
        "() => { const i = document.querySelector('.pd-chart-field'); return i && i.complete && i.naturalWidth > 200; }",
        timeout=TIMEOUT_MS,
    )
    f = page.locator(".pd-field")
    return (
        f.locator(".pd-field-total").inner_text(),
        f.locator(".pd-field-accuracy").inner_text(),
        f.locator(".pd-field-version .pd-lab").inner_text(),
    )


def screenshot(page, name: str) -> None:
    "The whole dashboard (the viewport grows to its height for the picture)."
    REPORTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    height = page.evaluate("document.querySelector('.pd-dashboard').getBoundingClientRect().bottom")
    page.set_viewport_size({"width": size["width"], "height": min(8000, max(size["height"], int(height) + 40))})
    page.screenshot(path=str(REPORTS / name))
    page.set_viewport_size(size)


def test_diagnose_correct_review_and_field_accuracy(voila, registered):
    "Correct on the card -> field accuracy 0% of 1; confirm in the Review tab -> 50% of 2; the verdicts in the database."
    from plant_disease.eda import label_words
    from plant_disease.feedback import FeedbackLog
    from plant_disease.photostore import PhotoStore
    from plant_disease.predlog import PredictionLog

    first, second = registered["photos"]
    lab = f"{100 * registered['lab_accuracy']:.0f}%"
    t0 = time.monotonic()
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1200, "height": 1000})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(voila["url"], wait_until="load", timeout=TIMEOUT_MS)
        page.wait_for_selector(".pd-upload", timeout=TIMEOUT_MS)

        # 1. diagnose, then correct the answer to another class, with a note
        card = upload(page, first, 1)
        said = card.locator(".pd-raw-label").inner_text().strip()
        assert said in registered["classes"], said
        other = next(c for c in registered["classes"] if c != said)
        card.locator(".pd-verdict-corrected").click()  # no class picked yet: the card says what to do
        assert "Choose the class the photo shows" in card.locator(".pd-verdict-problem").inner_text()
        card.locator(".pd-correct-class select").select_option(label=label_words(other))
        card.locator(".pd-note input").fill("concentric rings on the lesions")
        card.locator(".pd-verdict-corrected").click()
        recorded = card.locator('.pd-recorded[data-verdict="corrected"]')
        recorded.wait_for(timeout=TIMEOUT_MS)
        assert f"you corrected {label_words(said)} to {label_words(other)}." in recorded.inner_text()
        assert field_accuracy(page) == ("1", "0%", lab)

        # 2. a second photo waits in the Review tab (the corrected one does not), with its kept photo: confirm it
        said2 = upload(page, second, 2).locator(".pd-raw-label").inner_text().strip()
        page.get_by_role("tab", name="Review").click()
        page.wait_for_selector(".pd-review-status .pd-review-done", timeout=TIMEOUT_MS)
        assert page.locator(".pd-review-done").get_attribute("data-waiting") == "1", page.locator(
            ".pd-review"
        ).inner_text()
        item = page.locator(".pd-review-item")
        assert item.count() == 1 and label_words(said2) in item.locator(".pd-label").inner_text()
        assert "variant dashboard" in item.locator(".pd-meta").inner_text()
        assert item.locator(".pd-version").inner_text() == registered["version"]
        photo = item.locator(".pd-review-photo").element_handle()
        page.wait_for_function("img => img.complete && img.naturalWidth > 50", arg=photo, timeout=10_000)
        screenshot(page, "review.png")
        item.locator(".pd-verdict-confirmed").click()
        page.wait_for_selector('.pd-reviewed .pd-recorded[data-verdict="confirmed"]', timeout=TIMEOUT_MS)

        # 3. field accuracy changes: one of two reviewed answers right
        assert field_accuracy(page) == ("2", "50%", lab)
        classes = dict(zip(page.locator(".pd-field-class td:first-child").all_inner_texts(), range(99)))
        assert {label_words(other), label_words(said2)} <= set(classes), classes
        screenshot(page, "review_field_accuracy.png")
        page.get_by_role("tab", name="Review").click()
        page.wait_for_selector('.pd-review-done[data-waiting="0"]', timeout=TIMEOUT_MS)
        assert not errors, errors
    browser_s = time.monotonic() - t0

    # 4. the verdicts in the database, the photos in the store
    url, spool = voila["env"]["PD_DATABASE_URL"], voila["work"] / "spool-read"
    with PredictionLog(url, spool) as plog, FeedbackLog(url, spool) as flog:
        answers, verdicts = plog.frame(), flog.frame()
    answers = answers[answers.status == "ok"]
    assert list(answers.variant) == ["dashboard", "dashboard"] and list(answers.label) == [said, said2]
    got = verdicts[["request_id", "image_sha256", "verdict", "label", "note", "reviewer", "source"]]
    got = got.astype(object).where(got.notna(), None).values.tolist()
    assert got == [
        [*answers.iloc[0][["request_id", "image_sha256"]], "corrected", other, "concentric rings on the lesions",
         REVIEWER, "dashboard"],
        [*answers.iloc[1][["request_id", "image_sha256"]], "confirmed", said2, None, REVIEWER, "dashboard"],
    ], got  # fmt: skip
    with PhotoStore(voila["env"]["PD_PHOTO_STORE"], voila["work"] / "spool-photos") as store:
        assert all(store.has(sha) for sha in answers.image_sha256)
    print(f"dashboard review flow: {browser_s:.1f} s in the browser")
