"""plant-disease serving: the FastAPI service (`app.main`), its Celery workers (`app.worker`) and web page."""
