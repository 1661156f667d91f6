"""Frames shaped like the prediction log's and the feedback log's, for the notebooks' and tests' examples."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd


def log_frames(rows: list[dict], fb: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    "Frames shaped like `PredictionLog.frame()` and `FeedbackLog.frame()`: every column, these rows' values."
    from plant_disease.feedback import FEEDBACK_FIELDS
    from plant_disease.predlog import FIELDS

    t0 = datetime(2026, 11, 2, 9, tzinfo=timezone.utc)
    p = pd.DataFrame(
        [
            dict.fromkeys(FIELDS) | {"status": "ok", "created_at": t0 + timedelta(hours=i), "id": f"p{i}"} | r
            for i, r in enumerate(rows)
        ]
    )
    f = pd.DataFrame(
        [
            dict.fromkeys(FEEDBACK_FIELDS) | {"created_at": t0 + timedelta(days=1, hours=i), "id": f"f{i}"} | r
            for i, r in enumerate(fb)
        ],
        columns=list(FEEDBACK_FIELDS),
    )
    return p, f
