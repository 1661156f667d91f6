"""What a serving process holds: settings, the loaded models, the prediction log, the reviewers' feedback log and
(when PD_KEEP_PHOTOS is on) the photo store. The API builds one at start-up, each Celery worker process builds its own
(models load once per process)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from plant_disease.predlog import PredictionLog
from plant_disease.serving import keep_photo, migrate_log, open_feedback_log, open_photo_store, open_prediction_log

from .config import Settings
from .modelset import ModelSet


@dataclass
class ServiceState:
    settings: Settings
    models: ModelSet
    predlog: PredictionLog
    feedback: object = None  # plant_disease.feedback.FeedbackLog
    photos: object = None  # plant_disease.photostore.PhotoStore, or None: photos are not kept
    migrated: bool = False
    retired_models: set[tuple[str, str]] = field(default_factory=set)  # (name, version) served once, no longer: known

    @classmethod
    def start(cls, settings: Settings, migrate: bool = True, batching: bool = False) -> "ServiceState":
        """Load and warm up the models (micro-batched when `batching`), open the prediction log (migrating its schema
        when `migrate`)."""
        predlog = open_prediction_log(settings.database_url, settings.spool_dir, migrate=False)
        feedback = open_feedback_log(settings.database_url, settings.spool_dir)
        state = cls(settings, ModelSet.load(settings, batching), predlog, feedback, open_photo_store(settings))
        if migrate:
            state.migrate()
        return state

    def migrate(self) -> bool:
        "Bring the log's schema to the latest migration; a database that is down is logged, not fatal."
        self.migrated = self.migrated or migrate_log(self.settings.database_url)
        return self.migrated

    @cached_property
    def drift(self):
        "The variants' drift monitor (`app.drift.DriftMonitor`) over the last `drift_window` answers of each."
        from .drift import DriftMonitor

        return DriftMonitor(self.models, self.predlog, self.settings.drift_window)

    def keep_photo(self, data: bytes, sha256: str) -> None:
        "Keep an answered photo when PD_KEEP_PHOTOS is on (`serving.keep_photo`: never slows nor fails a prediction)."
        keep_photo(self.photos, data, sha256)

    def close(self) -> None:
        self.models.close()
        self.predlog.close()
        self.feedback.close()
        if self.photos is not None:
            self.photos.close()
