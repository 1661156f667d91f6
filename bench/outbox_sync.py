"""The web page's outbox, measured in headless Chromium: serve an exported model (the API alone, photos kept), load
the page online, go offline, diagnose test photos through the page's form and confirm each (an answer and a verdict
per photo wait in IndexedDB), then bring the network back and time until the page has sent everything; the
browser's storage while the items wait (navigator.storage.estimate), per item; how many rows the service wrote
(each exactly once). Then the same with the connection dropped after the service recorded every third item.

    python bench/outbox_sync.py --model-dir exported --data-dir data --n 40

Prints a table and writes `reports/bench_outbox.json`. The browser and the API share this machine's cores.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from testkit.machine import cpu_name, matmul_peak_gflops, vector_extensions  # noqa: E402
from testkit.service import CHROMIUM, CHROMIUM_ARGS, start_api  # noqa: E402
from testkit.web import COUNT, READY, diagnose_in_page, split_photos  # noqa: E402

USAGE = "async () => (await navigator.storage.estimate()).usage"


def count_rows(db: Path) -> dict:
    with sqlite3.connect(db) as c:
        answers = c.execute("select count(*), count(distinct id) from predictions where origin = 'device'").fetchone()
        verdicts = c.execute("select count(*), count(distinct id) from feedback").fetchone()
    return {
        "answers": answers[0],
        "distinct_answers": answers[1],
        "verdicts": verdicts[0],
        "distinct_verdicts": verdicts[1],
    }


def run(browser, url: str, photos: list[Path], drop_every: int | None) -> dict:
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{url}/", wait_until="load")
    page.wait_for_function(READY, timeout=120_000)
    context.set_offline(True)
    before = page.evaluate(USAGE)
    t = time.perf_counter()
    for p in photos:
        diagnose_in_page(page, p, "confirmed")
    queue_s = time.perf_counter() - t
    waiting = int(page.evaluate(COUNT))
    stored = page.evaluate(USAGE) - before
    calls = {"n": 0, "dropped": 0}

    def maybe_drop(route):
        calls["n"] += 1
        response = route.fetch()
        if drop_every and calls["n"] % drop_every == 0 and response.ok:
            calls["dropped"] += 1
            route.abort("connectionreset")
        else:
            route.fulfill(response=response)

    context.route("**/predictions/device", maybe_drop)
    context.route("**/feedback", maybe_drop)
    t = time.perf_counter()
    context.set_offline(False)  # the page sends at once ('online'); after a drop, press Send now as a user would
    while page.evaluate(COUNT) != "0" and time.perf_counter() - t < 600:
        page.wait_for_timeout(200)
        if (
            drop_every
            and page.is_visible("#outbox-send")
            and page.evaluate("document.querySelector('#outbox').dataset.problem")
        ):
            page.click("#outbox-send")
    sync_s = time.perf_counter() - t
    left = int(page.evaluate(COUNT))
    context.close()
    return {
        "photos": len(photos),
        "items": waiting,
        "queue_s_per_photo": queue_s / len(photos),
        "stored_bytes": stored,
        "stored_bytes_per_photo": stored / len(photos),
        "photo_bytes_mean": sum(p.stat().st_size for p in photos) / len(photos),
        "sync_s": sync_s,
        "items_per_s": waiting / sync_s,
        "requests": calls["n"],
        "dropped": calls["dropped"],
        "left": left,
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", type=Path, required=True, help="a folder written by `plant-disease export`")
    ap.add_argument("--data-dir", type=Path, required=True, help="the data stage's folder (its test split's photos)")
    ap.add_argument("--n", type=int, default=40, help="photos diagnosed offline per run (default 40)")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "bench_outbox.json")
    a = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    test = split_photos(a.data_dir)
    photos = (test * (a.n // len(test) + 1))[: a.n]  # a photo may come twice: each diagnosis is its own item
    machine = {"cpu": cpu_name(), "vector_extensions": vector_extensions(), "matmul": matmul_peak_gflops()}
    print(f"{machine['cpu']}, {' '.join(machine['vector_extensions'])}, matmul {machine['matmul']}; {a.n} photos")
    results = {}
    for name, drop_every in (("steady", None), ("dropping", 3)):
        with tempfile.TemporaryDirectory() as d:
            work = Path(d)
            settings = {
                "PD_VARIANTS": json.dumps([{"name": "web", "source": str(a.model_dir.resolve())}]),
                "PD_RUNTIME": "tflite_int8",
                "PD_KEEP_PHOTOS": "true",
                "PD_PHOTO_STORE": str(work / "photos"),
            }
            api, url = start_api(work, settings, "api.log")
            try:
                with sync_playwright() as p:
                    browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                    r = run(browser, url, photos, drop_every)
                    browser.close()
                time.sleep(3)  # the log's writer thread
                r["database"] = count_rows(work / "predictions.db")
            finally:
                api.terminate()
                api.wait(30)
        results[name] = r
        db = r["database"]
        print(
            f"{name:9s} {r['items']} items ({r['photos']} answers with photos, {r['photos']} verdicts): queued "
            f"{1000 * r['queue_s_per_photo']:.0f} ms/photo on the device, stored {r['stored_bytes_per_photo'] / 1024:.0f} "
            f"KiB/photo (photo {r['photo_bytes_mean'] / 1024:.0f} KiB); sent in {r['sync_s']:.1f} s "
            f"({r['items_per_s']:.1f} items/s, {r['requests']} requests, {r['dropped']} dropped after recording); "
            f"in the database: {db['answers']} answers ({db['distinct_answers']} distinct), {db['verdicts']} verdicts "
            f"({db['distinct_verdicts']} distinct); {r['left']} left"
        )
    report = {"machine": machine, "model_dir": str(a.model_dir), "n": a.n, **results}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
