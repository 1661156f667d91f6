"""Drift monitoring: each variant's recent answers (the prediction log) against its model's validation profile.

The comparison is the library's (`plant_disease.serving.variant_drift`, as the dashboard makes it); what is the
service's own: one report per served variant, cached for Prometheus scrapes. `/stats` shows the reports,
`/metrics` exports them as gauges read when Prometheus scrapes."""

from __future__ import annotations

import threading
import time

from plant_disease.serving import reference_of, variant_drift

STATUS_CODES = {"stable": 0, "watch": 1, "drift": 2}  # too_few and unavailable: -1


class DriftMonitor:
    "Drift reports per variant, from `predlog.recent_answers`; `reports()` is cached for `ttl_s` (scrapes are frequent)."

    def __init__(self, models, predlog, window: int = 500, ttl_s: float = 10.0):
        self.models, self.predlog, self.window, self.ttl_s = models, predlog, window, ttl_s
        self._lock = threading.Lock()
        self._cached: tuple[float, dict] | None = None

    def report(self, variant) -> dict:
        "The drift report of one `Variant` (never raises: `status` unavailable with a `reason` instead)."
        ref = reference_of(variant.predictor.metadata)
        return variant_drift(self.predlog, variant.name, variant.model_name, variant.model_version, ref, self.window)

    def reports(self, max_age_s: float | None = None) -> dict[str, dict]:
        "`{variant: report}`, recomputed when older than `max_age_s` (default `ttl_s`)."
        max_age = self.ttl_s if max_age_s is None else max_age_s
        with self._lock:
            if self._cached and time.monotonic() - self._cached[0] < max_age:
                return self._cached[1]
            out = {name: self.report(v) for name, v in self.models.variants.items()}
            self._cached = (time.monotonic(), out)
            return out
