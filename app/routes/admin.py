"""Operators: prediction statistics from the log, and tokens for new callers."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from fastapi import APIRouter, Depends, HTTPException, Query

from ..auth import mint_token, require_scope
from ..config import Settings, get_settings
from ..deps import get_state
from ..state import ServiceState
from ..schemas import TokenIn, TokenOut
from . import STATS, TOKENS

router = APIRouter(tags=["admin"], dependencies=[Depends(require_scope("admin"))])


@router.get("/stats", responses=STATS)
def stats(
    window_s: int = Query(3600, ge=1, le=366 * 24 * 3600, description="the last this many seconds"),
    state: ServiceState = Depends(get_state),
) -> dict:
    """Counts per class and per variant, latency percentiles, over a time window of the prediction log; and `drift`: per
    variant, its last `PD_DRIFT_WINDOW` answers compared with the model's validation profile (whatever the window)."""
    until = datetime.now(timezone.utc)
    try:
        body = state.predlog.stats(since=until - timedelta(seconds=window_s), until=until)
    except Exception as e:
        raise HTTPException(
            503,
            f"the prediction log database is unavailable ({type(e).__name__}); "
            f"{state.predlog.spooled} records are spooled and will be written when it returns",
        ) from None
    return {
        **body,
        "window_s": window_s,
        "spooled": state.predlog.spooled,
        "variants": {
            v.name: {"model_name": v.model_name, "model_version": v.model_version, "weight": v.weight}
            for v in state.models.variants.values()
        },
        "drift": state.drift.reports(max_age_s=0),
    }


@router.post("/tokens", response_model=TokenOut, responses=TOKENS)
def tokens(body: TokenIn, settings: Settings = Depends(get_settings)) -> TokenOut:
    "Mint a token for a new caller (HS256 services only; with RS256, sign offline: python -m app.tokens)."
    if settings.jwt_algorithm != "HS256" or not settings.jwt_secret:
        raise HTTPException(
            409,
            "this service verifies RS256 tokens and holds no private key: mint them with "
            "`python -m app.tokens --private-key KEY.pem`",
        )
    token, exp = mint_token(
        body.subject,
        list(body.scopes),
        body.ttl_s,
        settings.jwt_secret.get_secret_value(),
        "HS256",
        settings.jwt_issuer,
        settings.jwt_audience,
    )
    return TokenOut(access_token=token, expires_at=exp)
