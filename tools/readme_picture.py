"""The README's picture: the Voilà dashboard diagnosing one photo, as `make dashboard` serves it.

    python tools/readme_picture.py --model models --photo path/to/leaf.jpg [--out docs/img/diagnosis.png]

`--model` is what `PD_DASHBOARD_MODEL` takes (a model folder, or `models:/name@alias` with PD_TRACKING_URI set).
Voilà runs on a free local port with a throw-away prediction log; headless Chromium (Debian's /usr/bin/chromium,
driven by Playwright) chooses the photo, waits for its answer and photographs the Diagnose tab.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from testkit.processes import free_port, wait_for
from testkit.service import CHROMIUM, CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parents[1]


def start_voila(model: str, work: Path) -> tuple[subprocess.Popen, str]:
    "Voilà serving app/dashboard.ipynb with `model`, once its preheated kernel has loaded and warmed the model."
    port, log = free_port(), work / "voila.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PD_")}
    env |= {
        "PD_DASHBOARD_BACKEND": "library",
        "PD_DASHBOARD_MODEL": model,
        "PD_DATABASE_URL": f"sqlite:///{work / 'predictions.db'}",
        "PD_SPOOL_DIR": str(work / "spool"),
        "PD_PROJECT_DIR": str(work),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    if "PD_TRACKING_URI" in os.environ:
        env["PD_TRACKING_URI"] = os.environ["PD_TRACKING_URI"]
    voila = Path(sys.executable).with_name("voila")
    cmd = [str(voila), "app/dashboard.ipynb", "--Voila.config_file_paths=app", f"--port={port}"]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        wait_for(lambda: "loaded and warmed up" in log.read_text(), 300, "voila's preheated kernel", proc, log)
    except Exception:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    return proc, f"http://127.0.0.1:{port}/"


def photograph(url: str, photo: Path, out: Path, width: int = 1200):
    "Choose `photo` in the dashboard at `url`, wait for its answer, save the page down to the verdict box."
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": width, "height": 1000})
        page.goto(url, wait_until="load", timeout=300_000)
        page.wait_for_selector(".pd-upload", timeout=300_000)
        with page.expect_file_chooser() as chooser:
            page.click(".pd-upload")
        chooser.value.set_files([str(photo)])
        page.wait_for_selector('.pd-status .pd-done[data-batch="1"]', timeout=300_000)
        height = page.evaluate("document.querySelector('.pd-dashboard').getBoundingClientRect().bottom")
        page.set_viewport_size({"width": width, "height": int(height) + 20})
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out))
        text = page.locator(".pd-results > *").first.inner_text()
        browser.close()
    return text


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--model", required=True, help="what PD_DASHBOARD_MODEL takes: a model folder or models:/name@alias"
    )
    ap.add_argument("--photo", required=True, type=Path, help="the leaf photo to diagnose")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "diagnosis.png")
    a = ap.parse_args(argv)
    if not a.photo.is_file():
        sys.exit(f"--photo {a.photo}: no such file")
    if not CHROMIUM.exists():
        sys.exit(f"{CHROMIUM} not found: apt-get install chromium")
    with tempfile.TemporaryDirectory() as work:
        proc, url = start_voila(a.model, Path(work))
        try:
            text = photograph(url, a.photo, a.out)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
    print(f"wrote {a.out}; the answer card begins: {text[:120]!r}")


if __name__ == "__main__":
    main()
