"""The browser's preprocessing (app/static/pixels.js) against the server's: TF's antialiased bilinear resize, the
abstention rule's image descriptors and domain score. Runs the module in Node (tests/web_pixels_check.mjs)."""

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECK = ROOT / "tests" / "web_pixels_check.mjs"
SIZES = (64, 128, 160, 224)
RESIZE_TOL = 0.01  # 0..255 scale
DESC_TOL = 1e-4


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH: app/static/pixels.js cannot be run")
    return node


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode()


def _f32(s: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(s), "<f4")


def _run_js(job: dict) -> dict:
    out = subprocess.run(
        [_node(), str(CHECK)], input=json.dumps(job), capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def _shared_photos(n: int = 12) -> list[np.ndarray]:
    "Up to `n` photos of the shared sample (one per class, then more), decoded as the server decodes them."
    import tensorflow as tf

    root = Path(os.environ.get("PLANT_DISEASE_SHARED_DATA") or "/work/shared/data") / "plantvillage"
    if not root.is_dir():
        return []
    per_class = [sorted(d.glob("*.jpg")) for d in sorted(root.iterdir()) if d.is_dir()]
    paths = [p for rank in range(max(map(len, per_class), default=0)) for ps in per_class for p in ps[rank : rank + 1]]
    return [tf.io.decode_jpeg(p.read_bytes(), channels=3, dct_method="INTEGER_ACCURATE").numpy() for p in paths[:n]]


def _synthetic(h: int, w: int, seed: int) -> np.ndarray:
    "A leaf-like test card: smooth colour gradients, a dark blob, sharp edges and noise, uint8 (h, w, 3)."
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([60 + 120 * xx / w, 90 + 140 * yy / h, 40 + 60 * np.sin(xx / 7 + yy / 11)], -1)
    cy, cx, rad = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w, 0.2 * min(h, w)
    img[(yy - cy) ** 2 + (xx - cx) ** 2 < rad**2] *= 0.4
    img[: h // 5, : w // 4] = rng.integers(0, 256, 3)
    img += rng.normal(0, 12, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _tf_resize(img: np.ndarray, size: int) -> np.ndarray:
    "plant_disease.pipeline.decode_and_resize after the decode."
    import tensorflow as tf

    out = tf.image.resize(tf.convert_to_tensor(img), (size, size), method="bilinear", antialias=True)
    return tf.clip_by_value(out, 0.0, 255.0).numpy()


def _rgba(img: np.ndarray) -> np.ndarray:
    "The image as canvas getImageData gives it: RGBA bytes, alpha opaque."
    return np.concatenate([img, np.full(img.shape[:2] + (1,), 255, np.uint8)], -1)


def _resize_cases() -> list[tuple[str, np.ndarray, int]]:
    photos = _shared_photos(4)
    cases = [(f"photo{i}", p, s) for i, p in enumerate(photos) for s in SIZES]
    if photos:  # real pixels, not square
        cases += [("photo0[:, :180]", photos[0][:, :180], s) for s in (224, 160)]
        cases += [("photo1[20:250, 5:200]", photos[1][20:250, 5:200], s) for s in (128, 64)]
    syn = _synthetic(200, 300, 0)  # 300 wide, 200 high
    cases += [("synthetic 300x200", syn, s) for s in (*SIZES, 100, 37)]
    cases += [("synthetic 150x100 (upsampled)", _synthetic(100, 150, 1), s) for s in (224, 128)]
    cases += [("synthetic 1001x777", _synthetic(777, 1001, 2), s) for s in (224, 64)]
    return cases


def test_resize_matches_tensorflow():
    _node()
    cases = _resize_cases()
    job = {
        "resize": [
            {"rgba": _b64(_rgba(img)), "width": img.shape[1], "height": img.shape[0], "size": s} for _, img, s in cases
        ]
    }
    res = _run_js(job)["resize"]
    worst = {}
    for (name, img, s), got in zip(cases, res):
        want = _tf_resize(img, s)
        diff = float(np.abs(_f32(got).reshape(want.shape) - want).max())
        key = f"{name} {img.shape[1]}x{img.shape[0]} -> {s}"
        worst[key] = diff
    print("\nmax |JS - TF| per resize:\n" + "\n".join(f"  {k}: {v:.2e}" for k, v in worst.items()))
    bad = {k: v for k, v in worst.items() if not v < RESIZE_TOL}
    assert not bad, f"resize differs from TF by {RESIZE_TOL} or more: {bad}"


def _descriptor_images() -> list[tuple[str, np.ndarray]]:
    "Model-size images as the server makes them (TF resize): real photos when there are, synthetic ones always."
    photos = _shared_photos(12)
    out = [(f"photo{i}@224", _tf_resize(p, 224)) for i, p in enumerate(photos)]
    out += [(f"photo{i}@{s}", _tf_resize(photos[i], s)) for i, s in zip(range(len(photos)), (64, 160, 100, 37))]
    n_syn = 12 if len(photos) < 3 else 3
    out += [(f"synthetic{i}@224", _tf_resize(_synthetic(200 + 7 * i, 300 - 5 * i, 10 + i), 224)) for i in range(n_syn)]
    out += [(f"synthetic@{s}", _tf_resize(_synthetic(180, 240, 99), s)) for s in (8, 37, 64, 100, 128)]
    # flat areas (hue 0, saturation 0), pure colours and saturated white/black: the HSV corner cases
    flat = np.zeros((64, 64, 3), np.float32)
    flat[:16] = 255
    flat[16:32, :, 0] = 255
    flat[32:48, :, 1:] = 128
    flat[48:, ::2] = (0, 0, 255)
    out.append(("corners@64", flat))
    return out


def test_descriptors_and_domain_score_match_python():
    from plant_disease.abstention import DESCRIPTOR_SIZE, EDGE_EDGES, domain_score, fit_domain, image_descriptors

    _node()
    images = _descriptor_images()
    want = [image_descriptors(x[None])[0] for _, x in images]
    assert all(w.shape == (DESCRIPTOR_SIZE,) for w in want)
    at224 = [i for i, (name, _) in enumerate(images) if name.endswith("@224")]
    model = fit_domain(np.stack([want[i] for i in at224[:12]]))
    job = {
        "descriptors": [{"x": _b64(x.astype("<f4")), "size": x.shape[0]} for _, x in images],
        "domain": {"model": model, "descs": [_b64(w.astype("<f4")) for w in want]},
    }
    res = _run_js(job)
    assert res["edges"] == EDGE_EDGES.tolist(), "pixels.js EDGE_EDGES differ from plant_disease.abstention.EDGE_EDGES"
    got = [_f32(g) for g in res["descriptors"]]

    lines, bad = [], []
    for (name, x), g, w in zip(images, got, want):
        diff = np.abs(g - w)
        # the histograms (counts / pixels) may differ by one pixel only where a value sits within float rounding
        # of a bin edge; the thumbnail must agree to float32 rounding
        n_pix = x.shape[0] * x.shape[1]
        thumb, hists = diff[: 8 * 8 * 3], diff[8 * 8 * 3 :]
        moved = int(np.rint(hists * n_pix).sum())
        lines.append(f"  {name}: thumbnail {thumb.max():.1e}, histogram pixels moved {moved}, max {diff.max():.1e}")
        if not (thumb.max() < DESC_TOL and diff.max() < max(DESC_TOL, 1.5 / n_pix) and moved <= 4):
            bad.append(name)
    print("\nJS vs Python descriptors:\n" + "\n".join(lines))
    assert not bad, f"descriptors differ: {bad}"

    # the port of domain_score, on Python's descriptors (same input) and end to end on the JS descriptors
    py_same = domain_score(np.stack(want), model)
    np.testing.assert_allclose(res["domain"], py_same, rtol=1e-9, atol=1e-12)
    res2 = _run_js({"domain": {"model": model, "descs": [_b64(g) for g in got]}})["domain"]
    rel = np.abs(np.asarray(res2) - py_same) / np.maximum(np.abs(py_same), 1e-12)
    print(f"domain score: max relative difference {rel.max():.1e} (JS descriptors vs Python's)")
    assert rel.max() < 1e-3, rel
