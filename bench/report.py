"""Collect the benchmark JSON files in reports/ into reports/benchmarks.md: every figure with the command that
produced it and the machine it ran on. Run after the bench scripts:

    python bench/report.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from time_to_accuracy import target_minutes  # bench/ is on sys.path when this script runs

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "reports"


def load(name: str) -> dict | None:
    f = REPORTS / name
    return json.loads(f.read_text()) if f.exists() else None


def fmt(v, spec: str = "") -> str:
    return "–" if v is None else format(v, spec)


def inference_section(r: dict, title: str) -> list[str]:
    out = [
        f"### {title}",
        "",
        f"{r['what']}; {r['n_test']} test images; machine: {r['machine']}; TensorFlow {r['tensorflow']}, "
        f"Keras {r['keras']}; threads {r['threads']}.",
        "",
        f"Command: `{r['command']}`",
        "",
        "| runtime | batch-1 p50 ms | batch-1 p99 ms | batch-32 img/s | size MB | test accuracy | drop (points) | "
        "top-1 agreement |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        out.append(
            f"| {row['runtime']} | {row['p50_ms']} | {row['p99_ms']} | {row['throughput_b32_img_s']} | {row['size_mb']} | "
            f"{fmt(row['accuracy'], '.4f')} | {fmt(row['accuracy_drop_pts'], '+.2f')} | {fmt(row['agreement'], '.3f')} |"
        )
    out += [
        "",
        f"`auto` would serve: **{r['fastest_within_limit']}** (fastest within the 0.5-point accuracy limit on this machine).",
        "",
    ]
    return out


def serve_section(r: dict) -> list[str]:
    out = [
        "### The service: runtime and micro-batching",
        "",
        f"Machine: {r['machine']} (client and API share them); "
        f"micro-batch wait {r['batch_wait_ms']} ms; model folder `{r['model_dir']}`.",
        "",
        f"Command: `{r['command']}`",
        "",
        "| configuration | runtime | raw model call p50 ms | raw `Predictor.predict` p50 ms | /predict c1 p50 ms | "
        "c1 p99 ms | c1 req/s | c32 p50 ms | c32 p99 ms | c32 req/s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        out.append(
            f"| {row['config']} | {row['runtime']} | {row['raw']['model_call_p50_ms']} | {row['raw']['predict_p50_ms']} | "
            f"{row['c1']['p50_ms']} | {row['c1']['p99_ms']} | {row['c1']['throughput_rps']} | {row['c32']['p50_ms']} | "
            f"{row['c32']['p99_ms']} | {row['c32']['throughput_rps']} |"
        )
    on = r["rows"][-1]
    gains = ", ".join(f"{k}: **{v}x**" for k, v in r["c32_throughput_gain_of_batching"].items())
    out += [
        "",
        f"- /predict c1 p50 with `auto` + batching over the raw runtime: {on['c1_p50_over_raw_call']}x the bare model call, "
        f"{on['c1_p50_over_raw_predict']}x the in-process decode + resize + call (target: within 1.15x).",
        f"- Micro-batching's throughput gain at concurrency 32 against one-at-a-time serving of the same runtime: {gains} "
        "(target: at least 2x).",
        "- `auto` + batching against Keras one at a time, at concurrency 32: "
        f"**{r['c32_throughput_auto_batched_over_keras_unbatched']}x** the throughput.",
        "",
    ]
    return out


def time_to_accuracy_section(r: dict) -> list[str]:
    cpu = r["recipes"].get("cpu", {})
    peak = cpu.get("matmul_peak_gflops", r["matmul_peak_gflops"])  # the cpu profile's run's
    full, first = target_minutes(peak)  # the targets' minutes, scaled to the machine of the run
    out = [
        "## Training on a CPU: time to accuracy",
        "",
        f"Every recipe trained through the user's entry point (`plant-disease train`, then `evaluate`) on the real "
        f"28-class sample (`{r['data']}`, one split for all, seed 42), on {r['machine']} ({r['cpu_model']}; vector "
        f"extensions {' '.join(r.get('vector_extensions', [])) or 'not recorded'}), TensorFlow {r['tensorflow']}. "
        "Validation accuracy after every epoch against wall-clock minutes since training began (caching the frozen "
        "layers' activations and validation included); test accuracy once, at the end. Measured fp32 matmul peak "
        f"(2048x2048) at the `cpu` profile's run: {peak['float32']} GFLOP/s, so the targets' 15 and 3 minutes at 83 "
        f"GFLOP/s are {full} and {first} minutes here (the host is shared: the peak at each recipe's run is in the "
        "table).",
        "",
        f"Command: `{r['command']}`",
        "",
        "![validation accuracy against minutes](bench_time_to_accuracy.png)",
        "",
        "| recipe | epochs | px | train min (cache) | min to 80 / 90 / 95% val | best val | test acc | test macro F1 | "
        "peak RSS MiB | fp32 peak GFLOP/s | worst classes (F1) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    r = {**r, "recipes": dict(sorted(r["recipes"].items(), key=lambda kv: kv[0] != "cpu"))}  # today's profile first
    for name, x in r["recipes"].items():
        t = " / ".join(fmt(v) for v in x["minutes_to_val"].values())
        worst = "; ".join(f"{w['class']} {w['f1']:.2f} (n={w['support']})" for w in x["worst_classes"])
        cache = f" ({x['cache_minutes']})" if x.get("cache_minutes") else ""
        out.append(
            f"| **{name}** | {x['epochs']} | {'→'.join(map(str, x['image_sizes']))} | {x['train_minutes']}{cache} | "
            f"{t} | {x['best_val_accuracy']:.3f} | {x['test_accuracy']:.3f} | {x['test_f1_macro']:.3f} | "
            f"{fmt(x.get('peak_rss_mib'))} | {fmt(x.get('matmul_peak_gflops', {}).get('float32'))} | {worst} |"
        )
    out += [""] + [f"- **{name}**: {x['what']}. `{x['command']}`" for name, x in r["recipes"].items()] + [""]
    if cpu := r["recipes"].get("cpu"):
        to95 = cpu["minutes_to_val"].get("95%")
        met_full = cpu["test_accuracy"] >= 0.985 and cpu["test_f1_macro"] >= 0.97 and cpu["train_minutes"] <= full
        met_first = to95 is not None and to95 <= first
        out += [
            f"**Targets** (issue 30: >= 98.5% test accuracy and >= 0.97 macro F1 within 15 minutes of training, >= 95% "
            f"validation within 3, on an AVX2 2-core machine of about 83 GFLOP/s; {full} and {first} minutes here): "
            f"the `cpu` profile reached {cpu['test_accuracy']:.1%} test accuracy and macro F1 {cpu['test_f1_macro']:.3f} "
            f"in {cpu['train_minutes']:.1f} minutes ({'met' if met_full else 'NOT met'}), and 95% validation after "
            f"{fmt(to95)} minutes ({'met' if met_first else 'NOT met'}). Peak resident memory of the training process: "
            f"{fmt(cpu.get('peak_rss_mib'))} MiB, the activation cache {fmt(cpu.get('cache_mib'))} MiB on disk "
            "(float16, memory-mapped).",
            "",
            "**Caveat.** PlantVillage holds several photos of one physical leaf and no metadata says which, so an "
            "image-level split can put the same leaf in train and test: these accuracies are upper bounds for new "
            "leaves, and lab photos on a plain board do not carry over to field photos.",
            "",
        ]
    if (old := load("bench_time_to_accuracy_issue14.json")) and "scratch" not in r["recipes"]:
        x = old["recipes"]["cpu"]
        out += [
            f"The full `scratch` recipe (40 epochs; the `cpu` profile until issue 30) was measured in issue 14 on "
            f"{old['cpu_model']} ({old['matmul_peak_gflops']['float32']} GFLOP/s fp32): {x['train_minutes']} minutes, "
            f"best validation {x['best_val_accuracy']:.3f}, test {x['test_accuracy']:.3f}, macro F1 "
            f"{x['test_f1_macro']:.3f} (`reports/bench_time_to_accuracy_issue14.json`, the grey curve above; its "
            "minutes are that machine's).",
            "",
        ]
    return out


def recipe_search_section(r: dict, title: str = "The cached transfer recipe: levers measured") -> list[str]:
    m = r["machine"]
    data = r.get("data", "the 28-class sample, the split of the table above")
    out = [
        f"## {title}",
        "",
        "`bench/recipe_search.py` caches EfficientNet-Lite's activations once per (variant, input size) at the input "
        "of block 11 (the last 5 blocks), derives the later cuts from that cache, and trains tops on it: the head "
        "alone (blocks 0) or the last N blocks and the head (`w`: the head trained first, as phase 1 does), AdamW with "
        "cosine decay. Minutes include caching the views used and the validation photos. Chosen on validation; the "
        f"test column is for the record. Machine: {m['cpu']}, {m['cores']} cores, fp32 matmul peak "
        f"{m['matmul_peak_gflops']['float32']} GFLOP/s. Data: {data}.",
        "",
        "| variant | px | blocks trained | views | epochs | lr | minutes | s per epoch | best val | test | test macro F1 | "
        "note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for x in r["runs"]:
        out.append(
            f"| {x['variant']} | {x['size']} | {x['blocks']}{' (head first)' if x.get('warm_head') else ''} | "
            f"{x['views']} | {x['epochs']} | {x['lr']}{' (1 epoch warm-up)' if x['schedule'].endswith('warmup') else ''} | "
            f"{x['minutes']:.1f} | {x['epoch_seconds']} | "
            f"{x['best_val_accuracy']:.3f} | {x['test_accuracy']:.3f} | {x['test_f1_macro']:.3f} | "
            f"{x.get('note', '')} |"
        )
    return out + [""]


def imagenet_backbones_section(r: dict) -> list[str]:
    m = r["machine"]
    out = [
        "### EfficientNet-Lite0/1/2 with ImageNet weights: speed by input size, size by format",
        "",
        f"{r['what']}. Machine: {m['cpu']}, {m['cores']} cores, vector extensions {' '.join(m['vector_extensions'])}, "
        f"measured matmul peak {m['matmul_peak_gflops']['float32']} GFLOP/s float32; TensorFlow {m['tensorflow']}, "
        f"Keras {m['keras']}; threads {r['threads']}.",
        "",
        f"Command: `{r['command']}`",
        "",
        "| backbone | px | runtime | params | batch-1 img/s | batch-32 img/s | top-1 agreement with Keras |",
        "|---|---|---|---|---|---|---|",
    ]
    for x in r["rows"]:
        out.append(
            f"| {x['backbone']} | {x['image_size']} | {x['runtime']} | {x['params'] / 1e6:.2f} M | {x['b1_img_s']} | "
            f"{x['b32_img_s']} | {x['top1_agreement_with_keras']:.3f} |"
        )
    out += [
        "",
        "| backbone | px | params | .keras MB | SavedModel MB | LiteRT fp32 MB | LiteRT dynamic MB | LiteRT int8 MB | "
        "ONNX MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, f in r["file_sizes_mb"].items():
        out.append(
            f"| {name} | {f['image_size']} | {f['params'] / 1e6:.2f} M | {f['keras']} | {f['savedmodel']} | "
            f"{f['tflite_fp32']} | {f['tflite_dynamic']} | {f['tflite_int8']} | {f['onnx']} |"
        )
    return out + [
        "",
        "The agreement column is the top-1 of ImageNet's 1000 classes on leaf photos, which belong to none of them: many "
        "are close calls between unrelated classes, so it understates what int8 keeps; the export stage's check on a "
        "trained plant model (same top-1 on the test split) is the one that decides whether int8 is served. The photos "
        "timed are also the calibration photos. Parameters include the 1000-class classifier (1.28 M); the file sizes "
        "are those of the served network (38 classes).",
        "",
    ]


def web_section(r: dict) -> list[str]:
    "The web page's offline mode (bench/web_latency.py): agreement with the server, in-browser latency, bytes."
    m = r["machine"]
    out = [
        "## The web page's offline mode",
        "",
        f"Command: `{r.get('command', 'python bench/web_latency.py')}`; {m['cpu']} "
        f"({' '.join(m['vector_extensions'])}; matmul {m['matmul']['float32']} GFLOP/s fp32), {r['browser']}, "
        f"{r.get('model', 'the model of the real sample')}. Each photo diagnosed on the device (offline, from the "
        "service worker's cache) against the server's answer for the same photo, the server running the same file "
        "(`PD_RUNTIME`); latency is decode + resize + model + rule in the page.",
        "",
        "| runtime | file | photos | top-1 agreement | largest confidence gap | unknown agreement | ms p50 / p95 | "
        "model ms p50 | load from cache ms | first visit | kept offline |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for x in r["results"]:
        out.append(
            f"| {x.get('runtime', 'LiteRT.js')} | {x['format']} {x['model_bytes'] / 1e6:.1f} MB | {x['photos']} | "
            f"{x['top1_agreement']:.3f} | {x['max_confidence_gap']:.4f} | {x['unknown_agreement']:.3f} | "
            f"{x['latency_ms_p50']} / {x['latency_ms_p95']} | {x['model_ms_p50']} | {x['engine_load_from_cache_ms']:.0f} | "
            f"{x['first_visit_bytes'] / 1e6:.1f} MB | {x['cached_bytes'] / 1e6:.1f} MB |"
        )
    return out + [""] + [f"- {n}" for n in r.get("notes", [])] + [""]


def outbox_section(r: dict) -> list[str]:
    "The web page's outbox (bench/outbox_sync.py): storage while items wait, time to send, rows written."
    m = r["machine"]
    out = [
        "### The outbox: what waits on the phone, and sending it",
        "",
        f"Command: `python bench/outbox_sync.py --n {r['n']}` ({r['n']} test photos of the real sample); {m['cpu']} "
        f"({' '.join(m['vector_extensions'])}; matmul {m['matmul']['float32']} GFLOP/s fp32), headless Chromium and "
        f"the API (SQLite log, photos kept) on the same 2 cores; model: {r.get('model', r['model_dir'])}. "
        "Offline, each photo diagnosed through the page's form "
        "and confirmed (an answer with its photo and a verdict wait per photo); then the network returns and the page "
        "sends; `dropping`: every third request's connection is cut after the service recorded it, before the page "
        "hears the answer (the page retries, Send now).",
        "",
        "| run | items | diagnose + keep, ms per photo | stored per photo (photo) | sent in | items/s | requests | "
        "dropped | answers / verdicts in the database (distinct) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in ("steady", "dropping"):
        x = r[name]
        d = x["database"]
        out.append(
            f"| {name} | {x['items']} | {1000 * x['queue_s_per_photo']:.0f} | {x['stored_bytes_per_photo'] / 1024:.0f} KiB "
            f"({x['photo_bytes_mean'] / 1024:.0f} KiB) | {x['sync_s']:.1f} s | {x['items_per_s']:.1f} | {x['requests']} | "
            f"{x['dropped']} | {d['answers']} ({d['distinct_answers']}) / {d['verdicts']} ({d['distinct_verdicts']}) |"
        )
    return out + [
        "",
        "- A waiting diagnosis costs the browser its photo's bytes and a few KiB more: PlantVillage photos are about 15 "
        "KiB; a phone's 2-4 MB photo makes a few hundred waiting diagnoses a gigabyte, within what browsers give a site "
        "(a share of the free disk), and the page says when the store is full.",
        "",
    ]


def main() -> int:
    lines = [
        "# Benchmarks",
        "",
        "Written by `python bench/report.py` from the JSON files the bench scripts leave in `reports/`.",
        "Every number below was measured by the command shown with it; none comes from a timed test.",
        "",
    ]
    tta = load("bench_time_to_accuracy.json")
    if tta:
        lines += time_to_accuracy_section(tta)
    search = load("bench_recipe_search.json")
    if search:
        lines += recipe_search_section(search)
    tomato = load("bench_recipe_search_tomato.json")
    if tomato:
        lines += recipe_search_section(tomato, "Phase 2's learning rate, on the 10 tomato classes")
    lines += ["## GPU training", ""]
    gpu = load("bench_gpu_train.json")
    if gpu:
        lines += [f"```json\n{json.dumps(gpu, indent=2)}\n```", ""]
    else:
        lines += [
            "Not measured yet: no GPU machine was lent to the sessions that built this (the project's device tool "
            "reported `not_drawn`). What to run when one is: the two-phase schedule on the real 28-class sample at 224 px, "
            "ResNet50 with `weights: none`, mixed precision, started through the user's entry point "
            "(`plant-disease run --profile plantvillage,gpu --set model.weights=none ...`).",
            "",
        ]
    lines += ["## CPU inference", ""]
    for name, title in [
        ("bench_inference_224.json", "ResNet50 at 224 px (production size): speed and size"),
        ("bench_inference.json", "A model trained here: speed and accuracy of each format"),
    ]:
        r = load(name)
        if r:
            lines += inference_section(r, title)
    if load("bench_inference.json"):
        lines += [
            "The trained model is a ResNet50 trained from scratch on 2 CPU cores (the `cpu` profile of the time, at 128 "
            "px, the real tomato sample of `../shared/data`; today that profile is `scratch` with "
            "`model.backbone=resnet50`), because no ImageNet weights or GPU were available then; its accuracy is what "
            "5 epochs give, and what matters here is each format's drop against it:",
            "",
            "```bash",
            "plant-disease data  --profile tomato,scratch --set data.source=../shared/data/plantvillage",
            "plant-disease train --profile tomato,scratch --set data.source=../shared/data/plantvillage --set "
            "model.backbone=resnet50",
            "plant-disease export --profile tomato,scratch --set data.source=../shared/data/plantvillage   # exported/, "
            "for the service bench",
            "```",
            "",
        ]
    r = load("bench_imagenet_backbones.json")
    if r:
        lines += imagenet_backbones_section(r)
    r = load("bench_serve_runtime.json")
    if r:
        lines += serve_section(r)
    r = load("bench_serve.json")
    if r:
        lines += [
            "### The service end to end (issue 4's run: tiny 64 px models, Keras, before micro-batching)",
            "",
            f"Command: `{r['command']}`; {r['machine']}.",
            "",
            "| path | concurrency | p50 ms | p95 ms | p99 ms | req/s |",
            "|---|---|---|---|---|---|",
        ]
        for row in r["predict"]:
            lines.append(
                f"| /predict | {row['concurrency']} | {row['p50_ms']} | {row['p95_ms']} | {row['p99_ms']} | "
                f"{row['throughput_rps']} |"
            )
        a = r["async"]
        lines += [
            f"| async (1 worker) | {a['concurrency']} | {a['p50_ms']} | {a['p95_ms']} | {a['p99_ms']} | {a['throughput_rps']} |",
            "",
        ]
    r = load("bench_web.json")
    if r:
        lines += web_section(r)
    r = load("bench_outbox.json")
    if r:
        lines += outbox_section(r)
    lines += [
        "## What bounds each number",
        "",
        "- **Batch-1 CPU latency is compute**: on these 2 cores one ResNet50 image already keeps both busy (XNNPACK and "
        "oneDNN each use 2 threads), so int8 wins by doing cheaper arithmetic (VNNI int8 dot products), not by "
        "batching; LiteRT and ONNX Runtime beat the Keras `tf.function` by skipping TensorFlow's per-op dispatch, and "
        "`model.predict` adds its per-call setup (a data adapter and a callback loop) on top.",
        "- **Batching pays where per-call overhead is large**: Keras gains from batch 32 (dispatch amortised), "
        "LiteRT int8 hardly does (its batch-1 call is already compute-bound), hence micro-batching's gain per runtime "
        "above. On a many-core server or a GPU, batch 1 leaves cores idle and the same batcher gains more.",
        "- **The service at concurrency 1 is Python overhead**: with a 2-3 ms int8 model call, HTTP parsing, the "
        "multipart upload, JPEG decode and resize (about 1 ms at 256x256), the answer's JSON and the prediction log "
        "cost more than the model, and the client runs on the same 2 cores. The 15% target is not met: about 4 ms of "
        "fixed per-request cost on a 5 ms in-process prediction.",
        "- **Full int8 accuracy is calibration**: LiteRT's min-max calibration widens every range with each outlier, "
        "so more calibration photos made it worse (0.46 points lost with 50, 1.84 with 200, 31.7 with 500 on the "
        "trained model above); `export` therefore chooses the calibration size on the validation split. Dynamic-range "
        "int8 (weights only) kept the Keras accuracy exactly at 1.2x the full-int8 latency.",
        "",
    ]
    out = REPORTS / "benchmarks.md"
    out.write_text("\n".join(lines) + "\n")
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
