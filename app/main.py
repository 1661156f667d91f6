"""The FastAPI application: `uvicorn app.main:app`, or `python -m app` (JSON logs, proxy headers)."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path

from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from prometheus_fastapi_instrumentator import Instrumentator, metrics

from .config import Settings, get_settings
from .observability import DRIFT, LOG_SPOOLED, QUEUE_DEPTH, AccessLog, BodySizeLimit
from .routes import admin, device, feedback, health, predict, tasks, web_model

log = logging.getLogger("plant_disease.app")
STATIC = Path(__file__).parent / "static"
LITERT = Path(__file__).parent / "node_modules" / "@litertjs"  # LiteRT.js, installed by `npm ci` (make install)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        from .modelset import ModelLoadError
        from .state import ServiceState

        try:
            app.state.service = ServiceState.start(settings, batching=True)
        except ModelLoadError as e:
            log.critical(f"cannot start: {e}")
            raise
        state = app.state.service
        QUEUE_DEPTH.set_function(lambda: health.queue_status(state).get("depth", float("nan")))  # read at scrape time
        LOG_SPOOLED.set_function(lambda: state.predlog.spooled)
        DRIFT.source = state.drift.reports  # at scrape time too (cached a few seconds)
        log.info("ready", extra={"variants": list(state.models.variants)})
        yield
        DRIFT.source = None
        app.state.service.close()

    app = FastAPI(
        title="plant-disease",
        version="1.0",
        lifespan=lifespan,
        description="Plant leaf disease diagnosis (PlantVillage classes): upload a photo, get the disease.",
    )
    routers = (health, predict, device, tasks, feedback, admin, web_model)
    for r in (m.router for m in routers):
        app.include_router(r)
    generate = app.openapi

    def openapi() -> dict:  # FastAPI's schema (built once, cached), with what this deployment's settings add
        return app.openapi_schema or _deployment_schema(generate(), settings)

    app.openapi = openapi
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    # the in-browser runtime for the offline mode; without `npm ci` its files answer 404 and the page says so
    app.mount("/vendor/@litertjs", StaticFiles(directory=LITERT, check_dir=False), name="litertjs")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/sw.js", include_in_schema=False)
    def service_worker() -> FileResponse:  # from the root, so that it may control the whole page
        return FileResponse(STATIC / "sw.js", media_type="text/javascript", headers={"Cache-Control": "no-cache"})

    @app.get("/manifest.webmanifest", include_in_schema=False)
    def web_app_manifest() -> FileResponse:
        return FileResponse(STATIC / "manifest.webmanifest", media_type="application/manifest+json")

    Instrumentator(should_group_status_codes=False, excluded_handlers=["/metrics"]).add(metrics.requests()).add(
        metrics.latency(should_include_status=True)
    ).instrument(app).expose(app, endpoint="/metrics", include_in_schema=False)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_upload_bytes * max(1, settings.max_batch) + 64 * 1024)
    app.add_middleware(AccessLog)
    app.add_middleware(CorrelationIdMiddleware, header_name="X-Request-ID")
    return app


def _deployment_schema(schema: dict, settings: Settings) -> dict:
    """What `/openapi.json` says that depends on this deployment's settings: the variant names `X-Model-Variant`
    takes, the most files a batch takes, and, with `PD_REQUIRE_AUTH=false`, that the bearer token is optional."""
    variants = [v.name for v in settings.variants]
    for path in schema["paths"].values():
        for op in path.values():
            for p in op.get("parameters", []):
                if p["in"] == "header" and p["name"] == "X-Model-Variant":
                    p["schema"] = {"type": "string", "enum": variants, "title": p["name"]}
            if "security" in op and not settings.require_auth:
                op["security"].append({})
    ref = schema["paths"]["/predict/batch"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
    schema["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"]["files"]["maxItems"] = settings.max_batch
    return schema


def __getattr__(name: str):
    "`app.main:app` is built on first access, so importing this module reads no settings."
    if name == "app":
        globals()["app"] = a = create_app()
        return a
    raise AttributeError(name)
