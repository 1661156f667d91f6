"""The field loop through the running service: agronomists' verdicts (`POST /feedback`, scope `review`) stored in
the prediction-log database (PostgreSQL through pyodbc here), read back as field accuracy (`GET /feedback/stats`),
and kept while the database is down; answered photos kept in the photo store (PD_KEEP_PHOTOS)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from test_service import post_image

pytestmark = pytest.mark.xdist_group("service")  # the service fixture's group (one service per worker)
ROOT = Path(__file__).resolve().parents[1]


def feedback(svc, reviewer: str = "ana", scopes=("review",), **body) -> httpx.Response:
    return httpx.post(f"{svc.url}/feedback", json=body, headers=svc.headers(reviewer, scopes), timeout=30)


def field_stats(svc) -> dict:
    r = httpx.get(f"{svc.url}/feedback/stats", params={"window_s": 3600}, headers=svc.headers("ops", ("admin",)))
    assert r.status_code == 200, r.text
    return r.json()


def other_class(svc, label: str) -> str:
    return next(c for c in svc.classes if c != label)


def test_feedback_is_recorded_checked_and_measured(service, postgres_server):
    "A verdict goes to PostgreSQL with its reviewer, the latest one counts, and /feedback/stats measures field accuracy."
    before = field_stats(service)
    answers = [post_image(service, p, "field-user").json() for p in service.leaf_photos[:2]]
    assert all("request_id" in a for a in answers), answers
    a, b = answers
    wrong = other_class(service, a["label"])
    t = time.perf_counter()
    r = feedback(service, request_id=a["request_id"], verdict="corrected", label=wrong, note="lesions on old leaves")
    write_ms = 1000 * (time.perf_counter() - t)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["checked"] and body["reviewer"] == "ana" and body["label"] == wrong, body
    assert body["image_sha256"] == a["image_sha256"]
    # the latest verdict counts: a second reviewer confirms the model after all
    assert feedback(service, "ben", request_id=a["request_id"], verdict="confirmed").status_code == 201
    assert (
        feedback(
            service, request_id=b["request_id"], verdict="corrected", label=other_class(service, b["label"])
        ).status_code
        == 201
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        rows = postgres_server.query(
            f"select reviewer, verdict, label, note, source from feedback where request_id = '{a['request_id']}' "
            "order by created_at"
        )
        if len(rows) == 2:
            break
        time.sleep(0.3)
    assert [tuple(r) for r in rows] == [
        ("ana", "corrected", wrong, "lesions on old leaves", "api"),
        ("ben", "confirmed", a["label"], None, "api"),
    ]
    after = field_stats(service)
    fa0, fa1 = before["field_accuracy"], after["field_accuracy"]
    assert fa1["n"] >= fa0["n"] + 2 and fa1["correct"] >= fa0["correct"] + 1, (fa0, fa1)
    assert 0 <= fa1["ci_low"] <= fa1["accuracy"] <= fa1["ci_high"] <= 1
    versions = {(v["model_name"], v["model_version"]): v for v in after["by_model_version"]}
    a_version = versions[(a["model_name"], a["model_version"])]
    assert a_version["n"] >= 1 and "lab_accuracy" in a_version
    if a["variant"] == "A":  # registered: its gate's test accuracy stands beside field accuracy
        assert a_version["lab_accuracy"] is not None
    assert {r["label"] for r in after["by_class"]} >= {a["label"]}
    (ROOT / "reports").mkdir(exist_ok=True)
    (ROOT / "reports" / "feedback_api.json").write_text(json.dumps({"feedback_write_ms": round(write_ms, 1)}))
    print(f"POST /feedback: {write_ms:.1f} ms (checked against PostgreSQL via ODBC)")


def test_feedback_refusals_are_clear(service):
    "Unknown ids 404, classes the model lacks and batch ids without a photo 400, wrong scope 403, bad fields 422."
    a = post_image(service, service.leaf_photos[0], "field-user").json()
    r = feedback(service, request_id="no-such-request", verdict="confirmed")
    assert r.status_code == 404 and "no answer for request 'no-such-request'" in r.json()["detail"], r.text
    r = feedback(service, request_id=a["request_id"], verdict="corrected", label="Tomato___late_blight")
    assert r.status_code == 400 and "not a class of the model" in r.json()["detail"], r.text
    r = feedback(service, request_id=a["request_id"], verdict="corrected")
    assert r.status_code == 400 and "needs `label`" in r.json()["detail"], r.text
    r = feedback(service, request_id=a["request_id"], verdict="not_a_leaf", label=a["label"])
    assert r.status_code == 400 and "takes no label" in r.json()["detail"], r.text
    assert feedback(service, request_id=a["request_id"], verdict="great").status_code == 422
    assert feedback(service, request_id=a["request_id"], verdict="unsure", image_sha256="XYZ").status_code == 422
    assert feedback(service, request_id=a["request_id"], verdict="unsure", scopes=("predict",)).status_code == 403
    files = [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in service.leaf_photos[:2]]
    batch = httpx.post(f"{service.url}/predict/batch", files=files, headers=service.headers("field-user"), timeout=60)
    assert batch.status_code == 200, batch.text
    rid, items = batch.json()["request_id"], batch.json()["results"]
    if len({i["prediction"]["image_sha256"] for i in items}) > 1:
        r = feedback(service, request_id=rid, verdict="confirmed")
        assert r.status_code == 400 and "image_sha256" in r.json()["detail"], r.text
    sha = items[1]["prediction"]["image_sha256"]
    r = feedback(service, request_id=rid, image_sha256=sha, verdict="not_a_leaf", note="a stone")
    assert r.status_code == 201 and r.json()["image_sha256"] == sha, r.text


def test_answered_photos_are_kept_by_sha256(service):
    "With PD_KEEP_PHOTOS on, each answered photo is in the store under its SHA-256 (EXIF location removed)."
    from plant_disease.photostore import PhotoStore

    a = post_image(service, service.leaf_photos[3], "field-user").json()
    store = PhotoStore(service.env["PD_PHOTO_STORE"], service.workdir / "reader-spool")
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not store.has(a["image_sha256"]):
            time.sleep(0.2)
        assert store.get(a["image_sha256"]) is not None
    finally:
        store.close()


def test_database_outage_loses_no_feedback(service, postgres_server):
    "Stop PostgreSQL while verdicts arrive: each is accepted (202, unchecked), spooled, and written once it is back."
    answers = [post_image(service, p, "outage-reviewed").json() for p in service.leaf_photos[:3]]
    time.sleep(1.0)  # the answers reach the database
    postgres_server.stop()
    try:
        got = [feedback(service, "carla", request_id=a["request_id"], verdict="confirmed") for a in answers]
        assert all(r.status_code == 202 and r.json()["checked"] is False for r in got), [r.text for r in got]
        r = httpx.get(f"{service.url}/feedback/stats", headers=service.headers("ops", ("admin",)), timeout=30)
        assert r.status_code == 503 and "spooled" in r.json()["detail"], r.text
    finally:
        postgres_server.start()
    ids = {r.json()["id"] for r in got}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        n = postgres_server.count("select count(*) from feedback where reviewer = 'carla'")
        if n == len(ids):
            break
        time.sleep(1)
    assert n == len(ids) == 3
    rev = {r[0] for r in postgres_server.query("select request_id from feedback where reviewer = 'carla'")}
    assert rev == {a["request_id"] for a in answers}
    # unchecked verdicts count once their answers are found: confirmed -> each answer right
    s = field_stats(service)
    assert s["verdicts"]["confirmed"] >= 3
