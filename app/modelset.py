"""The models the service answers with: each variant loaded once (MLflow registry alias or local folder), warmed up,
and a sticky traffic split between them."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from plant_disease.serving import project_dir

from .config import Settings, VariantSpec
from .observability import BATCH_SIZE

log = logging.getLogger(__name__)


class ModelLoadError(RuntimeError):
    "A variant's model could not be loaded; the message names the variant and the source."


class UnknownVariantError(ValueError):
    "A forced variant that the service does not serve."


@dataclass
class Variant:
    "One served model: its predictor and where it came from."

    name: str
    weight: float
    source: str
    model_name: str
    model_version: str
    predictor: object  # plant_disease.inference.Predictor
    folder: Path | None = None  # the model folder it was loaded from (the registry's cache, or a local folder)
    _web: object = field(default=None, repr=False)  # plant_disease.web_model.WebModel, built on first use
    _web_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def web_model(self, notes: Path | None):
        """This variant's model for the web page's offline mode (`plant_disease.web_model`), built on first use and
        kept; `WebModelUnavailable` when the browser cannot run it."""
        from plant_disease.web_model import WebModelUnavailable, web_model

        p = self.predictor
        with self._web_lock:
            if self._web is None:
                if self.folder is None:
                    raise WebModelUnavailable(f"variant {self.name} has no model folder")
                self._web = web_model(
                    self.folder, self.model_name, self.model_version, notes, p.top_k, p.runtime.name, p.max_pixels
                )
            return self._web

    def describe(self) -> dict:
        p = self.predictor
        return {
            "variant": self.name,
            "weight": self.weight,
            "source": self.source,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "backbone": p.metadata.get("backbone"),
            "image_size": p.image_size,
            "classes": len(p.classes),
            "synthetic_data": bool(p.metadata.get("synthetic_data", False)),
            "trained": p.metadata.get("created"),
            "runtime": p.runtime.name,
            "runtime_choice": p.runtime_choice,
            "batching": {"max_batch": p.batcher.max_batch, "max_wait_ms": 1000 * p.batcher.max_wait}
            if p.batcher
            else None,
        }


def load_variant(spec: VariantSpec, settings: Settings) -> Variant:
    "Load one variant's `Predictor` from its source (registry URI or model folder, relative to the project)."
    from plant_disease.registry import RegistryError, load_served_model
    from plant_disease.runtimes import RuntimeUnavailableError

    try:
        m = load_served_model(
            spec.source,
            settings.model_cache,
            settings.registry_uri(),
            project_dir(),
            top_k=settings.top_k,
            max_pixels=settings.max_pixels,
            runtime=spec.runtime or settings.runtime,
            max_accuracy_drop=settings.max_accuracy_drop,
        )
    except (RegistryError, RuntimeUnavailableError) as e:
        raise ModelLoadError(f"variant {spec.name}: {e}") from None
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"variant {spec.name}: cannot load {spec.source}: {e}") from None
    return Variant(spec.name, spec.weight, spec.source, m.name, m.version, m.predictor, Path(m.folder))


class ModelSet:
    "All served variants, with the A/B assignment."

    def __init__(self, variants: list[Variant]):
        self.variants = {v.name: v for v in variants}
        w = np.array([v.weight for v in variants], float)
        self._names, self._edges = [v.name for v in variants], np.cumsum(w / w.sum())

    def close(self) -> None:
        "Stop the variants' micro-batchers."
        for v in self.variants.values():
            if v.predictor.batcher is not None:
                v.predictor.batcher.close()

    @classmethod
    def load(cls, settings: Settings, batching: bool = False) -> "ModelSet":
        "Load every variant; with `batching`, concurrent requests to a variant share model calls (the API's threads)."
        t = time.perf_counter()
        ms = cls([load_variant(s, settings) for s in settings.variants])
        if batching and settings.batch_max > 1:
            from plant_disease.batching import Predictor  # noqa: F401  (adds Predictor.enable_batching)

            for v in ms.variants.values():
                v.predictor.enable_batching(
                    settings.batch_max,
                    settings.batch_wait_ms,
                    on_batch=lambda n, s, name=v.name: BATCH_SIZE.labels(name).observe(n),
                )
        log.info(
            "models loaded",
            extra={
                "variants": [v.describe() for v in ms.variants.values()],
                "seconds": round(time.perf_counter() - t, 2),
            },
        )
        if settings.warmup:
            ms.warm_up()
        return ms

    def warm_up(self) -> None:
        "One prediction per variant (and one Grad-CAM) so the first request does not pay for tracing."
        for v in self.variants.values():
            log.info("warm-up", extra={"variant": v.name, "ms": round(1000 * v.predictor.warm_up(), 1)})

    def choose(self, caller_key: str, forced: str | None = None) -> Variant:
        "The caller's variant: forced by name, else a stable hash of the caller into the weighted split."
        if forced:
            if forced not in self.variants:
                raise UnknownVariantError(f"unknown model variant {forced!r}: this service has {sorted(self.variants)}")
            return self.variants[forced]
        bucket = int.from_bytes(hashlib.sha256(caller_key.encode()).digest()[:8], "big") / 2**64
        i = min(int(np.searchsorted(self._edges, bucket, side="right")), len(self._names) - 1)
        return self.variants[self._names[i]]
