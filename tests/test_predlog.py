"""The prediction log for real: SQLite, and PostgreSQL through pyodbc + psqlODBC with the server stopped mid-load."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from testkit.pg import postgres  # noqa: F401  (fixture)
from testkit.processes import wait_until
import plant_disease.feedback  # noqa: F401  (its table joins `metadata`: the migrations must create it too)
from plant_disease.predlog import PredictionLog, _append, make_row, metadata, migrations_dir, upgrade

HEAD = sorted(
    p.name[:4]
    for p in (Path(__file__).resolve().parents[1] / "plant_disease" / "migrations" / "versions").glob("0*.py")
)[-1]
ROOT = Path(__file__).resolve().parents[1]


def revision(url: str) -> list:
    "The Alembic revision(s) of the database at `url`, after checking that its schema matches `metadata`."
    e = sa.create_engine(url)
    try:
        with e.connect() as c:
            assert compare_metadata(MigrationContext.configure(c), metadata) == [], "migrations and metadata differ"
            return [r[0] for r in c.execute(sa.text("select version_num from alembic_version"))]
    finally:
        e.dispose()


# -- SQLite


def test_sqlite_threads_stats_frame(tmp_path):
    url = f"sqlite:///{tmp_path}/log.db"
    upgrade(url)
    upgrade(url)  # second run: nothing to do
    assert revision(url) == [HEAD]
    plog = PredictionLog(url, spool_dir=tmp_path / "spool", retry_every=0.5)
    try:
        with pytest.raises(TypeError, match="'lable'"):
            plog.record(lable="Tomato___healthy")

        def worker(t):
            return [
                plog.record(
                    request_id=f"r{t}-{i}",
                    label=f"class{i % 3}",
                    class_id=i % 3,
                    confidence=0.5 + i / 100,
                    latency_ms=float(t * 100 + i),
                    variant=["a", "b"][t % 2],
                    route="predict",
                    top_k=[{"label": f"class{i % 3}", "p": 0.5}],
                    model_name="m",
                    model_version="1",
                )
                for i in range(13 if t < 2 else 12)
            ]

        with ThreadPoolExecutor(4) as ex:
            ids = [i for part in ex.map(worker, range(4)) for i in part]
        assert len(ids) == 50 == len(set(ids))
        assert plog.flush(10)
        s = plog.stats()
        assert (s["n"], s["errors"]) == (50, 0)
        assert s["by_variant"] == {"a": 25, "b": 25}
        assert s["by_class"] == {"class0": 18, "class1": 16, "class2": 16}  # 13+13+12+12 records, label i % 3
        assert sum(s["by_variant_class"]["a"].values()) == 25
        lat = [float(t * 100 + i) for t in range(4) for i in range(13 if t < 2 else 12)]
        for k, q in [("p50", 50), ("p95", 95), ("p99", 99)]:
            assert s["latency_ms"][k] == pytest.approx(np.percentile(lat, q))
        assert s["latency_ms"]["mean"] == pytest.approx(np.mean(lat))
        lat_b = [x for t in (1, 3) for x in lat if t * 100 <= x < t * 100 + 100]
        assert s["latency_ms_by_variant"]["b"]["p95"] == pytest.approx(np.percentile(lat_b, 95))
        assert s["confidence_mean_by_variant"]["a"] == pytest.approx(
            np.mean([0.5 + i / 100 for n in (13, 12) for i in range(n)])
        )
        df = plog.frame()
        assert sorted(df["id"]) == sorted(ids) and str(df["created_at"].dt.tz) == "UTC"
        assert json.loads(df["top_k"].iloc[0])[0]["p"] == 0.5
        empty = plog.stats(until=datetime(2000, 1, 1, tzinfo=timezone.utc))
        assert empty["n"] == 0 and empty["latency_ms"] == {"p50": None, "p95": None, "p99": None, "mean": None}
        assert plog.spooled == 0 and plog.ping()
    finally:
        plog.close()
    plog.close()  # idempotent


def test_migrations_folder_override(tmp_path, monkeypatch):
    monkeypatch.setenv("PLANT_DISEASE_MIGRATIONS", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="PLANT_DISEASE_MIGRATIONS"):
        upgrade(f"sqlite:///{tmp_path}/x.db")
    monkeypatch.delenv("PLANT_DISEASE_MIGRATIONS")
    assert migrations_dir() == ROOT / "plant_disease" / "migrations"  # package data


def test_sqlite_unreachable_then_back(tmp_path):
    "The database folder does not exist yet: everything spools, nothing blocks; once it exists the spool drains."
    url = f"sqlite:///{tmp_path}/later/log.db"
    plog = PredictionLog(url, spool_dir=tmp_path / "spool", retry_every=0.3, connect_timeout=1)
    try:
        t = time.perf_counter()
        ids = [plog.record(label="a", latency_ms=float(i), variant="v") for i in range(40)]
        assert time.perf_counter() - t < 0.5, "record() must not wait for the database"
        assert plog.flush(10)
        assert not plog.ping() and plog.spooled == 40
        assert plog.replay() == 0 and plog.spooled == 40
        (tmp_path / "later").mkdir()
        upgrade(url)
        assert wait_until(lambda: plog.spooled == 0, 10), "the writer thread replays the spool by itself"
        more = [plog.record(label="b") for _ in range(5)]
        assert plog.flush(10)
        df = plog.frame()
        assert sorted(df["id"]) == sorted(ids + more) and df["id"].is_unique
        assert not any(p.name.startswith("predlog-") for p in (tmp_path / "spool").iterdir())
    finally:
        plog.close()


CHILD = """
import sys
from plant_disease.predlog import PredictionLog
plog = PredictionLog(sys.argv[1], spool_dir=sys.argv[2], retry_every=60, connect_timeout=1)
print(" ".join(plog.record(label="child", route="async") for _ in range(int(sys.argv[3]))))
plog.close()  # the database is unreachable: close() leaves everything in this process's spool file
"""


def test_dead_workers_spools_are_claimed_without_duplicates(tmp_path):
    """Two worker processes share a spool folder and exit while the database is unreachable; a new process claims
    their files and writes every record once, including one that had reached the database before its worker died."""
    url = f"sqlite:///{tmp_path}/later/log.db"
    spool = tmp_path / "spool"
    procs = [
        subprocess.run(
            [sys.executable, "-c", CHILD, url, str(spool), "7"], capture_output=True, text=True, timeout=60, check=True
        )
        for _ in range(2)
    ]
    ids = [i for p in procs for i in p.stdout.split()]
    files = sorted(spool.glob("predlog-*.jsonl"))
    # the second worker claims the first's spool and tries to replay it at start, which also moves its own spool aside:
    # its records may then be in two files of its own (2 or 3 files in all); each record is in exactly one
    spooled = [json.loads(line)["id"] for f in files for line in f.read_text().splitlines()]
    assert len(ids) == 14 and sorted(spooled) == sorted(ids) and len(files) >= 2, (files, [p.stderr for p in procs])
    (tmp_path / "later").mkdir()
    upgrade(url)
    committed = json.loads(files[0].read_text().splitlines()[0])  # this one made it before the connection died
    e = sa.create_engine(url)
    with e.begin() as c:
        c.execute(
            sa.text("insert into predictions (id, created_at, status) values (:id, :t, 'ok')"),
            {"id": committed["id"], "t": committed["created_at"]},
        )
    plog = PredictionLog(url, spool_dir=spool, retry_every=0.2)
    try:
        assert not any(f.exists() for f in files)  # claimed by rename at start-up
        assert wait_until(lambda: plog.spooled == 0, 10)
        with e.connect() as c:
            got = [r[0] for r in c.execute(sa.text("select id from predictions"))]
        assert sorted(got) == sorted(ids)
    finally:
        plog.close()
        e.dispose()


def test_refused_row_is_set_aside(tmp_path):
    "A spooled row whose data the database refuses goes to rejected-*.jsonl; the rows around it are written."
    url = f"sqlite:///{tmp_path}/log.db"
    upgrade(url)
    rows = [make_row(label="ok1"), {**make_row(label="bad"), "status": None}, make_row(label="ok2")]  # NOT NULL
    _append(tmp_path / "spool" / f"predlog-{socket.gethostname()}-{os.getpid()}.jsonl", rows)  # this process's spool
    plog = PredictionLog(url, spool_dir=tmp_path / "spool", retry_every=60)
    try:
        assert wait_until(lambda: plog.spooled == 0, 10), "a spool found at start-up is replayed at once"
        assert sorted(plog.frame()["label"]) == ["ok1", "ok2"]
        rejected = list((tmp_path / "spool").glob("rejected-*.jsonl"))
        assert len(rejected) == 1 and json.loads(rejected[0].read_text())["label"] == "bad"
    finally:
        plog.close()


# -- PostgreSQL through pyodbc + psqlODBC


def test_postgres_odbc_outage(postgres, tmp_path):
    url = postgres.odbc_url
    upgrade(url)
    upgrade(url)
    assert postgres.query("select version_num from alembic_version") == [(HEAD,)]
    cols = dict(
        postgres.query("select column_name, data_type from information_schema.columns where table_name = 'predictions'")
    )
    assert (
        set(cols) == set(metadata.tables["predictions"].c.keys()) and cols["created_at"] == "timestamp with time zone"
    )
    assert {r[0] for r in postgres.query("select indexname from pg_indexes where tablename = 'predictions'")} == {
        "pk_predictions",
        "ix_predictions_created_at",
        "ix_predictions_request_id",
        "ix_predictions_image_sha256",  # revision 0002: verdicts find their photo's answers
    }
    assert {r[0] for r in postgres.query("select indexname from pg_indexes where tablename = 'feedback'")} == {
        "pk_feedback",
        "ix_feedback_created_at",
        "ix_feedback_request_id",
        "ix_feedback_image_sha256",
    }
    plog = PredictionLog(url, spool_dir=tmp_path / "spool", retry_every=0.5, connect_timeout=2)
    assert plog.ping() and plog.engine.dialect.server_version_info >= (15,)
    n_threads, per_thread, pace = 4, 75, 0.09  # ~7 s of load: before, during and after the outage
    sent, lock, slowest = [], threading.Lock(), [0.0]
    spooled_during_outage = 0

    def worker(t):
        for i in range(per_thread):
            t0 = time.perf_counter()
            rid = plog.record(
                request_id=f"w{t}-{i}",
                label=f"c{i % 5}",
                class_id=i % 5,
                confidence=0.9,
                latency_ms=10.0 + i,
                variant=["a", "b"][t % 2],
                route="batch",
                caller=f"thread{t}",
            )
            dt = time.perf_counter() - t0
            with lock:
                sent.append(rid)
                slowest[0] = max(slowest[0], dt)
            time.sleep(pace)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    t_start = time.monotonic()
    for th in threads:
        th.start()
    try:
        assert wait_until(lambda: len(sent) >= 100, 30, 0.01)
        postgres.stop()  # fast shutdown: the writer's open connection is killed, whatever it was doing
        t_stop = time.monotonic()
        assert wait_until(lambda: plog.spooled > 0, 10, 0.05), "records sent during the outage must reach the spool"
        time.sleep(max(0.0, 3.0 - (time.monotonic() - t_stop)))
        spooled_during_outage = plog.spooled
        sent_during_outage = len(sent)
        postgres.start()
        outage_s = time.monotonic() - t_stop
    finally:
        for th in threads:
            th.join()
    load_s = time.monotonic() - t_start
    assert plog.flush(30)
    assert wait_until(lambda: plog.spooled == 0, 30), f"spool not drained: {plog.spooled} left"
    logged = postgres.count("select count(*) from predictions where route = 'batch'")
    distinct = postgres.count("select count(distinct id) from predictions where route = 'batch'")
    ids = {r[0] for r in postgres.query("select id from predictions where route = 'batch'")}
    report = {
        "sent": len(sent),
        "logged": logged,
        "duplicates": logged - distinct,
        "spooled_during_outage": spooled_during_outage,
        "sent_before_restart": sent_during_outage,
        "outage_s": round(outage_s, 2),
        "load_s": round(load_s, 2),
        "slowest_record_ms": round(slowest[0] * 1e3, 2),
    }
    print(
        f"\npredlog outage test: sent={report['sent']} logged={logged} duplicates={report['duplicates']} "
        f"spooled_during_outage={spooled_during_outage}",
        flush=True,
    )
    (ROOT / "reports").mkdir(exist_ok=True)
    (ROOT / "reports" / "predlog_outage.json").write_text(json.dumps(report, indent=2) + "\n")
    plog.close()
    assert len(sent) == n_threads * per_thread
    assert logged == distinct == len(sent) and ids == set(sent)
    assert spooled_during_outage > 0
    assert slowest[0] < 0.25, f"record() blocked for {slowest[0]:.3f}s"


def test_postgres_stats_window(postgres, tmp_path):
    "stats() and frame() over a time window; the server's zone is Asia/Kolkata, everything stays UTC."
    upgrade(postgres.odbc_url)
    base = datetime(2021, 3, 1, 12, 0, tzinfo=timezone.utc)
    ist = timezone(timedelta(hours=5, minutes=30))
    plog = PredictionLog(postgres.odbc_url, spool_dir=tmp_path / "spool")
    try:
        for i in range(20):
            at = base + timedelta(minutes=i)
            plog.record(
                created_at=at.astimezone(ist) if i % 2 else at,
                label=["x", "y"][i % 2],
                variant=["a", "b"][i % 4 == 0],
                latency_ms=float(i),
                confidence=i / 20,
                route="predict",
                status="error" if i == 7 else "ok",
                error="bad" if i == 7 else None,
            )
        assert plog.flush(10) and plog.spooled == 0
        since, until = base + timedelta(minutes=5), base + timedelta(minutes=15)  # minutes 5..14
        s = plog.stats(since=since, until=until)
        window = range(5, 15)
        assert s["since"] == since.isoformat() and s["until"] == until.isoformat()
        assert (s["n"], s["errors"]) == (10, 1)
        answered = [i for i in window if i != 7]  # minute 7 is a refused image: counted in errors, not in classes
        assert s["by_class"] == {"x": 5, "y": 4} and s["errors_by_variant"] == {"a": 1}
        assert s["by_variant"] == {"b": sum(i % 4 == 0 for i in answered), "a": sum(i % 4 != 0 for i in answered)}
        assert s["latency_ms"]["p50"] == pytest.approx(np.percentile(list(map(float, answered)), 50))
        assert s["latency_ms"]["p99"] == pytest.approx(np.percentile(list(map(float, answered)), 99))
        assert s["confidence_mean_by_variant"]["b"] == pytest.approx(np.mean([i / 20 for i in window if i % 4 == 0]))
        assert plog.stats(since=base + timedelta(hours=1), until=base + timedelta(hours=2))["n"] == 0
        df = plog.frame(since, until)
        assert list(df["created_at"]) == [base + timedelta(minutes=i) for i in window]
        # the database itself holds UTC instants (compare in SQL, independent of the library)
        assert (
            postgres.count(
                "select count(*) from predictions where created_at >= '2021-03-01 12:05:00+00' "
                "and created_at < '2021-03-01 12:15:00+00'"
            )
            == 10
        )
    finally:
        plog.close()
