"""Drift monitoring: each variant's recent answers (the prediction log) against its model's validation profile.

The profile is `reference` in the model's classes.json (shares of each answer, `unknown` included, and of each
confidence bin on the validation split); `plant_disease.ood.drift_report` compares the variant's last
`PD_DRIFT_WINDOW` answered images of that model version with it (PSI and a chi-square test per distribution).
`/stats` shows the reports, `/metrics` exports them as gauges read when Prometheus scrapes."""

from __future__ import annotations

import logging
import threading
import time

from plant_disease.ood import drift_report

log = logging.getLogger(__name__)

STATUS_CODES = {"stable": 0, "watch": 1, "drift": 2}  # too_few and unavailable: -1


def unavailable(reason: str) -> dict:
    return {"status": "unavailable", "reason": reason}


class DriftMonitor:
    "Drift reports per variant, from `predlog.recent_answers`; `reports()` is cached for `ttl_s` (scrapes are frequent)."

    def __init__(self, models, predlog, window: int = 500, ttl_s: float = 10.0):
        self.models, self.predlog, self.window, self.ttl_s = models, predlog, window, ttl_s
        self._lock = threading.Lock()
        self._cached: tuple[float, dict] | None = None

    def report(self, variant) -> dict:
        "The drift report of one `Variant` (never raises: `status` unavailable with a `reason` instead)."
        ref = (variant.predictor.metadata or {}).get("reference")
        if not ref or not ref.get("answers") or "unknown" not in ref["answers"]:
            return unavailable(
                f"model {variant.model_name} version {variant.model_version} has no validation reference "
                "profile (trained before drift monitoring: retrain to get one)"
            )
        if getattr(self.predlog, "healthy", True) is False:
            return unavailable("the prediction log database is unavailable (records are being spooled)")
        try:
            labels, conf = self.predlog.recent_answers(
                variant.name, self.window, model_name=variant.model_name, model_version=variant.model_version
            )
            rep = drift_report(labels, conf, ref)
        except Exception as e:
            log.warning("drift report failed", extra={"variant": variant.name, "error": f"{type(e).__name__}: {e}"})
            return unavailable(f"the prediction log cannot be read ({type(e).__name__})")
        return {**rep, "window": self.window, "model_name": variant.model_name, "model_version": variant.model_version}

    def reports(self, max_age_s: float | None = None) -> dict[str, dict]:
        "`{variant: report}`, recomputed when older than `max_age_s` (default `ttl_s`)."
        max_age = self.ttl_s if max_age_s is None else max_age_s
        with self._lock:
            if self._cached and time.monotonic() - self._cached[0] < max_age:
                return self._cached[1]
            out = {name: self.report(v) for name, v in self.models.variants.items()}
            self._cached = (time.monotonic(), out)
            return out
