"""Nothing lost offline (Chromium via Playwright, offline through the browser context): diagnoses made on the device
and verdicts given without a network wait in the page's outbox (IndexedDB), survive a reload, and reach the service
exactly once when the connection returns, also when it drops in the middle of sending; an expired token keeps them
and says so; `/stats`, `/feedback/stats` and the Review tab show them with their origin. The service runs with auth
on, the service tests' exported tiny EfficientNetB0 of real tomato leaves (LiteRT full int8), and keeps photos."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from testkit.service import SECRET, chromium, start_api
from testkit.web import COUNT, READY, SHOWN, diagnose_in_page, send_until_empty, split_photos

pytestmark = pytest.mark.xdist_group("service")


@pytest.fixture(scope="module")
def api(service, tmp_path_factory):
    "The service with auth on, photos kept, over a private SQLite log: (url, work folder, token maker)."
    work = tmp_path_factory.mktemp("outbox")
    settings = {
        "PD_VARIANTS": json.dumps([{"name": "web", "source": str(service.extra["models"]["efficientnetb0_exported"])}]),
        "PD_RUNTIME": "tflite_int8",
        "PD_REQUIRE_AUTH": "true",
        "PD_JWT_SECRET": SECRET,
        "PD_RATE_LIMIT": "100000/minute",
        "PD_KEEP_PHOTOS": "true",
        "PD_PHOTO_STORE": str(work / "photos"),
    }
    proc, url = start_api(work, settings, "api-outbox.log")
    try:
        yield url, work, service
    finally:
        proc.terminate()
        proc.wait(30)


def rows(work: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(work / "predictions.db") as c:
        return c.execute(sql).fetchall()


def wait_rows(work: Path, sql: str, n: int, timeout: float = 20) -> list[tuple]:
    "The rows of `sql` once there are `n` (the log writes in the background)."
    t = time.time()
    while True:
        got = rows(work, sql)
        if len(got) >= n or time.time() - t > timeout:
            return got
        time.sleep(0.3)


def open_page(browser, url: str, token: str, init_script: str | None = None):
    context = browser.new_context()
    if init_script:
        context.add_init_script(init_script)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{url}/", wait_until="load")
    # the service worker controls the page before the token's reload: what the engine fetches then is kept offline
    page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=60_000)
    page.evaluate("(t) => localStorage.setItem('plant-disease.token', t)", token)
    page.reload(wait_until="load")
    page.wait_for_function(READY, timeout=120_000)
    assert page.get_attribute("#offline-status", "data-state") == "ready", page.text_content("#offline-status")
    return context, page, errors


def test_offline_answers_and_verdicts_reach_the_service_exactly_once(api):
    url, work, service = api
    token = service.token("grower", ("predict", "review"))
    admin = {"Authorization": f"Bearer {service.token('ops', ('admin',))}"}
    photos = split_photos(service.workdir / "data")[:5]
    verdicts = ["confirmed", "corrected", "not_a_leaf", None, "confirmed"]
    with chromium() as browser:
        context, page, errors = open_page(browser, url, token)
        context.set_offline(True)
        page.reload(wait_until="load")
        page.wait_for_function(READY, timeout=60_000)
        labels = [diagnose_in_page(page, p, v) for p, v in zip(photos, verdicts)]
        n_verdicts = sum(v is not None for v in verdicts)
        assert page.evaluate(COUNT) == str(len(photos) + n_verdicts)
        assert "wait to be sent" in page.text_content("#outbox-status")
        tags = page.evaluate("async () => (await (await navigator.serviceWorker.ready).sync.getTags())")
        assert tags == ["plant-disease-outbox"], tags  # Background Sync will send them, with the page closed too

        page.reload(wait_until="load")  # a reload while items wait: they are still there
        page.wait_for_function(f"{COUNT} === '{len(photos) + n_verdicts}'", timeout=20_000)

        # the connection returns, and drops twice after the service has recorded an item, before the page hears it
        dropped: list[str] = []

        def drop_after_recording(route):
            response = route.fetch()
            if len(dropped) < 2 and response.status in (200, 201):
                dropped.append(route.request.url)
                route.abort("connectionreset")
            else:
                route.fulfill(response=response)

        context.route("**/predictions/device", drop_after_recording)
        context.route("**/feedback", drop_after_recording)
        context.set_offline(False)
        send_until_empty(page)
        assert len(dropped) == 2, dropped
        assert "Nothing waits" in page.text_content("#outbox-status")
        assert not errors, errors
        context.close()

    answers = wait_rows(
        work, "select id, request_id, label, origin, route, image_sha256 from predictions where origin = 'device'", 5
    )
    assert len(answers) == len(photos) and len({a[0] for a in answers}) == len(photos), answers
    assert all(a[0] == a[1] and a[3] == a[4] == "device" for a in answers)
    assert sorted(a[2] for a in answers) == sorted(labels)
    got = wait_rows(work, "select request_id, verdict from feedback", n_verdicts)
    assert len(got) == n_verdicts and {r for r, _ in got} <= {a[0] for a in answers}, got
    assert sorted(v for _, v in got) == sorted(v for v in verdicts if v)
    from plant_disease.photostore import PhotoStore

    store = PhotoStore(work / "photos", work / "spool-check")
    assert all(store.has(a[5]) for a in answers)  # each photo kept under the store's rules
    store.close()

    stats = httpx.get(f"{url}/stats", headers=admin, params={"window_s": 3600}).json()
    assert stats["by_origin"]["device"] == len(photos), stats
    fstats = httpx.get(f"{url}/feedback/stats", headers=admin).json()
    assert fstats["n_answers_by_origin"]["device"] == len(photos) and fstats["n_verdicts"] == n_verdicts, fstats
    assert {r["origin"] for r in fstats["by_origin"]} == {"device"}, fstats["by_origin"]

    # the dashboard's Review tab lists the unreviewed device answer, marked as computed on the device
    from plant_disease.dashboard.fragments import review_item_html
    from plant_disease.feedback import FeedbackLog
    from plant_disease.field import review_queue
    from plant_disease.predlog import PredictionLog

    db = f"sqlite:///{work / 'predictions.db'}"
    with PredictionLog(db, work / "spool-check") as plog, FeedbackLog(db, work / "spool-check") as flog:
        queue = review_queue(plog.frame(), flog.frame())
    waiting = queue[queue.origin == "device"]
    assert len(waiting) == 1, queue
    assert 'data-origin="device"' in review_item_html(waiting.iloc[0].to_dict())


def test_the_service_refuses_what_it_cannot_record_and_says_why(api):
    url, work, service = api
    headers = service.headers("grower", ("predict", "review"))
    photo = split_photos(service.workdir / "data")[0]
    served = httpx.get(f"{url}/models/web", headers=headers).json()
    answer = {
        "label": "unknown",
        "class_id": None,
        "confidence": 0.3,
        "top_k": [{"class_id": 0, "label": served["classes"][0]["label"], "probability": 0.3}],
        "unknown": True,
        "variant": "web",
        "model_name": served["model_name"],
        "model_version": str(served["model_version"]),
        "diagnosed_at": datetime.now(timezone.utc).isoformat(),
    }

    def send(a=answer, key=None, data=None):
        files = {"file": (photo.name, data or photo.read_bytes(), "image/jpeg")}
        h = {**headers, "Idempotency-Key": key or str(uuid.uuid4())}
        return httpx.post(f"{url}/predictions/device", files=files, data={"answer": json.dumps(a)}, headers=h)

    key = str(uuid.uuid4())
    first, again = send(key=key), send(key=key)
    assert (first.status_code, again.status_code) == (201, 200) and again.json()["duplicate"], again.text
    assert wait_rows(work, f"select id from predictions where id = '{key}'", 1) == [(key,)]
    reused = send(key=key, data=split_photos(service.workdir / "data")[2].read_bytes())
    assert reused.status_code == 409 and "another photo" in reused.json()["detail"], reused.text
    gone = send({**answer, "model_version": "999"})
    assert gone.status_code == 409 and "no longer serves it" in gone.json()["detail"], gone.text
    wrong = send({**answer, "label": served["classes"][0]["label"], "class_id": 1, "unknown": False})
    assert wrong.status_code == 422 and "class id 1" in wrong.json()["detail"], wrong.text
    no_key = httpx.post(
        f"{url}/predictions/device",
        files={"file": (photo.name, photo.read_bytes(), "image/jpeg")},
        data={"answer": json.dumps(answer)},
        headers=headers,
    )
    assert no_key.status_code == 422 and "Idempotency-Key" in no_key.text, no_key.text
    expired = {"Authorization": f"Bearer {service.token('grower', ('predict',), ttl=-10)}"}
    late = httpx.post(
        f"{url}/predictions/device",
        files={"file": (photo.name, photo.read_bytes(), "image/jpeg")},
        data={"answer": json.dumps(answer)},
        headers={**expired, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert late.status_code == 401 and "expired" in late.json()["detail"], late.text
    vkey = str(uuid.uuid4())
    verdict = {"request_id": key, "verdict": "not_a_leaf"}
    v1 = httpx.post(f"{url}/feedback", json=verdict, headers={**headers, "Idempotency-Key": vkey})
    v2 = httpx.post(f"{url}/feedback", json=verdict, headers={**headers, "Idempotency-Key": vkey})
    assert (v1.status_code, v2.status_code) == (201, 200) and v2.json()["duplicate"], (v1.text, v2.text)
    other = httpx.post(
        f"{url}/feedback", json={**verdict, "verdict": "unsure"}, headers={**headers, "Idempotency-Key": vkey}
    )
    assert other.status_code == 409 and "another verdict" in other.text, other.text
    assert wait_rows(work, f"select id from feedback where id = '{vkey}'", 1) == [(vkey,)]


def test_an_expired_token_keeps_the_queue_and_says_so(api):
    url, work, service = api
    photo = split_photos(service.workdir / "data")[1]
    with chromium() as browser:
        context, page, errors = open_page(browser, url, service.token("grower", ("predict", "review"), ttl=12))
        context.set_offline(True)
        diagnose_in_page(page, photo, "confirmed")
        page.wait_for_timeout(12_500)  # the token expires while the phone is offline
        context.set_offline(False)
        page.click("#outbox-send")
        page.wait_for_function("document.querySelector('#outbox').dataset.problem === 'token'", timeout=20_000)
        assert page.evaluate(COUNT) == "2"
        status = page.text_content("#outbox-status")
        assert "token" in status and "expired" in status and "wait to be sent" in status, status
        page.fill("#token", service.token("grower", ("predict", "review")))  # a fresh token: they go at once
        page.wait_for_function(f"{COUNT} === '0'", timeout=20_000)
        assert not errors, errors
        context.close()


# the page's IndexedDB refuses the outbox's items while `window.__full` is set, as a full device store does
FULL_STORAGE = """(() => {
  const put = IDBObjectStore.prototype.put;
  IDBObjectStore.prototype.put = function (value, key) {
    if (window.__full && value && value.kind) throw new DOMException("the quota is used up", "QuotaExceededError");
    return put.call(this, value, key);
  };
})()"""


def test_a_full_device_store_says_so_and_loses_nothing_while_the_page_is_open(api):
    url, work, service = api
    photo = split_photos(service.workdir / "data")[6]  # one no other test here diagnoses
    token = service.token("grower", ("predict", "review"))
    with chromium() as browser:
        context, page, errors = open_page(browser, url, token, FULL_STORAGE)
        page.evaluate("window.__full = true")
        context.set_offline(True)
        page.set_input_files("#file", str(photo))
        page.click("#submit")
        page.wait_for_function(SHOWN, timeout=60_000)
        key = page.evaluate("document.querySelector('#outbox').dataset.unsaved")
        assert key == "1" and page.evaluate(COUNT) == "0", page.text_content("#outbox-status")
        status = page.text_content("#outbox-status")
        assert "storage is full" in status and "1 diagnosis made on this device waits" in status, status
        page.evaluate("window.__full = false")  # space is freed; the network returns
        context.set_offline(False)
        send_until_empty(page)
        assert page.evaluate("document.querySelector('#outbox').dataset.unsaved") == "0"
        assert not errors, errors
        context.close()
    sha = hashlib.sha256(photo.read_bytes()).hexdigest()
    assert (
        len(wait_rows(work, f"select id from predictions where origin = 'device' and image_sha256 = '{sha}'", 1)) == 1
    )


# a browser without Background Sync (the page sends by itself): here, so that the service worker cannot send the
# items past the test's stand-in for the service
NO_BACKGROUND_SYNC = "if (self.SyncManager) SyncManager.prototype.register = async () => undefined;"


def test_refusals_and_server_errors_keep_the_items_and_say_why(api):
    """A failing service (503) and a refused answer (409: production moved away from the model that answered, as the
    service says when neither it, the registry nor the log knows the version) keep everything, in words; the
    verdict waits for its answer. The service's own 409 is checked above; here the page's side of it."""
    url, work, service = api
    photo = split_photos(service.workdir / "data")[7]
    token = service.token("grower", ("predict", "review"))
    gone = "model local:v1 version 1 is not one this service has"
    with chromium() as browser:
        context, page, errors = open_page(browser, url, token, NO_BACKGROUND_SYNC)
        context.set_offline(True)
        diagnose_in_page(page, photo, "not_a_leaf")
        stand_in: dict = {}  # what the stand-in for the service answers; empty: the service itself

        def answer(route):
            if stand_in:
                route.fulfill(status=stand_in["status"], json={"detail": stand_in["detail"]})
            else:
                route.continue_()

        context.route("**/predictions/device", answer)
        for status, detail, said in (
            (503, "the prediction log database is unavailable", "could not take them now (HTTP 503"),
            (409, gone, f"refused for now ({gone})"),
        ):
            stand_in.update(status=status, detail=detail)
            context.set_offline(False)
            page.click("#outbox-send")
            page.wait_for_function(
                f"document.querySelector('#outbox-status').textContent.includes({json.dumps(said)})", timeout=20_000
            )
            assert page.evaluate(COUNT) == "2", page.text_content("#outbox-status")
        stand_in.clear()
        send_until_empty(page)  # the service takes them again
        assert not errors, errors
        context.close()
    sha = hashlib.sha256(photo.read_bytes()).hexdigest()
    assert (
        len(wait_rows(work, f"select id from predictions where origin = 'device' and image_sha256 = '{sha}'", 1)) == 1
    )
    assert len(wait_rows(work, f"select id from feedback where image_sha256 = '{sha}'", 1)) == 1


def test_background_sync_sends_with_the_page_closed(api):
    "Chromium has Background Sync: the service worker sends what waits when the connection returns, no page open."
    url, work, service = api
    photo = split_photos(service.workdir / "data")[8]
    with chromium() as browser:
        context, page, errors = open_page(browser, url, service.token("grower", ("predict", "review")))
        context.set_offline(True)
        diagnose_in_page(page, photo, "confirmed")
        assert not errors, errors
        page.close()  # the grower closes the page in the field
        context.set_offline(False)
        sha = hashlib.sha256(photo.read_bytes()).hexdigest()
        answers = wait_rows(
            work, f"select id from predictions where origin = 'device' and image_sha256 = '{sha}'", 1, 60
        )
        verdicts = wait_rows(work, f"select id from feedback where image_sha256 = '{sha}'", 1, 30)
        context.close()
    assert len(answers) == 1 and len(verdicts) == 1, (answers, verdicts)


WAITING_PHOTOS = """async () => (await (await import('/static/outbox.js')).list())
  .filter((i) => i.kind === 'answer')
  .map((i) => ({ id: i.id, name: i.photo.name, type: i.photo.type, bytes: i.photo.size }))"""


def test_photos_kept_small_save_the_devices_storage_and_mobile_data(api, tmp_path):
    """A phone-sized photo diagnosed offline: with "Keep photos diagnosed on this device small" ticked (a choice kept
    across visits) it waits and is sent redrawn with its long side at 1024 pixels, and the service keeps that copy;
    unticked, the photo as taken, byte for byte."""
    from PIL import Image

    url, work, service = api
    leaf = split_photos(service.workdir / "data")[9]
    phone = tmp_path / "IMG_0001.jpeg"
    Image.open(leaf).convert("RGB").resize((3000, 2250), Image.BICUBIC).save(phone, quality=92)
    with chromium() as browser:
        context, page, errors = open_page(browser, url, service.token("grower", ("predict", "review")))
        assert not page.is_checked("#small-photos")  # the photo as taken, unless the grower asks
        page.check("#small-photos")
        context.set_offline(True)
        page.reload(wait_until="load")
        page.wait_for_function(READY, timeout=60_000)
        assert page.is_checked("#small-photos")  # the choice outlives the visit
        diagnose_in_page(page, phone)
        page.uncheck("#small-photos")
        diagnose_in_page(page, phone)
        small, full = page.evaluate(WAITING_PHOTOS)[-2:]
        assert small["name"] == "IMG_0001.jpg" and small["type"] == "image/jpeg", small
        assert full["name"] == "IMG_0001.jpeg" and full["bytes"] == phone.stat().st_size, full
        assert small["bytes"] < full["bytes"] / 3, (small, full)
        context.set_offline(False)
        send_until_empty(page)
        assert not errors, errors
        context.close()

    got = dict(
        wait_rows(work, f"select id, image_sha256 from predictions where id in ('{small['id']}', '{full['id']}')", 2)
    )
    assert set(got) == {small["id"], full["id"]}, got
    assert got[full["id"]] == hashlib.sha256(phone.read_bytes()).hexdigest()
    from io import BytesIO

    from plant_disease.photostore import PhotoStore

    store = PhotoStore(work / "photos", work / "spool-check")
    kept = store.get(got[small["id"]])
    assert store.get(got[full["id"]]) == phone.read_bytes()
    store.close()
    assert kept is not None and len(kept) == small["bytes"], (small, kept and len(kept))
    assert Image.open(BytesIO(kept)).size == (1024, 768)
    print(f"a {phone.stat().st_size / 1024:.0f} KiB photo waits and travels as {small['bytes'] / 1024:.0f} KiB")
