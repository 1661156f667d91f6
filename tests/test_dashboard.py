"""The Voilà dashboard (app/dashboard.ipynb, `make dashboard`) in a real browser (Chromium through Playwright): Voilà on
127.0.0.1 with app/voila.json, the library backend on the fixture's registered model (plant-disease-resnet50@production,
registered as the pipeline does), and a SQLite prediction log pre-filled with real predictions of both test models.
Diagnose real leaf photos (one, several, two of 12 MB at once), bad files (not an image, truncated JPEG, empty) that
get a clear message while the page keeps working, the Analytics charts and the Model card. The API backend is checked
against the running service. Writes reports/dashboard/*.png and reports/dashboard/timing.json."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from testkit.processes import free_port, wait_for
from testkit.service import chromium

pytestmark = pytest.mark.xdist_group("service")

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "reports" / "dashboard"
BIN = Path(sys.executable).parent
TIMEOUT_MS = 120_000
MIN_CONFIDENCE = 0.6
# The Voilà "lab" template links Font Awesome's CSS from this CDN; without internet the browser skips it (icons only).
KNOWN_CDN = "https://cdn.jsdelivr.net/npm/@fortawesome/"
ANSWER_KEYS = {
    "request_id",
    "filename",
    "image_sha256",
    "class_id",
    "label",
    "crop",
    "disease",
    "healthy",
    "confidence",
    "top_k",
    "unknown",
    "ood_score",
    "domain_score",
    "feature_score",
    "advice",
    "variant",
    "model_name",
    "model_version",
    "latency_ms",
    "inference_ms",
    "queued_ms",
    "heatmap_png_base64",
}


def large_photo(src: Path) -> bytes:
    "A 12-megapixel JPEG (quality 98) of a real leaf photo, upscaled, with sensor-like grain: over 10 MB."
    import numpy as np
    from PIL import Image

    a = np.asarray(Image.open(src).convert("RGB").resize((4000, 3000), Image.BICUBIC), dtype=np.int16)
    a = np.clip(a + np.random.default_rng(0).normal(0, 5, a.shape).astype(np.int16), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=98, subsampling=0)
    return buf.getvalue()


@pytest.fixture(scope="module")
def prediction_log(service, tmp_path_factory) -> dict:
    """A SQLite prediction log with real answers of the service's two models (variants A and B, forced) to the fixture's
    photos, spread over the last hours, and one refusal: what the Analytics tab reads."""
    from plant_disease.predlog import PredictionLog, upgrade

    d = tmp_path_factory.mktemp("dashboard-log")
    url = f"sqlite:///{d / 'predictions.db'}"
    upgrade(url)
    now, n = datetime.now(timezone.utc), 0
    with PredictionLog(url, spool_dir=d / "spool") as plog, httpx.Client(base_url=service.url, timeout=60) as client:
        for variant in ("A", "B"):
            for i, photo in enumerate(service.leaf_photos):
                r = client.post(
                    "/predict",
                    files={"file": (photo.name, photo.read_bytes(), "image/jpeg")},
                    headers={**service.headers("dashboard-prefill"), "X-Model-Variant": variant},
                )
                assert r.status_code == 200, r.text
                a = r.json()
                plog.record(
                    created_at=now - timedelta(minutes=40 * i + (7 if variant == "B" else 0)),
                    request_id=a["request_id"],
                    filename=photo.name,
                    image_sha256=a["image_sha256"],
                    class_id=a["class_id"],
                    label=a["label"],
                    confidence=a["confidence"],
                    top_k=a["top_k"],
                    latency_ms=a["latency_ms"],
                    model_name=a["model_name"],
                    model_version=a["model_version"],
                    variant=a["variant"],
                    route="predict",
                    caller="dashboard-prefill",
                )
                n += 1
        plog.record(
            created_at=now - timedelta(minutes=30),
            filename="notes.txt",
            variant="B",
            route="predict",
            error="not a JPEG, PNG or WebP image",
        )
        assert plog.flush(30)
    return {"url": url, "answered": n, "per_variant": len(service.leaf_photos), "dir": d}


@pytest.fixture(scope="module")
def voila(service, prediction_log, tmp_path_factory):
    "Voilà serving app/dashboard.ipynb as `make dashboard` does (app/voila.json), on a free port of 127.0.0.1."
    work = tmp_path_factory.mktemp("voila")
    port, log = free_port(), work / "voila.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PD_", "MLFLOW_"))}
    env.update(
        {
            "PD_DASHBOARD_BACKEND": "library",
            "PD_DASHBOARD_MODEL": "models:/plant-disease-resnet50@production",
            "PD_TRACKING_URI": service.env["PD_TRACKING_URI"],
            "PD_MODEL_CACHE": str(work / "model-cache"),
            "PD_DATABASE_URL": prediction_log["url"],
            "PD_SPOOL_DIR": str(work / "spool"),
            "PD_DASHBOARD_MIN_CONFIDENCE": str(MIN_CONFIDENCE),
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
    )
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [str(BIN / "voila"), "app/dashboard.ipynb", "--Voila.config_file_paths=app", f"--port={port}"],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for(lambda: socket.create_connection(("127.0.0.1", port), 1).close() or True, 60, "voila", proc, log)
        # the preheated kernel has run the notebook: the model is loaded and warmed up
        wait_for(lambda: "loaded and warmed up" in log.read_text(), 240, "voila's preheated kernel", proc, log)
    except Exception:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    yield {"url": url, "port": port, "log": log, "proc": proc, "preheat_s": time.monotonic() - t0, "env": env}
    text = log.read_text()
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    assert "Traceback" not in text, text[-4000:]  # e.g. an unexpected error in the dashboard's callbacks


class Dash:
    "One browser page on the dashboard, shared by the tests of this module (one kernel), with upload helpers."

    def __init__(self, browser, url: str):
        self.url, self.offsite, self.errors, self.opened = url, [], [], None
        self.context = browser.new_context(viewport={"width": 1200, "height": 1000})

        def local_only(route):
            u = route.request.url
            if u.startswith((url, "data:", "blob:")) or u.startswith(url.replace("http", "ws")):
                return route.continue_()
            self.offsite.append(u)
            route.abort()

        self.context.route("**/*", local_only)
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def open(self) -> float:
        "Load the page; seconds until the upload button is there."
        t = time.monotonic()
        self.page.goto(self.url, wait_until="load", timeout=TIMEOUT_MS)
        self.page.wait_for_selector(".pd-upload", timeout=TIMEOUT_MS)
        self.opened = t
        return time.monotonic() - t

    def tab(self, name: str, ready_selector: str):
        "Open the page if no test has yet, switch to tab `name`, wait for `ready_selector`; return the page."
        if self.opened is None:
            self.open()
        self.page.get_by_role("tab", name=name).click()
        self.page.wait_for_selector(ready_selector, timeout=TIMEOUT_MS)
        return self.page

    def upload(self, files: list) -> list:
        "Choose `files` (paths, or dicts {name, mimeType, buffer}) in the upload button; wait for their cards; return them."
        p = self.page
        p.get_by_role("tab", name="Diagnose").click()
        done = p.locator(".pd-status .pd-done")
        batch = int(done.get_attribute("data-batch")) if done.count() else 0
        with p.expect_file_chooser(timeout=TIMEOUT_MS) as chooser:
            p.click(".pd-upload")
        chooser.value.set_files(files)
        p.wait_for_selector(f'.pd-status .pd-done[data-batch="{batch + 1}"]', timeout=TIMEOUT_MS)
        cards = p.locator(".pd-results > *").all()
        assert len(cards) == len(files), (len(cards), p.locator(".pd-status").inner_text())
        for card, f in zip(cards, files):
            name = f.name if isinstance(f, Path) else f["name"]
            assert name in card.inner_text(), (name, card.inner_text()[:300])
        return cards

    def screenshot(self, name: str) -> Path:
        "The whole dashboard (Voilà scrolls inside the page: the viewport grows to its height for the picture)."
        REPORTS.mkdir(parents=True, exist_ok=True)
        path, size = REPORTS / name, self.page.viewport_size
        height = self.page.evaluate("document.querySelector('.pd-dashboard').getBoundingClientRect().bottom")
        self.page.set_viewport_size(
            {"width": size["width"], "height": min(8000, max(size["height"], int(height) + 40))}
        )
        self.page.screenshot(path=str(path))
        self.page.set_viewport_size(size)
        return path


@pytest.fixture(scope="module")
def dash(voila):
    with chromium() as browser:
        d = Dash(browser, voila["url"])
        yield d
        d.context.close()
    assert all(u.startswith(KNOWN_CDN) for u in d.offsite), (
        f"the page asked for something outside the dashboard: {d.offsite}"
    )
    assert not d.errors, f"uncaught errors in the page: {d.errors}"


def jpeg(path: Path, name: str | None = None) -> dict:
    return {"name": name or path.name, "mimeType": "image/jpeg", "buffer": path.read_bytes()}


def check_result(card, service) -> str:
    """A result card shows the label, the chart, the Grad-CAM, the notes, the model version; return the label. A leaf
    the tiny test model does not recognise is answered unknown (retake the photo) with its guesses: that card is checked too."""
    label = card.locator(".pd-raw-label").inner_text().strip()
    assert label in service.classes or label == "unknown", label
    for cls in ("pd-label", "pd-preview", "pd-gradcam", "pd-topk-chart", "pd-notes", "pd-version", "pd-latency"):
        assert card.locator(f".{cls}").count() == 1, f".{cls} missing from the result card"
    chart = card.locator(".pd-topk-chart").element_handle()
    card.page.wait_for_function(
        "img => img.complete && img.naturalWidth > 100", arg=chart, timeout=10_000
    )  # the top-5 chart is drawn
    assert card.locator(".pd-version").inner_text() == "1"
    pct = int(card.locator(".pd-confidence b").inner_text().rstrip("%"))
    if label == "unknown":
        assert card.locator(".pd-label").inner_text() == "Unknown — retake the photo"
        assert "retake" in card.locator(".pd-unknown-box .pd-advice").inner_text().lower(), card.inner_text()[:500]
        assert card.locator(".pd-unsure-box").count() == 0
        return label
    unsure = card.locator(".pd-unsure-box").count()
    assert unsure == (pct < 100 * MIN_CONFIDENCE), f"confidence {pct}% but not-sure box shown: {bool(unsure)}"
    if unsure:
        assert "Not sure: retake the photo or ask an expert." in card.locator(".pd-unsure-box").inner_text()
    return label


def test_diagnose_a_leaf_photo(dash, voila, service):
    "Page load to first result, the answer in words with its chart, Grad-CAM, notes and model version; timing.json."
    ready_s = dash.open()
    photo = service.leaf_photos[0]
    t = time.monotonic()
    cards = dash.upload([jpeg(photo)])
    done = time.monotonic()
    assert len(cards) == 1
    label = check_result(cards[0], service)
    notes = cards[0].locator(".pd-notes").inner_text()
    assert "Source: " in notes and len(cards[0].locator(".pd-notes li").all()) >= 2, notes
    shot = dash.screenshot("diagnose.png")
    timing = {
        "page_load_to_first_result_s": round(done - dash.opened, 2),
        "page_ready_s": round(ready_s, 2),
        "upload_to_result_s": round(done - t, 2),
        "voila_start_to_preheated_kernel_ready_s": round(voila["preheat_s"], 1),
        "photo": photo.name,
        "photo_bytes": photo.stat().st_size,
        "label": label,
        "cpu_cores": os.cpu_count(),
        "model": "plant-disease-resnet50@production (version 1), ResNet50 at 64 px, library backend",
        "screenshot": str(shot.relative_to(ROOT)),
        "note": "measured in CI with Voila's preheated kernel ready; the page's kernel pool refills in the background",
    }
    (REPORTS / "timing.json").write_text(json.dumps(timing, indent=2))
    print(f"dashboard: page load to first result {timing['page_load_to_first_result_s']} s ({timing})")


def test_bad_files_get_a_clear_message_and_the_page_keeps_working(dash, service):
    "A text file, a truncated JPEG and an empty file: a card each that says why; then a real photo still works."
    if dash.opened is None:
        dash.open()
    good = service.leaf_photos[1].read_bytes()
    cases = [
        (
            {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"These are my field notes, not a photo.\n"},
            "This file is not a photo the dashboard can read: send a JPEG, PNG or WebP photo of a leaf.",
        ),
        (
            {"name": "cut.jpg", "mimeType": "image/jpeg", "buffer": good[: len(good) // 2]},
            "This photo is damaged or incomplete, so it cannot be read: copy or take the photo again.",
        ),
        (
            {"name": "empty.jpg", "mimeType": "image/jpeg", "buffer": b""},
            "The file is empty (0 bytes): there is no photo in it. Choose the photo again.",
        ),
    ]
    for f, message in cases:  # one at a time: the page must survive each
        cards = dash.upload([f])
        assert len(cards) == 1 and "pd-error" in cards[0].get_attribute("class"), cards[0].inner_html()[:500]
        assert message in cards[0].locator(".pd-error-message").inner_text()
    cards = dash.upload(
        [c for c, _ in cases] + [jpeg(service.leaf_photos[1], "after-bad-files.jpg")]
    )  # all in one go too
    kinds = ["pd-result" in c.get_attribute("class").split() for c in cards]
    assert kinds == [False, False, False, True], kinds
    check_result(cards[3], service)
    assert "1 of 4 photos diagnosed" in dash.page.locator(".pd-status").inner_text()
    dash.screenshot("bad_inputs.png")


def test_not_a_leaf_is_answered_unknown(dash, service):
    "A portrait: the card says Unknown — retake the photo, with the advice; the model's guesses are still charted."
    from plant_disease.ood import non_leaf_photo

    if dash.opened is None:
        dash.open()
    cards = dash.upload([{"name": "portrait.jpg", "mimeType": "image/jpeg", "buffer": non_leaf_photo("portrait")}])
    card = cards[0]
    assert "pd-result" in card.get_attribute("class").split(), card.inner_html()[:500]
    assert card.locator(".pd-raw-label").inner_text().strip() == "unknown"
    assert check_result(card, service) == "unknown"
    assert "not recognised" in card.locator(".pd-notes").inner_text()
    dash.screenshot("unknown.png")


def test_several_photos_and_two_large_photos_at_once(dash, service, tmp_path):
    "Two photos in one upload get two answers; two 12 MB photos in one upload (over Tornado's default 10 MiB) too."
    if dash.opened is None:
        dash.open()
    cards = dash.upload([jpeg(service.leaf_photos[2]), jpeg(service.leaf_photos[3])])
    assert [check_result(c, service) for c in cards]
    big = large_photo(service.leaf_photos[4])
    assert len(big) > 10 * 2**20, f"the large test photo is only {len(big):,} bytes"
    paths = [tmp_path / f"large-{i}.jpg" for i in (1, 2)]
    for path in paths:
        path.write_bytes(big)
    cards = dash.upload(paths)
    assert len(cards) == 2 and all(check_result(c, service) for c in cards)
    assert f"({len(big) / 2**20:.1f} MB)" in cards[0].locator(".pd-meta").inner_text()


def test_analytics_tab_charts_from_the_prediction_log(dash, prediction_log):
    "The four charts render from the log (variants A, B and the dashboard's own answers); the window selector works."
    p = dash.tab("Analytics", ".pd-summary .pd-count")
    for k in (
        "frequency",
        "time",
        "confidence",
        "latency",
    ):  # drawn (the browser loads each image after the widget update)
        p.wait_for_function(
            f"() => {{ const i = document.querySelector('.pd-chart-{k}'); return i && i.complete && i.naturalWidth > 200; }}",
            timeout=10_000,
        )
    summary = p.locator(".pd-summary").inner_text()
    variants = p.locator(".pd-summary tr td:first-child").all_inner_texts()
    assert {"A", "B", "dashboard"} <= set(variants), summary
    answered = int(p.locator(".pd-summary .pd-count").inner_text())
    assert answered >= prediction_log["answered"], (answered, summary)
    # the drift panel: a row per model that answered; A's profile comes from the registry (6 answers: too few to tell),
    # B's model folder is not known to a library-backend dashboard, the dashboard's own model has its profile
    rows = {r.get_attribute("data-variant"): r for r in p.locator(".pd-drift .pd-drift-row").all()}
    assert {"A", "B", "dashboard"} <= set(rows), p.locator(".pd-drift").inner_text()
    status = {v: r.get_attribute("data-status") for v, r in rows.items()}
    assert status["A"] == "too_few" and status["B"] == "unavailable", status
    assert status["dashboard"] in ("too_few", "stable", "watch", "drift"), status
    assert rows["A"].locator(".pd-drift-n").inner_text() == str(prediction_log["per_variant"]), rows["A"].inner_text()
    assert "cannot read" in rows["B"].inner_text() and "unknown rate" in p.locator(".pd-drift-table").inner_text()
    dash.screenshot("analytics.png")
    p.select_option(".pd-window select", "Last hour")  # only the most recent rows
    p.wait_for_function(
        "() => "
        f"{{ const c = document.querySelector('.pd-summary .pd-count'); return c && parseInt(c.textContent) < {answered}; }}",
        timeout=TIMEOUT_MS,
    )
    p.select_option(".pd-window select", "Last 24 hours")


def test_model_tab_shows_the_registered_version(dash, service):
    "Version, gate, test metrics, per-class report and confusion matrix from MLflow."
    p = dash.tab("Model", ".pd-model-facts")
    facts = p.locator(".pd-model-facts").inner_text()
    for text in (
        "plant-disease-resnet50",
        "Version\t1",
        "production",
        "resnet50",
        "64 px",
        "pass: version 1 passes the gate",
    ):
        assert text in facts, (text, facts)
    metrics = p.locator(".pd-metrics").inner_text()
    assert "accuracy" in metrics and "f1_macro" in metrics, metrics
    assert p.locator(".pd-per-class tr").count() == 1 + len(service.classes)  # header + one row per class
    p.wait_for_function(
        "() => { const i = document.querySelector('.pd-confusion'); return i && i.complete && i.naturalWidth > 200; }",
        timeout=10_000,
    )
    assert p.locator(".pd-missing").count() == 0, p.locator(".pd-missing").inner_text()
    dash.screenshot("model.png")


def test_dashboard_answers_are_in_the_prediction_log(dash, prediction_log):
    "The library backend recorded its answers and refusals (variant and route `dashboard`)."
    from plant_disease.predlog import PredictionLog

    with PredictionLog(prediction_log["url"], spool_dir=prediction_log["dir"] / "spool-read") as plog:
        df = plog.frame()
    mine = df[df["variant"] == "dashboard"]
    if dash.opened is None:
        pytest.skip("no dashboard page was opened in this run")
    assert len(mine[mine.status == "ok"]) >= 1 and set(mine["route"]) == {"dashboard"}, mine[["status", "route"]]
    assert mine.loc[mine.status == "error", "error"].str.len().gt(0).all()
    assert (mine["model_name"] == "plant-disease-resnet50").all() and (mine["model_version"] == "1").all()


def test_api_backend_against_the_service(service):
    "The api backend returns the API's answer (same keys as the library backend) and shows the API's detail on 4xx."
    from plant_disease.dashboard import ApiBackend, DashboardSettings, DiagnosisError

    settings = DashboardSettings.from_env(
        {"PD_DASHBOARD_BACKEND": "api", "PD_API_URL": service.url, "PD_API_TOKEN": service.token("dashboard-test")}
    )
    api = ApiBackend(settings)
    a = api.diagnose(service.leaf_photos[0].read_bytes(), "leaf.jpg")
    assert set(a) == ANSWER_KEYS, set(a) ^ ANSWER_KEYS
    # the tiny test models may answer unknown (retake the photo) for a leaf they do not recognise
    assert (a["label"] in service.classes or a["unknown"]) and a["heatmap_png_base64"]
    for data, status, detail in [(b"hello", 415, "not a JPEG, PNG or WebP image"), (b"", 400, "empty upload")]:
        with pytest.raises(DiagnosisError) as e:
            api.diagnose(data, "x.jpg")
        assert e.value.status == status and str(e.value).startswith(detail), str(e.value)
    assert {m["variant"] for m in api.describe()} == {"A", "B"}
    down = ApiBackend(
        DashboardSettings.from_env({"PD_DASHBOARD_BACKEND": "api", "PD_API_URL": f"http://127.0.0.1:{free_port()}"})
    )
    with pytest.raises(DiagnosisError, match="cannot be reached"):
        down.diagnose(b"x", "x.jpg")
    noauth = ApiBackend(DashboardSettings.from_env({"PD_DASHBOARD_BACKEND": "api", "PD_API_URL": service.url}))
    with pytest.raises(DiagnosisError) as e:
        noauth.diagnose(service.leaf_photos[0].read_bytes(), "leaf.jpg")
    assert e.value.status == 401, str(e.value)


def test_api_mode_dashboard(service):
    "The dashboard's widgets over the api backend (no browser): a card per photo, the service's refusal, both variants' cards."
    from plant_disease.dashboard import ApiBackend, Dashboard, DashboardSettings, load_notes

    settings = DashboardSettings.from_env(
        {
            "PD_DASHBOARD_BACKEND": "api",
            "PD_API_URL": service.url,
            "PD_API_TOKEN": service.token("dashboard-api"),
            "PD_TRACKING_URI": service.env["PD_TRACKING_URI"],
        }
    )
    d = Dashboard(settings, ApiBackend(settings), load_notes(settings.notes_path()))
    cards = d.diagnose_files(
        [{"name": "leaf.jpg", "content": service.leaf_photos[0].read_bytes()}, {"name": "a.txt", "content": b"text"}]
    )
    assert [c._dom_classes[-1] for c in cards] == ["pd-result", "pd-error"]
    assert "not a JPEG, PNG or WebP image" in cards[1].value and "HTTP 415" in cards[1].value
    by_variant = {c["variant"]: c for c in d.render_model()}
    assert (
        by_variant["A"]["version"] == "1"
        and by_variant["A"]["metrics"]["accuracy"] >= 0
        and not by_variant["A"]["missing"]
    )
    assert (
        by_variant["B"]["name"].startswith("local:")
        and "not a version in the MLflow registry" in by_variant["B"]["missing"][0]
    )


def test_voila_config_is_for_real_use():
    "127.0.0.1, a websocket limit for several 10+ MB photos, kernel culling, preheated kernels (the file `make dashboard` uses)."
    c = json.loads((ROOT / "app" / "voila.json").read_text())
    assert c["Voila"]["ip"] == "127.0.0.1"
    assert c["Voila"]["tornado_settings"]["websocket_max_message_size"] >= 100 * 2**20
    assert c["VoilaConfiguration"]["preheat_kernel"] is True and c["VoilaConfiguration"]["default_pool_size"] >= 1
    assert 0 < c["MappingKernelManager"]["cull_idle_timeout"] and c["MappingKernelManager"]["cull_interval"] > 0
    assert "--Voila.config_file_paths=app" in (ROOT / "Makefile").read_text()
