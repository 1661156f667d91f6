"""The production model for the web page's offline mode: what the browser runs and how it reads the outputs
(`plant_disease.web_model`), under a content hash. The description is revalidated on every visit (ETag); the files
live under their hash and are cached for ever: a new hash when production moves."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response
from fastapi.responses import JSONResponse
from plant_disease.serving import MANAGEMENT_NOTES
from plant_disease.web_model import WebModelUnavailable

from ..auth import require_scope
from ..deps import get_state
from ..modelset import Variant
from ..state import ServiceState
from . import WEB_MODEL, WEB_MODEL_FILE

router = APIRouter(tags=["models"], dependencies=[Depends(require_scope("predict"))])

FOREVER = "public, max-age=31536000, immutable"  # a file under its content hash never changes
REVALIDATE = "no-cache"  # kept, but asked again each time (304 while the hash is the same)
VARIANT = Path(..., min_length=1, max_length=64, description="a served variant (`GET /models`)")


def _web(v: Variant):
    try:
        return v.web_model(MANAGEMENT_NOTES)
    except WebModelUnavailable as e:
        raise HTTPException(404, f"variant {v.name} cannot run in the browser: {e}") from None


def _variant(state: ServiceState, name: str) -> Variant:
    v = state.models.variants.get(name)
    if v is None:
        raise HTTPException(404, f"no model variant {name!r}: this service has {sorted(state.models.variants)}")
    return v


def _description(v: Variant, request: Request) -> Response:
    w = _web(v)
    etag = f'"{w.hash}"'
    headers = {"ETag": etag, "Cache-Control": REVALIDATE}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    files = {n: {**f, "url": f"/models/{v.name}/web/{w.hash}/{n}"} for n, f in w.meta["files"].items()}
    return JSONResponse({**w.meta, "variant": v.name, "files": files}, headers=headers)


@router.get("/models/web", responses=WEB_MODEL, response_model=None)
def default_web_model(request: Request, state: ServiceState = Depends(get_state)) -> Response:
    """The model the web page runs offline: the first served variant (in `PD_VARIANTS` order) that the browser can
    run, with everything it needs to answer as this service answers; 304 when `If-None-Match` names its hash."""
    reasons = []
    for v in state.models.variants.values():
        try:
            return _description(v, request)
        except HTTPException as e:
            reasons.append(e.detail)
    raise HTTPException(404, "no variant can run in the browser: " + "; ".join(reasons))


@router.get("/models/{variant}/web", responses=WEB_MODEL, response_model=None)
def web_model(request: Request, variant: str = VARIANT, state: ServiceState = Depends(get_state)) -> Response:
    """One variant's model for the browser: the LiteRT file and feature bank (`files`, each with its URL under the
    hash), the class names in words, the calibration temperature, the abstention rule, the input size, the
    management notes; 304 when `If-None-Match` names its hash."""
    return _description(_variant(state, variant), request)


@router.get("/models/{variant}/web/{digest}/{name}", responses=WEB_MODEL_FILE, response_class=Response)
def web_model_file(
    variant: str = VARIANT,
    digest: str = Path(..., pattern="^[0-9a-f]{8,64}$", description="the description's `hash`"),
    name: str = Path(..., description="a file of the description's `files`"),
    state: ServiceState = Depends(get_state),
) -> Response:
    "A file of a variant's browser model, under the hash of the description that lists it: cacheable for ever."
    v = _variant(state, variant)
    w = _web(v)
    if digest != w.hash:
        raise HTTPException(
            404, f"variant {v.name} now serves model {w.hash}, not {digest}: fetch /models/{v.name}/web"
        )
    if name not in w.files:
        raise HTTPException(404, f"no file {name!r} in this model: {sorted(w.files)}")
    return Response(w.files[name], media_type="application/octet-stream", headers={"Cache-Control": FOREVER})
