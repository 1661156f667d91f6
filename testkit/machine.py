"""The machine a benchmark runs on and the speed of a model call: the CPU's name, batch-1 latency, throughput, and the
measured matmul peak."""

from __future__ import annotations

import platform
import time
from pathlib import Path

import numpy as np


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


SIMD = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")


def vector_extensions() -> list[str]:
    "The SIMD extensions this CPU reports (x86 flags of /proc/cpuinfo)."
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags = set(line.split(":", 1)[1].split())
                return [f for f in SIMD if f in flags] or sorted(flags)[:12]
    except OSError:
        pass
    return []


def latency(fn, x: np.ndarray, n: int, warmup: int = 5) -> dict:
    "Batch-1 latency over n images of x (cycled)."
    for i in range(warmup):
        fn(x[i % len(x)][None])
    ts = []
    for i in range(n):
        t = time.perf_counter()
        fn(x[i % len(x)][None])
        ts.append(1000 * (time.perf_counter() - t))
    return {"p50_ms": round(float(np.percentile(ts, 50)), 2), "p99_ms": round(float(np.percentile(ts, 99)), 2)}


def throughput(fn, x: np.ndarray, batch: int, batches: int) -> float:
    xb = np.resize(x, (batch, *x.shape[1:])).astype(np.float32)
    fn(xb)
    t = time.perf_counter()
    for _ in range(batches):
        fn(xb)
    return round(batch * batches / (time.perf_counter() - t), 1)


def matmul_peak_gflops(n: int = 2048, reps: int = 20) -> dict:
    "Measured float32 (and bfloat16) GFLOP/s of an n x n matmul: the machine's practical peak."
    import tensorflow as tf

    out = {}
    for dt in (tf.float32, tf.bfloat16):
        a = tf.cast(tf.random.normal((n, n)), dt)
        f = tf.function(lambda x: tf.matmul(x, x))
        f(a).numpy()
        t0 = time.perf_counter()
        for _ in range(reps):
            r = f(a)
        r.numpy()
        out[dt.name] = round(2 * n**3 * reps / (time.perf_counter() - t0) / 1e9, 1)
    return out
