"""The web page's offline mode as the tests and the benches drive it: when its engine is ready, diagnosing photos with
it inside the page or through its form (with a verdict), sending its outbox, the test split's photos, and the
server's answer for a photo."""

from __future__ import annotations

import base64
import csv
import time
from pathlib import Path

import httpx

# the page's offline status has settled (app/static/app.js: data-state preparing | ready | unavailable)
READY = "['ready', 'unavailable'].includes(document.querySelector('#offline-status').dataset.state)"
# the number of items in the page's outbox (app/static/app.js), and whether an answer is shown with its verdict buttons
COUNT = "document.querySelector('#outbox').dataset.count"
SHOWN = "!document.querySelector('#verdict').hidden"
# in the page: load the engine (through the service worker) and diagnose base64 photos one at a time
DIAGNOSE = """async (photos) => {
  const t0 = performance.now();
  const { loadEngine } = await import('/static/ondevice.js');
  const engine = await loadEngine();
  const load_ms = performance.now() - t0;
  const answers = [];
  for (const b64 of photos) {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    answers.push(await engine.diagnose(new Blob([bytes], { type: 'image/jpeg' })));
  }
  return { load_ms, answers };
}"""


def b64_photos(photos: list[Path]) -> list[str]:
    "The photos' bytes as base64, for `page.evaluate(DIAGNOSE, ...)`."
    return [base64.b64encode(p.read_bytes()).decode() for p in photos]


def split_photos(data_dir: Path, split: str = "test") -> list[Path]:
    "The photos of one split of the data stage's manifest in `data_dir` (relative paths are from its parent)."
    rows = list(csv.DictReader((data_dir / "manifest.csv").open()))
    paths = [Path(r["path"]) for r in rows if r["split"] == split]
    return [p if p.is_absolute() else data_dir.parent / p for p in paths]


def server_answer(url: str, photo: Path) -> dict:
    "The service's answer for one photo (`POST /predict`, no token)."
    r = httpx.post(f"{url}/predict", files={"file": (photo.name, photo.read_bytes(), "image/jpeg")}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def diagnose_in_page(page, photo: Path, verdict: str | None = None) -> str:
    "Diagnose `photo` in the page (offline: on the device) and give `verdict`; the answer's label."
    before = int(page.evaluate(COUNT))
    page.set_input_files("#file", str(photo))
    page.click("#submit")
    page.wait_for_function(f"{SHOWN} || !document.querySelector('#error').hidden", timeout=60_000)
    assert page.is_visible("#verdict"), (page.text_content("#error"), page.text_content("#offline-status"))
    assert page.get_attribute("#result", "data-on-device") == "true"
    label = page.get_attribute("#label", "data-label")
    if verdict == "corrected":
        other = page.eval_on_selector(
            "#verdict-label", "(s, l) => [...s.options].map((o) => o.value).find((v) => v !== l)", label
        )
        page.select_option("#verdict-label", other)
    if verdict:
        page.click(f"#verdict button[data-verdict='{verdict}']")
        page.wait_for_function("document.querySelector('#verdict').dataset.given")
    page.wait_for_function(f"Number({COUNT}) === {before + 1 + bool(verdict)}", timeout=20_000)
    return label


def send_until_empty(page, timeout_s: float = 90) -> None:
    "What a user does when the network is back: the page sends at once; press Send now while anything waits."
    t = time.time()
    while time.time() - t < timeout_s:
        page.wait_for_timeout(1000)
        if page.evaluate(COUNT) == "0":
            return
        if page.is_visible("#outbox-send"):
            page.click("#outbox-send")
    raise AssertionError(page.text_content("#outbox-status"))
