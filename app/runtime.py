"""What a serving process holds: settings, the loaded models and the prediction log. The API builds one at start-up,
each Celery worker process builds its own (models load once per process)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from plant_disease.predlog import PredictionLog
from plant_disease.serving import migrate_log, open_prediction_log

from .config import Settings
from .modelset import ModelSet


@dataclass
class Runtime:
    settings: Settings
    models: ModelSet
    predlog: PredictionLog
    migrated: bool = False

    @classmethod
    def start(cls, settings: Settings, migrate: bool = True, batching: bool = False) -> "Runtime":
        """Load and warm up the models (micro-batched when `batching`), open the prediction log (migrating its schema
        when `migrate`)."""
        predlog = open_prediction_log(settings.database_url, settings.spool_dir, migrate=False)
        rt = cls(settings, ModelSet.load(settings, batching), predlog)
        if migrate:
            rt.migrate()
        return rt

    def migrate(self) -> bool:
        "Bring the log's schema to the latest migration; a database that is down is logged, not fatal."
        self.migrated = self.migrated or migrate_log(self.settings.database_url)
        return self.migrated

    @cached_property
    def drift(self):
        "The variants' drift monitor (`app.drift.DriftMonitor`) over the last `drift_window` answers of each."
        from .drift import DriftMonitor

        return DriftMonitor(self.models, self.predlog, self.settings.drift_window)

    def close(self) -> None:
        self.models.close()
        self.predlog.close()
