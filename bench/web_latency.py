"""The web page's offline mode, measured in headless Chromium: for each LiteRT file the browser can run, serve it
(the API alone, `PD_RUNTIME` set to that file, so the server answers with the very file the browser runs), load the
page online (the bytes it fetches, what the service worker keeps), go offline, reload, and diagnose every test photo
on the device; against the server's answers for the same photos: top-1 agreement, the largest gap in calibrated
confidence, agreement on "unknown"; in-browser latency per photo (decode, resize, model, rule) p50/p95, the engine's
load time from the cache.

    python bench/web_latency.py --model-dir exported --data-dir data

`--model-dir` is a folder written by `plant-disease export` with `tflite_int8` and/or `tflite_fp32`; `--data-dir`
the data stage's folder (its manifest's test split are the photos). Prints a table and writes
`reports/bench_web.json`. The browser and the API share this machine's cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from testkit.machine import cpu_name, matmul_peak_gflops, vector_extensions  # noqa: E402
from testkit.service import CHROMIUM, CHROMIUM_ARGS, start_api  # noqa: E402
from testkit.web import DIAGNOSE, READY, b64_photos, server_answer, split_photos  # noqa: E402

CACHED = """async () => {
  let total = 0;
  const files = {};
  for (const name of await caches.keys()) {
    const cache = await caches.open(name);
    for (const req of await cache.keys()) {
      const n = (await (await cache.match(req)).arrayBuffer()).byteLength;
      files[new URL(req.url).pathname] = n;
      total += n;
    }
  }
  return { total, files };
}"""


ORT_VERSION = "1.31.1"  # onnxruntime-web, the alternative measured against LiteRT.js (not a dependency of the page)
ORT_DIAGNOSE = """async ([photos, modelUrl]) => {
  const ort = await import('/ort/ort.wasm.min.mjs');
  ort.env.wasm.wasmPaths = '/ort/';
  const dev = await import('/static/ondevice.js');
  const { resizeToModel } = await import('/static/pixels.js');
  const meta = await (await fetch('/models/web')).json();
  const bank = dev.halfToFloat(new Uint16Array(await (await fetch(meta.files[meta.feature.file].url)).arrayBuffer()));
  const t0 = performance.now();
  const session = await ort.InferenceSession.create(modelUrl, { executionProviders: ['wasm'] });
  const load_ms = performance.now() - t0;
  const size = meta.image_size, f = meta.feature, out = [];
  for (const b64 of photos) {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const t = performance.now();
    const { rgba, width, height } = await dev.photoPixels(new Blob([bytes], { type: 'image/jpeg' }), meta.max_pixels);
    const x = resizeToModel(rgba, width, height, size);
    const t1 = performance.now();
    const res = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', x, [1, size, size, 3]) });
    const t2 = performance.now();
    const outs = session.outputNames.map((n) => res[n].data);
    const feats = outs.find((a) => a.length === f.dim), raw = outs.find((a) => a !== feats);
    const probs = dev.applyTemperature(raw, meta.temperature);
    let best = 0;
    probs.forEach((p, i) => { if (p > probs[best]) best = i; });
    const feature = dev.featureScore(feats, bank, f.n, f.dim, f.k);
    const unknown = dev.abstains(probs, meta.abstain, null, feature);
    out.push({ top_k: [{ label: meta.classes[best].label }], confidence: probs[best], unknown, feature_score: feature,
               inference_ms: t2 - t1, latency_ms: performance.now() - t });
  }
  return { load_ms, answers: out };
}"""


def onnxruntime_web(tmp: Path) -> Path | None:
    "ONNX Runtime Web's dist folder, installed from npm into `tmp` for this measurement (None when npm cannot)."
    import subprocess

    r = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--no-save", f"onnxruntime-web@{ORT_VERSION}"],
        cwd=tmp,
        capture_output=True,
        text=True,
    )
    dist = tmp / "node_modules" / "onnxruntime-web" / "dist"
    return dist if r.returncode == 0 and dist.is_dir() else None


def measure_onnxruntime_web(model_dir: Path, photos: list[Path], work: Path) -> dict | None:
    "The same photos through ONNX Runtime Web (wasm) and `model.onnx`, against the server running that file."
    from playwright.sync_api import sync_playwright

    dist = onnxruntime_web(work)
    if dist is None or not (model_dir / "model.onnx").exists():
        print("onnxruntime-web: npm could not install it, or no model.onnx: skipped")
        return None
    variants = json.dumps([{"name": "web", "source": str(model_dir)}])
    api, url = start_api(work, {"PD_VARIANTS": variants, "PD_RUNTIME": "onnx"}, "api-onnx.log")
    try:
        server = [server_answer(url, p) for p in photos]
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.route("**/ort/*", lambda route: route.fulfill(path=str(dist / route.request.url.rsplit("/", 1)[1])))
            page.route("**/ort-model.onnx", lambda route: route.fulfill(path=str(model_dir / "model.onnx")))
            page.goto(f"{url}/", wait_until="load")
            got = page.evaluate(ORT_DIAGNOSE, [b64_photos(photos), "/ort-model.onnx"])
            browser.close()
    finally:
        api.kill()
    wasm_and_model = (dist / "ort-wasm-simd-threaded.wasm").stat().st_size + (model_dir / "model.onnx").stat().st_size
    return {
        "runtime": f"ONNX Runtime Web {ORT_VERSION}",
        "format": "onnx",
        "model_bytes": (model_dir / "model.onnx").stat().st_size,
        **agreement(photos, got, server),
        "first_visit_bytes": wasm_and_model,
        "cached_bytes": wasm_and_model,
        "note": "measured online (no service worker): session creation, not a load from the cache; first visit and "
        "kept offline: its wasm and the model only",
    }


def agreement(photos: list[Path], got: dict, server: list[dict]) -> dict:
    """The in-page answers `got` (`{load_ms, answers}`) against the server's for the same photos: top-1, calibrated
    confidence and "unknown" agreement, the photos where they differ, and the in-page latency."""
    device = got["answers"]
    top1 = [d["top_k"][0]["label"] == s["top_k"][0]["label"] for d, s in zip(device, server)]
    same_unknown = [d["unknown"] == s["unknown"] for d, s in zip(device, server)]
    keys = ("label", "confidence", "unknown", "ood_score", "feature_score", "domain_score")
    ms = [d["latency_ms"] for d in device]
    return {
        "photos": len(photos),
        "top1_agreement": round(float(np.mean(top1)), 4),
        "max_confidence_gap": round(
            float(max(abs(d["confidence"] - s["confidence"]) for d, s in zip(device, server))), 5
        ),
        "unknown_agreement": round(float(np.mean(same_unknown)), 4),
        "unknown_server": int(sum(s["unknown"] for s in server)),
        "disagreements": [
            {"photo": p.name, "server": {k: s.get(k) for k in keys}, "device": {k: d.get(k) for k in keys}}
            for p, s, d, a, b in zip(photos, server, device, top1, same_unknown)
            if not (a and b)
        ],
        "latency_ms_p50": round(float(np.percentile(ms, 50)), 1),
        "latency_ms_p95": round(float(np.percentile(ms, 95)), 1),
        "model_ms_p50": round(float(np.percentile([d["inference_ms"] for d in device], 50)), 1),
        "engine_load_from_cache_ms": round(got["load_ms"], 0),
    }


def screenshot(page, photo: Path, path: Path) -> None:
    "The page offline, a photo diagnosed on the device: what a grower sees (docs/offline.md shows it)."
    page.set_viewport_size({"width": 900, "height": 1500})
    page.set_input_files("#file", str(photo))
    page.click("#submit")
    page.wait_for_function("document.querySelector('#result').dataset.onDevice === 'true'", timeout=60_000)
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)


def measure(model_dir: Path, fmt: str, photos: list[Path], work: Path, shot: Path | None = None) -> dict:
    from playwright.sync_api import sync_playwright

    variants = json.dumps([{"name": "web", "source": str(model_dir)}])
    api, url = start_api(work, {"PD_VARIANTS": variants, "PD_RUNTIME": fmt}, f"api-{fmt}.log")
    try:
        server = [server_answer(url, p) for p in photos]
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            context = browser.new_context()
            fetched: list[int] = []
            context.on("requestfinished", lambda req: fetched.append(req.sizes()["responseBodySize"]))
            page = context.new_page()
            t = time.perf_counter()
            page.goto(f"{url}/", wait_until="load")
            page.wait_for_function(READY, timeout=300_000)
            first_visit_s = time.perf_counter() - t
            status = page.text_content("#offline-status")
            if "Ready offline" not in status:
                raise SystemExit(f"{fmt}: {status}")
            cached = page.evaluate(CACHED)
            context.set_offline(True)
            page.reload(wait_until="load")
            page.wait_for_function(READY, timeout=120_000)
            got = page.evaluate(DIAGNOSE, b64_photos(photos))
            if shot:
                screenshot(page, photos[0], shot)
            browser.close()
    finally:
        api.kill()
    return {
        "runtime": "LiteRT.js 2.5.3",
        "format": fmt,
        "model_bytes": next(v for k, v in cached["files"].items() if k.endswith("/model.tflite")),
        **agreement(photos, got, server),
        "first_visit_s": round(first_visit_s, 1),
        "first_visit_bytes": int(sum(b for b in fetched if b > 0)),
        "cached_bytes": int(cached["total"]),
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-dir", type=Path, default=Path("exported"))
    ap.add_argument("--data-dir", type=Path, default=Path("data"))
    ap.add_argument("--formats", nargs="+", default=["tflite_int8", "tflite_fp32"])
    ap.add_argument("--no-onnxruntime-web", action="store_true", help="skip the ONNX Runtime Web comparison")
    ap.add_argument(
        "--screenshot", type=Path, help="also save the page offline with the first photo diagnosed (first format)"
    )
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "bench_web.json")
    a = ap.parse_args(argv)
    photos = split_photos(a.data_dir.resolve())
    machine = {"cpu": cpu_name(), "vector_extensions": vector_extensions(), "matmul": matmul_peak_gflops()}
    print(
        f"{machine['cpu']}, {' '.join(machine['vector_extensions'])}, matmul {machine['matmul']}; {len(photos)} test photos"
    )
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in a.formats:
            if not (
                a.model_dir / {"tflite_int8": "model_int8.tflite", "tflite_fp32": "model_fp32.tflite"}[fmt]
            ).exists():
                print(f"{fmt}: not exported, skipped")
                continue
            results.append(measure(a.model_dir.resolve(), fmt, photos, Path(tmp), None if results else a.screenshot))
            print(json.dumps(results[-1]))
        if not a.no_onnxruntime_web:
            r = measure_onnxruntime_web(a.model_dir.resolve(), photos, Path(tmp))
            if r:
                results.append(r)
                print(json.dumps(r))
    command = "python bench/web_latency.py " + " ".join(sys.argv[1:] if argv is None else argv)
    out = {
        "command": command.strip(),
        "machine": machine,
        "browser": "Debian Chromium headless (Playwright)",
        "results": results,
    }
    a.out.write_text(json.dumps(out, indent=2) + "\n")
    print("| runtime | file | top-1 agreement | max confidence gap | unknown agreement | p50 / p95 ms | model p50 ms |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['runtime']} | {r['format']} {r['model_bytes'] / 1e6:.1f} MB | {r['top1_agreement']:.3f} | "
            f"{r['max_confidence_gap']:.4f} | {r['unknown_agreement']:.3f} | {r['latency_ms_p50']} / "
            f"{r['latency_ms_p95']} | {r['model_ms_p50']} |"
        )
    return out


if __name__ == "__main__":
    main()
