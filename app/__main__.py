"""`python -m app [--host 127.0.0.1] [--port 8000] [--workers 1]`: serve the API with JSON logs."""

import argparse
import sys

import uvicorn

from .observability import logging_config

ap = argparse.ArgumentParser(prog="python -m app")
ap.add_argument("--host", default="127.0.0.1")
ap.add_argument("--port", type=int, default=8000)
ap.add_argument("--workers", type=int, default=1)
ap.add_argument("--log-level", default="INFO")
a = ap.parse_args()
try:  # a bad setting is one clear line, not a traceback from inside the server
    from .config import get_settings

    get_settings()
except Exception as e:
    sys.exit(f"plant-disease API: invalid settings: {e}")
# X-Forwarded-For is trusted from FORWARDED_ALLOW_IPS (uvicorn's variable; default 127.0.0.1): set it to the proxy's
# address (deploy/compose.yaml: nginx's network) so anonymous rate limits see the real client.
uvicorn.run(
    "app.main:create_app",
    factory=True,
    host=a.host,
    port=a.port,
    workers=a.workers,
    proxy_headers=True,
    log_config=logging_config(a.log_level),
    access_log=False,
)
